package tests

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/sigil-project/sigil/tests/testimage"
)

// TestCRIBenchmark is the side-by-side CRI benchmark of
// Documentation/benchmarks.md: Sigil's `sigil cri serve` and Debian's
// containerd 1.6 (CRI plugin, runc), each started on a socket of its own in
// a temp dir and driven by the same cri-api Go client. For each: pull the
// busybox image (warm), then 20 × RunPodSandbox (CNI bridge) +
// CreateContainer + StartContainer of `sleep 3600`, timed per pod, all kept
// running; then the memory (smaps_rollup Rss, Pss) of every per-pod
// supervisor: Sigil's monitors and containerd's containerd-shim-runc-v2.
//
//	make build && SIGIL_BINARY=$PWD/bin/sigil SIGIL_CRI_BENCH=1 \
//	  go test -tags seccomp -count=1 -run TestCRIBenchmark -v ./tests/
//
// containerd runs with /work/shared/peers/containerd-config.toml.in when it
// exists (else the same settings, inlined below), a busybox-based pause
// stand-in and registry mirrors in its temp dir.
func TestCRIBenchmark(t *testing.T) {
	if os.Getenv("SIGIL_CRI_BENCH") != "1" {
		t.Skip("set SIGIL_CRI_BENCH=1 to run the CRI side-by-side benchmark (Sigil vs containerd 1.6)")
	}
	requireRoot(t)
	for _, p := range []string{"/usr/lib/cni/bridge", "/usr/lib/cni/host-local", "/usr/lib/cni/portmap", "/usr/lib/cni/loopback",
		"/usr/bin/containerd", "/usr/bin/containerd-shim-runc-v2", "/usr/sbin/runc"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("needs %s: apt-get install containerd runc containernetworking-plugins", p)
		}
	}

	reg := testimage.NewRegistry()
	t.Cleanup(reg.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	bb, err := testimage.Busybox(testimage.OCI)
	if err != nil {
		t.Fatal(err)
	}
	image := reg.Host + "/bench/busybox:1"
	if _, err := testimage.Push(ctx, image, bb); err != nil {
		t.Fatal(err)
	}
	// The pause stand-in: busybox whose entrypoint sleeps (registry.k8s.io
	// is unreachable here).
	files, err := testimage.BaseFiles()
	if err != nil {
		t.Fatal(err)
	}
	layer, err := testimage.Layer(files...)
	if err != nil {
		t.Fatal(err)
	}
	pauseImg, err := testimage.Build(testimage.OCI, testimage.Config{Entrypoint: []string{"/bin/sleep", "2147483647"}}, "amd64", layer)
	if err != nil {
		t.Fatal(err)
	}
	pause := reg.Host + "/bench/pause:3.6"
	if _, err := testimage.Push(ctx, pause, pauseImg); err != nil {
		t.Fatal(err)
	}

	const pods = 20
	for _, sharedPID := range []bool{false, true} {
		scenario := "kubelet's default pod (PID namespace per container)"
		if sharedPID {
			scenario = "shareProcessNamespace pod (one PID namespace, a pause on both sides)"
		}
		t.Logf("== %s", scenario)
		criBenchScenario(ctx, t, reg.Host, image, pause, pods, sharedPID)
	}
}

func criBenchScenario(ctx context.Context, t *testing.T, registry, image, pause string, pods int, sharedPID bool) {
	n := freeBenchSubnet(t)
	var res []criBenchResult
	for _, rt := range []string{"sigil", "containerd"} {
		name := rt
		if sharedPID {
			name += "-shared-pid"
		}
		ok := t.Run(name, func(t *testing.T) {
			b := &criBenchRuntime{t: t, name: rt, dir: t.TempDir(), image: image, pause: pause, registry: registry, sharedPID: sharedPID}
			b.cgroupParent = fmt.Sprintf("/cribench-%s-%d", rt, os.Getpid())
			if rt == "sigil" {
				b.bridge, b.subnet = fmt.Sprintf("cbsig%d", n), fmt.Sprintf("10.88.%d.0/24", n)
			} else {
				b.bridge, b.subnet = fmt.Sprintf("cbctd%d", n), fmt.Sprintf("10.89.%d.0/24", n)
			}
			b.setup()
			res = append(res, b.measure(ctx, pods))
		})
		if !ok {
			t.FailNow()
		}
	}
	s, c := res[0], res[1]
	t.Logf("ratio sigil/containerd: latency mean %.2f, median %.2f; supervisor RSS per pod %.2f, PSS per pod %.2f",
		s.mean/c.mean, s.median/c.median, s.rssPerPod/c.rssPerPod, s.pssPerPod/c.pssPerPod)
	t.Logf("target latency (sigil faster): %v; target memory per pod (sigil less than the shim, PSS): %v, (RSS): %v",
		s.mean < c.mean && s.median < c.median, s.pssPerPod < c.pssPerPod, s.rssPerPod < c.rssPerPod)
}

