package tests

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/sigil-project/sigil/tests/testimage"
)

// criEnv is a sigil installation with `sigil cri serve` running on a
// socket in a temp dir, a CNI bridge network of its own, and a busybox
// image on the env's loopback registry.
type criEnv struct {
	*env
	dir, sock, cniDir, policiesDir, logDir string
	image                                  string
	server                                 *exec.Cmd
	serverLog                              string
	rt                                     runtimeapi.RuntimeServiceClient
	img                                    runtimeapi.ImageServiceClient
	conn                                   *grpc.ClientConn
	binary                                 string // the sigil the server runs; sigilBinary when ""
}

// criNet numbers the bridges and subnets, so tests never share one.
var criNet atomic.Int32

func newCRIEnv(t *testing.T) *criEnv {
	t.Helper()
	e := newEnv(t)
	for _, p := range []string{"/usr/lib/cni/bridge", "/usr/lib/cni/host-local", "/usr/lib/cni/portmap", "/usr/lib/cni/loopback"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("needs Debian's containernetworking-plugins (%s): apt-get install containernetworking-plugins", p)
		}
	}
	dir := t.TempDir()
	c := &criEnv{
		env: e, dir: dir,
		sock:        filepath.Join(dir, "cri.sock"),
		cniDir:      filepath.Join(dir, "net.d"),
		policiesDir: filepath.Join(dir, "policies"),
		logDir:      filepath.Join(dir, "logs"),
		serverLog:   filepath.Join(dir, "server.log"),
	}
	for _, d := range []string{c.cniDir, c.policiesDir, c.logDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	n := criNet.Add(1) + int32(os.Getpid()%50)*4
	conflist := fmt.Sprintf(`{
  "cniVersion": "1.0.0", "name": "sigil-e2e-%[1]d",
  "plugins": [
    {"type": "bridge", "bridge": "sgl%[1]d", "isGateway": true, "ipMasq": false,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.199.%[1]d.0/24"}]], "dataDir": %[2]q}},
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "loopback"}
  ]}`, n, filepath.Join(dir, "ipam"))
	if err := os.WriteFile(filepath.Join(c.cniDir, "10-e2e.conflist"), []byte(conflist), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = exec.Command("ip", "link", "delete", fmt.Sprintf("sgl%d", n)).Run()
	})
	img, err := testimage.Busybox(testimage.OCI)
	if err != nil {
		t.Fatal(err)
	}
	c.image = e.push("e2e/busybox:1", img)
	c.start()
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(c.serverLog)
			t.Logf("server log:\n%s", b)
		}
		c.removeAllPods()
		c.stop()
	})
	return c
}

// start runs the server and connects to it.
func (c *criEnv) start() {
	c.t.Helper()
	lf, err := os.OpenFile(c.serverLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	defer lf.Close()
	args := []string{"--root", c.root, "--state", c.state, "--policy", c.policy, "--log-level", "debug",
		"cri", "serve", "--socket", c.sock, "--cni-conf-dir", c.cniDir, "--cni-bin-dir", "/usr/lib/cni",
		"--policies-dir", c.policiesDir}
	bin := sigilBinary
	if c.binary != "" {
		bin = c.binary
	}
	c.server = exec.Command(bin, args...)
	c.server.Stdout, c.server.Stderr = lf, lf
	if err := c.server.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.conn, c.rt, c.img = dialCRI(c.t, "the CRI server", c.sock, 20*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		if _, err := c.rt.Version(ctx, &runtimeapi.VersionRequest{}); err == nil {
			return
		}
		if ctx.Err() != nil {
			c.t.Fatal("the CRI server does not answer Version")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dialCRI waits up to d for server to create its socket sock, and
// connects to it.
func dialCRI(t *testing.T, server, sock string, d time.Duration) (*grpc.ClientConn, runtimeapi.RuntimeServiceClient, runtimeapi.ImageServiceClient) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not create %s", server, sock)
		}
		time.Sleep(20 * time.Millisecond)
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	return conn, runtimeapi.NewRuntimeServiceClient(conn), runtimeapi.NewImageServiceClient(conn)
}

// stop stops the server (by its PID), gracefully.
func (c *criEnv) stop() {
	if c.server == nil {
		return
	}
	_ = c.server.Process.Signal(syscall.SIGTERM)
	_, _ = c.server.Process.Wait()
	c.server = nil
	c.conn.Close()
}

// kill9 kills the server as a crash would.
func (c *criEnv) kill9() {
	_ = c.server.Process.Kill()
	_, _ = c.server.Process.Wait()
	c.server = nil
	c.conn.Close()
}

func (c *criEnv) removeAllPods() {
	if c.server == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	list, err := c.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return
	}
	for _, p := range list.Items {
		if _, err := c.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			c.t.Logf("cleanup: remove pod %s: %v", p.Id, err)
		}
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func (c *criEnv) pull(ctx context.Context) {
	c.t.Helper()
	if _, err := c.img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: c.image}}); err != nil {
		c.t.Fatalf("PullImage(%s) = %v", c.image, err)
	}
}

