// Package container runs containers on libcontainer, daemonless: every
// container has a record on disk that any later sigil process (or the CRI
// server after a restart) reads, and a running container is supervised
// either by the `sigil run` process in the foreground or by a small
// monitor process (the sigil binary re-executed) when detached.
//
// Each container joins a pod (runtime/pod): its network, IPC and UTS
// namespaces are the pod's pinned ones and its cgroup nests under the pod's
// ("/sigil/<pod>/<container>"). A container created without a PodID gets a
// pod of its own, with the container's ID, removed with it.
//
// Lifecycle of a record:
//
//	 Run / Start
//	     │ record written, name reserved
//	     ▼
//	┌─────────┐  start fails (Error set)
//	│ created │──────────────────────────┐
//	└────┬────┘                          │
//	     │ pod, rootfs mount, libcontainer│
//	     ▼ create + start                 │
//	┌─────────┐                          │
//	│ running │  Exec, Stop, Logs -f      │
//	└────┬────┘                          │
//	     │ init exits (or is killed):     │
//	     │ exit code, OOMKilled, rootfs   │
//	     ▼ unmounted, pod removed         │
//	┌─────────┐                          │
//	│ exited  │◀─────────────────────────┘ (status stays created)
//	└────┬────┘
//	     │ Remove (or --rm)
//	     ▼
//	  (gone)
//
// A record whose supervising process (foreground sigil run or monitor)
// died without recording the exit is reported as exited with code 255 and
// an Error saying so; the container itself died with its supervisor, as
// its init has a parent-death signal of SIGKILL. An unsupervised
// container (CreateOptions.Unsupervised: started as `runc run -d` starts
// one, for the CRI's pause) has no supervisor: its record holds its
// init's PID and start time, and it is reported exited, code 255, once
// that process is gone.
//
// On disk, with --root (/var/lib/sigil) and --state (/run/sigil):
//
//	<root>/containers/
//	├── .lock                      flock(2): names are unique, records change under it
//	└── <id>/
//	    ├── container.json         the record (Info plus what is needed to start it)
//	    └── container.log          stdout/stderr in the CRI log format (foreground and detached)
//	<state>/
//	├── containers/<id>/
//	│   ├── config.json            the generated OCI runtime spec (base of exec)
//	│   ├── monitor.log            the monitor's own log (detached containers)
//	│   ├── rootfs/                mount point of the image's root filesystem
//	│   └── image-volumes/<n>/     mount points of the image volumes' views
//	├── libcontainer/<id>/         libcontainer state (state.json, exec fifo)
//	└── pods/<pod-id>/             see runtime/pod
//
// Log lines are "<RFC 3339 time> <stdout|stderr> <F|P> <text>", F for a
// full line and P for part of one (a long line split in 16 KiB pieces, or
// output that ended without a newline), so the CRI can serve them as they
// are.
//
// A binary that uses a Manager must let itself be re-executed as
// libcontainer's init and as the monitor; package main does, first thing,
// in an init function (cmd/sigil/init.go):
//
//	func init() { container.Reexec() }
//
// Reexec keeps the main thread to the main goroutine (goroutines that
// change their thread's namespaces rely on the runtime discarding that
// thread, which it cannot do with the main thread), runs libcontainer's
// init (with a parent-death signal, unless the container is
// unsupervised) and the monitor, and returns for any other invocation.
// and is built with cgo and the "seccomp" build tag (libseccomp); this
// package imports libcontainer/nsenter itself. A test binary does the same
// in TestMain (see helpers_test.go).
//
// Example:
//
//	m, err := container.New("/var/lib/sigil", "/run/sigil", container.WithLogger(logger))
//	status, err := m.Run(ctx, container.CreateOptions{
//		Name:     "web",
//		ImageRef: "docker.io/library/busybox:latest",
//		Image:    imageConfig,
//		Rootfs:   snapshotMount,
//		Run:      spec.RunOptions{Args: []string{"echo", "hi"}},
//	}, container.IO{Stdout: os.Stdout, Stderr: os.Stderr})
//	// status.Code is the container's exit code (128+n when killed by signal n).
package container
