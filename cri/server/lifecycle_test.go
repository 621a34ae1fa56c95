package server

import (
	"archive/tar"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/sigil-project/sigil/runtime/container"
	"github.com/sigil-project/sigil/tests/testimage"
)

// Stop and Remove are idempotent, as the CRI asks, on IDs never seen and
// on IDs already removed; the status calls, start, exec and create answer
// NotFound for them, as kubelet and critest expect.
func TestIdempotentOnUnknownAndRemoved(t *testing.T) {
	e := newTestEnv(t)
	ctx := testCtx(t)
	image := e.busybox(ctx)

	// A pod (sharing its PID namespace, so with an infra container) and a
	// running container, removed: their IDs are "already removed".
	podCfg := e.podConfig("gone", "default", true)
	removedPod := e.runPod(ctx, podCfg)
	removedCtr := e.mustStart(ctx, removedPod, podCfg, containerConfig(podCfg, image, "gone", "sleep", "3600"))
	for i := 0; i < 2; i++ {
		if _, err := e.s.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: removedPod}); err != nil {
			t.Fatalf("StopPodSandbox #%d = %v", i+1, err)
		}
	}
	for i := 0; i < 2; i++ {
		if _, err := e.s.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: removedPod}); err != nil {
			t.Fatalf("RemovePodSandbox #%d = %v", i+1, err)
		}
	}

	for _, ids := range []struct{ name, pod, ctr string }{
		{"unknown", container.NewID(), container.NewID()},
		{"removed", removedPod, removedCtr},
	} {
		cases := []struct {
			call string
			do   func() error
			want codes.Code
		}{
			{"StopContainer", func() error {
				_, err := e.s.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: ids.ctr, Timeout: 1})
				return err
			}, codes.OK},
			{"RemoveContainer", func() error {
				_, err := e.s.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: ids.ctr})
				return err
			}, codes.OK},
			{"StopPodSandbox", func() error {
				_, err := e.s.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: ids.pod})
				return err
			}, codes.OK},
			{"RemovePodSandbox", func() error {
				_, err := e.s.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: ids.pod})
				return err
			}, codes.OK},
			{"ContainerStatus", func() error {
				_, err := e.s.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: ids.ctr})
				return err
			}, codes.NotFound},
			{"PodSandboxStatus", func() error {
				_, err := e.s.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: ids.pod})
				return err
			}, codes.NotFound},
			{"StartContainer", func() error {
				_, err := e.s.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: ids.ctr})
				return err
			}, codes.NotFound},
			{"ExecSync", func() error {
				_, err := e.s.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: ids.ctr, Cmd: []string{"true"}})
				return err
			}, codes.NotFound},
			{"CreateContainer", func() error {
				_, err := e.s.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: ids.pod, Config: containerConfig(podCfg, image, "late", "true"), SandboxConfig: podCfg})
				return err
			}, codes.NotFound},
		}
		for _, c := range cases {
			t.Run(ids.name+"/"+c.call, func(t *testing.T) {
				for i := 0; i < 2; i++ {
					if err := c.do(); codeOf(err) != c.want {
						t.Errorf("%s(%s ID) #%d = %v, want %s", c.call, ids.name, i+1, err, c.want)
					}
				}
			})
		}
	}
	// Nothing is left of the removed pod: no container record (the
	// infra's included), no mount.
	if list, err := e.s.containers.List(ctx); err != nil || len(list) != 0 {
		t.Errorf("containers left after RemovePodSandbox: %v, %v", list, err)
	}
	if m := mountedUnder(t, e.cfg.State); len(m) > 0 {
		t.Errorf("still mounted after RemovePodSandbox: %v", m)
	}
}

