package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/sigil-project/sigil/runtime/pod"
	"github.com/sigil-project/sigil/runtime/spec"
)

func TestRunEcho(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	o := e.opts(t, "echo", "hello", "world")
	o.Name = "echo"
	stdout, stderr, st := e.run(t, o)
	if stdout != "hello world\n" || stderr != "" {
		t.Errorf("output = %q, %q; want %q, empty", stdout, stderr, "hello world\n")
	}
	if st.Code != 0 || st.OOMKilled {
		t.Errorf("status = %+v, want code 0", st)
	}
	info, err := e.m.Inspect(t.Context(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	if info.Status != StatusExited || info.ExitCode != 0 || info.FinishedAt.Before(info.StartedAt) || info.StartedAt.IsZero() {
		t.Errorf("info = %+v", info)
	}
	var logs syncBuffer
	if err := e.m.Logs(t.Context(), "echo", false, &logs); err != nil || logs.String() != "hello world\n" {
		t.Errorf("Logs = %q, %v; a foreground container's output is logged too", logs.String(), err)
	}
	if info.PodID != info.ID || !info.OwnsPod {
		t.Errorf("pod = %s (owned %v), want the container's own", info.PodID, info.OwnsPod)
	}
	// Its pod, rootfs mount and libcontainer state are gone once it exited.
	if m := mountsUnder(t, e.state); len(m) != 0 {
		t.Errorf("mounts after exit: %q", m)
	}
	for _, p := range []string{filepath.Join(e.state, "pods", info.PodID), filepath.Join(e.state, "libcontainer", info.ID)} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s after exit: %v", p, err)
		}
	}
}

func TestRunExitCodeAndPID1(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	_, _, st := e.run(t, e.opts(t, "sh", "-c", "exit 7"))
	if st.Code != 7 {
		t.Errorf("exit code = %d, want 7", st.Code)
	}
	stdout, _, _ := e.run(t, e.opts(t, "sh", "-c", "echo $$"))
	if stdout != "1\n" {
		t.Errorf("pid of the container's process = %q, want 1", stdout)
	}
}

func TestRunEnvWorkdirUserHostname(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	o := e.opts(t, "sh", "-c", `echo "$GREETING|$FROM_IMAGE|$(pwd)|$(id -u)|$(id -g)|$(id -G)|$HOME|$(hostname)|$HOSTNAME"`)
	o.Image.Env = append(o.Image.Env, "FROM_IMAGE=image", "GREETING=image-value")
	o.Run.Env = []string{"GREETING=hello"}
	o.Run.Workdir = "/tmp"
	o.Run.User = "app"
	o.Run.Hostname = "web"
	stdout, stderr, st := e.run(t, o)
	if want := "hello|image|/tmp|1000|1000|1000 50|/home/app|web|web\n"; stdout != want || st.Code != 0 {
		t.Errorf("output = %q (stderr %q, code %d), want %q", stdout, stderr, st.Code, want)
	}
	// Numeric uid:gid, with the image's default workdir.
	o = e.opts(t, "sh", "-c", `echo "$(id -u):$(id -g) $(pwd)"`)
	o.Image.WorkingDir = "/srv"
	o.Run.User = "4242:4343"
	if stdout, _, _ := e.run(t, o); stdout != "4242:4343 /srv\n" {
		t.Errorf("numeric user: output = %q, want %q", stdout, "4242:4343 /srv\n")
	}
}

