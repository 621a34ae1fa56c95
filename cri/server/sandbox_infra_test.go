package server

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/sigil-project/sigil/runtime/container"
	"github.com/sigil-project/sigil/runtime/pod"
)

// procStatusOf is procStatus for a /proc entry name, empty when it is not
// a process (any more).
func procStatusOf(name string) map[string]string {
	out := map[string]string{}
	b, err := os.ReadFile("/proc/" + name + "/status")
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			out[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	return out
}

// procStatus returns the fields of /proc/<pid>/status (as seen from the
// host) that say what a process may do.
func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			out[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	return out
}

// withSeccomp sets the sandbox's seccomp profile.
func withSeccomp(cfg *runtimeapi.PodSandboxConfig, prof *runtimeapi.SecurityProfile) *runtimeapi.PodSandboxConfig {
	cfg.Linux.SecurityContext.Seccomp = prof
	return cfg
}

// unsupervised checks that the pause runs on its own: not a child of
// this process (the server), with no monitor left, stdio on /dev/null.
func unsupervised(t *testing.T, infra container.Info) {
	t.Helper()
	st := procStatus(t, infra.Pid)
	if st["PPid"] == fmt.Sprint(os.Getpid()) {
		t.Errorf("the pause (pid %d) is a child of the server: want it reparented, as with runc run -d", infra.Pid)
	}
	// The starter reports the start, then exits.
	var monitor string
	if !waitFor(5*time.Second, func() bool {
		monitor = ""
		dirs, _ := os.ReadDir("/proc")
		for _, d := range dirs {
			if cmd, err := os.ReadFile("/proc/" + d.Name() + "/cmdline"); err == nil &&
				strings.Contains(string(cmd), container.MonitorCommand) && strings.Contains(string(cmd), infra.ID) {
				monitor = d.Name() + ": " + string(cmd)
			}
		}
		return monitor == ""
	}) {
		t.Errorf("a monitor of the infra container runs: %q", monitor)
	}
	for fd := 0; fd <= 2; fd++ {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", infra.Pid, fd)); err != nil || l != "/dev/null" {
			t.Errorf("pause fd %d = %q, %v; want /dev/null", fd, l, err)
		}
	}
}