// freeBenchSubnet picks x such that neither 10.88.x.0/24 nor 10.89.x.0/24
// is on any interface, nor its bridge name taken.
func freeBenchSubnet(t *testing.T) int {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, i := range ifs {
		used[i.Name] = true
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				if v4 := ipn.IP.To4(); v4 != nil && v4[0] == 10 && (v4[1] == 88 || v4[1] == 89) {
					used[strconv.Itoa(int(v4[2]))] = true
				}
			}
		}
	}
	for k := 0; k < 250; k++ {
		x := (os.Getpid() + k) % 250
		if !used[strconv.Itoa(x)] && !used[fmt.Sprintf("cbsig%d", x)] && !used[fmt.Sprintf("cbctd%d", x)] {
			return x
		}
	}
	t.Fatal("no free 10.88.x/10.89.x subnet")
	return 0
}

type criBenchRuntime struct {
	t                           *testing.T
	name, dir, sock             string
	image, pause, registry      string
	bridge, subnet              string
	cgroupParent                string
	state                       string // sigil's --state
	server                      *exec.Cmd
	conn                        *grpc.ClientConn
	rt                          runtimeapi.RuntimeServiceClient
	img                         runtimeapi.ImageServiceClient
	cniDir, logDir, ipamDir, lf string
	// sharedPID runs pods whose containers share one PID namespace
	// (shareProcessNamespace), for which both runtimes keep a pause.
	sharedPID bool
}

type criBenchResult struct {
	name                 string
	mean, median         float64 // ms
	supervisors, pauses  int
	rssPerSup, pssPerSup float64 // MB (smaps kB / 1024)
	rssPerPod, pssPerPod float64
}

func (b *criBenchRuntime) setup() {
	t := b.t
	b.cniDir = filepath.Join(b.dir, "cni-conf")
	b.logDir = filepath.Join(b.dir, "logs")
	b.ipamDir = filepath.Join(b.dir, "ipam")
	b.lf = filepath.Join(b.dir, "server.log")
	for _, d := range []string{b.cniDir, b.logDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	conflist := fmt.Sprintf(`{
  "cniVersion": "1.0.0", "name": "cribench-%[1]s",
  "plugins": [
    {"type": "bridge", "bridge": %[1]q, "isGateway": true, "ipMasq": false,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": %[2]q}]], "dataDir": %[3]q}},
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "loopback"}
  ]}`, b.bridge, b.subnet, b.ipamDir)
	if err := os.WriteFile(filepath.Join(b.cniDir, "10-bench.conflist"), []byte(conflist), 0o644); err != nil {
		t.Fatal(err)
	}
	// Cleanups run last-registered first: pods, server, leftover
	// supervisors, mounts, interfaces, cgroups, then TempDir.
	t.Cleanup(b.removeCgroups)
	t.Cleanup(func() {
		out, _ := exec.Command("ip", "-o", "link", "show", "master", b.bridge).Output()
		for _, l := range strings.Split(string(out), "\n") {
			if f := strings.Fields(l); len(f) > 1 {
				_ = exec.Command("ip", "link", "delete", strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0]).Run()
			}
		}
		_ = exec.Command("ip", "link", "delete", b.bridge).Run()
	})
	t.Cleanup(func() { unmountUnder(b.dir) })
	t.Cleanup(func() {
		// Sigil's pauses have no supervisor to die with.
		for _, pid := range append(b.supervisors(), b.pauses()...) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := os.ReadFile(b.lf)
			if len(out) > 8000 {
				out = out[len(out)-8000:]
			}
			t.Logf("%s log (tail):\n%s", b.name, out)
		}
	})
	t.Cleanup(b.stop)
	if b.name == "sigil" {
		b.startSigil()
	} else {
		b.startContainerd()
	}
	t.Cleanup(b.removeAllPods)
}

