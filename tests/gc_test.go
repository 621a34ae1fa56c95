package tests

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"
)

// storeOf is where an image's pieces live under a Sigil root.
type storeOf struct {
	blobs  []string // content/blobs/sha256/<hex>: manifest, config, layers
	chains []string // snapshots/committed/<chain-id hex>, bottom first
}

func imageStore(t *testing.T, root string, img v1.Image) storeOf {
	t.Helper()
	var s storeOf
	blob := func(h v1.Hash, err error) {
		if err != nil {
			t.Fatal(err)
		}
		s.blobs = append(s.blobs, filepath.Join(root, "content", "blobs", "sha256", h.Hex))
	}
	blob(img.Digest())
	blob(img.ConfigName())
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var chain digest.Digest
	for _, l := range layers {
		blob(l.Digest())
		diffID, err := l.DiffID()
		if err != nil {
			t.Fatal(err)
		}
		if chain == "" {
			chain = digest.Digest(diffID.String())
		} else {
			chain = digest.FromString(chain.String() + " " + diffID.String())
		}
		s.chains = append(s.chains, filepath.Join(root, "snapshots", "committed", chain.Encoded()))
	}
	return s
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// ageStore backdates every blob and committed snapshot by an hour, past
// gc's ten-minute grace for things just written.
func ageStore(t *testing.T, root string) {
	t.Helper()
	old := time.Now().Add(-time.Hour)
	for _, pattern := range []string{"content/blobs/sha256/*", "snapshots/committed/*"} {
		paths, _ := filepath.Glob(filepath.Join(root, pattern))
		for _, p := range paths {
			if err := os.Chtimes(p, old, old); err != nil {
				t.Fatal(err)
			}
		}
	}
}

var gcReport = regexp.MustCompile(`(Removed|Would remove) (\d+) blobs \(.*\) and (\d+) layer snapshots`)

// gc runs sigil gc and returns how many blobs and snapshots it reports.
func (e *env) gc(t *testing.T, args ...string) (blobs, snapshots int) {
	t.Helper()
	r := e.mustSigil(append([]string{"gc"}, args...)...)
	m := gcReport.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("sigil gc %s printed %q, want a report of blobs and snapshots", strings.Join(args, " "), r.stdout)
	}
	blobs, _ = strconv.Atoi(m[2])
	snapshots, _ = strconv.Atoi(m[3])
	return blobs, snapshots
}