// In a pod that shares its PID namespace, PID 1 is the pause of the
// pod's infra container, locked down, alone on its root filesystem,
// unsupervised; every container sees it and its siblings; orphans are
// reaped; the namespace outlives a container and survives a restart of
// the server; stopping the sandbox stops the pause last, on SIGTERM.
func TestSharedPIDNamespace(t *testing.T) {
	e := newTestEnv(t)
	ctx := testCtx(t)
	image := e.busybox(ctx)
	podCfg := withSeccomp(e.podConfig("shared-pid", "default", true), &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault})
	podID := e.runPod(ctx, podCfg)

	sb, infra := e.runningInfra(ctx, podID)

	unsupervised(t, infra)
	// The pause: no capabilities, no_new_privs, the sandbox's
	// (RuntimeDefault) seccomp profile, uid 65535.
	st := procStatus(t, infra.Pid)
	for k, want := range map[string]string{
		"CapEff": "0000000000000000", "CapPrm": "0000000000000000", "CapBnd": "0000000000000000",
		"NoNewPrivs": "1", "Seccomp": "2", "Uid": "65535 65535 65535 65535", "Gid": "65535 65535 65535 65535",
	} {
		if st[k] != want {
			t.Errorf("pause %s = %q, want %q", k, st[k], want)
		}
	}
	if ns := st["NSpid"]; !strings.HasSuffix(ns, " 1") {
		t.Errorf("pause NSpid = %q, want PID 1 in its namespace", ns)
	}
	// Its root filesystem holds the pause program and mount points only,
	// read-only.
	root := fmt.Sprintf("/proc/%d/root", infra.Pid)
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, en := range entries {
		names = append(names, en.Name())
	}
	want := append([]string{"pause"}, "dev", "proc", "run", "sys", "tmp", "var")
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("pause root filesystem = %v, want %v", names, want)
	}
	if err := os.WriteFile(filepath.Join(root, "x"), nil, 0o644); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("writing to the pause's root filesystem: %v, want a read-only file system error", err)
	}

	cfgA := containerConfig(podCfg, image, "a", "sleep", "3600")
	a := e.mustStart(ctx, podID, podCfg, cfgA)
	b := e.mustStart(ctx, podID, podCfg, containerConfig(podCfg, image, "b", "sleep", "3601"))

	// PID 1 is the pause, and each container sees the other's process.
	for _, id := range []string{a, b} {
		out, _, _ := e.exec(ctx, id, "cat", "/proc/1/cmdline")
		if out != "/pause\x00" {
			t.Errorf("container %s: /proc/1/cmdline = %q, want the pause", id[:12], out)
		}
		out, _, _ = e.exec(ctx, id, "ps", "-o", "pid,args")
		if !strings.Contains(out, "sleep 3600") || !strings.Contains(out, "sleep 3601") {
			t.Errorf("container %s: ps shows\n%s\nwant both containers' processes", id[:12], out)
		}
	}

	// An orphan is reparented to the pause, which reaps it.
	if _, errOut, code := e.exec(ctx, b, "sh", "-c", "(sleep 1 </dev/null >/dev/null 2>&1 &); exit 0"); code != 0 {
		t.Fatalf("making an orphan: code %d, %s", code, errOut)
	}
	orphans := func(state string) int { // children of the pause in state
		n := 0
		dirs, _ := os.ReadDir("/proc")
		for _, d := range dirs {
			if st := procStatusOf(d.Name()); st["PPid"] == fmt.Sprint(infra.Pid) && strings.HasPrefix(st["State"], state) {
				n++
			}
		}
		return n
	}
	if n := orphans(""); n != 1 {
		t.Errorf("children of the pause after orphaning one = %d, want 1", n)
	}
	if !waitFor(5*time.Second, func() bool { return orphans("") == 0 }) {
		t.Errorf("the orphan was not reaped by the pause: %d zombie children left", orphans("Z"))
	}

	// The infra container is not one of the CRI's containers.
	list, err := e.s.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{PodSandboxId: podID}})
	if err != nil || len(list.Containers) != 2 {
		t.Errorf("ListContainers = %v, %v; want the two containers, not the infra", list, err)
	}

	// The namespace outlives a container: a is removed, c still joins it.
	if _, err := e.s.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: a}); err != nil {
		t.Fatal(err)
	}

	// A restarted server finds the pod ready and its PID namespace.
	e.restart()
	if got := e.sandboxState(ctx, podID); got != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Errorf("sandbox after restart = %s, want ready", got)
	}
	c := e.mustStart(ctx, podID, podCfg, containerConfig(podCfg, image, "c", "sleep", "3602"))
	out, _, _ := e.exec(ctx, c, "ps", "-o", "pid,args")
	if !strings.Contains(out, "1 /pause") || !strings.Contains(out, "sleep 3601") {
		t.Errorf("container started after the restart: ps shows\n%s\nwant the pause as PID 1 and b's process", out)
	}

	// Stop: the containers, then the pause, which exits 0 on SIGTERM.
	pausePid, pauseStart := infra.Pid, infra.PidStartTime
	cgroups := cgroupDirs(t, pausePid)
	if _, err := e.s.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatalf("StopPodSandbox = %v", err)
	}
	for _, id := range []string{b, c} {
		if info, err := e.s.containers.Inspect(ctx, id); err != nil || info.Status != container.StatusExited {
			t.Errorf("container %s after StopPodSandbox = %s, %v; want exited", id[:12], info.Status, err)
		}
	}
	infra, err = e.s.containers.Inspect(ctx, sb.InfraID)
	if err != nil || infra.Status != container.StatusExited || infra.ExitCode != 0 {
		t.Errorf("infra after StopPodSandbox = %s code %d (%s), %v; want exited 0", infra.Status, infra.ExitCode, infra.Error, err)
	}
	if processAlive(pausePid, pauseStart) {
		t.Errorf("the pause (pid %d) still runs after StopPodSandbox", pausePid)
	}
	if got := e.sandboxState(ctx, podID); got != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
		t.Errorf("sandbox after stop = %s, want not ready", got)
	}

	// Remove: the infra container and the pinned namespace go too.
	if _, err := e.s.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatalf("RemovePodSandbox = %v", err)
	}
	if _, err := e.s.containers.Inspect(ctx, sb.InfraID); codeOf(err) != codes.NotFound {
		t.Errorf("infra container after RemovePodSandbox: %v, want NotFound", err)
	}
	if m := mountedUnder(t, e.cfg.State); len(m) > 0 {
		t.Errorf("still mounted after RemovePodSandbox: %v", m)
	}
	gone(t, "the pause's cgroup after RemovePodSandbox", cgroups)
}

