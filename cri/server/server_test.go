package server

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	libseccomp "github.com/opencontainers/runc/libcontainer/seccomp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/sigil-project/sigil/runtime/container"
	"github.com/sigil-project/sigil/runtime/pull"
	"github.com/sigil-project/sigil/runtime/remote"
	"github.com/sigil-project/sigil/signing"
	"github.com/sigil-project/sigil/signing/policy"
	"github.com/sigil-project/sigil/tests/testimage"
)

// The tests drive a real Server in-process, as root, over the real
// runtime packages: content store, snapshots, pods, containers under
// monitors (this test binary, re-executed), images pulled from a registry
// on loopback. Pods use the host network, so no CNI plugin is needed.

// TestMain lets the test binary be re-executed as libcontainer's init and
// as a container's monitor, as the sigil binary is (cmd/sigil/init.go).
func TestMain(m *testing.M) {
	container.Reexec()
	flag.Parse()
	code := m.Run()
	if pauseBuild.dir != "" {
		os.RemoveAll(pauseBuild.dir)
	}
	os.Exit(code)
}

const acceptAll = `{"default":[{"type":"insecureAcceptAnything"}]}`
const rejectAll = `{"default":[{"type":"reject"}]}`

// pauseBuild is cmd/sigil/pause/pause.c, compiled static once per test
// binary, as `make build` compiles it.
var pauseBuild struct {
	once sync.Once
	dir  string
	bin  []byte
	err  error
}

func pauseProgram(t *testing.T) []byte {
	t.Helper()
	pauseBuild.once.Do(func() {
		pauseBuild.dir, pauseBuild.err = os.MkdirTemp("", "sigil-pause-")
		if pauseBuild.err != nil {
			return
		}
		out := filepath.Join(pauseBuild.dir, "pause")
		cmd := exec.Command("cc", "-static", "-Os", "-s", "-o", out, "../../cmd/sigil/pause/pause.c")
		if b, err := cmd.CombinedOutput(); err != nil {
			pauseBuild.err = fmt.Errorf("compile cmd/sigil/pause/pause.c (needs cc and a static libc: apt-get install build-essential libc6-dev): %v\n%s", err, b)
			return
		}
		pauseBuild.bin, pauseBuild.err = os.ReadFile(out)
	})
	if pauseBuild.err != nil {
		t.Fatal(pauseBuild.err)
	}
	return pauseBuild.bin
}

func requireRoot(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs real containers: skipped with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs real containers (namespaces, cgroups, overlayfs)")
	}
	if !libseccomp.Enabled {
		t.Skip("containers always get a seccomp profile: run the tests with -tags seccomp (and libseccomp-dev)")
	}
	if _, err := os.Stat(testimage.BusyboxPath); err != nil {
		t.Skipf("needs Debian's busybox-static (%s) for its test images", testimage.BusyboxPath)
	}
}

// testEnv is a Server over fresh --root and --state directories, with a
// registry on loopback and a trust policy per Kubernetes namespace.
type testEnv struct {
	t   *testing.T
	dir string
	cfg Config
	s   *Server
	reg *testimage.Registry

	mu       sync.Mutex
	policies map[string]string // namespace -> policy JSON; "" is the default
}

type envOption func(*Config)

func withoutPause() envOption { return func(c *Config) { c.PauseBinary = nil } }

func newTestEnv(t *testing.T, opts ...envOption) *testEnv {
	t.Helper()
	requireRoot(t)
	dir := t.TempDir()
	e := &testEnv{t: t, dir: dir, reg: testimage.NewRegistry(), policies: map[string]string{"": acceptAll}}
	t.Cleanup(e.reg.Close)
	e.cfg = Config{
		Root:        filepath.Join(dir, "root"),
		State:       filepath.Join(dir, "state"),
		Verifier:    e.verifier,
		Remote:      func(kc authn.Keychain) *remote.Client { return remote.NewClient(remote.WithKeychain(kc)) },
		CNIConfDir:  filepath.Join(dir, "net.d"),
		PauseBinary: pauseProgram(t),
		Logger:      slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
	for _, o := range opts {
		o(&e.cfg)
	}
	e.s = e.start()
	t.Cleanup(e.cleanup)
	return e
}

// start starts a Server over the env's directories (again, after a
// restart).
func (e *testEnv) start() *Server {
	e.t.Helper()
	s, err := New(context.Background(), e.cfg)
	if err != nil {
		e.t.Fatalf("New = %v", err)
	}
	return s
}

// restart closes the server and starts another over the same state, as a
// `sigil cri serve` killed and started again: only what is on disk (and
// the monitors) remains.
func (e *testEnv) restart() {
	e.t.Helper()
	_ = e.s.Close()
	e.s = e.start()
}

// cleanup removes every pod and container, so that nothing stays mounted
// or running when TempDir is removed.
func (e *testEnv) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if list, err := e.s.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{}); err == nil {
		for _, p := range list.Items {
			if _, err := e.s.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
				e.t.Errorf("cleanup: remove pod sandbox %s: %v", p.Id, err)
			}
		}
	}
	if list, err := e.s.containers.List(ctx); err == nil {
		for _, c := range list {
			if err := e.s.containers.Remove(ctx, c.ID, true); err != nil {
				e.t.Errorf("cleanup: remove container %s: %v", c.ID, err)
			}
		}
	}
	_ = e.s.Close()
}

