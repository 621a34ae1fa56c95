package tests

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sigil-project/sigil/tests/testimage"
)

// images pushes the busybox and layered test images once per env.
func (e *env) images(t *testing.T) (busybox, layered string) {
	t.Helper()
	bb, err := testimage.Busybox(testimage.OCI)
	if err != nil {
		t.Fatal(err)
	}
	ly, err := testimage.Layered(testimage.Docker)
	if err != nil {
		t.Fatal(err)
	}
	return e.push("test/busybox:1", bb), e.push("test/layered:1", ly)
}

func TestRunForeground(t *testing.T) {
	e := newEnv(t)
	bb, layered := e.images(t)
	e.mustSigil("fetch", "-q", bb)
	e.mustSigil("fetch", "-q", layered)
	vol := t.TempDir()
	if err := os.WriteFile(filepath.Join(vol, "in"), []byte("from host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		args     []string
		stdin    string
		wantOut  string
		wantCode int
	}{
		{"echo", []string{bb, "echo", "hello"}, "", "hello\n", 0},
		{"exit code", []string{bb, "sh", "-c", "exit 7"}, "", "", 7},
		{"image config: cmd env workdir user", []string{layered}, "", "hi from /data as 0\n", 0},
		{"flags override env workdir user", []string{"-e", "GREETING=yo", "-w", "/tmp", "-u", "1000", layered}, "", "yo from /tmp as 1000\n", 0},
		{"user by name with groups", []string{"-u", "app", bb, "id"}, "", "uid=1000(app) gid=1000(app) groups=50(staff)\n", 0},
		{"env file", []string{"--env-file", writeFile(t, "A=1\n# comment\nB=two\n"), bb, "sh", "-c", "echo $A $B"}, "", "1 two\n", 0},
		{"entrypoint", []string{"--entrypoint", "/bin/echo", bb, "x", "y"}, "", "x y\n", 0},
		{"hostname", []string{"--hostname", "box", bb, "hostname"}, "", "box\n", 0},
		// Only the container's own few processes (small PIDs), none of the host's.
		{"pid 1 in own pid namespace", []string{bb, "sh", "-c", "echo $$; ps -o pid= | awk '$1 > 20 {host=1} END {print host ? \"host processes visible\" : \"own\"}'"}, "", "1\nown\n", 0},
		{"whiteouts and opaque dir applied", []string{layered, "sh", "-c", "test ! -e /data/gone && cat /data/keep && ls /opq && cat /etc/motd"}, "", "keep\nnew\nlayer3\n", 0},
		{"layer ownership and modes", []string{layered, "stat", "-c", "%u:%g %a", "/home/app/owned", "/tmp"}, "", "1000:1000 600\n0:0 1777\n", 0},
		{"read-only rootfs", []string{"--read-only", bb, "sh", "-c", "touch /x 2>/dev/null || echo refused; touch /tmp/y && echo tmp-ok"}, "", "refused\ntmp-ok\n", 0},
		{"volume rw", []string{"-v", vol + ":/mnt", bb, "sh", "-c", "cat /mnt/in; echo out > /mnt/out"}, "", "from host\n", 0},
		{"volume ro", []string{"-v", vol + ":/mnt:ro", bb, "sh", "-c", "echo x > /mnt/ro 2>/dev/null || echo refused"}, "", "refused\n", 0},
		{"stdin with -i", []string{"-i", bb, "cat"}, "piped in\n", "piped in\n", 0},
		{"no network with --net none", []string{"--net", "none", bb, "ls", "/sys/class/net"}, "", "lo\n", 0},
		{"capabilities dropped, no_new_privs, seccomp", []string{bb, "sh", "-c", "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status"}, "", "CapEff:\t00000000a80425fb\nNoNewPrivs:\t1\nSeccomp:\t2\n", 0},
		{"pids limit", []string{"--pids-limit", "8", bb, "sh", "-c", "cat /sys/fs/cgroup/pids/pids.max; for i in $(seq 20); do sleep 2 & done"}, "", "8\n", -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"run", "--rm"}, c.args...)
			var stdin []byte
			if c.stdin != "" {
				stdin = []byte(c.stdin)
			}
			r, err := e.sigilIn(stdin, args...)
			if err != nil {
				t.Fatal(err)
			}
			if c.wantCode >= 0 && r.code != c.wantCode {
				t.Fatalf("sigil %s: exit %d, want %d\n%s", strings.Join(args, " "), r.code, c.wantCode, r)
			}
			if c.wantOut != "" && r.stdout != c.wantOut {
				t.Errorf("sigil %s: stdout %q, want %q\n%s", strings.Join(args, " "), r.stdout, c.wantOut, r)
			}
			if c.name == "pids limit" {
				// 8 pids: the shell and a few sleeps; the rest cannot fork.
				if !strings.Contains(r.stderr, "can't fork") {
					t.Errorf("20 forks under --pids-limit 8: stderr %q, want \"can't fork\"", r.stderr)
				}
			}
		})
	}
	if b, err := os.ReadFile(filepath.Join(vol, "out")); err != nil || string(b) != "out\n" {
		t.Errorf("volume write from the container: host file = %q, %v; want \"out\\n\"", b, err)
	}
	if out := e.mustSigil("ps", "-a", "-q"); strings.TrimSpace(out.stdout) != "" {
		t.Errorf("after run --rm, ps -a = %q, want nothing left", out.stdout)
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRunOOMKilled(t *testing.T) {
	e := newEnv(t)
	bb, _ := e.images(t)
	// The shell holds the whole command substitution in memory.
	r, err := e.sigil("run", "--name", "hog", "--memory", "32m", bb, "sh", "-c", `x=$(head -c 100000000 /dev/zero | tr "\0" a); echo ${#x}`)
	if err != nil {
		t.Fatal(err)
	}
	if r.code != 137 || !strings.Contains(r.stderr, "out of memory") {
		t.Fatalf("memory hog under --memory 32m: %v\nwant exit 137 and 'out of memory' in stderr", r)
	}
	var info []map[string]any
	out := e.mustSigil("inspect", "hog")
	if err := json.Unmarshal([]byte(out.stdout), &info); err != nil || len(info) != 1 {
		t.Fatalf("inspect hog: %v\n%s", err, out.stdout)
	}
	state, _ := info[0]["State"].(map[string]any)
	if state["OOMKilled"] != true || state["ExitCode"] != float64(137) {
		t.Errorf("inspect hog State = %v, want OOMKilled true and ExitCode 137", state)
	}
	e.mustSigil("rm", "hog")
}

func TestDetachedLifecycle(t *testing.T) {
	e := newEnv(t)
	bb, _ := e.images(t)
	id := strings.TrimSpace(e.mustSigil("run", "-d", "--name", "web", bb, "sh", "-c", "trap 'echo got TERM; exit 3' TERM; echo started; while true; do sleep 0.1; done").stdout)
	if len(id) < 12 {
		t.Fatalf("run -d printed %q, want the container ID", id)
	}
	// The CLI has exited; the container lives on under its monitor.
	ps := e.mustSigil("ps")
	if !strings.Contains(ps.stdout, "web") || !strings.Contains(ps.stdout, "Up") {
		t.Fatalf("ps after run -d:\n%s\nwant web Up", ps.stdout)
	}
	waitFor(t, "log line", func() bool { return strings.Contains(e.mustSigil("logs", "web").stdout, "started") })
	if out := e.mustSigil("exec", "web", "cat", "/etc/passwd"); !strings.Contains(out.stdout, "app:x:1000") {
		t.Errorf("exec web cat /etc/passwd = %q", out.stdout)
	}
	if r, _ := e.sigil("exec", "web", "sh", "-c", "exit 5"); r.code != 5 {
		t.Errorf("exec exit code = %d, want 5", r.code)
	}
	if r, _ := e.sigil("rm", "web"); r.code != 125 || !strings.Contains(r.stderr, "sigil stop") {
		t.Errorf("rm of a running container = %v, want refusal naming 'sigil stop'", r)
	}
	e.mustSigil("stop", "-t", "5", "web")
	if out := e.mustSigil("logs", "web").stdout; !strings.Contains(out, "got TERM") {
		t.Errorf("logs after stop = %q, want the TERM handler's line", out)
	}
	ps = e.mustSigil("ps", "-a")
	if !strings.Contains(ps.stdout, "Exited (3)") {
		t.Errorf("ps -a after stop:\n%s\nwant Exited (3)", ps.stdout)
	}
	var info []map[string]any
	if err := json.Unmarshal([]byte(e.mustSigil("inspect", "web").stdout), &info); err != nil {
		t.Fatal(err)
	}
	state, _ := info[0]["State"].(map[string]any)
	if state["ExitCode"] != float64(3) || state["FinishedAt"] == "" {
		t.Errorf("inspect State = %v, want ExitCode 3 and a FinishedAt", state)
	}
	e.mustSigil("rm", "web")
	if out := e.mustSigil("ps", "-a", "-q").stdout; strings.TrimSpace(out) != "" {
		t.Errorf("ps -a after rm = %q, want empty", out)
	}
}

func TestRunReverifiesStoredImage(t *testing.T) {
	e := newEnv(t)
	bb, _ := e.images(t)
	e.mustSigil("fetch", "-q", bb)
	policy := `{"default":[{"type":"reject"}]}`
	if err := os.WriteFile(e.policy, []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := e.sigil("run", "--rm", bb, "true")
	if err != nil {
		t.Fatal(err)
	}
	if r.code != 125 || !strings.Contains(r.stderr, "POLICY_REJECT") {
		t.Errorf("run of a stored image the policy now rejects = %v, want exit 125 with POLICY_REJECT", r)
	}
}

func TestConcurrentRunsOfUnfetchedImage(t *testing.T) {
	e := newEnv(t)
	img, err := testimage.Layered(testimage.OCI)
	if err != nil {
		t.Fatal(err)
	}
	ref := e.push("conc/run:1", img)
	e.reg.Reset()
	for i, r := range e.concurrently(10, "run", "--rm", "-q", ref, "cat", "/etc/motd") {
		if r.code != 0 || r.stdout != "layer3\n" {
			t.Errorf("concurrent run %d: %v", i, r)
		}
	}
	e.wantEachLayerOnce(img, "conc/run", "10 concurrent runs")
}

// waitFor polls cond for up to 10 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestRunForwardsSIGTERMOnce(t *testing.T) {
	e := newEnv(t)
	bb, _ := e.images(t)
	e.mustSigil("fetch", "-q", bb)
	cmd := exec.Command(sigilBinary, "--root", e.root, "--state", e.state, "--policy", e.policy,
		"run", "--rm", bb, "sh", "-c", `trap 'echo got TERM; exit 3' TERM; echo ready; while true; do sleep 0.1; done`)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(stdout)
	if line, err := r.ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("first line = %q, %v; want ready", line, err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(r)
	err = cmd.Wait()
	code := -1
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	if code != 3 || string(rest) != "got TERM\n" {
		t.Errorf("SIGTERM to sigil run: exit %d, output after ready %q; want exit 3 and one \"got TERM\"", code, rest)
	}
}

func TestKilledForegroundRunTakesItsContainer(t *testing.T) {
	e := newEnv(t)
	bb, _ := e.images(t)
	e.mustSigil("fetch", "-q", bb)
	cmd := exec.Command(sigilBinary, "--root", e.root, "--state", e.state, "--policy", e.policy,
		"run", "--name", "orphan", bb, "sh", "-c", "echo ready; sleep 1000")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("first line = %q, %v; want ready", line, err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	// The container's init has a parent-death signal: no unsupervised
	// container is left, and the record says what happened.
	// The kill may land before the record says "running" (the output
	// can arrive first): then it stays "created" with the same error.
	waitFor(t, "the orphan to be reported dead", func() bool {
		ps := e.mustSigil("ps", "-a").stdout
		return strings.Contains(ps, "Exited (255)") || strings.Contains(ps, "Created (start failed)")
	})
	var info []map[string]any
	if err := json.Unmarshal([]byte(e.mustSigil("inspect", "orphan").stdout), &info); err != nil {
		t.Fatal(err)
	}
	state, _ := info[0]["State"].(map[string]any)
	if msg, _ := state["Error"].(string); !strings.Contains(msg, "died") && !strings.Contains(msg, "supervis") {
		t.Errorf("inspect orphan State.Error = %q, want it to say the supervisor died", msg)
	}
	if out, _ := exec.Command("pgrep", "-f", "sleep 1000").Output(); len(out) != 0 {
		t.Errorf("the container's process outlived its killed sigil run: pids %s", out)
	}
	// Whoever noticed the death released the container's mounts (rootfs,
	// pod namespaces), without waiting for 'sigil rm'.
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(mi), "\n") {
		if strings.Contains(line, e.state) {
			t.Errorf("still mounted after the supervisor's death was noticed: %s", line)
		}
	}
	e.mustSigil("rm", "orphan")
}

// TestRuntimeShimSupervisesContainers checks that a binary built by
// `make build` runs detached containers' monitors from its embedded
// runtime shim, written once under --state.
func TestRuntimeShimSupervisesContainers(t *testing.T) {
	e := newEnv(t)
	bb, _ := e.images(t)
	id := strings.TrimSpace(e.mustSigil("run", "-d", "-q", bb, "sleep", "60").stdout)
	shims, _ := filepath.Glob(filepath.Join(e.state, "shim", "sigil-shim-*"))
	if len(shims) == 0 {
		t.Skip("this sigil was built without the runtime shim (plain go build); make build embeds it")
	}
	fi, err := os.Stat(shims[0])
	if err != nil || fi.Mode().Perm() != 0o500 {
		t.Errorf("shim %s mode = %v, %v; want 0500", shims[0], fi.Mode(), err)
	}
	if exe := monitorExe(t, id); exe != shims[0] {
		t.Errorf("monitor of %s runs %q, want the shim %s", id[:12], exe, shims[0])
	}
	e.mustSigil("rm", "-f", id)
}

// monitorExe returns the executable of the monitor of container id.
func monitorExe(t *testing.T, id string) string {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		if strings.Contains(string(b), "__sigil-monitor") && strings.Contains(string(b), id) {
			exe, _ := os.Readlink(filepath.Join(filepath.Dir(p), "exe"))
			return exe
		}
	}
	t.Errorf("no monitor process found for %s", id[:12])
	return ""
}

// TestRunWarmPathIsTheRunner checks the runner fronting `sigil run` (a
// binary built by make build): a stored image that the policy accepts
// without a signature check runs without starting the full sigil binary,
// and everything else (a fetch, --pull always, a refusal, a flag error,
// help) is handed back to it, with the full binary's own messages.
func TestRunWarmPathIsTheRunner(t *testing.T) {
	e := newEnv(t)
	bb, _ := e.images(t)
	const byShim = "sigil's runner runs it"
	const byFull = "sigil started" // the full binary's first debug line
	debug := func(args ...string) result {
		r, err := e.sigil(append([]string{"--log-level", "debug"}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	r := debug("run", "--rm", "-q", bb, "echo", "cold")
	if r.code != 0 || r.stdout != "cold\n" || !strings.Contains(r.stderr, byFull) || strings.Contains(r.stderr, byShim) {
		t.Fatalf("first run (fetches) must be the full sigil's: %s", r)
	}
	runners, _ := filepath.Glob(filepath.Join(e.state, "shim", "sigil-runner-*"))
	shims, _ := filepath.Glob(filepath.Join(e.state, "shim", "sigil-shim-*"))
	if len(runners) == 0 || len(shims) == 0 {
		t.Skip("this sigil was built without the runner and the runtime shim (plain go build); make build embeds them")
	}

	r = debug("run", "--rm", bb, "sh", "-c", "echo warm; exit 7")
	if r.code != 7 || r.stdout != "warm\n" || !strings.Contains(r.stderr, byShim) || strings.Contains(r.stderr, byFull) {
		t.Errorf("warm run of a stored, accepted image must be the shim's, exit 7: %s", r)
	}
	id := strings.TrimSpace(debug("run", "-d", bb, "sleep", "60").stdout)
	if len(id) != 64 {
		t.Fatalf("run -d through the shim printed %q, want a container ID", id)
	}
	if ps := e.mustSigil("ps", "-q"); !strings.Contains(ps.stdout, id[:12]) {
		t.Errorf("container started by the runner not in ps: %s", ps)
	}
	// Its monitor is the lean runtime shim, not the runner.
	if exe := monitorExe(t, id); exe != shims[0] {
		t.Errorf("monitor of a container the runner started runs %q, want the shim %s", exe, shims[0])
	}
	e.mustSigil("rm", "-f", id)

	for name, c := range map[string]struct {
		args     []string
		code     int
		inStderr string
	}{
		"pull always": {[]string{"run", "--rm", "-q", "--pull", "always", bb, "true"}, 0, byFull},
		"flag error":  {[]string{"run", "--memory", "lots", bb, "true"}, 125, `--memory: size "lots"`},
		"unknown":     {[]string{"run", "--no-such-flag", bb, "true"}, 125, "unknown flag: --no-such-flag"},
		"not stored":  {[]string{"run", "--pull", "never", e.reg.Host + "/not/here:1", "true"}, 125, "--pull=never"},
	} {
		r := debug(c.args...)
		if r.code != c.code || !strings.Contains(r.stderr, c.inStderr) || strings.Contains(r.stderr, byShim) {
			t.Errorf("%s: want exit %d from the full sigil, with %q: %s", name, c.code, c.inStderr, r)
		}
		if strings.Count(r.stderr, "sigil: ") > 1 {
			t.Errorf("%s: error reported more than once: %s", name, r)
		}
	}
	if r := debug("run", "--help"); r.code != 0 || !strings.Contains(r.stdout, "Usage:") {
		t.Errorf("run --help: %s", r)
	}

	// A policy that now refuses the stored image: the full sigil says why.
	if err := os.WriteFile(e.policy, []byte(`{"default":[{"type":"reject"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	r = debug("run", "--rm", bb, "true")
	if r.code != 125 || !strings.Contains(r.stderr, "POLICY_REJECT") || !strings.Contains(r.stderr, byFull) {
		t.Errorf("stored image the policy now rejects: want exit 125 POLICY_REJECT from the full sigil: %s", r)
	}
}