func podConfig(name, namespace string) *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: name, Namespace: namespace, Uid: name + "-uid"},
		Hostname: name,
		Labels:   map[string]string{"app": name},
	}
}

func (c *criEnv) runPod(ctx context.Context, cfg *runtimeapi.PodSandboxConfig) string {
	c.t.Helper()
	if cfg.LogDirectory == "" {
		cfg.LogDirectory = filepath.Join(c.logDir, cfg.Metadata.Name)
	}
	r, err := c.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		c.t.Fatalf("RunPodSandbox(%s) = %v", cfg.Metadata.Name, err)
	}
	return r.PodSandboxId
}

func (c *criEnv) createContainer(ctx context.Context, podID string, pod *runtimeapi.PodSandboxConfig, cfg *runtimeapi.ContainerConfig) (string, error) {
	if cfg.Image == nil {
		cfg.Image = &runtimeapi.ImageSpec{Image: c.image}
	}
	if cfg.LogPath == "" {
		cfg.LogPath = cfg.Metadata.Name + ".log"
	}
	r, err := c.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: cfg, SandboxConfig: pod})
	if err != nil {
		return "", err
	}
	return r.ContainerId, nil
}

func (c *criEnv) runContainer(ctx context.Context, podID string, pod *runtimeapi.PodSandboxConfig, name string, cmd ...string) string {
	c.t.Helper()
	return c.startContainer(ctx, podID, pod, &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: name}, Command: cmd})
}

// startContainer creates and starts a container of cfg.
func (c *criEnv) startContainer(ctx context.Context, podID string, pod *runtimeapi.PodSandboxConfig, cfg *runtimeapi.ContainerConfig) string {
	c.t.Helper()
	name := cfg.GetMetadata().GetName()
	id, err := c.createContainer(ctx, podID, pod, cfg)
	if err != nil {
		c.t.Fatalf("CreateContainer(%s) = %v", name, err)
	}
	if _, err := c.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
		c.t.Fatalf("StartContainer(%s) = %v", name, err)
	}
	return id
}

// sharedPIDPodConfig is podConfig for a pod whose containers share a PID
// namespace (the pause is its PID 1).
func sharedPIDPodConfig(name string) *runtimeapi.PodSandboxConfig {
	pod := podConfig(name, "default")
	pod.Linux = &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
		NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_POD},
	}}
	return pod
}

// sharedPIDContainerConfig is a container of cmd in its pod's PID namespace.
func sharedPIDContainerConfig(name string, cmd ...string) *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name}, Command: cmd,
		Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_POD},
		}},
	}
}

func (c *criEnv) status(ctx context.Context, id string) *runtimeapi.ContainerStatus {
	c.t.Helper()
	r, err := c.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		c.t.Fatalf("ContainerStatus(%s) = %v", id, err)
	}
	return r.Status
}

// waitState polls until the container is in state, for at most d.
func (c *criEnv) waitState(ctx context.Context, id string, state runtimeapi.ContainerState, d time.Duration) *runtimeapi.ContainerStatus {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		st := c.status(ctx, id)
		if st.State == state {
			return st
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("container %s is %s after %s, want %s", id, st.State, d, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *criEnv) execSync(ctx context.Context, id string, cmd ...string) *runtimeapi.ExecSyncResponse {
	c.t.Helper()
	r, err := c.rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: cmd, Timeout: 30})
	if err != nil {
		c.t.Fatalf("ExecSync(%v) = %v", cmd, err)
	}
	return r
}

func wantCode(t *testing.T, what string, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Errorf("%s = %v, want code %s", what, err, code)
	}
}