func (b *criBenchRuntime) startSigil() {
	t := b.t
	root := filepath.Join(b.dir, "root")
	b.state = filepath.Join(b.dir, "state")
	policy := filepath.Join(b.dir, "policy.json")
	policies := filepath.Join(b.dir, "policies")
	if err := os.MkdirAll(policies, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	b.sock = filepath.Join(b.dir, "cri.sock")
	b.startServer(sigilBinary, "--root", root, "--state", b.state, "--policy", policy, "--log-level", "info",
		"cri", "serve", "--socket", b.sock, "--cni-conf-dir", b.cniDir, "--cni-bin-dir", "/usr/lib/cni",
		"--policies-dir", policies)
}

// containerdConfigTemplate is used when /work/shared/peers has none.
const containerdConfigTemplate = `version = 2
root = "@DIR@/root"
state = "@DIR@/state"
oom_score = 0
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "@DIR@/containerd.sock"
[ttrpc]
  address = "@DIR@/containerd.sock.ttrpc"
[debug]
  address = "@DIR@/debug.sock"
  level = "info"
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "@PAUSE_IMAGE@"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  disable_apparmor = true
  netns_mounts_under_state_dir = true
  restrict_oom_score_adj = true
  disable_hugetlb_controller = true
  tolerate_missing_hugetlb_controller = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "@DIR@/cni-conf"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        SystemdCgroup = false
        Root = "@DIR@/runc"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "@DIR@/certs.d"
`

func (b *criBenchRuntime) startContainerd() {
	t := b.t
	tmpl := containerdConfigTemplate
	if raw, err := os.ReadFile("/work/shared/peers/containerd-config.toml.in"); err == nil {
		tmpl = string(raw)
	}
	cfg := strings.NewReplacer("@DIR@", b.dir, "@PAUSE_IMAGE@", b.pause).Replace(tmpl)
	cfgPath := filepath.Join(b.dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	hosts := filepath.Join(b.dir, "certs.d", b.registry)
	if err := os.MkdirAll(hosts, 0o755); err != nil {
		t.Fatal(err)
	}
	toml := fmt.Sprintf("server = \"http://%[1]s\"\n\n[host.\"http://%[1]s\"]\n  capabilities = [\"pull\", \"resolve\", \"push\"]\n  skip_verify = true\n", b.registry)
	if err := os.WriteFile(filepath.Join(hosts, "hosts.toml"), []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	b.sock = filepath.Join(b.dir, "containerd.sock")
	b.startServer("/usr/bin/containerd", "--config", cfgPath)
}

// startServer starts the runtime, connects, and waits until its CRI
// answers Version and reports the network ready.
func (b *criBenchRuntime) startServer(bin string, args ...string) {
	t := b.t
	lf, err := os.OpenFile(b.lf, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	b.server = exec.Command(bin, args...)
	b.server.Stdout, b.server.Stderr = lf, lf
	if err := b.server.Start(); err != nil {
		t.Fatal(err)
	}
	b.conn, b.rt, b.img = dialCRI(t, b.name, b.sock, 30*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		st, err := b.rt.Status(ctx, &runtimeapi.StatusRequest{})
		if err == nil {
			ready := false
			for _, c := range st.GetStatus().GetConditions() {
				if c.Type == runtimeapi.NetworkReady && c.Status {
					ready = true
				}
			}
			if ready {
				v, _ := b.rt.Version(ctx, &runtimeapi.VersionRequest{})
				t.Logf("%s: %s %s (CRI %s), pid %d", b.name, v.GetRuntimeName(), v.GetRuntimeVersion(), v.GetRuntimeApiVersion(), b.server.Process.Pid)
				return
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("%s: CRI not ready: %v", b.name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (b *criBenchRuntime) stop() {
	if b.server == nil {
		return
	}
	_ = b.server.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _, _ = b.server.Process.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = b.server.Process.Kill()
		<-done
	}
	b.server = nil
	b.conn.Close()
}

func (b *criBenchRuntime) removeAllPods() {
	if b.server == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	list, err := b.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		b.t.Logf("cleanup: list pods: %v", err)
		return
	}
	for _, p := range list.Items {
		if _, err := b.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			b.t.Logf("cleanup: stop pod %s: %v", p.Id, err)
		}
		if _, err := b.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			b.t.Logf("cleanup: remove pod %s: %v", p.Id, err)
		}
	}
}

// measure pulls, starts pods pods, and reads the supervisors' memory.
func (b *criBenchRuntime) measure(ctx context.Context, pods int) criBenchResult {
	t := b.t
	pulls := []string{b.image}
	if b.name == "containerd" {
		pulls = append(pulls, b.pause) // its sandboxes need it; pulled before timing
	}
	for _, im := range pulls {
		if _, err := b.img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: im}}); err != nil {
			t.Fatalf("%s: PullImage(%s) = %v", b.name, im, err)
		}
	}
	var lat []float64
	for i := range pods {
		name := fmt.Sprintf("bench-%d", i)
		// The namespaces kubelet asks for a pod without shareProcessNamespace
		// or host namespaces: pod network and IPC, a PID namespace per
		// container. (Left unset, the CRI's zero value is a shared PID
		// namespace, for which Sigil starts a pause as containerd always does;
		// see sharedPID.)
		ns := &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_POD, Ipc: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_CONTAINER}
		if b.sharedPID {
			ns.Pid = runtimeapi.NamespaceMode_POD
		}
		pod := &runtimeapi.PodSandboxConfig{
			Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "bench", Uid: fmt.Sprintf("%s-%d-uid", b.name, i)},
			Hostname:     name,
			LogDirectory: filepath.Join(b.logDir, name),
			Linux: &runtimeapi.LinuxPodSandboxConfig{
				CgroupParent:    fmt.Sprintf("%s/pod%d", b.cgroupParent, i),
				SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: ns},
			},
		}
		cc := &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "sleep"},
			Image:    &runtimeapi.ImageSpec{Image: b.image},
			Command:  []string{"sleep", "3600"},
			LogPath:  "sleep.log",
			Linux:    &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: ns}},
		}
		start := time.Now()
		r, err := b.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: pod})
		if err != nil {
			t.Fatalf("%s: RunPodSandbox(%s) = %v", b.name, name, err)
		}
		c, err := b.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: r.PodSandboxId, Config: cc, SandboxConfig: pod})
		if err != nil {
			t.Fatalf("%s: CreateContainer(%s) = %v", b.name, name, err)
		}
		if _, err := b.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
			t.Fatalf("%s: StartContainer(%s) = %v", b.name, name, err)
		}
		lat = append(lat, float64(time.Since(start).Microseconds())/1000)
	}
	// All running?
	list, err := b.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	running := 0
	for _, c := range list.Containers {
		if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			running++
		}
	}
	if running != pods {
		t.Fatalf("%s: %d containers running, want %d", b.name, running, pods)
	}
	time.Sleep(2 * time.Second) // let the supervisors settle after their start

	sups := b.supervisors()
	if len(sups) == 0 {
		t.Fatalf("%s: no per-pod supervisor processes found", b.name)
	}
	// The pause processes are the runtime's too: containerd keeps one in
	// every pod, Sigil in the pods that share a PID namespace.
	pauses := b.pauses()
	var rss, pss, supRSS, supPSS float64
	exes := map[string]int{}
	for i, pid := range append(slices.Clone(sups), pauses...) {
		r, p, err := smapsRollup(pid)
		if err != nil {
			t.Fatalf("%s: smaps_rollup of %d: %v", b.name, pid, err)
		}
		rss += r
		pss += p
		if i < len(sups) {
			supRSS, supPSS = supRSS+r, supPSS+p
		}
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		exes[exe]++
	}
	res := criBenchResult{name: b.name, supervisors: len(sups), pauses: len(pauses)}
	for _, v := range lat {
		res.mean += v
	}
	res.mean /= float64(len(lat))
	sorted := slices.Clone(lat)
	slices.Sort(sorted)
	res.median = (sorted[(len(sorted)-1)/2] + sorted[len(sorted)/2]) / 2
	res.rssPerSup, res.pssPerSup = rss/float64(len(sups)+len(pauses))/1024, pss/float64(len(sups)+len(pauses))/1024
	res.rssPerPod, res.pssPerPod = rss/float64(pods)/1024, pss/float64(pods)/1024
	t.Logf("%s: run+create+start × %d: mean %.1f ms, median %.1f ms, min %.1f, max %.1f; all (ms): %s",
		b.name, pods, res.mean, res.median, sorted[0], sorted[len(sorted)-1], fmtMs(lat))
	t.Logf("%s: %d supervisors and %d pauses (%v): RSS %.1f MB, PSS %.1f MB per process; per pod RSS %.1f MB, PSS %.1f MB (supervisors alone: RSS %.1f MB, PSS %.1f MB per pod)",
		b.name, len(sups), len(pauses), exes, res.rssPerSup, res.pssPerSup, res.rssPerPod, res.pssPerPod, supRSS/float64(pods)/1024, supPSS/float64(pods)/1024)
	return res
}