// A pod whose pause died is not ready (its PID namespace is gone, with
// its containers), and no container can be created in it.
func TestSharedPIDNamespaceInfraDeath(t *testing.T) {
	e := newTestEnv(t)
	ctx := testCtx(t)
	image := e.busybox(ctx)
	podCfg := e.podConfig("fragile", "default", true)
	podID := e.runPod(ctx, podCfg)
	a := e.mustStart(ctx, podID, podCfg, containerConfig(podCfg, image, "a", "sleep", "3600"))
	sb, err := e.s.sandboxes.get(podID)
	if err != nil {
		t.Fatal(err)
	}
	infra, err := e.s.containers.Inspect(ctx, sb.InfraID)
	if err != nil {
		t.Fatal(err)
	}
	// Created before the pause dies, started after.
	created, err := e.s.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: containerConfig(podCfg, image, "created", "sleep", "1"), SandboxConfig: podCfg})
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(infra.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if !waitFor(10*time.Second, func() bool { return e.sandboxState(ctx, podID) == runtimeapi.PodSandboxState_SANDBOX_NOTREADY }) {
		t.Fatal("the sandbox is still ready after its pause was killed")
	}
	if !waitFor(10*time.Second, func() bool {
		info, err := e.s.containers.Inspect(ctx, a)
		return err == nil && info.Status == container.StatusExited
	}) {
		t.Error("a container of the pod still runs after the pod's PID 1 was killed")
	}
	_, err = e.createAndStart(ctx, podID, podCfg, containerConfig(podCfg, image, "late", "true"))
	if codeOf(err) != codes.FailedPrecondition {
		t.Errorf("creating a container in a pod whose pause died = %v, want FailedPrecondition", err)
	}
	_, err = e.s.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: created.ContainerId})
	if codeOf(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "infra container") {
		t.Errorf("starting a container in a pod whose pause died = %v, want FailedPrecondition naming the infra container", err)
	}
}

// Without a pause program (a plain go build), a pod that shares its PID
// namespace is refused before anything is made, saying how to build
// sigil; other pods still run.
func TestSharedPIDNamespaceWithoutPause(t *testing.T) {
	e := newTestEnv(t, withoutPause())
	ctx := testCtx(t)
	_, err := e.s.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: e.podConfig("nopause", "default", true)})
	if codeOf(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "make build") {
		t.Errorf("RunPodSandbox(shared PID) without a pause = %v, want FailedPrecondition saying to use make build", err)
	}
	if list, err := e.s.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{}); err != nil || len(list.Items) != 0 {
		t.Errorf("ListPodSandbox after the refusal = %v, %v; want none", list, err)
	}
	if pods, err := pod.List(ctx, e.cfg.State); err != nil || len(pods) != 0 {
		t.Errorf("pods after the refusal = %v, %v; want none", pods, err)
	}
	e.runPod(ctx, e.podConfig("plain", "default", false))
}

// The pause's root filesystem is written once per program, and a damaged
// one is replaced.
func TestWritePauseRootfs(t *testing.T) {
	state := t.TempDir()
	bin := []byte("#!pause\n")
	dir, err := writePauseRootfs(state, bin)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "pause")); err != nil || string(got) != string(bin) {
		t.Fatalf("pause = %q, %v", got, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pause"), []byte("tampered"), 0o555); err != nil {
		t.Fatal(err)
	}
	if again, err := writePauseRootfs(state, bin); err != nil || again != dir {
		t.Fatalf("second write = %s, %v; want %s", again, err, dir)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "pause")); string(got) != string(bin) {
		t.Errorf("a damaged pause was kept: %q", got)
	}
	other, err := writePauseRootfs(state, []byte("#!another build\n"))
	if err != nil || other == dir {
		t.Fatalf("another program = %s, %v", other, err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the earlier build's pause root filesystem %s was kept (%v)", dir, err)
	}
	fi, err := os.Stat(filepath.Join(other, "pause"))
	if err != nil || fi.Mode().Perm() != 0o555 {
		t.Errorf("pause mode = %v, %v; want 0555", fi.Mode(), err)
	}
}

// processAlive reports whether pid is a live process (not a zombie)
// that started at start (field 22 of /proc/<pid>/stat).
func processAlive(pid int, start uint64) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 19 && f[0] != "Z" && f[0] != "X" && f[19] == fmt.Sprint(start)
}