func TestCRIVersionStatusAndImages(t *testing.T) {
	c := newCRIEnv(t)
	ctx := ctxT(t)
	v, err := c.rt.Version(ctx, &runtimeapi.VersionRequest{})
	if err != nil || v.RuntimeName != "sigil" || v.RuntimeApiVersion != "v1" {
		t.Fatalf("Version = %v, %v", v, err)
	}
	st, err := c.rt.Status(ctx, &runtimeapi.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, cond := range st.Status.Conditions {
		if !cond.Status {
			t.Errorf("condition %s is false: %s %s", cond.Type, cond.Reason, cond.Message)
		}
	}
	rc, err := c.rt.RuntimeConfig(ctx, &runtimeapi.RuntimeConfigRequest{})
	if err != nil || rc.Linux.CgroupDriver != runtimeapi.CgroupDriver_CGROUPFS {
		t.Errorf("RuntimeConfig = %v, %v; want cgroupfs", rc, err)
	}

	// An image pulled through the CRI is the CLI's, and the other way round.
	c.pull(ctx)
	if out := c.mustSigil("images"); !strings.Contains(out.stdout, strings.TrimSuffix(c.image, ":1")) {
		t.Errorf("sigil images after PullImage:\n%s\nwant %s", out.stdout, c.image)
	}
	img2, _ := testimage.Layered(testimage.OCI)
	ref2 := c.push("e2e/layered:2", img2)
	c.mustSigil("fetch", "-q", ref2)
	list, err := c.img.ListImages(ctx, &runtimeapi.ListImagesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var tags []string
	for _, i := range list.Images {
		tags = append(tags, i.RepoTags...)
	}
	if !strings.Contains(strings.Join(tags, " "), ref2) || !strings.Contains(strings.Join(tags, " "), c.image) {
		t.Errorf("ListImages tags = %v, want %s and %s", tags, c.image, ref2)
	}
	is, err := c.img.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref2}})
	if err != nil || is.Image == nil || len(is.Image.RepoDigests) == 0 {
		t.Fatalf("ImageStatus(%s) = %v, %v", ref2, is, err)
	}
	// By ID and by digest too.
	for _, spec := range []string{is.Image.Id, is.Image.RepoDigests[0]} {
		if r, err := c.img.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: spec}}); err != nil || r.Image == nil {
			t.Errorf("ImageStatus(%s) = %v, %v", spec, r, err)
		}
	}
	if r, err := c.img.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: "127.0.0.1:1/none:1"}}); err != nil || r.Image != nil {
		t.Errorf("ImageStatus(absent) = %v, %v; want an empty response", r, err)
	}
	fs, err := c.img.ImageFsInfo(ctx, &runtimeapi.ImageFsInfoRequest{})
	if err != nil || len(fs.ImageFilesystems) == 0 || fs.ImageFilesystems[0].UsedBytes.Value == 0 {
		t.Errorf("ImageFsInfo = %v, %v", fs, err)
	}
	for i := 0; i < 2; i++ { // idempotent
		if _, err := c.img.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: ref2}}); err != nil {
			t.Errorf("RemoveImage #%d = %v", i+1, err)
		}
	}
	if out := c.mustSigil("images"); strings.Contains(out.stdout, "e2e/layered") {
		t.Errorf("sigil images after RemoveImage still lists it:\n%s", out.stdout)
	}
}

