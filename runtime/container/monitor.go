package container

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// MonitorCommand is the hidden first argument with which the sigil binary
// is re-executed as the monitor of a detached container. Package main
// must hand such an invocation to RunMonitor before anything else (see
// the package documentation).
const MonitorCommand = "__sigil-monitor"

// reportFD is the descriptor on which a monitor reports whether the
// container started: one JSON startReport, then EOF.
const reportFD = 3

type startReport struct {
	Error string `json:"error,omitempty"`
	Class string `json:"class,omitempty"`
}

// Start creates and starts a detached container and returns its ID once
// it is running. The container is supervised by a monitor, the sigil
// binary re-executed in a session of its own with its stdio on
// /dev/null, which outlives the caller: it writes the container's output
// to its log (CRI format), waits for it, records its exit code and
// OOMKilled, releases its resources, and removes it when AutoRemove is
// set. A start failure is returned with the monitor's error text and
// errdefs class.
//
// With CreateOptions.Unsupervised the re-executed binary only starts the
// container and exits, as `runc run -d` does (see startUnsupervised):
// nothing stays behind but the container's own process. Its death is
// noticed by whoever looks at the record next (Inspect, List, Stop),
// which releases what it held.
func (m *Manager) Start(ctx context.Context, opts CreateOptions) (string, error) {
	r, err := m.prepare(ctx, opts, true, self())
	if err != nil {
		return "", err
	}
	log := m.logger.With("container_id", r.ID, "pod_id", r.PodID)
	log.InfoContext(ctx, "starting detached container", "name", r.Name, "image", r.ImageRef)
	if err := m.startMonitor(ctx, r, log); err != nil {
		return "", err
	}
	return r.ID, nil
}

// Create records a detached container without starting it (the CRI's
// CreateContainer): it stays created until StartCreated. Errors are
// those of Start's checks.
func (m *Manager) Create(ctx context.Context, opts CreateOptions) (string, error) {
	// Nobody owns a container that waits to be started: refresh must not
	// mistake the creating process's exit for a failed start.
	r, err := m.prepare(ctx, opts, true, owner{})
	if err != nil {
		return "", err
	}
	m.logger.InfoContext(ctx, "created container", "container_id", r.ID, "pod_id", r.PodID, "name", r.Name)
	return r.ID, nil
}

// StartCreated starts a container recorded by Create under a monitor, as
// Start does, and returns once it runs. A container that is not in state
// created (or is being started by another process) gives
// errdefs.ErrFailedPrecondition.
func (m *Manager) StartCreated(ctx context.Context, ref string) error {
	r, err := m.resolve(ctx, ref)
	if err != nil {
		return err
	}
	claimed, err := m.update(ctx, r.ID, func(cur *record) {
		if cur.Status != StatusCreated || cur.Owner.alive() || cur.Error != "" {
			return
		}
		cur.Owner = self()
	})
	if err != nil {
		return err
	}
	if claimed.Owner != self() {
		state := string(claimed.Status)
		if claimed.Error != "" {
			state = "failed to start: " + claimed.Error
		} else if claimed.Status == StatusCreated {
			state = "being started by process " + fmt.Sprint(claimed.Owner.Pid)
		}
		return fmt.Errorf("container %s is %s: only a created container can be started: %w", r.Name, state, errdefs.ErrFailedPrecondition)
	}
	log := m.logger.With("container_id", r.ID, "pod_id", r.PodID)
	log.InfoContext(ctx, "starting created container", "name", r.Name)
	return m.startMonitor(ctx, claimed, log)
}