// The pause program itself, as PID 1 of a PID namespace of its own:
// exit code 0 on SIGTERM and on SIGINT, and it reaps an orphan.
func TestPauseProgram(t *testing.T) {
	requireRoot(t)
	bin := filepath.Join(t.TempDir(), "pause")
	if err := os.WriteFile(bin, pauseProgram(t), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		cmd := exec.Command(bin)
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pid := cmd.Process.Pid
		if sig == syscall.SIGTERM {
			// An orphan in its namespace: sh starts sleep and exits.
			out, err := exec.Command("nsenter", "--target", fmt.Sprint(pid), "--pid", "--", "sh", "-c", "sleep 0.3 </dev/null >/dev/null 2>&1 & echo $!").CombinedOutput()
			if err != nil {
				t.Fatalf("nsenter: %v: %s", err, out)
			}
			hostPid := 0
			waitFor(2*time.Second, func() bool { // the orphan, reparented to the pause
				dirs, _ := os.ReadDir("/proc")
				for _, d := range dirs {
					if st := procStatusOf(d.Name()); st["PPid"] == fmt.Sprint(pid) && st["Name"] == "sleep" {
						hostPid, _ = strconv.Atoi(d.Name())
						return true
					}
				}
				return false
			})
			if hostPid == 0 {
				t.Error("the orphan was not reparented to the pause")
			} else if !waitFor(5*time.Second, func() bool { return procStatusOf(fmt.Sprint(hostPid))["PPid"] != fmt.Sprint(pid) }) {
				t.Errorf("the pause did not reap its orphan: %v", procStatusOf(fmt.Sprint(hostPid)))
			}
		}
		// The kernel drops a signal to a namespace's init with no handler:
		// wait for the pause to install its handlers.
		waitFor(2*time.Second, func() bool { return procStatusOf(fmt.Sprint(pid))["SigCgt"] != "0000000000000000" })
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil || cmd.ProcessState.ExitCode() != 0 {
				t.Errorf("pause after %v: %v (exit %d), want exit 0", sig, err, cmd.ProcessState.ExitCode())
			}
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("pause still runs 5s after %v", sig)
		}
	}
}

// A pause killed while no server runs (kill -9 of sigil cri serve, then
// of the pause) makes the sandbox NOTREADY for the next server, which
// stops and removes it, leaving nothing mounted.
func TestSharedPIDNamespaceInfraKilledAcrossRestart(t *testing.T) {
	e := newTestEnv(t)
	ctx := testCtx(t)
	podCfg := e.podConfig("killed", "default", true)
	podID := e.runPod(ctx, podCfg)
	sb, infra := e.runningInfra(ctx, podID)
	cgroups := cgroupDirs(t, infra.Pid)
	_ = e.s.Close()
	if err := syscall.Kill(infra.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if !waitFor(5*time.Second, func() bool { return !processAlive(infra.Pid, infra.PidStartTime) }) {
		t.Fatal("the pause survived SIGKILL")
	}
	e.s = e.start()
	if got := e.sandboxState(ctx, podID); got != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
		t.Errorf("sandbox after its pause was killed and the server restarted = %s, want not ready", got)
	}
	if info, err := e.s.containers.Inspect(ctx, sb.InfraID); err != nil || info.Status != container.StatusExited || info.ExitCode != container.ExitCodeUnknown {
		t.Errorf("infra = %s code %d, %v; want exited, code unknown", info.Status, info.ExitCode, err)
	}
	if _, err := e.s.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatalf("StopPodSandbox = %v", err)
	}
	if _, err := e.s.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatalf("RemovePodSandbox = %v", err)
	}
	if m := mountedUnder(t, e.cfg.State); len(m) > 0 {
		t.Errorf("still mounted after RemovePodSandbox: %v", m)
	}
	gone(t, "the killed pause's cgroup after RemovePodSandbox", cgroups)
	if _, err := os.Stat(filepath.Join(e.cfg.State, "libcontainer", sb.InfraID)); !os.IsNotExist(err) {
		t.Errorf("the killed pause's libcontainer state is still there (%v)", err)
	}
}