func (e *testEnv) setPolicy(namespace, policyJSON string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.policies[namespace] = policyJSON
}

// verifier is the Config's VerifierFunc: the namespace's policy, else the
// default one.
func (e *testEnv) verifier(_ context.Context, namespace string, _ authn.Keychain) (pull.Verifier, error) {
	e.mu.Lock()
	text, ok := e.policies[namespace]
	if !ok {
		text = e.policies[""]
	}
	e.mu.Unlock()
	p, err := policy.Parse([]byte(text))
	if err != nil {
		return nil, err
	}
	return signing.NewImageVerifier(p)
}

// push pushes img to the env's registry as repo:tag and returns its
// reference.
func (e *testEnv) push(ctx context.Context, repoTag string, img v1.Image) string {
	e.t.Helper()
	ref := e.reg.Host + "/" + repoTag
	if _, err := testimage.Push(ctx, ref, img); err != nil {
		e.t.Fatalf("push %s: %v", ref, err)
	}
	return ref
}

// busybox pushes and pulls the one-layer busybox image.
func (e *testEnv) busybox(ctx context.Context) string {
	e.t.Helper()
	img, err := testimage.Busybox(testimage.OCI)
	if err != nil {
		e.t.Fatal(err)
	}
	ref := e.push(ctx, "unit/busybox:1", img)
	e.pull(ctx, ref)
	return ref
}

func (e *testEnv) pull(ctx context.Context, ref string) {
	e.t.Helper()
	if _, err := e.s.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
		e.t.Fatalf("PullImage(%s) = %v", ref, err)
	}
}

// podConfig is a pod on the host network (no CNI needed); sharedPID
// makes its containers share a PID namespace.
func (e *testEnv) podConfig(name, namespace string, sharedPID bool) *runtimeapi.PodSandboxConfig {
	ns := &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE, Pid: runtimeapi.NamespaceMode_CONTAINER}
	if sharedPID {
		ns.Pid = runtimeapi.NamespaceMode_POD
	}
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: namespace, Uid: name + "-uid"},
		LogDirectory: filepath.Join(e.dir, "logs", name),
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: ns,
		}},
	}
}

func (e *testEnv) runPod(ctx context.Context, cfg *runtimeapi.PodSandboxConfig) string {
	e.t.Helper()
	r, err := e.s.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		e.t.Fatalf("RunPodSandbox(%s) = %v", cfg.GetMetadata().GetName(), err)
	}
	return r.PodSandboxId
}

// containerConfig is a busybox container running cmd, in the pod's PID
// namespace mode.
func containerConfig(pod *runtimeapi.PodSandboxConfig, image, name string, cmd ...string) *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: image},
		Command:  cmd,
		LogPath:  name + ".log",
		Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
			NamespaceOptions: pod.GetLinux().GetSecurityContext().GetNamespaceOptions(),
		}},
	}
}

// create and start a container; errors are returned as the gRPC status
// kubelet would see.
func (e *testEnv) createAndStart(ctx context.Context, podID string, pod *runtimeapi.PodSandboxConfig, cfg *runtimeapi.ContainerConfig) (string, error) {
	r, err := e.s.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: cfg, SandboxConfig: pod})
	if err != nil {
		return "", toGRPC(err)
	}
	if _, err := e.s.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: r.ContainerId}); err != nil {
		return r.ContainerId, toGRPC(err)
	}
	return r.ContainerId, nil
}

func (e *testEnv) mustStart(ctx context.Context, podID string, pod *runtimeapi.PodSandboxConfig, cfg *runtimeapi.ContainerConfig) string {
	e.t.Helper()
	id, err := e.createAndStart(ctx, podID, pod, cfg)
	if err != nil {
		e.t.Fatalf("create and start container %s = %v", cfg.GetMetadata().GetName(), err)
	}
	return id
}

// exec runs cmd in container id and returns its output and exit code.
func (e *testEnv) exec(ctx context.Context, id string, cmd ...string) (stdout, stderr string, code int32) {
	e.t.Helper()
	r, err := e.s.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: cmd, Timeout: 30})
	if err != nil {
		e.t.Fatalf("ExecSync(%v) = %v", cmd, err)
	}
	return string(r.Stdout), string(r.Stderr), r.ExitCode
}

func (e *testEnv) sandboxState(ctx context.Context, id string) runtimeapi.PodSandboxState {
	e.t.Helper()
	r, err := e.s.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id})
	if err != nil {
		e.t.Fatalf("PodSandboxStatus(%s) = %v", id, err)
	}
	return r.Status.State
}

// codeOf is the gRPC code kubelet would get for err.
func codeOf(err error) codes.Code { return status.Code(toGRPC(err)) }

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond every 50ms for at most d.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// mountedUnder lists the mount points under dir (from this process's
// mountinfo).
func mountedUnder(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			out = append(out, f[4])
		}
	}
	return out
}