func TestCRIPodLifecycle(t *testing.T) {
	c := newCRIEnv(t)
	ctx := ctxT(t)
	c.pull(ctx)
	pod := podConfig("life", "default")
	pod.DnsConfig = &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"default.svc.cluster.local"}, Options: []string{"ndots:5"}}
	pod.Linux = &runtimeapi.LinuxPodSandboxConfig{Sysctls: map[string]string{"net.ipv4.ip_unprivileged_port_start": "100"}}
	podID := c.runPod(ctx, pod)

	ps, err := c.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: podID})
	if err != nil {
		t.Fatal(err)
	}
	if ps.Status.State != runtimeapi.PodSandboxState_SANDBOX_READY || !strings.HasPrefix(ps.Status.Network.GetIp(), "10.199.") {
		t.Errorf("PodSandboxStatus = %s, IP %q; want ready with a 10.199.x address", ps.Status.State, ps.Status.Network.GetIp())
	}
	_, err = c.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: pod})
	wantCode(t, "RunPodSandbox(same metadata)", err, codes.AlreadyExists)

	id := c.runContainer(ctx, podID, pod, "main", "sh", "-c", "trap 'exit 143' TERM; echo started; echo oops >&2; i=0; while true; do echo line $i; i=$((i+1)); sleep 0.2; done")
	st := c.waitState(ctx, id, runtimeapi.ContainerState_CONTAINER_RUNNING, 10*time.Second)
	if st.StartedAt == 0 || st.CreatedAt == 0 || st.Metadata.Name != "main" {
		t.Errorf("status = %v", st)
	}
	// The CLI sees the CRI's container.
	if out := c.mustSigil("ps"); !strings.Contains(out.stdout, id[:12]) || !strings.Contains(out.stdout, "k8s_main_life_default") {
		t.Errorf("sigil ps does not show the CRI container %s:\n%s", id[:12], out.stdout)
	}
	out := c.execSync(ctx, id, "sh", "-c", "hostname; cat /etc/resolv.conf; cat /proc/sys/net/ipv4/ip_unprivileged_port_start; exit 3")
	for _, want := range []string{"life", "nameserver 10.96.0.10", "search default.svc.cluster.local", "options ndots:5", "100"} {
		if !strings.Contains(string(out.Stdout), want) {
			t.Errorf("exec output %q lacks %q", out.Stdout, want)
		}
	}
	if out.ExitCode != 3 {
		t.Errorf("ExecSync exit code = %d, want 3", out.ExitCode)
	}
	_, err = c.rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"sleep", "10"}, Timeout: 1})
	wantCode(t, "ExecSync(sleep 10, timeout 1s)", err, codes.DeadlineExceeded)

	// Logs in the CRI format at LogDirectory/LogPath; rotation + reopen.
	logPath := filepath.Join(pod.LogDirectory, "main.log")
	time.Sleep(500 * time.Millisecond)
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), " stdout F started\n") || !strings.Contains(string(b), " stderr F oops\n") {
		t.Errorf("log %s:\n%s\nwant CRI-format lines", logPath, b)
	}
	if st.LogPath != logPath {
		t.Errorf("status log path = %s, want %s", st.LogPath, logPath)
	}
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.rt.ReopenContainerLog(ctx, &runtimeapi.ReopenContainerLogRequest{ContainerId: id}); err != nil {
		t.Fatalf("ReopenContainerLog = %v", err)
	}
	time.Sleep(600 * time.Millisecond)
	if b, err := os.ReadFile(logPath); err != nil || !strings.Contains(string(b), " stdout F line ") {
		t.Errorf("reopened log = %q, %v; want new lines", b, err)
	}

	// Stats.
	cs, err := c.rt.ContainerStats(ctx, &runtimeapi.ContainerStatsRequest{ContainerId: id})
	if err != nil || cs.Stats.Memory.WorkingSetBytes.GetValue() == 0 || cs.Stats.Cpu.UsageCoreNanoSeconds.GetValue() == 0 {
		t.Errorf("ContainerStats = %v, %v; want memory and CPU use", cs, err)
	}
	lps, err := c.rt.ListPodSandboxStats(ctx, &runtimeapi.ListPodSandboxStatsRequest{})
	if err != nil || len(lps.Stats) != 1 || lps.Stats[0].Linux.Memory.UsageBytes.GetValue() == 0 || len(lps.Stats[0].Linux.Containers) != 1 {
		t.Errorf("ListPodSandboxStats = %v, %v", lps, err)
	}
	if _, err := c.rt.UpdateContainerResources(ctx, &runtimeapi.UpdateContainerResourcesRequest{ContainerId: id, Linux: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 64 << 20, CpuShares: 512}}); err != nil {
		t.Errorf("UpdateContainerResources = %v", err)
	}
	if st := c.status(ctx, id); st.Resources.Linux.MemoryLimitInBytes != 64<<20 {
		t.Errorf("memory limit after update = %d", st.Resources.Linux.MemoryLimitInBytes)
	}

	// Stop: exit code, reason and timestamps; idempotent.
	for i := 0; i < 2; i++ {
		if _, err := c.rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 5}); err != nil {
			t.Fatalf("StopContainer #%d = %v", i+1, err)
		}
	}
	st = c.status(ctx, id)
	if st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode != 143 || st.Reason != "Error" || st.FinishedAt < st.StartedAt {
		t.Errorf("after stop: %s code %d reason %q finished %d started %d; want exited 143 (SIGTERM) Error", st.State, st.ExitCode, st.Reason, st.FinishedAt, st.StartedAt)
	}
	list, err := c.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{PodSandboxId: podID}})
	if err != nil || len(list.Containers) != 1 {
		t.Errorf("ListContainers = %v, %v", list, err)
	}
	for i := 0; i < 2; i++ {
		if _, err := c.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID}); err != nil {
			t.Fatalf("StopPodSandbox #%d = %v", i+1, err)
		}
	}
	for i := 0; i < 2; i++ {
		if _, err := c.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
			t.Fatalf("RemovePodSandbox #%d = %v", i+1, err)
		}
	}
	_, err = c.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: podID})
	wantCode(t, "PodSandboxStatus(removed)", err, codes.NotFound)
	_, err = c.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
	wantCode(t, "ContainerStatus(removed)", err, codes.NotFound)
	if out := c.mustSigil("ps", "-a"); strings.Contains(out.stdout, id[:12]) {
		t.Errorf("sigil ps -a still lists the removed container:\n%s", out.stdout)
	}
}