// A server started after the one that ran the pod (no monitor to ask)
// stops the pause itself, by its PID, checked against its start time.
func TestSharedPIDNamespaceStopAfterRestart(t *testing.T) {
	e := newTestEnv(t)
	ctx := testCtx(t)
	podID := e.runPod(ctx, e.podConfig("restarted", "default", true))
	sb, infra := e.runningInfra(ctx, podID)
	e.restart()
	if !processAlive(infra.Pid, infra.PidStartTime) {
		t.Fatal("the pause died with the server")
	}
	if got := e.sandboxState(ctx, podID); got != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Errorf("sandbox after restart = %s, want ready", got)
	}
	start := time.Now()
	if _, err := e.s.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatalf("StopPodSandbox = %v", err)
	}
	if processAlive(infra.Pid, infra.PidStartTime) {
		t.Errorf("the pause (pid %d) still runs after StopPodSandbox", infra.Pid)
	}
	after, err := e.s.containers.Inspect(ctx, sb.InfraID)
	if err != nil || after.Status != container.StatusExited || after.ExitCode != 0 {
		t.Errorf("infra after StopPodSandbox = %s code %d (%s), %v; want exited 0 on SIGTERM", after.Status, after.ExitCode, after.Error, err)
	}
	if d := time.Since(start); d > pauseStopTimeout {
		t.Errorf("StopPodSandbox took %v: the pause did not exit on SIGTERM", d)
	}
	if got := e.sandboxState(ctx, podID); got != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
		t.Errorf("sandbox after stop = %s, want not ready", got)
	}
}

// The pause's seccomp profile is the sandbox's: none when unset, the
// file for Localhost, and a Localhost file that does not exist fails
// RunPodSandbox, leaving nothing behind.
func TestSharedPIDNamespaceSeccomp(t *testing.T) {
	e := newTestEnv(t)
	ctx := testCtx(t)
	pausePid := func(podID string) int {
		t.Helper()
		_, infra := e.runningInfra(ctx, podID)
		return infra.Pid
	}
	unset := e.runPod(ctx, e.podConfig("seccomp-unset", "default", true))
	if st := procStatus(t, pausePid(unset)); st["Seccomp"] != "0" || st["NoNewPrivs"] != "1" {
		t.Errorf("pause of a sandbox without a seccomp profile: Seccomp %q NoNewPrivs %q, want 0 and 1", st["Seccomp"], st["NoNewPrivs"])
	}
	profile := filepath.Join(e.dir, "profile.json")
	if err := os.WriteFile(profile, []byte(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["ptrace"],"action":"SCMP_ACT_ERRNO"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	local := e.runPod(ctx, withSeccomp(e.podConfig("seccomp-local", "default", true),
		&runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: profile}))
	if st := procStatus(t, pausePid(local)); st["Seccomp"] != "2" {
		t.Errorf("pause of a sandbox with a Localhost profile: Seccomp %q, want 2", st["Seccomp"])
	}
	_, err := e.s.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: withSeccomp(e.podConfig("seccomp-missing", "default", true),
		&runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: filepath.Join(e.dir, "missing.json")})})
	if codeOf(err) != codes.NotFound || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("RunPodSandbox with a missing Localhost profile = %v, want NotFound naming the file", err)
	}
	if list, err := e.s.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{}); err != nil || len(list.Items) != 2 {
		t.Errorf("ListPodSandbox = %v, %v; want the two pods that started", list, err)
	}
}

// cgroupDirs returns the memory and pids cgroup directories of process
// pid (cgroup v1, as libcontainer creates them on this hybrid host).
func cgroupDirs(t *testing.T, pid int) []string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) == 3 && (f[1] == "memory" || f[1] == "pids") {
			d := filepath.Join("/sys/fs/cgroup", f[1], f[2])
			if _, err := os.Stat(d); err != nil {
				t.Fatalf("cgroup of process %d: %v", pid, err)
			}
			dirs = append(dirs, d)
		}
	}
	if len(dirs) == 0 {
		t.Fatalf("no memory or pids cgroup in %s", b)
	}
	return dirs
}

// gone checks that none of dirs exists.
func gone(t *testing.T, what string, dirs []string) {
	t.Helper()
	for _, d := range dirs {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s: %s is still there (%v)", what, d, err)
		}
	}
}

// runningInfra returns podID's sandbox record and its infra container,
// which must be there and running.
func (e *testEnv) runningInfra(ctx context.Context, podID string) (*sandbox, container.Info) {
	e.t.Helper()
	sb, err := e.s.sandboxes.get(podID)
	if err != nil || sb.InfraID == "" {
		e.t.Fatalf("sandbox record = %+v, %v; want an infra container", sb, err)
	}
	infra, err := e.s.containers.Inspect(ctx, sb.InfraID)
	if err != nil || !infra.Running() {
		e.t.Fatalf("infra container = %+v, %v; want it running", infra, err)
	}
	return sb, infra
}