// startMonitor starts the monitor of r, which this process owns, and
// waits for its report of the start.
func (m *Manager) startMonitor(ctx context.Context, r *record, log *slog.Logger) error {
	rd, wr, err := os.Pipe()
	if err != nil {
		m.startFailed(ctx, r, err, log)
		return fmt.Errorf("start container %s: %w", r.Name, err)
	}
	cmd := exec.Command(m.executable, MonitorCommand,
		"--root="+m.root, "--state="+m.state, "--log-level="+enabledLevel(ctx, m.logger), r.ID)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.ExtraFiles = []*os.File{wr} // fd 3 == reportFD
	err = cmd.Start()
	wr.Close()
	if err != nil {
		rd.Close()
		err = fmt.Errorf("start the monitor of container %s (%s): %w", r.Name, m.executable, err)
		m.startFailed(ctx, r, err, log)
		return err
	}
	log.DebugContext(ctx, "started monitor", "monitor_pid", cmd.Process.Pid)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }() // reaps the monitor if it ends while we run

	type result struct {
		b   []byte
		err error
	}
	reported := make(chan result, 1)
	go func() {
		b, err := io.ReadAll(io.LimitReader(rd, 1<<20))
		rd.Close()
		reported <- result{b, err}
	}()

	var res result
	select {
	case res = <-reported:
	case <-ctx.Done():
		// The container dies with its monitor (parent-death signal).
		_ = cmd.Process.Kill()
		<-exited
		m.abandon(ctx, r, context.Cause(ctx), log)
		return fmt.Errorf("start container %s: %w", r.Name, ctx.Err())
	}
	var rep startReport
	if res.err != nil || len(res.b) == 0 || json.Unmarshal(res.b, &rep) != nil {
		var status error
		select {
		case status = <-exited:
		case <-time.After(2 * time.Second):
			status = errors.New("still running")
		}
		err := fmt.Errorf("the monitor of container %s ended before starting it (%v): see %s", r.Name, status, m.monitorLog(r.ID))
		m.abandon(ctx, r, err, log)
		return err
	}
	if rep.Error != "" {
		return &remoteError{msg: rep.Error, class: classFromName(rep.Class)}
	}
	log.InfoContext(ctx, "started detached container")
	return nil
}

// abandon cleans up after a monitor that died or was killed before it
// reported the start.
func (m *Manager) abandon(ctx context.Context, r *record, cause error, log *slog.Logger) {
	ctx = context.WithoutCancel(ctx)
	if err := m.teardown(ctx, r, log); err != nil {
		log.WarnContext(ctx, "cleaning up after the monitor", "error", err)
	}
	m.startFailed(ctx, r, cause, log)
}