// Two containers of a pod share its network namespace: one serves on
// 127.0.0.1, the other reaches it there.
func TestCRIPodNetworkSharedByContainers(t *testing.T) {
	c := newCRIEnv(t)
	ctx := ctxT(t)
	c.pull(ctx)
	pod := podConfig("shared", "default")
	podID := c.runPod(ctx, pod)
	srv := c.runContainer(ctx, podID, pod, "server", "sh", "-c", "nc -ll -p 8080 -e echo hello-from-server")
	cli := c.runContainer(ctx, podID, pod, "client", "sleep", "3600")
	c.waitState(ctx, srv, runtimeapi.ContainerState_CONTAINER_RUNNING, 10*time.Second)
	var got string
	for i := 0; i < 50; i++ {
		r := c.execSync(ctx, cli, "nc", "127.0.0.1", "8080")
		if got = string(r.Stdout); strings.Contains(got, "hello-from-server") {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("client read %q from 127.0.0.1:8080, want hello-from-server", got)
}

// wsExec runs a streaming exec through the URL the CRI returned, over the
// websocket flavour of the streaming protocol (v4.channel.k8s.io), and
// returns stdout, stderr and the status the server reported.
func wsExec(t *testing.T, rawURL string) (stdout, stderr, st string) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Scheme = "ws"
	cfg, err := websocket.NewConfig(u.String(), "http://"+u.Host)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Protocol = []string{"v4.channel.k8s.io"}
	ws, err := websocket.DialConfig(cfg)
	if err != nil {
		t.Fatalf("dial %s: %v", u, err)
	}
	defer ws.Close()
	_ = ws.SetDeadline(time.Now().Add(30 * time.Second))
	var out, errb, stb bytes.Buffer
	for {
		var msg []byte
		if err := websocket.Message.Receive(ws, &msg); err != nil {
			break
		}
		if len(msg) < 1 {
			continue
		}
		switch msg[0] {
		case 1:
			out.Write(msg[1:])
		case 2:
			errb.Write(msg[1:])
		case 3:
			stb.Write(msg[1:])
		}
	}
	return out.String(), errb.String(), stb.String()
}

func TestCRIStreamingExecAndAttach(t *testing.T) {
	c := newCRIEnv(t)
	ctx := ctxT(t)
	c.pull(ctx)
	pod := podConfig("stream", "default")
	podID := c.runPod(ctx, pod)
	id := c.runContainer(ctx, podID, pod, "talker", "sh", "-c", "sleep 1; i=0; while [ $i -lt 300 ]; do echo tick $i; i=$((i+1)); sleep 0.1; done")
	r, err := c.rt.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: id, Cmd: []string{"sh", "-c", "echo to-out; echo to-err >&2; exit 5"}, Stdout: true, Stderr: true})
	if err != nil {
		t.Fatalf("Exec = %v", err)
	}
	out, errOut, st := wsExec(t, r.Url)
	if out != "to-out\n" || errOut != "to-err\n" || !strings.Contains(st, "5") {
		t.Errorf("streaming exec: stdout %q stderr %q status %q; want to-out, to-err, exit code 5", out, errOut, st)
	}
	a, err := c.rt.Attach(ctx, &runtimeapi.AttachRequest{ContainerId: id, Stdout: true, Stderr: true})
	if err != nil {
		t.Fatalf("Attach = %v", err)
	}
	done := make(chan string, 1)
	go func() {
		o, _, _ := wsExec(t, a.Url)
		done <- o
	}()
	time.Sleep(2 * time.Second)
	if _, err := c.rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 1}); err != nil {
		t.Fatal(err)
	}
	select {
	case o := <-done:
		if !strings.Contains(o, "tick ") {
			t.Errorf("attached output = %q, want the container's ticks", o)
		}
	case <-time.After(20 * time.Second):
		t.Error("attach did not end when the container stopped")
	}
}

func TestCRIOOMKilled(t *testing.T) {
	c := newCRIEnv(t)
	ctx := ctxT(t)
	c.pull(ctx)
	pod := podConfig("oom", "default")
	podID := c.runPod(ctx, pod)
	id := c.startContainer(ctx, podID, pod, &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "hog"},
		Command:  []string{"sh", "-c", "x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done"},
		Linux:    &runtimeapi.LinuxContainerConfig{Resources: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 16 << 20}},
	})
	st := c.waitState(ctx, id, runtimeapi.ContainerState_CONTAINER_EXITED, 30*time.Second)
	if st.Reason != "OOMKilled" || st.ExitCode != 137 {
		t.Errorf("exited with reason %q code %d, want OOMKilled 137", st.Reason, st.ExitCode)
	}
}

// kill -9 the server while pods run: after a restart every pod and
// container is listed in its right state, an exit that happened meanwhile
// has its code, the log has no gap, and exec works.
func TestCRIRestartSafety(t *testing.T) {
	c := newCRIEnv(t)
	ctx := ctxT(t)
	c.pull(ctx)
	pod := podConfig("survivor", "default")
	podID := c.runPod(ctx, pod)
	long := c.runContainer(ctx, podID, pod, "long", "sh", "-c", "i=0; while true; do echo n $i; i=$((i+1)); sleep 0.1; done")
	short := c.runContainer(ctx, podID, pod, "short", "sh", "-c", "sleep 2; exit 7")
	c.kill9()
	time.Sleep(3 * time.Second) // short exits while no server runs
	c.start()

	pods, err := c.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil || len(pods.Items) != 1 || pods.Items[0].Id != podID || pods.Items[0].State != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Fatalf("pods after restart = %v, %v", pods, err)
	}
	if st := c.status(ctx, long); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Errorf("long-running container is %s after the restart", st.State)
	}
	if st := c.status(ctx, short); st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode != 7 {
		t.Errorf("container that exited meanwhile: %s code %d, want exited 7", st.State, st.ExitCode)
	}
	if r := c.execSync(ctx, long, "echo", "still-here"); string(r.Stdout) != "still-here\n" {
		t.Errorf("exec after restart = %q", r.Stdout)
	}
	if n := countedLogLines(t, filepath.Join(pod.LogDirectory, "long.log")); n < 30 {
		t.Errorf("only %d log lines over the restart", n)
	}
}

// countedLogLines reads the CRI log of a container that prints "n 0",
// "n 1", ... and returns how many lines it has, failing the test at the
// first line that does not follow the one before: a gap.
func countedLogLines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	next := 0
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var n int
		if _, err := fmt.Sscanf(line[strings.Index(line, " n ")+1:], "n %d", &n); err != nil || n != next {
			t.Fatalf("log line %q after %d lines: the log has a gap", line, next)
		}
		next++
	}
	return next
}

