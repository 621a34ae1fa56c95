// Package server implements the CRI (k8s.io/cri-api v1 RuntimeService and
// ImageService) over Sigil's runtime: kubelet or crictl talk to it over a
// unix socket, and it works on the same stores as the sigil CLI.
//
// A pod sandbox is a runtime/pod pod (pinned network, IPC and UTS
// namespaces and a cgroup parent) attached to a CNI network, plus a record
// of the CRI's view of it (metadata, config, state, IP) under
// <state>/cri/sandboxes/<id>/. A sandbox whose containers share a PID
// namespace also has an infra container, whose PID 1 is the pause program
// (see sandbox_infra.go). An image volume is a read-only view snapshot of
// the image, mounted by the container manager (container.ImageVolume). A container is a runtime/container
// container joining that pod, detached under a monitor; the CRI's own
// metadata rides in the container record (Info.Extra), so `sigil ps`
// lists it and a restarted server finds everything on disk:
//
//	<state>/cri/
//	└── sandboxes/<id>/
//	    ├── sandbox.json     the sandbox record (state, IPs, config)
//	    ├── resolv.conf      bind-mounted into every container of the pod
//	    ├── hostname
//	    └── hosts
//	<state>/cri/cni/         libcni's cache (what each attachment needs to be torn down)
//
// The server keeps nothing in memory that matters: kill it at any time,
// start it again, and every pod and container is where it was.
//
// Every RPC lives in a file of its own, <object>_<verb>.go, as in CRI-O's
// and containerd's CRI. Handlers return errors wrapping errdefs classes;
// the interceptor (instrument.go) logs each call once and translates its
// error to a gRPC status once.
//
// Usage (cmd/sigil/cri.go does this):
//
//	s, err := server.New(ctx, server.Config{Root: "/var/lib/sigil", State: "/run/sigil", ...})
//	g := grpc.NewServer(grpc.UnaryInterceptor(s.UnaryInterceptor), grpc.StreamInterceptor(s.StreamInterceptor))
//	s.Register(g)
//	g.Serve(listener)
package server
