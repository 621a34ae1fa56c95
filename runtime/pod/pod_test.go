package pod

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// The test binary doubles as a helper process that joins a pod's network
// namespace: SIGIL_POD_HELPER=listen|dial, SIGIL_POD_NETNS=<file>.
func TestMain(m *testing.M) {
	if mode := os.Getenv("SIGIL_POD_HELPER"); mode != "" {
		os.Exit(helper(mode, os.Getenv("SIGIL_POD_NETNS"), os.Getenv("SIGIL_POD_ADDR")))
	}
	os.Exit(m.Run())
}

const greeting = "hello from inside the pod"

func helper(mode, netns, addr string) int {
	runtime.LockOSThread() // never unlocked: this thread leaves the host netns
	fd, err := unix.Open(netns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		fmt.Fprintln(os.Stderr, "setns:", err)
		return 1
	}
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), &st); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("netns %d lo-up %v\n", st.Ino, lo.Flags&net.FlagUp != 0)
	switch mode {
	case "listen":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Printf("addr %s\n", ln.Addr())
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Fprintln(c, greeting)
		c.Close()
	case "dial":
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		line, _ := bufio.NewReader(c).ReadString('\n')
		fmt.Printf("got %s", line)
	}
	return 0
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: pinning namespaces and bind-mounting them needs CAP_SYS_ADMIN")
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// mountsUnder returns the mount points under dir in /proc/self/mountinfo.
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
		if len(f) > 4 && strings.HasPrefix(unescapeMountinfo(f[4]), dir) {
			out = append(out, f[4])
		}
	}
	return out
}

func nsInode(t *testing.T, file string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(file, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func TestPodNetworkNone(t *testing.T) {
	requireRoot(t)
	ctx := t.Context()
	state := t.TempDir()
	cgRoot := "/sigil-test-" + randomID()[:8]
	t.Cleanup(func() { _ = removeCgroups(context.Background(), cgRoot) })

	p, err := Create(ctx, state, Config{ID: "pod-none", Hostname: "podhost", CgroupRoot: cgRoot}, WithLogger(testLogger(t)))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() { _ = p.Remove(context.Background()) })

	if p.Network != NetworkNone || p.CgroupParent != cgRoot+"/pod-none" {
		t.Errorf("pod = %+v", p)
	}
	for _, f := range []string{p.Namespaces.Network, p.Namespaces.IPC, p.Namespaces.UTS} {
		if f == "" || !strings.HasPrefix(f, p.Dir()) {
			t.Fatalf("namespace file %q not under %s", f, p.Dir())
		}
	}
	if got := len(mountsUnder(t, p.Dir())); got != 3 {
		t.Errorf("%d mounts under %s, want 3 (net, ipc, uts)", got, p.Dir())
	}

	// The pinned namespaces are new, not the host's; the process (its
	// main thread too) stays in the host's.
	for name, file := range map[string]string{"net": p.Namespaces.Network, "ipc": p.Namespaces.IPC, "uts": p.Namespaces.UTS} {
		for _, host := range []string{"/proc/self/ns/" + name, "/proc/thread-self/ns/" + name} {
			if nsInode(t, file) == nsInode(t, host) {
				t.Errorf("%s namespace of the pod is %s", name, host)
			}
		}
	}

	// Hostname: join the UTS namespace on a thread that is then discarded.
	var hostname string
	err = onDiscardedThread(func() error {
		fd, err := unix.Open(p.Namespaces.UTS, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWUTS); err != nil {
			return err
		}
		var u unix.Utsname
		if err := unix.Uname(&u); err != nil {
			return err
		}
		hostname = unix.ByteSliceToString(u.Nodename[:])
		return nil
	})
	if err != nil || hostname != "podhost" {
		t.Errorf("hostname in the pod = %q, %v, want podhost", hostname, err)
	}
	host, _ := os.Hostname()
	if host == "podhost" {
		t.Errorf("the host's hostname was changed")
	}

	// Two processes that join the pod's netns share its loopback: one
	// listens on 127.0.0.1, the other connects to it; the host cannot.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	listener := exec.CommandContext(ctx, exe)
	listener.Env = append(os.Environ(), "SIGIL_POD_HELPER=listen", "SIGIL_POD_NETNS="+p.Namespaces.Network)
	listener.Stderr = t.Output()
	out, err := listener.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := listener.Start(); err != nil {
		t.Fatal(err)
	}
	defer listener.Wait()
	defer listener.Process.Kill()
	r := bufio.NewReader(out)
	first, _ := r.ReadString('\n')
	wantNS := fmt.Sprintf("netns %d lo-up true\n", nsInode(t, p.Namespaces.Network))
	if first != wantNS {
		t.Fatalf("listener says %q, want %q", first, wantNS)
	}
	addrLine, _ := r.ReadString('\n')
	addr := strings.TrimSpace(strings.TrimPrefix(addrLine, "addr "))
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("listener address line %q", addrLine)
	}

	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		line, _ := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if strings.Contains(line, greeting) {
			t.Fatalf("host network reached the pod's loopback listener at %s", addr)
		}
	}

	dialer := exec.CommandContext(ctx, exe)
	dialer.Env = append(os.Environ(), "SIGIL_POD_HELPER=dial", "SIGIL_POD_NETNS="+p.Namespaces.Network, "SIGIL_POD_ADDR="+addr)
	dialer.Stderr = t.Output()
	dout, err := dialer.Output()
	if err != nil {
		t.Fatalf("dialer: %v (output %q)", err, dout)
	}
	if want := wantNS + "got " + greeting + "\n"; string(dout) != want {
		t.Errorf("dialer output = %q, want %q", dout, want)
	}
	rest, _ := io.ReadAll(r)
	if len(rest) != 0 {
		t.Errorf("listener said more: %q", rest)
	}
	if err := listener.Wait(); err != nil {
		t.Errorf("listener: %v", err)
	}

	// Another process can load the record.
	q, err := Load(ctx, state, "pod-none")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if q.Namespaces != p.Namespaces || q.Hostname != "podhost" || q.CgroupParent != p.CgroupParent {
		t.Errorf("Load = %+v, want %+v", q, p)
	}
	pods, err := List(ctx, state)
	if err != nil || len(pods) != 1 || pods[0].ID != "pod-none" {
		t.Errorf("List = %v, %v", pods, err)
	}

	// A container cgroup left under the pod cgroup, in every hierarchy.
	mounts, err := cgroupMounts()
	if err != nil || len(mounts) == 0 {
		t.Fatalf("cgroup mounts = %v, %v", mounts, err)
	}
	for _, mp := range mounts {
		if err := os.MkdirAll(filepath.Join(mp, p.CgroupParent, "ctr"), 0o755); err != nil {
			t.Fatalf("mkdir cgroup in %s: %v", mp, err)
		}
	}

	if err := q.Remove(ctx); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if m := mountsUnder(t, state); len(m) != 0 {
		t.Errorf("mounts left after Remove: %q", m)
	}
	if _, err := os.Stat(p.Dir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pod dir after Remove: %v", err)
	}
	for _, mp := range mounts {
		if _, err := os.Stat(filepath.Join(mp, p.CgroupParent)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cgroup %s%s after Remove: %v", mp, p.CgroupParent, err)
		}
	}
	if err := q.Remove(ctx); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	if _, err := Load(ctx, state, "pod-none"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Load after Remove = %v, want not found", err)
	}
}