func TestGCRemovesOnlyUnusedLayers(t *testing.T) {
	e := newEnv(t)
	bb, ly := busyboxAndLayered(t)
	kept := e.push("gc/kept:1", bb)
	gone := e.push("gc/gone:1", ly)
	e.mustSigil("fetch", "-q", kept)
	e.mustSigil("fetch", "-q", gone)
	k, g := imageStore(t, e.root, bb), imageStore(t, e.root, ly)
	if k.blobs[2] != g.blobs[2] || k.chains[0] != g.chains[0] {
		t.Fatalf("test images do not share their base layer: %s vs %s", k.blobs[2], g.blobs[2])
	}
	for _, p := range append(append(k.blobs, k.chains...), append(g.blobs, g.chains...)...) {
		if !exists(p) {
			t.Fatalf("after fetch, %s is missing; the test's idea of the store layout is wrong", p)
		}
	}
	// Removed only with the image: manifest, config, layers 2-4; the
	// snapshots of chains 2-4.
	uniqueBlobs := []string{g.blobs[0], g.blobs[1], g.blobs[3], g.blobs[4], g.blobs[5]}
	uniqueChains := g.chains[1:]
	shared := append(append([]string{}, k.blobs...), k.chains...)

	e.mustSigil("image", "rm", gone)
	// Just written: within the grace period nothing goes.
	if b, s := e.gc(t); b != 0 || s != 0 {
		t.Errorf("gc of a fresh store removed %d blobs and %d snapshots, want 0 and 0 (ten-minute grace)", b, s)
	}
	ageStore(t, e.root)
	if b, s := e.gc(t, "--dry-run"); b != len(uniqueBlobs) || s != len(uniqueChains) {
		t.Errorf("gc --dry-run reported %d blobs and %d snapshots, want %d and %d", b, s, len(uniqueBlobs), len(uniqueChains))
	}
	for _, p := range append(append([]string{}, uniqueBlobs...), uniqueChains...) {
		if !exists(p) {
			t.Errorf("gc --dry-run removed %s", p)
		}
	}
	if b, s := e.gc(t); b != len(uniqueBlobs) || s != len(uniqueChains) {
		t.Errorf("gc removed %d blobs and %d snapshots, want %d and %d", b, s, len(uniqueBlobs), len(uniqueChains))
	}
	for _, p := range append(append([]string{}, uniqueBlobs...), uniqueChains...) {
		if exists(p) {
			t.Errorf("after image rm and gc, %s (only the removed image's) is still there", p)
		}
	}
	for _, p := range shared {
		if !exists(p) {
			t.Errorf("gc removed %s, which the kept image uses", p)
		}
	}
	if b, s := e.gc(t); b != 0 || s != 0 {
		t.Errorf("a second gc removed %d blobs and %d snapshots, want 0 and 0", b, s)
	}
	if r := e.mustSigil("run", "--rm", kept, "cat", "/etc/passwd"); !strings.HasPrefix(r.stdout, "root:x:0:0") {
		t.Errorf("run of the kept image after gc: stdout %q, want /etc/passwd", r.stdout)
	}
	e.mustSigil("run", "--rm", kept, "true")
	// The removed image comes back from the registry, whole.
	if r := e.mustSigil("run", "--rm", "-q", gone, "cat", "/etc/motd"); r.stdout != "layer3\n" {
		t.Errorf("run of the removed image after gc (fetched again) = %q, want \"layer3\\n\"", r.stdout)
	}
}

func TestGCKeepsLayersOfContainers(t *testing.T) {
	e := newEnv(t)
	bb, ly := busyboxAndLayered(t)
	kept := e.push("gc/kept:1", bb)
	used := e.push("gc/used:1", ly)
	e.mustSigil("fetch", "-q", kept)
	e.mustSigil("fetch", "-q", used)
	g := imageStore(t, e.root, ly)
	e.mustSigil("run", "-d", "--name", "holder", used, "sleep", "600")
	e.mustSigil("image", "rm", used)
	ageStore(t, e.root)
	e.gc(t)
	for _, p := range g.chains {
		if !exists(p) {
			t.Errorf("gc removed layer snapshot %s under the running container holder", p)
		}
	}
	if r := e.mustSigil("exec", "holder", "cat", "/etc/motd", "/data/keep"); r.stdout != "layer3\nkeep\n" {
		t.Errorf("exec in holder after its image was removed and gc ran = %q, want \"layer3\\nkeep\\n\"", r.stdout)
	}
	if r := e.mustSigil("run", "--rm", kept, "echo", "ok"); r.stdout != "ok\n" {
		t.Errorf("run of the kept image after gc = %q, want \"ok\\n\"", r.stdout)
	}
	if r := e.mustSigil("ps"); !strings.Contains(r.stdout, "holder") || !strings.Contains(r.stdout, "Up") {
		t.Errorf("ps after its image was removed and gc ran:\n%s\nwant holder Up", r.stdout)
	}
	e.mustSigil("inspect", "holder")
	// Stopped but not removed, the container still holds them.
	e.mustSigil("stop", "-t", "1", "holder")
	ageStore(t, e.root)
	e.gc(t)
	for _, p := range g.chains {
		if !exists(p) {
			t.Errorf("gc removed layer snapshot %s of the stopped (not removed) container holder", p)
		}
	}
	// Once the container is gone, so are the layers only it used.
	e.mustSigil("rm", "holder")
	ageStore(t, e.root)
	e.gc(t)
	for _, p := range g.chains[1:] {
		if exists(p) {
			t.Errorf("after rm holder and gc, %s (used by nothing) is still there", p)
		}
	}
	if !exists(g.chains[0]) {
		t.Errorf("gc removed the base layer snapshot %s the kept image uses", g.chains[0])
	}
	e.mustSigil("run", "--rm", kept, "true")
}