// A pull the trust policy refuses is a PermissionDenied whose message
// starts with SignatureValidationFailed and the reason code, with the
// policy of the pod's namespace; nothing but the manifest is fetched.
func TestPullSignatureValidationFailed(t *testing.T) {
	e := newTestEnv(t)
	ctx := testCtx(t)
	img, err := testimage.Busybox(testimage.OCI)
	if err != nil {
		t.Fatal(err)
	}
	ref := e.push(ctx, "unit/judged:1", img)
	e.setPolicy("locked", rejectAll)
	for _, c := range []struct {
		namespace  string
		wantCode   codes.Code
		wantPrefix string
	}{
		{"locked", codes.PermissionDenied, "SignatureValidationFailed: POLICY_REJECT: "},
		{"open", codes.OK, ""},
	} {
		t.Run(c.namespace, func(t *testing.T) {
			e.reg.Reset()
			_, err := e.s.PullImage(ctx, &runtimeapi.PullImageRequest{
				Image:         &runtimeapi.ImageSpec{Image: ref},
				SandboxConfig: &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: "p", Namespace: c.namespace}},
			})
			st := status.Convert(toGRPC(err))
			if st.Code() != c.wantCode || !strings.HasPrefix(st.Message(), c.wantPrefix) {
				t.Fatalf("PullImage in namespace %s = %v, want code %s and a message starting %q", c.namespace, err, c.wantCode, c.wantPrefix)
			}
			if c.wantCode != codes.OK {
				if n := e.reg.Count("GET", "/v2/unit/judged/blobs/"); n != 0 {
					t.Errorf("%d blobs were fetched for a refused image", n)
				}
				if !strings.Contains(st.Message(), "unit/judged") {
					t.Errorf("refusal %q does not name the image", st.Message())
				}
			}
		})
	}
}