// RunMonitor is the monitor's entry point: package main calls it when
// os.Args[1] is MonitorCommand, with the arguments after it, and exits
// with the returned code. It is not meant to be called otherwise.
func RunMonitor(args []string) int {
	fs := flag.NewFlagSet(MonitorCommand, flag.ContinueOnError)
	root := fs.String("root", "", "")
	state := fs.String("state", "", "")
	levelName := fs.String("log-level", "INFO", "")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 || *root == "" || *state == "" {
		fmt.Fprintf(os.Stderr, "%s is sigil's internal monitor; it is started by 'sigil run -d'\n", MonitorCommand)
		return 2
	}
	id := fs.Arg(0)
	report := os.NewFile(reportFD, "start-report")
	if report == nil {
		return 2
	}
	if _, err := report.Stat(); err != nil {
		fmt.Fprintf(os.Stderr, "%s: no start report descriptor: %v\n", MonitorCommand, err)
		return 2
	}
	// Not for the container's processes.
	unix.CloseOnExec(reportFD)
	m, err := New(*root, *state, WithExecutable("/proc/self/exe"))
	if err != nil {
		sendReport(report, err)
		return 1
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(*levelName))
	if err := os.MkdirAll(m.stateDir(id), 0o700); err != nil {
		sendReport(report, err)
		return 1
	}
	if lf, err := os.OpenFile(m.monitorLog(id), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err == nil {
		// The monitor's stderr (a panic, libcontainer's own messages)
		// goes to its log too.
		_ = unix.Dup2(int(lf.Fd()), 2)
		m.logger = slog.New(slog.NewTextHandler(lf, &slog.HandlerOptions{Level: level}))
	}
	return m.monitor(context.Background(), id, report)
}

// monitor starts container id, reports on report, and supervises it
// until it exits.
func (m *Manager) monitor(ctx context.Context, id string, report *os.File) int {
	r, err := m.update(ctx, id, func(cur *record) { cur.Owner = self() })
	if err != nil {
		sendReport(report, err)
		return 1
	}
	log := m.logger.With("container_id", r.ID, "pod_id", r.PodID)
	if r.Unsupervised {
		if err := m.startUnsupervised(ctx, r, log); err != nil {
			m.startFailed(ctx, r, err, log)
			sendReport(report, err)
			return 1
		}
		sendReport(report, nil)
		return 0
	}
	log.InfoContext(ctx, "monitor started", "monitor_pid", os.Getpid())

	cl, err := openCRILog(ctx, r.LogPath, log)
	if err != nil {
		err = fmt.Errorf("start container %s: open its log: %w", r.Name, err)
		m.startFailed(ctx, r, err, log)
		sendReport(report, err)
		return 1
	}
	defer func() { cl.current().Close() }()
	stdout, stderr := cl.stream("stdout"), cl.stream("stderr")

	// Other processes reach the monitor through its control FIFO (log
	// reopening) and its attach socket.
	ctlCtx, stopControl := context.WithCancel(ctx)
	defer stopControl()
	go m.serveControl(ctlCtx, r.ID, cl.reopen, log)
	var out, errOut io.Writer = stdout, stderr
	att, err := newAttachServer(m.attachPath(r.ID), log)
	if err != nil {
		log.WarnContext(ctx, "cannot serve attachments", "error", err)
	} else {
		defer att.close()
		go att.serve()
		out, errOut = io.MultiWriter(stdout, att.stream(frameStdout)), io.MultiWriter(stderr, att.stream(frameStderr))
	}

	sigs := make(chan os.Signal, 128)
	signal.Notify(sigs, forwardedSignals()...)
	defer signal.Stop(sigs)

	st, err := m.start(ctx, r, streams{out: out, err: errOut, keepStdin: r.Stdin}, log)
	if err != nil {
		m.startFailed(ctx, r, err, log)
		sendReport(report, err)
		return 1
	}
	if att != nil {
		var in io.WriteCloser
		switch {
		case st.pio.master != nil && r.Stdin:
			// A terminal's input is never closed by a client: it ends
			// with the container.
			in = nopWriteCloser{st.pio.master}
		case st.pio.stdinW != nil:
			in = st.pio.stdinW
		}
		att.connect(in, st.pio.setSize)
	}
	sendReport(report, nil)
	// One monitor runs per container for as long as it does: give back
	// what starting it took (libcontainer, the spec, package init) and
	// keep the heap small from now on.
	debug.SetGCPercent(20)
	debug.FreeOSMemory()

	status := st.wait(ctx, sigs, m.stopTimeout)
	st.pio.close(ctx)
	// The log is complete before the exit is recorded: Logs(follow)
	// relies on it.
	stdout.Flush()
	stderr.Flush()
	_ = cl.current().Sync()
	stopControl()
	if att != nil {
		att.close()
	}
	m.finish(ctx, st, status)
	log.InfoContext(ctx, "monitor exiting")
	return 0
}

func sendReport(report *os.File, err error) {
	var rep startReport
	if err != nil {
		rep.Error, rep.Class = err.Error(), className(err)
	}
	b, _ := json.Marshal(rep)
	_, _ = report.Write(b)
	_ = report.Close()
}

// remoteError is an error reported by a monitor: its text, and its
// errdefs class for errors.Is.
type remoteError struct {
	msg   string
	class error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.class }

// errorClasses are the errdefs classes a start error keeps across the
// monitor's report, by name, in the order they are tested.
var errorClasses = [...]struct {
	name  string
	class error
	is    func(error) bool
}{
	{"not_found", errdefs.ErrNotFound, errdefs.IsNotFound},
	{"already_exists", errdefs.ErrAlreadyExists, errdefs.IsAlreadyExists},
	{"invalid_argument", errdefs.ErrInvalidArgument, errdefs.IsInvalidArgument},
	{"failed_precondition", errdefs.ErrFailedPrecondition, errdefs.IsFailedPrecondition},
	{"permission_denied", errdefs.ErrPermissionDenied, errdefs.IsPermissionDenied},
}

func className(err error) string {
	for _, c := range errorClasses {
		if c.is(err) {
			return c.name
		}
	}
	return ""
}

func classFromName(name string) error {
	for _, c := range errorClasses {
		if c.name == name {
			return c.class
		}
	}
	return errdefs.ErrUnknown
}

// enabledLevel is the lowest level l logs, for the monitor to log alike.
func enabledLevel(ctx context.Context, l *slog.Logger) string {
	for _, lv := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn} {
		if l.Enabled(ctx, lv) {
			return lv.String()
		}
	}
	return slog.LevelError.String()
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
