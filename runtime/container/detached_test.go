package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

func logsOf(t *testing.T, e *testEnv, ref string, follow bool) string {
	t.Helper()
	var b syncBuffer
	if err := e.m.Logs(t.Context(), ref, follow, &b); err != nil {
		t.Fatalf("Logs(%s): %v", ref, err)
	}
	return b.String()
}

func TestDetachedLifecycle(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	ctx := t.Context()
	o := e.opts(t, "sh", "-c", `echo started; echo to-stderr >&2; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done`)
	o.Name = "web"
	o.Run.Hostname = "web-host"
	id, err := e.m.Start(ctx, o)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	info, err := e.m.Inspect(ctx, "web")
	if err != nil || info.ID != id || info.Status != StatusRunning || info.Pid <= 0 || !info.Detached {
		t.Fatalf("Inspect = %+v, %v; want running", info, err)
	}
	// Supervised by a monitor in a session of its own, not by us.
	rec, err := e.m.readRecord(id)
	if err != nil {
		t.Fatal(err)
	}
	if mon := rec.Owner.Pid; mon == os.Getpid() || mon == 0 {
		t.Errorf("owner pid = %d, want the monitor's", mon)
	} else if sid, err := unix.Getsid(mon); err != nil || sid != mon {
		t.Errorf("monitor %d session = %d, %v; want its own (setsid)", mon, sid, err)
	}
	infos, err := e.m.List(ctx)
	if err != nil || len(infos) != 1 || infos[0].Name != "web" {
		t.Errorf("List = %+v, %v", infos, err)
	}

	if !eventually(t, 5*time.Second, func() bool { return strings.Contains(logsOf(t, e, "web", false), "tick 2\n") }) {
		t.Fatalf("logs never showed tick 2: %q", logsOf(t, e, "web", false))
	}
	logs := logsOf(t, e, "web", false)
	// stdout and stderr are separate pipes: their relative order is not
	// kept, the order within each is.
	if !strings.Contains(strings.Replace(logs, "to-stderr\n", "", 1), "started\ntick 0\ntick 1\ntick 2\n") || !strings.Contains(logs, "to-stderr\n") {
		t.Errorf("logs = %q", logs)
	}
	raw, err := os.ReadFile(info.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	criLine := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z (stdout|stderr) [FP] .*$`)
	for line := range strings.Lines(string(raw)) {
		if !criLine.MatchString(strings.TrimSuffix(line, "\n")) {
			t.Errorf("log line not in CRI format: %q", line)
		}
	}
	if !regexp.MustCompile(`(?m)Z stderr F to-stderr$`).Match(raw) || !regexp.MustCompile(`(?m)Z stdout F started$`).Match(raw) {
		t.Errorf("log file lacks the stream tags:\n%s", raw)
	}

	// Exec: joins the container's namespaces, as another user, exit code
	// passed back.
	var out syncBuffer
	code, err := e.m.Exec(ctx, "web", ExecOptions{Args: []string{"sh", "-c", `echo "$(hostname) $(id -u) $(pwd) $$"; exit 3`}, User: "app", Cwd: "/tmp"}, IO{Stdout: &out, Stderr: &out})
	if err != nil || code != 3 {
		t.Errorf("Exec = %d, %v; want 3", code, err)
	}
	if f := strings.Fields(out.String()); len(f) != 4 || f[0] != "web-host" || f[1] != "1000" || f[2] != "/tmp" || f[3] == "1" {
		t.Errorf("exec output = %q, want hostname web-host, uid 1000, cwd /tmp, pid not 1", out.String())
	}
	// The exec'd process is in the container's pid namespace: it sees
	// the init as PID 1.
	out = syncBuffer{}
	if _, err := e.m.Exec(ctx, id[:10], ExecOptions{Args: []string{"sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status"}}, IO{Stdout: &out}); err != nil {
		t.Errorf("Exec: %v", err)
	}
	for _, want := range []string{"sh -c echo started", "CapEff:\t00000000a80425fb", "NoNewPrivs:\t1", "Seccomp:\t2"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("exec output lacks %q: %q", want, out.String())
		}
	}
	// Exec with stdin and with a terminal.
	out = syncBuffer{}
	if code, err := e.m.Exec(ctx, "web", ExecOptions{Args: []string{"tr", "a-z", "A-Z"}, Stdin: true}, IO{Stdin: strings.NewReader("via stdin\n"), Stdout: &out}); err != nil || code != 0 || out.String() != "VIA STDIN\n" {
		t.Errorf("exec -i = %d, %v, %q", code, err, out.String())
	}
	out = syncBuffer{}
	if code, err := e.m.Exec(ctx, "web", ExecOptions{Args: []string{"sh", "-c", "tty; echo $TERM"}, Tty: true}, IO{Stdout: &out}); err != nil || code != 0 ||
		!regexp.MustCompile(`^/dev/pts/\d+\r?\nxterm\r?\n$`).MatchString(out.String()) {
		t.Errorf("exec -t = %d, %v, %q", code, err, out.String())
	}

	// A second container with the same name is refused.
	if _, err := e.m.Start(ctx, e.opts(t, "true")); err != nil {
		t.Errorf("Start without a name: %v", err)
	}
	dup := e.opts(t, "true")
	dup.Name = "web"
	if _, err := e.m.Start(ctx, dup); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("Start with a name in use = %v, want already exists", err)
	}

	// rm without --force refuses, saying how to proceed.
	err = e.m.Remove(ctx, "web", false)
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "sigil stop web") || !strings.Contains(err.Error(), "sigil rm --force web") {
		t.Errorf("Remove(running) = %v", err)
	}

	// Stop: sh as PID 1 ignores SIGTERM, so SIGKILL after the timeout.
	start := time.Now()
	if err := e.m.Stop(ctx, "web", 500*time.Millisecond); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if d := time.Since(start); d < 450*time.Millisecond || d > 10*time.Second {
		t.Errorf("Stop took %v", d)
	}
	info, _ = e.m.Inspect(ctx, "web")
	if info.Status != StatusExited || info.ExitCode != 137 || info.Pid != 0 || info.FinishedAt.IsZero() {
		t.Errorf("after Stop: %+v; want exited 137", info)
	}
	if err := e.m.Stop(ctx, "web", time.Second); err != nil {
		t.Errorf("second Stop = %v, want nil", err)
	}
	// Logs -f of an exited container returns with everything.
	done := make(chan string, 1)
	go func() {
		var b syncBuffer
		_ = e.m.Logs(ctx, "web", true, &b)
		done <- b.String()
	}()
	select {
	case l := <-done:
		if !strings.Contains(strings.Replace(l, "to-stderr\n", "", 1), "started\ntick 0\ntick 1\n") || !strings.HasSuffix(l, "\n") {
			t.Errorf("logs -f after exit = %q", l)
		}
	case <-time.After(5 * time.Second):
		t.Error("logs -f of an exited container did not return")
	}
	if _, err := e.m.Exec(ctx, "web", ExecOptions{Args: []string{"true"}}, IO{}); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("Exec in an exited container = %v", err)
	}

	if err := e.m.Remove(ctx, "web", false); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if _, err := e.m.Inspect(ctx, "web"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Inspect after rm = %v", err)
	}
	for _, p := range []string{filepath.Dir(info.LogPath), filepath.Join(e.state, "containers", id), filepath.Join(e.state, "pods", id), filepath.Join(e.state, "libcontainer", id)} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s after rm: %v", p, err)
		}
	}
	if err := e.m.Remove(ctx, "web", false); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("second Remove = %v, want not found", err)
	}
	assertNoCgroup(t, "/sigil/"+id)
}

// assertNoCgroup checks that cgroup path exists in no hierarchy.
func assertNoCgroup(t *testing.T, path string) {
	t.Helper()
	entries, _ := os.ReadDir("/sys/fs/cgroup")
	for _, h := range entries {
		p := filepath.Join("/sys/fs/cgroup", h.Name(), path)
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("cgroup %s still exists (%v)", p, err)
		}
	}
}

func TestDetachedLogsFollowAndAutoRemove(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	ctx := t.Context()
	o := e.opts(t, "sh", "-c", `for i in 1 2 3; do echo line $i; sleep 0.2; done; echo oops >&2; printf tail`)
	o.Name = "counter"
	if _, err := e.m.Start(ctx, o); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	logs := logsOf(t, e, "counter", true)
	if logs != "line 1\nline 2\nline 3\noops\ntail" {
		t.Errorf("logs -f = %q", logs)
	}
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Errorf("logs -f returned after %v, before the container could have finished", d)
	}
	info, err := e.m.Inspect(ctx, "counter")
	if err != nil || info.Status != StatusExited || info.ExitCode != 0 {
		t.Errorf("Inspect = %+v, %v", info, err)
	}

	// --rm -d: the monitor removes the container once it exited.
	o = e.opts(t, "sh", "-c", "exit 5")
	o.Name = "ephemeral"
	o.AutoRemove = true
	if _, err := e.m.Start(ctx, o); err != nil {
		t.Fatal(err)
	}
	if !eventually(t, 10*time.Second, func() bool {
		_, err := e.m.Inspect(ctx, "ephemeral")
		return errors.Is(err, errdefs.ErrNotFound)
	}) {
		t.Error("--rm container still recorded")
	}
}

func TestDetachedStartErrors(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	o := e.opts(t, "/no/such/program")
	o.Name = "broken"
	_, err := e.m.Start(t.Context(), o)
	if err == nil || !strings.Contains(err.Error(), "/no/such/program") {
		t.Fatalf("Start = %v, want the monitor's error text", err)
	}
	info, ierr := e.m.Inspect(t.Context(), "broken")
	if ierr != nil || info.Status != StatusCreated || info.Error == "" {
		t.Errorf("Inspect = %+v, %v", info, ierr)
	}
	if m := mountsUnder(t, e.state); len(m) != 0 {
		t.Errorf("mounts after a failed start: %q", m)
	}
	// The errdefs class survives the trip from the monitor.
	o = e.opts(t, "true")
	o.Run.Workdir = "relative"
	if _, err := e.m.Start(t.Context(), o); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("relative workdir: %v (%T), want invalid argument", err, err)
	}
}

func TestSupervisorKilled(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	ctx := t.Context()
	o := e.opts(t, "sleep", "1000")
	o.Name = "orphan"
	id, err := e.m.Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := e.m.readRecord(id)
	if err != nil {
		t.Fatal(err)
	}
	initPid := rec.Pid
	if err := syscall.Kill(rec.Owner.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The container's init dies with its monitor (parent-death signal).
	if !eventually(t, 10*time.Second, func() bool { return syscall.Kill(initPid, 0) != nil }) {
		t.Errorf("container init %d survived its monitor", initPid)
	}
	var info Info
	if !eventually(t, 10*time.Second, func() bool {
		info, err = e.m.Inspect(ctx, "orphan")
		return err == nil && info.Status == StatusExited
	}) {
		t.Fatalf("Inspect = %+v, %v; want exited", info, err)
	}
	if info.ExitCode != ExitCodeUnknown || !strings.Contains(info.Error, fmt.Sprint(rec.Owner.Pid)) {
		t.Errorf("info = %+v, want exit code %d and an error naming the monitor", info, ExitCodeUnknown)
	}
	// rm cleans up what the monitor could not: pod, rootfs, cgroup.
	if err := e.m.Remove(context.Background(), "orphan", false); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if m := mountsUnder(t, e.state); len(m) != 0 {
		t.Errorf("mounts after rm: %q", m)
	}
	assertNoCgroup(t, "/sigil/"+id)
}

func TestStopTrapsSIGTERM(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	ctx := t.Context()
	o := e.opts(t, "sh", "-c", `trap "echo got TERM; exit 0" TERM; echo ready; while true; do sleep 0.1; done`)
	o.Name = "graceful"
	if _, err := e.m.Start(ctx, o); err != nil {
		t.Fatal(err)
	}
	// Until the trap is set, PID 1 ignores SIGTERM.
	if !eventually(t, 5*time.Second, func() bool { return logsOf(t, e, "graceful", false) == "ready\n" }) {
		t.Fatalf("never ready: %q", logsOf(t, e, "graceful", false))
	}
	start := time.Now()
	if err := e.m.Stop(ctx, "graceful", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("graceful stop took %v", d)
	}
	info, _ := e.m.Inspect(ctx, "graceful")
	if info.ExitCode != 0 || info.Status != StatusExited {
		t.Errorf("info = %+v, want exited 0", info)
	}
	if l := logsOf(t, e, "graceful", false); l != "ready\ngot TERM\n" {
		t.Errorf("logs = %q", l)
	}
	// rm --force of a running container.
	o = e.opts(t, "sleep", "1000")
	o.Name = "forced"
	id, err := e.m.Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.m.Remove(ctx, "forced", true); err != nil {
		t.Fatalf("Remove --force: %v", err)
	}
	if _, err := e.m.Inspect(ctx, id); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Inspect after rm -f = %v", err)
	}
	assertNoCgroup(t, "/sigil/"+id)
}

func TestCreateThenStartCreated(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	ctx := t.Context()
	o := e.opts(t, "sh", "-c", "echo up; sleep 30")
	o.Name = "later"
	id, err := e.m.Create(ctx, o)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	// Recorded created, owned by nobody: the creating process's exit is
	// no failed start.
	rec, err := e.m.readRecord(id)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Status != StatusCreated || rec.Owner != (owner{}) || rec.Error != "" {
		t.Fatalf("record after Create: status %s, owner %+v, error %q; want created, no owner, no error", rec.Status, rec.Owner, rec.Error)
	}
	if info, err := e.m.Inspect(ctx, "later"); err != nil || info.Status != StatusCreated {
		t.Fatalf("Inspect after Create = %+v, %v; want created", info, err)
	}
	if err := e.m.StartCreated(ctx, "later"); err != nil {
		t.Fatalf("StartCreated: %v", err)
	}
	if info, err := e.m.Inspect(ctx, "later"); err != nil || info.Status != StatusRunning || info.Pid <= 0 {
		t.Fatalf("Inspect after StartCreated = %+v, %v; want running", info, err)
	}
	if err := e.m.StartCreated(ctx, "later"); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("second StartCreated = %v, want ErrFailedPrecondition", err)
	}
	if err := e.m.Stop(ctx, "later", time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
}