// An image volume (KEP-4639) is the image's files, read-only, at the
// container path (or its sub path there); the image is judged by the
// trust policy as a container's image is; the view goes with the
// container.
func TestImageVolume(t *testing.T) {
	e := newTestEnv(t)
	ctx := testCtx(t)
	image := e.busybox(ctx) // one layer
	layered, err := testimage.Layered(testimage.OCI)
	if err != nil {
		t.Fatal(err)
	}
	layeredRef := e.push(ctx, "unit/layered:1", layered) // four layers, whiteouts
	e.pull(ctx, layeredRef)
	l, err := testimage.Layer(
		testimage.File{Name: "data/", Typeflag: tar.TypeDir},
		testimage.File{Name: "data/hello", Body: []byte("hello from a volume\n")},
		testimage.File{Name: "escape", Typeflag: tar.TypeSymlink, Linkname: "/"},
		testimage.File{Name: "setuid", Mode: 0o4755, Body: []byte("#!/bin/sh\n")},
	)
	if err != nil {
		t.Fatal(err)
	}
	dataImg, err := testimage.Build(testimage.OCI, testimage.Config{}, "amd64", l)
	if err != nil {
		t.Fatal(err)
	}
	dataRef := e.push(ctx, "unit/data:1", dataImg)
	e.pull(ctx, dataRef)

	podCfg := e.podConfig("volumes", "default", false)
	podID := e.runPod(ctx, podCfg)
	cfg := containerConfig(podCfg, image, "reader", "sleep", "3600")
	cfg.Mounts = []*runtimeapi.Mount{
		{ContainerPath: "/vol", Image: &runtimeapi.ImageSpec{Image: layeredRef}, Readonly: true},
		{ContainerPath: "/one", Image: &runtimeapi.ImageSpec{Image: dataRef}, Readonly: true},
		{ContainerPath: "/sub", Image: &runtimeapi.ImageSpec{Image: dataRef}, ImageSubPath: "data", Readonly: true},
	}
	id := e.mustStart(ctx, podID, podCfg, cfg)
	// ContainerStatus reports each volume's image (KEP-5365 image_ref).
	st, err := e.s.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range st.GetStatus().GetMounts() {
		if m.GetImage() != nil && !strings.HasPrefix(m.GetImage().GetImageRef(), "sha256:") {
			t.Errorf("ContainerStatus mount %s: image_ref %q, want the image's ID", m.GetContainerPath(), m.GetImage().GetImageRef())
		}
	}

	checks := []struct {
		cmd      string
		wantOut  string
		wantFail bool
	}{
		{"cat /vol/data/keep /vol/etc/motd", "keep\nlayer3\n", false},
		{"test -e /vol/data/gone", "", true}, // whited out in a later layer
		{"ls /vol/opq", "new\n", false},      // opaque directory
		{"cat /one/data/hello", "hello from a volume\n", false},
		{"cat /sub/hello", "hello from a volume\n", false},
		{"touch /vol/new", "", true},
		{"touch /one/data/new", "", true},
		{"rm /sub/hello", "", true},
		{"grep -E ' /(vol|one|sub) ' /proc/self/mountinfo | grep -c ' ro,'", "3\n", false}, // all three read-only
		{"grep ' /one ' /proc/self/mountinfo | grep -c nosuid", "1\n", false},
	}
	for _, c := range checks {
		out, errOut, code := e.exec(ctx, id, "sh", "-c", c.cmd)
		if (code != 0) != c.wantFail || (c.wantOut != "" && out != c.wantOut) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want failure %v, stdout %q", c.cmd, code, out, errOut, c.wantFail, c.wantOut)
		}
	}
	// Nothing was written into the image's snapshots.
	if _, _, code := e.exec(ctx, id, "sh", "-c", "test -e /vol/new || test -e /one/data/new"); code == 0 {
		t.Error("a write to an image volume went through")
	}

	// Views keep the images' layers and go with the container.
	views, err := e.s.stores.Snapshots.Active(ctx)
	if err != nil {
		t.Fatal(err)
	}
	nViews := 0
	for key := range views {
		if strings.HasPrefix(key, id+"-iv") {
			nViews++
		}
	}
	if nViews != 3 {
		t.Errorf("view snapshots of the container = %d, want 3 (%v)", nViews, views)
	}
	if _, err := e.s.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	views, _ = e.s.stores.Snapshots.Active(ctx)
	for key := range views {
		if strings.HasPrefix(key, id) {
			t.Errorf("snapshot %s is left after the container was removed", key)
		}
	}
	for _, m := range mountedUnder(t, e.cfg.State) {
		if strings.Contains(m, id) {
			t.Errorf("%s is still mounted after the container was removed", m)
		}
	}

	// Refused cases, each before or at start.
	e.setPolicy("guarded", `{"default":[{"type":"reject"}],"transports":{"docker":{"`+strings.TrimSuffix(image, ":1")+`":[{"type":"insecureAcceptAnything"}]}}}`)
	guardedPod := e.podConfig("guarded", "guarded", false)
	guardedID := e.runPod(ctx, guardedPod)
	for _, c := range []struct {
		name       string
		podID      string
		pod        *runtimeapi.PodSandboxConfig
		mount      *runtimeapi.Mount
		want       codes.Code
		wantPrefix string
		atCreate   bool // refused by CreateContainer itself, as the KEP asks
	}{
		{"policy refuses the volume's image", guardedID, guardedPod, &runtimeapi.Mount{ContainerPath: "/vol", Image: &runtimeapi.ImageSpec{Image: dataRef}, Readonly: true}, codes.PermissionDenied, "SignatureValidationFailed: POLICY_REJECT: ", true},
		{"image not on the node", podID, podCfg, &runtimeapi.Mount{ContainerPath: "/vol", Image: &runtimeapi.ImageSpec{Image: e.reg.Host + "/unit/absent:1"}, Readonly: true}, codes.NotFound, "", true},
		{"sub path absent", podID, podCfg, &runtimeapi.Mount{ContainerPath: "/vol", Image: &runtimeapi.ImageSpec{Image: dataRef}, ImageSubPath: "nothing/here", Readonly: true}, codes.NotFound, "", true},
		{"sub path escapes by a symlink", podID, podCfg, &runtimeapi.Mount{ContainerPath: "/vol", Image: &runtimeapi.ImageSpec{Image: dataRef}, ImageSubPath: "escape/etc", Readonly: true}, codes.InvalidArgument, "", true},
		{"absolute sub path", podID, podCfg, &runtimeapi.Mount{ContainerPath: "/vol", Image: &runtimeapi.ImageSpec{Image: dataRef}, ImageSubPath: "/etc", Readonly: true}, codes.InvalidArgument, "", true},
		{"relative container path", podID, podCfg, &runtimeapi.Mount{ContainerPath: "vol", Image: &runtimeapi.ImageSpec{Image: dataRef}, Readonly: true}, codes.InvalidArgument, "", true},
		{"writable image volume", podID, podCfg, &runtimeapi.Mount{ContainerPath: "/vol", Image: &runtimeapi.ImageSpec{Image: dataRef}, Readonly: false}, codes.InvalidArgument, "", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := containerConfig(c.pod, image, strings.ReplaceAll(c.name, " ", "-"), "sleep", "3600")
			cfg.Mounts = []*runtimeapi.Mount{c.mount}
			id, err := e.createAndStart(ctx, c.podID, c.pod, cfg)
			if c.atCreate && id != "" {
				t.Errorf("CreateContainer accepted the mount; it must refuse it")
			}
			st := status.Convert(err)
			if st.Code() != c.want || !strings.HasPrefix(st.Message(), c.wantPrefix) {
				t.Errorf("create and start = %v, want code %s, message starting %q", err, c.want, c.wantPrefix)
			}
			if id != "" {
				if _, err := e.s.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	// A refused creation leaves no view behind.
	views, _ = e.s.stores.Snapshots.Active(ctx)
	for key := range views {
		if strings.Contains(key, "-iv") {
			t.Errorf("view snapshot %s is left over", key)
		}
	}
}
