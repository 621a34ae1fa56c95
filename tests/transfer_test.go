package tests

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigil-project/sigil/tests/testimage"
)

// skopeo runs the real skopeo (containers/image) with no trust policy of
// its own; the test skips when it is not installed.
func skopeo(t *testing.T, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("skopeo")
	if err != nil {
		t.Skip("skopeo is not installed (apt-get install -y skopeo)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--insecure-policy"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("skopeo %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// dockerArchiveManifest reads manifest.json, the index docker save
// writes, from a docker-archive.
func dockerArchiveManifest(t *testing.T, file string) []struct {
	Config   string
	RepoTags []string
	Layers   []string
} {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var names []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s is not a tar: %v", file, err)
		}
		names = append(names, hdr.Name)
		if hdr.Name != "manifest.json" {
			continue
		}
		var m []struct {
			Config   string
			RepoTags []string
			Layers   []string
		}
		b, _ := io.ReadAll(tr)
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: manifest.json is not a docker save manifest: %v\n%s", file, err, b)
		}
		return m
	}
	t.Fatalf("%s has no manifest.json (entries %q): not docker save shaped", file, names)
	return nil
}

func TestTransferExportImport(t *testing.T) {
	src := newEnv(t)
	img, err := testimage.Layered(testimage.OCI)
	if err != nil {
		t.Fatal(err)
	}
	ref, pushed := src.pushDigest("air/app:1", img)
	src.mustSigil("fetch", "-q", ref)
	out := t.TempDir()
	dockerTar := filepath.Join(out, "out.tar")
	ociTar := filepath.Join(out, "out.oci.tar")
	src.mustSigil("image", "export", ref, dockerTar)
	src.mustSigil("image", "export", "--format", "oci-archive", ref, ociTar)

	m := dockerArchiveManifest(t, dockerTar)
	if len(m) != 1 || len(m[0].RepoTags) != 1 || m[0].RepoTags[0] != ref || len(m[0].Layers) != 4 {
		t.Errorf("docker-archive manifest.json = %+v, want one image with RepoTags [%s] and 4 layers", m, ref)
	}

	t.Run("skopeo reads the docker-archive", func(t *testing.T) {
		var info struct {
			Layers []string
			Env    []string
		}
		raw := skopeo(t, "inspect", "docker-archive:"+dockerTar)
		if err := json.Unmarshal([]byte(raw), &info); err != nil {
			t.Fatalf("skopeo inspect output: %v\n%s", err, raw)
		}
		if len(info.Layers) != 4 || !strings.Contains(strings.Join(info.Env, " "), "GREETING=hi") {
			t.Errorf("skopeo inspect docker-archive: layers %d, env %q; want 4 layers and GREETING=hi", len(info.Layers), info.Env)
		}
	})

	t.Run("skopeo reads the oci-archive", func(t *testing.T) {
		var info struct{ Digest string }
		raw := skopeo(t, "inspect", "oci-archive:"+ociTar)
		if err := json.Unmarshal([]byte(raw), &info); err != nil {
			t.Fatalf("skopeo inspect output: %v\n%s", err, raw)
		}
		if info.Digest != pushed {
			t.Errorf("skopeo inspect oci-archive: digest %s, want the fetched %s", info.Digest, pushed)
		}
	})

	// The exported files are all a fresh root needs: no registry.
	imports := map[string]string{"docker-archive": dockerTar, "oci-archive": ociTar}
	if _, err := exec.LookPath("skopeo"); err == nil {
		// Archives written by containers/image, not by sigil.
		skDocker := filepath.Join(out, "skopeo.tar")
		skopeo(t, "copy", "--src-tls-verify=false", "docker://"+ref, "docker-archive:"+skDocker+":"+ref)
		imports["skopeo docker-archive"] = skDocker
		skOCI := filepath.Join(out, "skopeo.oci.tar")
		skopeo(t, "copy", "--src-tls-verify=false", "docker://"+ref, "oci-archive:"+skOCI+":"+ref)
		imports["skopeo oci-archive"] = skOCI
	}
	for what, file := range imports {
		t.Run("import "+what, func(t *testing.T) {
			dst := newEnv(t)
			src.reg.Reset()
			r := dst.mustSigil("image", "import", file)
			if !strings.Contains(r.stdout, "Imported "+ref) {
				t.Errorf("import %s printed %q, want Imported %s", what, r.stdout, ref)
			}
			list := dst.mustSigil("images")
			if !strings.Contains(list.stdout, src.reg.Host+"/air/app ") {
				t.Errorf("images after import of the %s:\n%s\nwant %s", what, list.stdout, ref)
			}
			// An OCI archive keeps the manifest, so the digest (what
			// signatures sign) survives the move.
			if strings.Contains(what, "oci") {
				if d := dst.mustSigil("images", "--digests"); !strings.Contains(d.stdout, pushed) {
					t.Errorf("images --digests after import of the %s:\n%s\nwant the original digest %s", what, d.stdout, pushed)
				}
			}
			run := dst.mustSigil("run", "--rm", ref, "cat", "/etc/motd")
			if run.stdout != "layer3\n" {
				t.Errorf("run --rm %s cat /etc/motd after import of the %s = %q, want \"layer3\\n\"", ref, what, run.stdout)
			}
			if n := src.reg.Count("GET", "/v2/") + src.reg.Count("HEAD", "/v2/"); n != 0 {
				t.Errorf("import and run made %d requests to the registry, want 0 (air-gapped)", n)
			}
		})
	}

	// docker save writes Docker Hub names short ("busybox:latest"); they
	// mean docker.io/library/busybox:latest both ways.
	t.Run("docker hub name round trip", func(t *testing.T) {
		hub := filepath.Join(t.TempDir(), "hub.tar")
		skopeo(t, "copy", "--src-tls-verify=false", "docker://"+ref, "docker-archive:"+hub+":busybox:latest")
		if m := dockerArchiveManifest(t, hub); len(m) != 1 || len(m[0].RepoTags) != 1 {
			t.Fatalf("skopeo's docker-archive manifest.json = %+v, want one image with one tag", m)
		}
		one := newEnv(t)
		if r := one.mustSigil("image", "import", hub); !strings.Contains(r.stdout, "Imported docker.io/library/busybox:latest") {
			t.Errorf("import of a docker-archive tagged busybox:latest printed %q, want Imported docker.io/library/busybox:latest", r.stdout)
		}
		if run := one.mustSigil("run", "--rm", "--pull", "never", "busybox", "cat", "/etc/motd"); run.stdout != "layer3\n" {
			t.Errorf("run busybox after import = %q, want \"layer3\\n\"", run.stdout)
		}
		again := filepath.Join(t.TempDir(), "again.tar")
		one.mustSigil("image", "export", "busybox", again)
		m := dockerArchiveManifest(t, again)
		if len(m) != 1 || len(m[0].RepoTags) != 1 {
			t.Fatalf("re-exported manifest.json = %+v, want one image with one tag", m)
		}
		two := newEnv(t)
		if r := two.mustSigil("image", "import", again); !strings.Contains(r.stdout, "Imported docker.io/library/busybox:latest") {
			t.Errorf("import of sigil's export of busybox (RepoTags %q) printed %q, want Imported docker.io/library/busybox:latest", m[0].RepoTags, r.stdout)
		}
		two.mustSigil("run", "--rm", "--pull", "never", "busybox", "true")
	})

	// docker save IMG:1 IMG:latest writes one image with two RepoTags;
	// docker load tags both, and so must import, or an air-gapped run
	// of the second name goes looking for a registry.
	t.Run("every RepoTag of an image", func(t *testing.T) {
		multi := filepath.Join(t.TempDir(), "multi.tar")
		latest := src.reg.Host + "/air/app:latest"
		skopeo(t, "copy", "--src-tls-verify=false", "--additional-tag", latest, "docker://"+ref, "docker-archive:"+multi+":"+ref)
		if m := dockerArchiveManifest(t, multi); len(m) != 1 || len(m[0].RepoTags) != 2 {
			t.Fatalf("skopeo's docker-archive manifest.json = %+v, want one image with two RepoTags", m)
		}
		dst := newEnv(t)
		r := dst.mustSigil("image", "import", multi)
		for _, n := range []string{ref, latest} {
			if !strings.Contains(r.stdout, "Imported "+n) {
				t.Errorf("import of an image tagged %s and %s printed %q, want Imported %s", ref, latest, r.stdout, n)
			}
		}
		if run, _ := dst.sigil("run", "--rm", "--pull", "never", latest, "cat", "/etc/motd"); run.stdout != "layer3\n" {
			t.Errorf("run %s (the second RepoTag) after import = %v, want layer3", latest, run)
		}
		// --name names the one image, whatever it was tagged.
		if r := dst.mustSigil("image", "import", "--name", "renamed.example/app:2", multi); strings.Count(r.stdout, "Imported ") != 1 || !strings.Contains(r.stdout, "Imported renamed.example/app:2") {
			t.Errorf("import --name renamed.example/app:2 of a two-tag image printed %q, want one Imported renamed.example/app:2", r.stdout)
		}
	})

	t.Run("policy rejects the name", func(t *testing.T) {
		dst := newEnv(t)
		policy := `{"default":[{"type":"insecureAcceptAnything"}],
		  "transports":{"docker":{"` + src.reg.Host + `/air":[{"type":"reject"}]}}}`
		if err := os.WriteFile(dst.policy, []byte(policy), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, file := range []string{dockerTar, ociTar} {
			r, err := dst.sigil("image", "import", file)
			if err != nil {
				t.Fatal(err)
			}
			if r.code != 125 || !strings.Contains(r.stderr, "POLICY_REJECT") {
				t.Errorf("import of %s under a policy rejecting %s/air = %v, want exit 125 with POLICY_REJECT", filepath.Base(file), src.reg.Host, r)
			}
		}
		if list := dst.mustSigil("images", "-q"); strings.TrimSpace(list.stdout) != "" {
			t.Errorf("images after rejected imports = %q, want none", list.stdout)
		}
		if entries, _ := os.ReadDir(filepath.Join(dst.root, "tmp")); len(entries) != 0 {
			t.Errorf("rejected imports left %d scratch entries in ROOT/tmp, want 0", len(entries))
		}
		// The name is judged, not the file: another name is accepted.
		dst.mustSigil("image", "import", "--name", "other.example/app:1", ociTar)
	})
}

func TestTransferImportRefusesBadArchives(t *testing.T) {
	e := newEnv(t)
	base := filepath.Dir(e.root)
	dir := t.TempDir()
	junk := make([]byte, 8192)
	rand.Read(junk)
	var nonce [6]byte
	rand.Read(nonce[:])
	absEvil := filepath.Join(os.TempDir(), "sigil-evil-"+hex.EncodeToString(nonce[:]))
	t.Cleanup(func() { os.Remove(absEvil) })
	reg := func(name string) *tar.Header { return &tar.Header{Name: name, Typeflag: tar.TypeReg} }
	cases := []struct {
		name    string
		content []byte
		want    string
	}{
		{"garbage", junk, "not a valid tar archive"},
		{"empty tar", tarOf(t), "neither a docker-archive"},
		{"dot-dot entry", tarOf(t, reg("oci-layout"), reg("../evil")), `"../evil" escapes the archive`},
		{"deep dot-dot entry", tarOf(t, reg("a/../../../../../../../.."+absEvil)), "escapes the archive"},
		{"absolute entry", tarOf(t, reg(absEvil)), "escapes the archive"},
		{"write through a symlink", tarOf(t,
			&tar.Header{Name: "link", Typeflag: tar.TypeSymlink, Linkname: filepath.Dir(absEvil)},
			reg("link/"+filepath.Base(absEvil)),
		), "neither a docker-archive"},
		{"device node", tarOf(t, &tar.Header{Name: "null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}), "unsupported type"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".tar")
			if err := os.WriteFile(file, c.content, 0o644); err != nil {
				t.Fatal(err)
			}
			r, err := e.sigil("image", "import", file)
			if err != nil {
				t.Fatal(err)
			}
			if r.code != 125 || !strings.Contains(r.stderr, file) || !strings.Contains(r.stderr, c.want) {
				t.Errorf("import of a %s = %v, want exit 125 naming the file and saying %q", c.name, r, c.want)
			}
			if _, err := os.Stat(absEvil); err == nil {
				t.Errorf("import of a %s wrote %s, outside the archive", c.name, absEvil)
			}
			// Nothing named evil anywhere near: the env, the archive's dir.
			for _, d := range []string{base, dir} {
				filepath.Walk(d, func(p string, fi os.FileInfo, err error) error {
					if err == nil && strings.Contains(fi.Name(), "evil") {
						t.Errorf("import of a %s left %s", c.name, p)
					}
					return nil
				})
			}
			if entries, _ := os.ReadDir(filepath.Join(e.root, "tmp")); len(entries) != 0 {
				t.Errorf("import of a %s left %d scratch entries in ROOT/tmp, want 0", c.name, len(entries))
			}
		})
	}
	if list := e.mustSigil("images", "-q"); strings.TrimSpace(list.stdout) != "" {
		t.Errorf("images after refused imports = %q, want none", list.stdout)
	}
}

func TestTransferOCILayout(t *testing.T) {
	e := newEnv(t)
	bb, ly := busyboxAndLayered(t)
	bbRef := e.push("layout/busybox:1", bb)
	lyRef := e.push("layout/layered:1", ly)
	dir := filepath.Join(t.TempDir(), "layout")
	skopeo(t, "copy", "--src-tls-verify=false", "docker://"+bbRef, "oci:"+dir+":mytag")
	skopeo(t, "copy", "--src-tls-verify=false", "docker://"+lyRef, "oci:"+dir+":other")

	var idx struct {
		Manifests []struct {
			Digest      string
			Annotations map[string]string
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	var want string
	for _, m := range idx.Manifests {
		if m.Annotations["org.opencontainers.image.ref.name"] == "mytag" {
			want = m.Digest
		}
	}
	if want == "" {
		t.Fatalf("skopeo's layout has no mytag:\n%s", b)
	}

	e.reg.Reset()
	r := e.mustSigil("fetch", "-q", "oci:"+dir+":mytag")
	if got := strings.TrimSpace(r.stdout); got != want {
		t.Errorf("fetch oci:DIR:mytag printed %q, want the layout's digest %s", got, want)
	}
	if list := e.mustSigil("images"); !strings.Contains(list.stdout, "oci:"+dir) {
		t.Errorf("images after fetch oci:DIR:mytag:\n%s\nwant oci:%s", list.stdout, dir)
	}
	if run := e.mustSigil("run", "--rm", "oci:"+dir+":mytag", "echo", "ok"); run.stdout != "ok\n" {
		t.Errorf("run --rm oci:DIR:mytag echo ok = %q, want \"ok\\n\"", run.stdout)
	}
	// Not fetched first: run fetches from the layout.
	if run := e.mustSigil("run", "--rm", "-q", "oci:"+dir+":other", "cat", "/etc/motd"); run.stdout != "layer3\n" {
		t.Errorf("run --rm oci:DIR:other cat /etc/motd = %q, want \"layer3\\n\"", run.stdout)
	}
	if n := e.reg.Count("GET", "/v2/") + e.reg.Count("HEAD", "/v2/"); n != 0 {
		t.Errorf("fetch and run from an OCI layout made %d registry requests, want 0", n)
	}

	// The trust policy judges layouts by path (oci transport scopes).
	policy := `{"default":[{"type":"insecureAcceptAnything"}],
	  "transports":{"oci":{"` + dir + `:other":[{"type":"reject"}]}}}`
	if err := os.WriteFile(e.policy, []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"fetch", "-q", "oci:" + dir + ":other"}, {"run", "--rm", "oci:" + dir + ":other", "true"}} {
		r, err := e.sigil(args...)
		if err != nil {
			t.Fatal(err)
		}
		if r.code != 125 || !strings.Contains(r.stderr, "POLICY_REJECT") {
			t.Errorf("sigil %s under a policy rejecting %s:other = %v, want exit 125 with POLICY_REJECT", args[0], dir, r)
		}
	}
	e.mustSigil("fetch", "-q", "oci:"+dir+":mytag")

	r, err = e.sigil("fetch", "-q", "oci:"+dir+":nope")
	if err != nil {
		t.Fatal(err)
	}
	if r.code != 125 || !strings.Contains(r.stderr, `"nope"`) || !strings.Contains(r.stderr, "mytag") || !strings.Contains(r.stderr, "other") {
		t.Errorf("fetch of a missing layout tag = %v, want exit 125 naming nope and the tags present (mytag, other)", r)
	}
}