func TestPodHostNetwork(t *testing.T) {
	requireRoot(t)
	ctx := t.Context()
	state := t.TempDir()
	p, err := Create(ctx, state, Config{Network: NetworkHost, CgroupRoot: "/sigil-test"})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() { _ = p.Remove(context.Background()) })
	if p.Namespaces.Network != "" {
		t.Errorf("host-network pod pinned a netns at %q", p.Namespaces.Network)
	}
	if len(p.ID) != 32 || p.Hostname != p.ID[:12] {
		t.Errorf("generated ID %q hostname %q", p.ID, p.Hostname)
	}
	if _, err := os.Stat(filepath.Join(p.Dir(), "ns", "net")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ns/net exists for a host-network pod: %v", err)
	}
	if got := len(mountsUnder(t, p.Dir())); got != 2 {
		t.Errorf("%d mounts under %s, want 2 (ipc, uts)", got, p.Dir())
	}
	if _, err := Create(ctx, state, Config{ID: p.ID, Network: NetworkHost}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("second Create with the same ID = %v, want already exists", err)
	}
	// The failed Create must not have removed the first pod's files.
	if got := len(mountsUnder(t, p.Dir())); got != 2 {
		t.Errorf("%d mounts under %s after a duplicate Create, want 2", got, p.Dir())
	}
	if err := p.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if m := mountsUnder(t, state); len(m) != 0 {
		t.Errorf("mounts left after Remove: %q", m)
	}
}

func TestCreateInvalid(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	for _, cfg := range []Config{
		{ID: "../escape"},
		{ID: "a b"},
		{ID: "ok", Network: "bridge"},
		{ID: "ok", CgroupRoot: "relative"},
		{ID: "ok", Hostname: strings.Repeat("h", 65)},
	} {
		if _, err := Create(t.Context(), state, cfg); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Create(%+v) = %v, want invalid argument", cfg, err)
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(state, "pods")); len(entries) != 0 {
		t.Errorf("invalid configs left %d entries", len(entries))
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{`/a\040b`: "/a b", `/plain`: "/plain", `/x\134y`: `/x\y`, `/bad\09`: `/bad\09`} {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", in, got, want)
		}
	}
}
