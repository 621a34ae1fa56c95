package container

import (
	"encoding/json"
	"io"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/sigil-project/sigil/runtime/mount"
	"github.com/sigil-project/sigil/runtime/pod"
	"github.com/sigil-project/sigil/runtime/spec"
)

// Status is where a container is in its lifecycle.
type Status string

const (
	// StatusCreated: recorded, not (yet) started; a start that failed
	// leaves the container here with Info.Error set.
	StatusCreated Status = "created"
	// StatusRunning: its init process is running.
	StatusRunning Status = "running"
	// StatusExited: its init process has exited; Info.ExitCode is set.
	StatusExited Status = "exited"
)

// ExitCodeUnknown is recorded when a container's supervisor died before
// recording its exit.
const ExitCodeUnknown = 255

// CreateOptions describes a container to run.
type CreateOptions struct {
	// ID is the container's ID; NewID() is used when empty. Choosing it
	// up front lets the caller key other state by it (the snapshot). It
	// must match [a-zA-Z0-9][a-zA-Z0-9_.-]* (at most 128 characters).
	ID string
	// Name is unique among containers; it defaults to the first 12
	// characters of the ID. It must match [a-zA-Z0-9][a-zA-Z0-9_.-]*.
	Name string
	// ImageRef and ImageDigest are recorded for ps and inspect.
	ImageRef    string
	ImageDigest digest.Digest
	// Image is the image's config.
	Image ocispec.ImageConfig
	// Rootfs is mounted on the container's rootfs directory before start
	// and unmounted when the container has exited.
	Rootfs mount.Mount
	// Run holds the per-run options (command, env, user, limits...).
	Run spec.RunOptions
	// Stdin keeps the container's stdin open (-i). In the foreground it is
	// connected to IO.Stdin; detached, it stays open and unconnected (so a
	// shell keeps running, as with docker run -di).
	Stdin bool
	// AutoRemove removes the container once it has exited (--rm).
	AutoRemove bool
	// PodID joins an existing pod (the CRI's sandbox). When empty, a pod
	// of the container's own is created, with Network, and removed with
	// the container.
	PodID string
	// Network of the container's own pod: pod.NetworkNone (default) or
	// pod.NetworkHost.
	Network pod.Network
	// OwnedDirs are directories that belong to the container (the
	// snapshot's upper and work directories): they are deleted when the
	// container is removed, after its rootfs is unmounted. They must be
	// absolute.
	OwnedDirs []string

	// Labels and Annotations are recorded with the container (the CRI's
	// container labels and annotations).
	Labels      map[string]string
	Annotations map[string]string
	// Extra is opaque data recorded with the container for its caller:
	// the CRI keeps its container metadata there, so that one record on
	// disk says everything about a container.
	Extra json.RawMessage
	// LogPath, when set, is where the output is logged (the CRI's
	// LogDirectory/LogPath), instead of the record directory. It must be
	// absolute; its directory is created.
	LogPath string
	// HostPID shares the host's PID namespace; PIDNamespace, when set, is
	// a PID namespace file to join (a pod's shared one). Neither: the
	// container has its own.
	HostPID      bool
	PIDNamespace string
	// ImageVolumes are read-only views of images (the CRI's image
	// volumes, see ImageVolume), mounted when the container starts and
	// unmounted when it exits.
	ImageVolumes []ImageVolume
	// Unsupervised, with Start, starts the container as `runc run -d`
	// does, with no monitor: see Start. For a process that needs no
	// supervision (the CRI's pause), at the cost of its output, attach,
	// and its exit code unless Stop ends it.
	Unsupervised bool
}

// ImageVolume is an image mounted read-only in a container. Mount (a
// snapshot view) is mounted on the host, under the container's state
// directory, when the container starts; then its SubPath (the whole view
// when empty) is bind-mounted read-only at Destination. A SubPath must
// stay inside the view, symlinks included, and exist.
type ImageVolume struct {
	Mount       mount.Mount `json:"mount"`
	Destination string      `json:"destination"`
	SubPath     string      `json:"sub_path,omitempty"`
}

// TerminalSize is the size of a terminal, in characters.
type TerminalSize struct {
	Width, Height uint16
}

// ExecOptions describes a process to run in a running container. Unset
// fields are taken from the container's own process.
type ExecOptions struct {
	Args []string
	// Env entries (KEY=VALUE) are added to the container's environment.
	Env []string
	// Tty allocates a pseudo-terminal.
	Tty bool
	// Stdin connects IO.Stdin to the process (-i).
	Stdin bool
	// User is "uid[:gid]" or "name[:group]", resolved in the container.
	User string
	// Cwd is the working directory (absolute).
	Cwd string
	// IgnoreSignals leaves this process's signals alone instead of
	// forwarding them to the exec'd process: a server that execs for a
	// remote client must not pass its own SIGTERM on.
	IgnoreSignals bool
	// Resize, with Tty, sets the terminal's size each time a size is
	// received (the CRI streaming server's resize events).
	Resize <-chan TerminalSize
}

// IO connects a foreground process to the caller. With a terminal
// (Run.Tty or ExecOptions.Tty) the output is all on Stdout, and when
// Stdin is a terminal it is put in raw mode and its size followed.
type IO struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// ExitStatus is how a container's init process ended.
type ExitStatus struct {
	// Code is the exit code, 128+n for a process killed by signal n.
	Code int
	// OOMKilled says that the kernel's OOM killer killed a process of
	// the container (because of its memory limit).
	OOMKilled bool
}

// Info is what is known about a container: the record kept on disk.
type Info struct {
	ID          string        `json:"id"`
	Name        string        `json:"name"`
	ImageRef    string        `json:"image_ref"`
	ImageDigest digest.Digest `json:"image_digest,omitempty"`
	// PodID is the pod the container is in; OwnsPod says the pod was
	// created for it (and goes with it).
	PodID   string `json:"pod_id"`
	OwnsPod bool   `json:"owns_pod"`
	Status  Status `json:"status"`
	// Pid is the host PID of the container's init while it runs.
	Pid       int  `json:"pid,omitempty"`
	ExitCode  int  `json:"exit_code"`
	OOMKilled bool `json:"oom_killed"`
	// Error says why the container failed to start, or why its exit is
	// unknown.
	Error      string    `json:"error,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	// Command is the container's process arguments, as started.
	Command []string `json:"command,omitempty"`
	LogPath string   `json:"log_path"`
	// Options are the run options the container was created with.
	Options    spec.RunOptions `json:"options"`
	Stdin      bool            `json:"stdin,omitempty"`
	AutoRemove bool            `json:"auto_remove,omitempty"`
	// Detached is true for a container supervised by a monitor process,
	// or, with Unsupervised, started detached and left on its own.
	Detached bool `json:"detached,omitempty"`
	// Unsupervised: started with no monitor (CreateOptions.Unsupervised).
	// Its liveness is that of the process Pid with start time
	// PidStartTime. Its exit code is known when Stop ended it (heard from
	// the kernel's process events), else it is ExitCodeUnknown.
	Unsupervised bool   `json:"unsupervised,omitempty"`
	PidStartTime uint64 `json:"pid_start_time,omitempty"`
	// Labels, Annotations and Extra are the caller's, as created.
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Extra       json.RawMessage   `json:"extra,omitempty"`
}

// Running reports whether the container's init is running.
func (i Info) Running() bool { return i.Status == StatusRunning }
