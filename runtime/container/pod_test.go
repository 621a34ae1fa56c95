package container

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sigil-project/sigil/runtime/pod"
)

// TestContainersShareAPod runs two containers in one pod, as the CRI
// does: they share the pod's network, IPC and UTS namespaces and nest
// their cgroups under the pod's, but each has its own PID namespace; the
// pod outlives them.
func TestContainersShareAPod(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	ctx := t.Context()
	p, err := pod.Create(ctx, e.state, pod.Config{ID: "sandbox-1", Hostname: "sandbox"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Remove(context.Background()) })

	show := `echo "$(readlink /proc/self/ns/net) $(readlink /proc/self/ns/ipc) $(readlink /proc/self/ns/uts) $(hostname) $$"`
	var ids []string
	for _, name := range []string{"app", "sidecar"} {
		o := e.opts(t, "sh", "-c", show+"; sleep 1000")
		o.Name = name
		o.PodID = p.ID
		id, err := e.m.Start(ctx, o)
		if err != nil {
			t.Fatalf("Start %s: %v", name, err)
		}
		ids = append(ids, id)
	}
	var outputs []string
	for _, name := range []string{"app", "sidecar"} {
		var l string
		eventually(t, 5*time.Second, func() bool { l = logsOf(t, e, name, false); return strings.Count(l, "\n") == 1 })
		outputs = append(outputs, strings.TrimSpace(l))
	}
	if outputs[0] != outputs[1] {
		t.Errorf("the containers see different namespaces or hostnames: %q vs %q", outputs[0], outputs[1])
	}
	var net, ipc, uts unix.Stat_t
	for f, st := range map[string]*unix.Stat_t{p.Namespaces.Network: &net, p.Namespaces.IPC: &ipc, p.Namespaces.UTS: &uts} {
		if err := unix.Stat(f, st); err != nil {
			t.Fatal(err)
		}
	}
	want := fmt.Sprintf("net:[%d] ipc:[%d] uts:[%d] sandbox 1", net.Ino, ipc.Ino, uts.Ino)
	if outputs[0] != want {
		t.Errorf("container sees %q, want the pod's namespaces %q", outputs[0], want)
	}
	for _, id := range ids {
		info, err := e.m.Inspect(ctx, id)
		if err != nil || info.PodID != p.ID || info.OwnsPod {
			t.Errorf("Inspect = %+v, %v; want in pod %s, not owning it", info, err, p.ID)
		}
		cg := filepath.Join("/sys/fs/cgroup/memory", p.CgroupParent, id)
		if _, err := os.Stat(cg); err != nil {
			t.Errorf("container cgroup not under the pod's: %v", err)
		}
	}
	for _, id := range ids {
		if err := e.m.Remove(ctx, id, true); err != nil {
			t.Fatal(err)
		}
	}
	// The pod is still there, with its namespaces pinned.
	if _, err := pod.Load(ctx, e.state, p.ID); err != nil {
		t.Errorf("pod after its containers were removed: %v", err)
	}
	if got := len(mountsUnder(t, p.Dir())); got != 3 {
		t.Errorf("%d namespace mounts left in the pod, want 3", got)
	}
	if err := p.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	assertNoCgroup(t, p.CgroupParent)

	o := e.opts(t, "true")
	o.PodID = "no-such-pod"
	if _, err := e.m.Run(ctx, o, IO{}); err == nil || !strings.Contains(err.Error(), "no-such-pod") {
		t.Errorf("Run in a missing pod = %v", err)
	}
}