func TestRunMemoryLimitOOM(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	// The command substitution makes the shell hold 100MB in memory.
	hog := `x=$(head -c 100000000 /dev/zero | tr '\0' a); echo survived ${#x}`
	o := e.opts(t, "sh", "-c", hog)
	o.Name = "hog"
	o.Run.Memory = 32 << 20
	stdout, _, st := e.run(t, o)
	if !st.OOMKilled || st.Code == 0 || stdout != "" {
		t.Errorf("with --memory 32m: status %+v, output %q; want OOM-killed", st, stdout)
	}
	info, err := e.m.Inspect(t.Context(), "hog")
	if err != nil || !info.OOMKilled || info.ExitCode != st.Code {
		t.Errorf("Inspect = %+v, %v; want OOMKilled and code %d", info, err, st.Code)
	}
	// The same program without the limit is not killed: the limit did it.
	o = e.opts(t, "sh", "-c", hog)
	stdout, _, st = e.run(t, o)
	if st.OOMKilled || st.Code != 0 || stdout != "survived 100000000\n" {
		t.Errorf("without a limit: status %+v, output %q", st, stdout)
	}
}

func TestRunPidsLimit(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	forks := `i=0; while [ $i -lt 40 ]; do sleep 1 & i=$((i+1)); done; wait; echo all-forked`
	o := e.opts(t, "sh", "-c", forks)
	o.Run.PidsLimit = 20
	stdout, stderr, st := e.run(t, o)
	if st.Code == 0 || !strings.Contains(stderr, "can't fork") || strings.Contains(stdout, "all-forked") {
		t.Errorf("40 forks with --pids-limit 20: code %d, stdout %q, stderr %q; want fork failures", st.Code, stdout, stderr)
	}
	o = e.opts(t, "cat", "/sys/fs/cgroup/pids/pids.max")
	o.Run.PidsLimit = 20
	if stdout, _, _ := e.run(t, o); stdout != "20\n" {
		t.Errorf("pids.max seen in the container = %q, want 20", stdout)
	}
	// Control: without the limit the same forks succeed.
	stdout, stderr, st = e.run(t, e.opts(t, "sh", "-c", forks))
	if st.Code != 0 || stdout != "all-forked\n" {
		t.Errorf("40 forks without a limit: code %d, stdout %q, stderr %q", st.Code, stdout, stderr)
	}
}