func TestCRISignatureRejection(t *testing.T) {
	c := newCRIEnv(t)
	ctx := ctxT(t)
	reject := []byte(`{"default":[{"type":"reject"}]}`)

	// At pull: the default policy refuses.
	accept, err := os.ReadFile(c.policy)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.policy, reject, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = c.img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: c.image}})
	if msg := status.Convert(err).Message(); !strings.HasPrefix(msg, "SignatureValidationFailed: POLICY_REJECT: ") {
		t.Errorf("PullImage under a reject policy = %v, want a message starting SignatureValidationFailed: POLICY_REJECT:", err)
	}
	if n := c.reg.Count("GET", "/v2/e2e/busybox/blobs/"); n != 0 {
		t.Errorf("%d blobs were fetched for a refused image", n)
	}

	// At create: the image is on the node, but the pod's namespace has a
	// policy of its own that refuses it.
	if err := os.WriteFile(c.policy, accept, 0o644); err != nil {
		t.Fatal(err)
	}
	c.pull(ctx)
	if err := os.WriteFile(filepath.Join(c.policiesDir, "locked.json"), reject, 0o644); err != nil {
		t.Fatal(err)
	}
	pod := podConfig("guarded", "locked")
	podID := c.runPod(ctx, pod)
	_, err = c.createContainer(ctx, podID, pod, &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "app"}, Command: []string{"true"}})
	if msg := status.Convert(err).Message(); !strings.HasPrefix(msg, "SignatureValidationFailed: POLICY_REJECT: ") {
		t.Errorf("CreateContainer in namespace locked = %v, want SignatureValidationFailed: POLICY_REJECT", err)
	}
	// Another namespace still gets the default policy.
	pod2 := podConfig("open", "default")
	pod2ID := c.runPod(ctx, pod2)
	if _, err := c.createContainer(ctx, pod2ID, pod2, &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "app"}, Command: []string{"true"}}); err != nil {
		t.Errorf("CreateContainer in namespace default = %v", err)
	}
}

// A pod that shares its PID namespace has the embedded pause as PID 1,
// written under --state by the real binary, with no monitor of its own;
// kill -9 of the server leaves
// the pod, its containers and its namespace as they were, and a container
// started after the restart joins them; stopping the pod stops the pause
// (exit 0) after the containers, and removing it removes everything. An
// image volume is read-only in the container.
func TestCRISharedPIDNamespaceAndImageVolume(t *testing.T) {
	c := newCRIEnv(t)
	ctx := ctxT(t)
	c.pull(ctx)
	pod := sharedPIDPodConfig("pidshare")
	podID := c.runPod(ctx, pod)
	aCfg := sharedPIDContainerConfig("a", "sleep", "3600")
	aCfg.Mounts = []*runtimeapi.Mount{{ContainerPath: "/img", Image: &runtimeapi.ImageSpec{Image: c.image}, Readonly: true}}
	a := c.startContainer(ctx, podID, pod, aCfg)
	if r := c.execSync(ctx, a, "cat", "/proc/1/cmdline"); string(r.Stdout) != "/pause\x00" {
		t.Errorf("PID 1 of the pod = %q, want the pause", r.Stdout)
	}
	if r := c.execSync(ctx, a, "sh", "-c", "test -x /img/bin/busybox && ! touch /img/x 2>/dev/null"); r.ExitCode != 0 {
		t.Errorf("image volume at /img: want the image's files, read-only (exit %d, %s)", r.ExitCode, r.Stderr)
	}
	pauses, _ := filepath.Glob(filepath.Join(c.state, "shim", "pause-*", "pause"))
	if len(pauses) != 1 {
		t.Errorf("pause programs under --state: %v, want one", pauses)
	}
	// The pause runs unsupervised: the one monitor of this --state is a's
	// (its starter exits once the pause runs).
	monitors := func() []string {
		var out []string
		for _, p := range procs() {
			if slices.Contains(p.args, "__sigil-monitor") && slices.Contains(p.args, "--state="+c.state) {
				out = append(out, strings.Join(p.args, " "))
			}
		}
		return out
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(monitors()) != 1 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if m := monitors(); len(m) != 1 || !strings.Contains(m[0], a) {
		t.Errorf("monitors of the pod: %q, want a's only", m)
	}

	c.kill9()
	c.start()
	pods, err := c.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil || len(pods.Items) != 1 || pods.Items[0].State != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Fatalf("pods after restart = %v, %v", pods, err)
	}
	list, err := c.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil || len(list.Containers) != 1 || list.Containers[0].Id != a || list.Containers[0].State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("containers after restart = %v, %v; want a alone, running (the infra container is not listed)", list, err)
	}
	b := c.startContainer(ctx, podID, pod, sharedPIDContainerConfig("b", "sleep", "3601"))
	r := c.execSync(ctx, b, "ps", "-o", "pid,args")
	if !strings.Contains(string(r.Stdout), "1 /pause") || !strings.Contains(string(r.Stdout), "sleep 3600") {
		t.Errorf("container started after the restart sees\n%s\nwant the pause as PID 1 and a's process", r.Stdout)
	}

	if _, err := c.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatalf("StopPodSandbox = %v", err)
	}
	ps := c.mustSigil("ps", "-a")
	var infraLine string
	for _, line := range strings.Split(ps.stdout, "\n") {
		if strings.Contains(line, "k8s_POD_pidshare_default") {
			infraLine = line
		}
	}
	if !strings.Contains(infraLine, "Exited (0)") {
		t.Errorf("infra container after StopPodSandbox: %q, want Exited (0)\n%s", infraLine, ps.stdout)
	}
	// The infra container is not a CRI container: not listed, and unknown
	// to ContainerStatus, as to kubelet.
	if f := strings.Fields(infraLine); len(f) > 0 {
		if _, err := c.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: f[0]}); status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "not a CRI container") {
			t.Errorf("ContainerStatus(infra container %s) = %v, want NotFound: not a CRI container", f[0], err)
		}
	}
	if _, err := c.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatalf("RemovePodSandbox = %v", err)
	}
	if out := c.mustSigil("ps", "-a", "-q"); strings.TrimSpace(out.stdout) != "" {
		t.Errorf("containers left after RemovePodSandbox:\n%s", out.stdout)
	}
}

