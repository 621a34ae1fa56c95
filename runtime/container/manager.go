package container

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	// Device rules for the devices cgroup; without it libcontainer refuses
	// a config that lists devices.
	_ "github.com/opencontainers/cgroups/devices"
	// The C constructor that joins namespaces in libcontainer's re-executed
	// init. Every binary that runs containers needs it; importing it here
	// makes that so.
	_ "github.com/opencontainers/runc/libcontainer/nsenter"
)

// Manager runs and tracks containers whose records live under root and
// whose runtime state lives under state. Several Managers, in several
// processes, can share the same directories.
type Manager struct {
	root, state string
	logger      *slog.Logger
	executable  string
	stopTimeout time.Duration
}

// Option configures a Manager.
type Option func(*Manager)

// WithLogger sends the Manager's log to l (default: discarded). Lifecycle
// transitions are logged at Info, with container_id and pod_id.
func WithLogger(l *slog.Logger) Option {
	return func(m *Manager) {
		if l != nil {
			m.logger = l
		}
	}
}

// WithExecutable sets the binary re-executed as the monitor of detached
// containers (default: os.Executable()). It must handle MonitorCommand;
// see the package documentation.
func WithExecutable(path string) Option {
	return func(m *Manager) { m.executable = path }
}

// WithStopTimeout sets how long a foreground Run whose context is
// cancelled waits after the stop signal before SIGKILL (default 10s).
func WithStopTimeout(d time.Duration) Option {
	return func(m *Manager) { m.stopTimeout = d }
}

// New returns a Manager over root (records and logs, e.g.
// /var/lib/sigil) and state (runtime state, e.g. /run/sigil). Both paths
// are made absolute.
func New(root, state string, opts ...Option) (*Manager, error) {
	m := &Manager{
		logger:      slog.New(slog.DiscardHandler),
		stopTimeout: 10 * time.Second,
	}
	var err error
	if m.root, err = filepath.Abs(root); err != nil {
		return nil, err
	}
	if m.state, err = filepath.Abs(state); err != nil {
		return nil, err
	}
	for _, o := range opts {
		o(m)
	}
	if m.executable == "" {
		if m.executable, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("find the sigil binary to run monitors: %w", err)
		}
	}
	return m, nil
}

// List returns every container, newest first.
func (m *Manager) List(ctx context.Context) ([]Info, error) {
	recs, err := m.allRecords()
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	out := make([]Info, 0, len(recs))
	for _, r := range recs {
		r, err := m.refresh(ctx, r)
		if err != nil {
			continue // removed meanwhile
		}
		out = append(out, r.Info)
	}
	slices.SortFunc(out, func(a, b Info) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return out, nil
}

// Inspect returns the container named by a full ID, a name, or a unique
// ID prefix. Errors wrap errdefs.ErrNotFound, or
// errdefs.ErrInvalidArgument for an ambiguous prefix.
func (m *Manager) Inspect(ctx context.Context, ref string) (Info, error) {
	r, err := m.resolve(ctx, ref)
	if err != nil {
		return Info{}, err
	}
	return r.Info, nil
}
