package container

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"
)

// RunCommand is the hidden first argument with which a sigil binary runs
// a foreground container that another sigil process prepared (see
// RunRequest): `sigil run` execs into the small runtime binary embedded in
// sigil, so that the container's init, which libcontainer always re-execs
// from /proc/self/exe, starts from a small program rather than from the
// whole of sigil.
const RunCommand = "__sigil-run"

// Reexec hands the invocations of a sigil binary by itself to their entry
// points. Package main calls it first thing, in an init function:
//
//   - "init": libcontainer's container init (it sets the container up
//     from inside, then execs the container's process); never returns;
//   - MonitorCommand: the monitor of a detached container;
//   - RunCommand: a foreground container prepared by another process.
//
// For any other invocation it returns, with the main thread locked.
func Reexec() {
	// Keep the main thread to the main goroutine. Goroutines that change
	// their thread's namespaces (pod pinning, libcontainer's mount-source
	// thread) rely on the Go runtime discarding that thread when they end;
	// the main thread cannot be discarded, and if one of them ran there it
	// would leave the process's /proc/self in a container's namespaces.
	runtime.LockOSThread()
	if len(os.Args) < 2 {
		return
	}
	switch os.Args[1] {
	case "init":
		// The container's process dies with whoever started it (sigil run
		// or the monitor). libcontainer's ParentDeathSignal only reaches
		// its first, short-lived stage; set it here, in the final stage,
		// and libcontainer keeps it across the change of user. Not for an
		// unsupervised container, whose starter exits at once (its
		// argv[0], which libcontainer passes on, says so).
		if os.Args[0] != unsupervisedInitArgv0 {
			_ = unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0)
		}
		libcontainer.Init() // never returns
	case MonitorCommand:
		os.Exit(RunMonitor(os.Args[2:]))
	case RunCommand:
		os.Exit(runRequested(os.Args[2:]))
	}
}

// RunRequest is a foreground container prepared by one process (the CLI:
// image fetched and judged, snapshot prepared) for another to run with the
// same standard input, output and error.
type RunRequest struct {
	Options CreateOptions `json:"options"`
	// Stdin connects the process's standard input (-i).
	Stdin bool `json:"stdin,omitempty"`
	// MemoryLimit is the --memory text, quoted back when the container
	// is killed for lack of memory.
	MemoryLimit string `json:"memory_limit,omitempty"`
}

// WriteRunRequest stores req where runRequested reads it: a file in the
// state directory that only root can read.
func (m *Manager) WriteRunRequest(req RunRequest) (string, error) {
	dir := m.state + "/run-requests"
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	b, err := json.Marshal(req)
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, "run-*.json")
	if err != nil {
		return "", err
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("write run request: %w (is the disk full?)", err)
	}
	return f.Name(), nil
}

// runRequested runs a RunRequest in the foreground and returns the exit
// code: the container's, or 125 when sigil failed (as the CLI does).
func runRequested(args []string) int {
	fs := flag.NewFlagSet(RunCommand, flag.ContinueOnError)
	root := fs.String("root", "", "")
	state := fs.String("state", "", "")
	levelName := fs.String("log-level", "WARN", "")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 || *root == "" || *state == "" {
		fmt.Fprintf(os.Stderr, "%s is sigil's internal runner; it is started by 'sigil run'\n", RunCommand)
		return 2
	}
	path := fs.Arg(0)
	b, err := os.ReadFile(path)
	os.Remove(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "sigil: read run request: %v\n", err)
		return 125
	}
	var req RunRequest
	if err := json.Unmarshal(b, &req); err != nil {
		fmt.Fprintf(os.Stderr, "sigil: run request %s: %v\n", path, err)
		return 125
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(*levelName))
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	m, err := New(*root, *state, WithLogger(logger), WithExecutable("/proc/self/exe"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "sigil: %v\n", err)
		return 125
	}
	stdio := IO{Stdout: os.Stdout, Stderr: os.Stderr}
	if req.Stdin {
		stdio.Stdin = os.Stdin
	}
	return m.RunInForeground(context.Background(), req, stdio)
}

// RunInForeground runs req's container with stdio, as `sigil run` does
// without -d, and returns the exit code: the container's, or 125 when
// sigil failed, after saying why on stdio.Stderr (and that the container
// ran out of memory, when it did). Until the container has a record, the
// directories it was to own are removed on failure; after, they go with
// it.
func (m *Manager) RunInForeground(ctx context.Context, req RunRequest, stdio IO) int {
	status, err := m.Run(ctx, req.Options, stdio)
	if err != nil {
		if _, ierr := m.Inspect(ctx, req.Options.ID); errors.Is(ierr, errdefs.ErrNotFound) {
			for _, d := range req.Options.OwnedDirs {
				os.RemoveAll(d)
			}
		}
		fmt.Fprintf(stdio.Stderr, "sigil: %v\n", err)
		return 125
	}
	if status.OOMKilled {
		limit := ""
		if req.MemoryLimit != "" {
			limit = " (--memory " + req.MemoryLimit + ")"
		}
		fmt.Fprintf(stdio.Stderr, "sigil: container was killed: out of memory%s; raise the limit with --memory\n", limit)
	}
	return status.Code
}
