package container

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/sigil-project/sigil/runtime/mount"
	"github.com/sigil-project/sigil/runtime/spec"
)

// TestMain lets the test binary be re-executed as libcontainer's init and
// as a monitor, as the sigil binary is (cmd/sigil/init.go).
func TestMain(m *testing.M) {
	Reexec()
	code := m.Run()
	if busybox.dir != "" {
		// The rootfs and the temporary directory it was made in.
		os.RemoveAll(filepath.Dir(busybox.dir))
	}
	os.Exit(code)
}

// busybox is a rootfs made once per test binary from the host's static
// busybox: every applet, /etc/passwd and /etc/group with root, nobody and
// app (1000).
var busybox struct {
	once sync.Once
	dir  string
	err  error
}

func busyboxRootfs(t *testing.T) string {
	t.Helper()
	busybox.once.Do(func() { busybox.dir, busybox.err = makeBusyboxRootfs() })
	if busybox.err != nil {
		t.Skipf("cannot build a busybox rootfs (install busybox-static): %v", busybox.err)
	}
	return busybox.dir
}

func makeBusyboxRootfs() (string, error) {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return "", err
	}
	if out, err := exec.Command("file", "-L", bb).Output(); err == nil && !bytes.Contains(out, []byte("statically linked")) {
		return "", fmt.Errorf("%s is not statically linked", bb)
	}
	dir, err := os.MkdirTemp("", "sigil-busybox-")
	if err != nil {
		return "", err
	}
	root := filepath.Join(dir, "rootfs")
	for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "root", "home/app", "tmp", "srv"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return "", err
		}
	}
	if err := os.Chmod(filepath.Join(root, "tmp"), 0o1777); err != nil {
		return "", err
	}
	if err := os.Chown(filepath.Join(root, "home/app"), 1000, 1000); err != nil {
		return "", err
	}
	b, err := os.ReadFile(bb)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(root, "bin/busybox"), b, 0o755); err != nil {
		return "", err
	}
	list, err := exec.Command(bb, "--list").Output()
	if err != nil {
		return "", err
	}
	for _, applet := range strings.Fields(string(list)) {
		if applet == "busybox" {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(root, "bin", applet)); err != nil {
			return "", err
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\n" +
			"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n" +
			"app:x:1000:1000:app:/home/app:/bin/sh\n",
		"etc/group": "root:x:0:\n" +
			"staff:x:50:app\n" +
			"nogroup:x:65534:\n" +
			"app:x:1000:\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			return "", err
		}
	}
	return root, nil
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: containers need namespaces, cgroups and mounts")
	}
}

// testEnv is a Manager over fresh root and state directories.
type testEnv struct {
	m           *Manager
	root, state string
	rootfs      string
	overlayDirs string
	logger      *slog.Logger
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	requireRoot(t)
	dir := t.TempDir()
	e := &testEnv{
		root:        filepath.Join(dir, "root"),
		state:       filepath.Join(dir, "state"),
		rootfs:      busyboxRootfs(t),
		overlayDirs: filepath.Join(dir, "overlay"),
		logger:      slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	m, err := New(e.root, e.state, WithLogger(e.logger), WithStopTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	e.m = m
	t.Cleanup(func() { e.cleanup(t) })
	return e
}

// cleanup removes every container left, then checks that nothing stays
// mounted under the state directory.
func (e *testEnv) cleanup(t *testing.T) {
	ctx := context.Background()
	infos, _ := e.m.List(ctx)
	for _, i := range infos {
		if err := e.m.Remove(ctx, i.ID, true); err != nil {
			t.Errorf("cleanup: remove %s: %v", i.Name, err)
		}
	}
	if m := mountsUnder(t, e.state); len(m) != 0 {
		t.Errorf("mounts left under %s: %q", e.state, m)
		for _, p := range m {
			_ = mount.Unmount(p)
		}
	}
	// Overlay upper/work dirs belong to root inside the rootfs.
	_ = os.RemoveAll(e.overlayDirs)
}

// overlay returns an overlay mount of the busybox rootfs with a fresh
// upper layer, as a snapshot would hand it over.
func (e *testEnv) overlay(t *testing.T) mount.Mount {
	m, _ := e.overlayIn(t)
	return m
}

// overlayIn is overlay, also returning the directory that holds the
// upper and work directories.
func (e *testEnv) overlayIn(t *testing.T) (mount.Mount, string) {
	t.Helper()
	d, err := os.MkdirTemp(mustMkdir(t, e.overlayDirs), "ovl-")
	if err != nil {
		t.Fatal(err)
	}
	upper, work := filepath.Join(d, "upper"), filepath.Join(d, "work")
	mustMkdir(t, upper)
	mustMkdir(t, work)
	return mount.Mount{Type: "overlay", Source: "overlay", Options: []string{
		"lowerdir=" + e.rootfs, "upperdir=" + upper, "workdir=" + work,
	}}, d
}

// bind returns a read-write bind mount of the busybox rootfs.
func (e *testEnv) bind() mount.Mount {
	return mount.Mount{Type: "bind", Source: e.rootfs, Options: []string{"bind"}}
}

func mustMkdir(t *testing.T, d string) string {
	t.Helper()
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// opts returns CreateOptions for the busybox image running args.
func (e *testEnv) opts(t *testing.T, args ...string) CreateOptions {
	return CreateOptions{
		ImageRef: "test.local/busybox:latest",
		Image:    ocispec.ImageConfig{Cmd: []string{"sh"}, Env: []string{"PATH=/bin"}},
		Rootfs:   e.overlay(t),
		Run:      spec.RunOptions{Args: args},
	}
}

// run runs a container in the foreground and returns its output.
func (e *testEnv) run(t *testing.T, o CreateOptions) (stdout, stderr string, st ExitStatus) {
	t.Helper()
	var out, errb syncBuffer
	st, err := e.m.Run(t.Context(), o, IO{Stdout: &out, Stderr: &errb})
	if err != nil {
		t.Fatalf("Run(%q): %v", o.Run.Args, err)
	}
	return out.String(), errb.String(), st
}

// syncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// mountsUnder lists the mount points under dir.
func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b, err := os.ReadFile("/proc/thread-self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir) {
			out = append(out, f[4])
		}
	}
	return out
}

// eventually polls cond for up to d.
func eventually(t *testing.T, d time.Duration, cond func() bool) bool {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cond()
}