// A stop that comes right after the start (critest sends it within a few
// milliseconds) reaches the container's init while it may still be
// libcontainer's init, which catches every signal and then execs the
// container's process: the signal must not be lost there, or the stop
// waits out its whole grace period. Containers of `sh -c top` (top, as
// PID 1, exits on SIGTERM) must stop at once, every time.
func TestCRIStopRightAfterStart(t *testing.T) {
	c := newCRIEnv(t)
	ctx := ctxT(t)
	c.pull(ctx)
	pod := podConfig("quickstop", "default")
	podID := c.runPod(ctx, pod)
	for i := range 50 {
		id := c.runContainer(ctx, podID, pod, fmt.Sprintf("top-%d", i), "sh", "-c", "top")
		start := time.Now()
		if _, err := c.rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 30}); err != nil {
			t.Fatalf("StopContainer #%d = %v", i, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("StopContainer #%d right after StartContainer took %s: the SIGTERM was lost and the 30 s grace period ran out", i, d.Round(time.Millisecond))
		}
		if _, err := c.rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
			t.Fatalf("RemoveContainer #%d = %v", i, err)
		}
	}
}

// StopPodSandbox stops the pod's containers with no grace period: the
// stop signal, then SIGKILL at once. When the stop signal has ended the
// process already (top exits on SIGTERM), the SIGKILL finds it gone, and
// the stop succeeds all the same (it failed with "unable to signal init:
// os: process already finished" about once in a hundred).
func TestCRIStopAtOnce(t *testing.T) {
	c := newCRIEnv(t)
	ctx := ctxT(t)
	c.pull(ctx)
	for i := range 100 {
		pod := podConfig(fmt.Sprintf("stopnow-%d", i), "default")
		podID := c.runPod(ctx, pod)
		cmd := []string{"sleep", "60"}
		if i%2 == 1 {
			cmd = []string{"sh", "-c", "top"}
		}
		id := c.runContainer(ctx, podID, pod, "c", cmd...)
		if i%4 < 2 {
			c.execSync(ctx, id, "true")
		}
		if _, err := c.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID}); err != nil {
			t.Fatalf("StopPodSandbox #%d (%v) = %v", i, cmd, err)
		}
		if _, err := c.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
			t.Fatalf("RemovePodSandbox #%d = %v", i, err)
		}
	}
}