func fmtMs(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.FormatFloat(x, 'f', 0, 64)
	}
	return strings.Join(s, " ")
}

// proc is a process as /proc shows it.
type proc struct {
	pid, ppid int
	args      []string
}

// procs lists the processes that have a command line.
func procs() []proc {
	ents, _ := os.ReadDir("/proc")
	var out []proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		stat, serr := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || serr != nil || len(raw) == 0 {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		out = append(out, proc{pid: pid, ppid: ppid, args: strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")})
	}
	return out
}

// supervisors lists the per-pod supervisor processes of this runtime
// instance only: Sigil's monitors of this --state, containerd's shims of
// this socket.
func (b *criBenchRuntime) supervisors() []int {
	var pids []int
	for _, p := range procs() {
		switch b.name {
		case "sigil":
			if slices.Contains(p.args, "__sigil-monitor") && slices.Contains(p.args, "--state="+b.state) {
				pids = append(pids, p.pid)
			}
		case "containerd":
			if filepath.Base(p.args[0]) == "containerd-shim-runc-v2" && slices.Contains(p.args, b.sock) {
				pids = append(pids, p.pid)
			}
		}
	}
	return pids
}

// pauses lists the pods' pause processes: those in the pods' cgroups
// (under this runtime's cgroupParent) that are not the benchmark's
// workload (`sleep 3600`). Found by cgroup, not by parent: containerd's
// pause is a child of its shim, Sigil's runs unsupervised (reparented, as
// with runc run -d).
func (b *criBenchRuntime) pauses() []int {
	var pids []int
	for _, p := range procs() {
		cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", p.pid))
		if err != nil || !strings.Contains(string(cg), ":"+b.cgroupParent+"/") || slices.Equal(p.args, []string{"sleep", "3600"}) {
			continue
		}
		pids = append(pids, p.pid)
	}
	return pids
}

// smapsRollup returns Rss and Pss in kB.
func smapsRollup(pid int) (rss, pss float64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 2 {
			continue
		}
		v, _ := strconv.ParseFloat(fs[1], 64)
		switch fs[0] {
		case "Rss:":
			rss = v
		case "Pss:":
			pss = v
		}
	}
	return rss, pss, sc.Err()
}

// unmountUnder lazily unmounts whatever is still mounted under dir,
// deepest first, so TempDir can remove it.
func unmountUnder(dir string) {
	raw, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var mps []string
	for _, l := range strings.Split(string(raw), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			mps = append(mps, f[4])
		}
	}
	slices.SortFunc(mps, func(a, b string) int { return len(b) - len(a) })
	for _, m := range mps {
		_ = syscall.Unmount(m, syscall.MNT_DETACH)
	}
}

// removeCgroups removes this runtime's cgroup parent (empty by now) in
// every hierarchy, deepest first.
func (b *criBenchRuntime) removeCgroups() {
	hier, _ := filepath.Glob("/sys/fs/cgroup/*")
	hier = append(hier, "/sys/fs/cgroup")
	for _, h := range hier {
		top := filepath.Join(h, b.cgroupParent)
		if _, err := os.Stat(top); err != nil {
			continue
		}
		var dirs []string
		_ = filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		slices.SortFunc(dirs, func(a, b string) int { return len(b) - len(a) })
		for _, d := range dirs {
			if err := syscall.Rmdir(d); err != nil {
				b.t.Logf("cleanup: rmdir %s: %v", d, err)
			}
		}
	}
}