func TestRunReadOnlyRootfs(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	o := e.opts(t, "touch", "/written")
	o.Rootfs = e.bind()
	o.Run.ReadOnly = true
	_, stderr, st := e.run(t, o)
	if st.Code == 0 || !strings.Contains(stderr, "Read-only file system") {
		t.Errorf("touch / with --read-only: code %d, stderr %q; want refused", st.Code, stderr)
	}
	if _, err := os.Stat(filepath.Join(e.rootfs, "written")); !os.IsNotExist(err) {
		t.Errorf("the file reached the image: %v", err)
	}
	// Scratch directories stay writable (tmpfs) under a read-only root.
	o = e.opts(t, "sh", "-c", "touch /tmp/scratch && echo tmp-ok")
	o.Rootfs = e.bind()
	o.Run.ReadOnly = true
	if stdout, stderr, st := e.run(t, o); st.Code != 0 || stdout != "tmp-ok\n" {
		t.Errorf("touch /tmp with --read-only: code %d, %q %q", st.Code, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(e.rootfs, "tmp/scratch")); !os.IsNotExist(err) {
		t.Errorf("the scratch file reached the image: %v", err)
	}
	// Control: a writable rootfs takes the write.
	o = e.opts(t, "sh", "-c", "touch /written && echo ok")
	if stdout, stderr, st := e.run(t, o); st.Code != 0 || stdout != "ok\n" {
		t.Errorf("touch / without --read-only: code %d, %q %q", st.Code, stdout, stderr)
	}
}

func TestRunVolumes(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	rw, ro := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(rw, "in.txt"), []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ro, "ro.txt"), []byte("read me\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	o := e.opts(t, "sh", "-c", `cat /data/in.txt /ro/ro.txt; echo from the container > /data/out.txt; echo x > /ro/new.txt || echo ro-refused`)
	o.Run.Volumes = []spec.Volume{{Source: rw, Destination: "/data"}, {Source: ro, Destination: "/ro", ReadOnly: true}}
	stdout, stderr, _ := e.run(t, o)
	if want := "from the host\nread me\nro-refused\n"; stdout != want {
		t.Errorf("output = %q (stderr %q), want %q", stdout, stderr, want)
	}
	if !strings.Contains(stderr, "Read-only file system") {
		t.Errorf("stderr = %q, want a read-only error for /ro", stderr)
	}
	if b, err := os.ReadFile(filepath.Join(rw, "out.txt")); err != nil || string(b) != "from the container\n" {
		t.Errorf("host sees out.txt = %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(ro, "new.txt")); !os.IsNotExist(err) {
		t.Errorf("a write reached the read-only volume: %v", err)
	}

	o = e.opts(t, "true")
	o.Run.Volumes = []spec.Volume{{Source: filepath.Join(rw, "missing"), Destination: "/x"}}
	if _, err := e.m.Run(t.Context(), o, IO{}); !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing volume source: %v, want invalid argument", err)
	}
}

func TestRunSecurityDefaults(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	stdout, stderr, st := e.run(t, e.opts(t, "sh", "-c",
		`grep -E '^(CapEff|CapBnd|CapInh|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status; `+
			`echo interrupts=$(wc -c < /proc/interrupts) timer_list=$(wc -c < /proc/timer_list); `+
			`echo dev=$(ls /dev | tr '\n' ' '); `+
			`echo x > /proc/sys/kernel/domainname || true; `+
			`echo netdevs=$(grep -c : /proc/net/dev); `+
			`mount -t tmpfs none /mnt 2>/dev/null && echo mounted || echo mount-refused`))
	if st.Code != 0 {
		t.Fatalf("code %d, stderr %q", st.Code, stderr)
	}
	// Docker's default set: CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID
	// SETUID SETPCAP NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE
	// SETFCAP.
	for _, want := range []string{
		"CapEff:\t00000000a80425fb",
		"CapBnd:\t00000000a80425fb",
		"CapInh:\t0000000000000000",
		"CapAmb:\t0000000000000000",
		"NoNewPrivs:\t1",
		"Seccomp:\t2",
		// Masked (docker's list): empty in the container, not on the host.
		"interrupts=0 timer_list=0",
		"netdevs=1", // lo only: the pod's own network namespace
		"mount-refused",
	} {
		if !strings.Contains(stdout, want+"\n") {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	devs := stdout[strings.Index(stdout, "dev=")+4:]
	devs = devs[:strings.IndexByte(devs, '\n')]
	for _, d := range []string{"null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue"} {
		if !strings.Contains(" "+devs+" ", " "+d+" ") {
			t.Errorf("/dev lacks %s: %q", d, devs)
		}
	}
	for _, d := range []string{"kmsg", "mem", "vda", "sda", "loop0"} {
		if strings.Contains(" "+devs+" ", " "+d+" ") {
			t.Errorf("/dev has host device %s: %q", d, devs)
		}
	}
	if !strings.Contains(stderr, "/proc/sys/kernel/domainname: Read-only file system") {
		t.Errorf("writing /proc/sys: stderr %q, want read-only", stderr)
	}
	for _, f := range []string{"/proc/interrupts", "/proc/timer_list"} {
		if b, err := os.ReadFile(f); err != nil || len(b) == 0 {
			t.Errorf("host %s = %d bytes, %v: the masking check proves nothing", f, len(b), err)
		}
	}
}

func TestRunStdinAndTty(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	o := e.opts(t, "sh", "-c", "tr a-z A-Z; echo done")
	o.Stdin = true
	var out syncBuffer
	st, err := e.m.Run(t.Context(), o, IO{Stdin: strings.NewReader("piped input\n"), Stdout: &out, Stderr: &out})
	if err != nil || st.Code != 0 || out.String() != "PIPED INPUT\ndone\n" {
		t.Errorf("-i: %v, %+v, output %q", err, st, out.String())
	}
	// Without -i the process gets no input even if the caller has some.
	o = e.opts(t, "sh", "-c", "cat; echo eof")
	out = syncBuffer{}
	if _, err := e.m.Run(t.Context(), o, IO{Stdin: strings.NewReader("ignored\n"), Stdout: &out}); err != nil || out.String() != "eof\n" {
		t.Errorf("without -i: %v, output %q", err, out.String())
	}
	// A terminal: the process sees a pty and TERM=xterm; output arrives
	// through it.
	o = e.opts(t, "sh", "-c", `tty; echo "term=$TERM"; [ -t 0 ] && echo stdin-is-tty`)
	o.Run.Tty = true
	out = syncBuffer{}
	if st, err := e.m.Run(t.Context(), o, IO{Stdout: &out}); err != nil || st.Code != 0 {
		t.Fatalf("-t: %v, %+v", err, st)
	}
	got := strings.ReplaceAll(out.String(), "\r", "")
	if got != "/dev/pts/0\nterm=xterm\nstdin-is-tty\n" {
		t.Errorf("-t output = %q", out.String())
	}
}

func TestRunCancelStopsContainer(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	ctx, cancel := context.WithCancel(t.Context())
	o := e.opts(t, "sleep", "60")
	o.Name = "sleeper"
	done := make(chan ExitStatus, 1)
	go func() {
		st, err := e.m.Run(ctx, o, IO{})
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		done <- st
	}()
	if !eventually(t, 10*time.Second, func() bool {
		i, err := e.m.Inspect(t.Context(), "sleeper")
		return err == nil && i.Running()
	}) {
		t.Fatal("container never ran")
	}
	start := time.Now()
	cancel()
	select {
	case st := <-done:
		// sleep as PID 1 has no SIGTERM handler, so the kernel ignores
		// SIGTERM; SIGKILL follows after the stop timeout (1s here).
		if st.Code != 128+9 {
			t.Errorf("exit code = %d, want 137 (SIGKILL)", st.Code)
		}
		if d := time.Since(start); d < 900*time.Millisecond {
			t.Errorf("killed after %v, before the stop timeout", d)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
	// A trap makes SIGTERM count: 128+15 is not produced by sh, which
	// exits with the trap's code.
	ctx2, cancel2 := context.WithCancel(t.Context())
	o = e.opts(t, "sh", "-c", `trap "exit 42" TERM; echo ready; while true; do sleep 0.1; done`)
	var out syncBuffer
	go func() {
		for !strings.Contains(out.String(), "ready") {
			time.Sleep(20 * time.Millisecond)
		}
		cancel2()
	}()
	st, err := e.m.Run(ctx2, o, IO{Stdout: &out})
	if err != nil || st.Code != 42 {
		t.Errorf("trapped SIGTERM: %+v, %v; want code 42", st, err)
	}
}

func TestRunStartFailure(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	o := e.opts(t, "/bin/no-such-program")
	o.Name = "broken"
	_, err := e.m.Run(t.Context(), o, IO{})
	if err == nil || !strings.Contains(err.Error(), "no-such-program") {
		t.Fatalf("Run = %v, want an error naming the program", err)
	}
	info, err := e.m.Inspect(t.Context(), "broken")
	if err != nil || info.Status != StatusCreated || !strings.Contains(info.Error, "no-such-program") {
		t.Errorf("Inspect = %+v, %v; want created with the error", info, err)
	}
	if m := mountsUnder(t, e.state); len(m) != 0 {
		t.Errorf("mounts after a failed start: %q", m)
	}
	if err := e.m.Remove(t.Context(), "broken", false); err != nil {
		t.Errorf("Remove: %v", err)
	}
	// Bad user: refused before anything runs, with the errdefs class.
	o = e.opts(t, "true")
	o.Run.User = "mallory"
	if _, err := e.m.Run(t.Context(), o, IO{}); !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "mallory") {
		t.Errorf("unknown user: %v", err)
	}
}

func TestRunAutoRemoveAndNames(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	// A chosen ID, and directories owned by the container (its overlay
	// upper and work directories), deleted with it.
	o := e.opts(t, "sh", "-c", "echo data > /written-to-upper")
	var owned string
	o.Rootfs, owned = e.overlayIn(t)
	o.ID = "chosen-id"
	o.Name = "gone"
	o.OwnedDirs = []string{owned}
	o.AutoRemove = true
	e.run(t, o)
	if _, err := e.m.Inspect(t.Context(), "gone"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Inspect after --rm = %v, want not found", err)
	}
	if _, err := os.Stat(owned); !os.IsNotExist(err) {
		t.Errorf("owned directory %s after --rm: %v", owned, err)
	}
	if _, err := os.Stat(filepath.Join(e.rootfs, "written-to-upper")); !os.IsNotExist(err) {
		t.Errorf("the write went to the image, not the upper layer: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(e.root, "containers")); len(entries) != 1 { // .lock
		t.Errorf("records left after --rm: %d entries", len(entries))
	}

	o = e.opts(t, "true")
	o.Name = "kept"
	e.run(t, o)
	o = e.opts(t, "true")
	o.Name = "kept"
	if _, err := e.m.Run(t.Context(), o, IO{}); !errors.Is(err, errdefs.ErrAlreadyExists) || !strings.Contains(err.Error(), "sigil rm kept") {
		t.Errorf("duplicate name: %v, want already exists with the fix", err)
	}
	info, err := e.m.Inspect(t.Context(), "kept")
	if err != nil {
		t.Fatal(err)
	}
	o = e.opts(t, "true")
	o.ID = info.ID
	if _, err := e.m.Run(t.Context(), o, IO{}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("duplicate ID: %v, want already exists", err)
	}
	for _, ref := range []string{info.ID, info.ID[:8], "kept"} {
		if got, err := e.m.Inspect(t.Context(), ref); err != nil || got.ID != info.ID {
			t.Errorf("Inspect(%q) = %s, %v", ref, got.ID, err)
		}
	}
	if _, err := e.m.Inspect(t.Context(), "nope"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Inspect(nope) = %v", err)
	}
	o = e.opts(t, "true")
	o.Name = "bad name"
	if _, err := e.m.Run(t.Context(), o, IO{}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("bad name: %v", err)
	}
}

func TestRunCPUQuotaUlimitsHostNetwork(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	o := e.opts(t, "sh", "-c", `cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us; grep 'Max open files' /proc/self/limits | tr -s ' '`)
	o.Run.CPUs = 0.5
	stdout, stderr, _ := e.run(t, o)
	var hard unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &hard); err != nil {
		t.Fatal(err)
	}
	wantHard := min(hard.Max, 1048576)
	if want := fmt.Sprintf("50000\n100000\nMax open files 1024 %d files \n", wantHard); stdout != want {
		t.Errorf("output = %q (stderr %q), want %q", stdout, stderr, want)
	}

	// Host network: the container sees the host's interfaces.
	host, err := os.ReadFile("/proc/net/dev")
	if err != nil {
		t.Fatal(err)
	}
	o = e.opts(t, "cat", "/proc/net/dev")
	o.Network = pod.NetworkHost
	stdout, _, _ = e.run(t, o)
	if ifaces := func(s string) []string {
		var names []string
		for line := range strings.Lines(s) {
			if name, _, ok := strings.Cut(line, ":"); ok {
				names = append(names, strings.TrimSpace(name))
			}
		}
		slices.Sort(names)
		return names
	}; !slices.Equal(ifaces(stdout), ifaces(string(host))) || len(ifaces(stdout)) < 2 {
		t.Errorf("host network: interfaces %q, host has %q", ifaces(stdout), ifaces(string(host)))
	}
}