// TestCRIUpgradeUnderRunningPods replaces the binary under running pods:
// the server is killed, its binary and every file its build wrote under
// --state/shim (runtime shim, runner, pause root) are deleted, as an
// upgrade to a build with other ones does, and a server from another
// binary starts. The pods, their monitors (now running a deleted shim) and
// the pause (a deleted program) go on; the new server lists, execs, reads
// logs with no gap, adds a container to the shared PID namespace, and
// stops and removes everything.
func TestCRIUpgradeUnderRunningPods(t *testing.T) {
	c := newCRIEnv(t)
	ctx := ctxT(t)
	install := func(name string) string {
		t.Helper()
		b, err := os.ReadFile(sigilBinary)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(c.dir, name, "sigil")
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o755); err != nil {
			t.Fatal(err)
		}
		return path
	}
	c.kill9()
	c.binary = install("v1")
	c.start()
	c.pull(ctx)

	pod := podConfig("upgraded", "default")
	podID := c.runPod(ctx, pod)
	long := c.runContainer(ctx, podID, pod, "long", "sh", "-c", "i=0; while true; do echo n $i; i=$((i+1)); sleep 0.1; done")
	shared := sharedPIDPodConfig("upgraded-shared")
	sharedID := c.runPod(ctx, shared)
	first := c.startContainer(ctx, sharedID, shared, sharedPIDContainerConfig("first", "sleep", "3600"))

	c.kill9()
	if err := os.Remove(c.binary); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(c.state, "shim")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the long container logs on while no server runs
	c.binary = install("v2")
	c.start()

	for _, id := range []string{podID, sharedID} {
		st, err := c.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id})
		if err != nil || st.Status.State != runtimeapi.PodSandboxState_SANDBOX_READY {
			t.Fatalf("pod %s after the upgrade: %v, %v", id[:12], st, err)
		}
	}
	for _, id := range []string{long, first} {
		if st := c.status(ctx, id); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Errorf("container %s after the upgrade: %s", id[:12], st.State)
		}
	}
	if r := c.execSync(ctx, long, "echo", "still-here"); string(r.Stdout) != "still-here\n" {
		t.Errorf("exec after the upgrade = %q", r.Stdout)
	}
	// A container started after the upgrade in the shared PID namespace.
	second := c.startContainer(ctx, sharedID, shared, sharedPIDContainerConfig("second", "sleep", "3601"))
	if r := c.execSync(ctx, second, "ps", "-o", "pid,args"); !strings.Contains(string(r.Stdout), "1 /pause") || !strings.Contains(string(r.Stdout), "sleep 3600") {
		t.Errorf("container started after the upgrade sees\n%s\nwant the old pause as PID 1 and the first container", r.Stdout)
	}
	time.Sleep(500 * time.Millisecond)
	if n := countedLogLines(t, filepath.Join(pod.LogDirectory, "long.log")); n < 10 {
		t.Errorf("only %d log lines over the upgrade", n)
	}

	for _, id := range []string{podID, sharedID} {
		if _, err := c.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatalf("StopPodSandbox after the upgrade: %v", err)
		}
		if _, err := c.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatalf("RemovePodSandbox after the upgrade: %v", err)
		}
	}
	if out := c.mustSigil("ps", "-a", "-q"); strings.TrimSpace(out.stdout) != "" {
		t.Errorf("containers left after the pods were removed:\n%s", out.stdout)
	}
}

// With a sigstoreSigned policy the CRI verifies cosign signatures as the
// CLI does: a signed image is pulled and its containers created, an
// unsigned one is refused at pull, and a namespace whose policy trusts
// another key refuses the stored image at create.
func TestCRISigstoreSignedPolicy(t *testing.T) {
	c := newCRIEnv(t)
	ctx := ctxT(t)
	environ := append(os.Environ(), "SIGIL_PASSWORD=cri-test-password")
	keys := t.TempDir()
	for _, k := range []string{"signer", "other"} {
		if r := c.sigilEnv(environ, nil, "key", "generate", filepath.Join(keys, k)); r.code != 0 {
			t.Fatalf("key generate: %s", r)
		}
	}
	if r := c.sigilEnv(environ, nil, "sign", "--key", filepath.Join(keys, "signer.key"), c.image); r.code != 0 {
		t.Fatalf("sign: %s", r)
	}
	unsignedImg, err := testimage.Layered(testimage.OCI)
	if err != nil {
		t.Fatal(err)
	}
	unsigned := c.push("e2e/unsigned:1", unsignedImg)
	trusting := func(key string) []byte {
		return []byte(`{"default":[{"type":"reject"}],"transports":{"docker":{"` + c.reg.Host + `/e2e":[` +
			`{"type":"sigstoreSigned","keyPath":"` + filepath.Join(keys, key+".pub") + `","signedIdentity":{"type":"matchRepository"}}]}}}`)
	}
	if err := os.WriteFile(c.policy, trusting("signer"), 0o644); err != nil {
		t.Fatal(err)
	}

	if _, err := c.img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: c.image}}); err != nil {
		t.Fatalf("PullImage of the signed image = %v", err)
	}
	_, err = c.img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: unsigned}})
	if msg := status.Convert(err).Message(); !strings.HasPrefix(msg, "SignatureValidationFailed: SIGNATURE_MISSING: ") {
		t.Errorf("PullImage of an unsigned image = %v, want SignatureValidationFailed: SIGNATURE_MISSING", err)
	}

	pod := podConfig("signed", "default")
	podID := c.runPod(ctx, pod)
	if _, err := c.createContainer(ctx, podID, pod, &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "app"}, Command: []string{"true"}}); err != nil {
		t.Errorf("CreateContainer of the signed image = %v", err)
	}
	if err := os.WriteFile(filepath.Join(c.policiesDir, "rotated.json"), trusting("other"), 0o644); err != nil {
		t.Fatal(err)
	}
	rotated := podConfig("rotated", "rotated")
	rotatedID := c.runPod(ctx, rotated)
	_, err = c.createContainer(ctx, rotatedID, rotated, &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "app"}, Command: []string{"true"}})
	if msg := status.Convert(err).Message(); !strings.HasPrefix(msg, "SignatureValidationFailed: KEY_UNTRUSTED: ") {
		t.Errorf("CreateContainer where another key is trusted = %v, want SignatureValidationFailed: KEY_UNTRUSTED", err)
	}
}
