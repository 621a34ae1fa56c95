package container

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/sigil-project/sigil/runtime/atomicfile"
	"github.com/sigil-project/sigil/runtime/lockfile"
	"github.com/sigil-project/sigil/runtime/mount"
)

const recordVersion = 1

// record is the on-disk container.json: Info plus what a later process
// needs to start, exec into and clean up the container.
type record struct {
	Version int `json:"version"`
	Info
	Image  ocispec.ImageConfig `json:"image"`
	Rootfs mount.Mount         `json:"rootfs"`
	// Network of the container's own pod.
	Network string `json:"network,omitempty"`
	// OwnedDirs are deleted when the container is removed.
	OwnedDirs []string `json:"owned_dirs,omitempty"`
	// HostPID and PIDNamespace: see CreateOptions.
	HostPID      bool   `json:"host_pid,omitempty"`
	PIDNamespace string `json:"pid_namespace,omitempty"`
	// ImageVolumes: see CreateOptions.
	ImageVolumes []ImageVolume `json:"image_volumes,omitempty"`
	// Owner is the process supervising the container: the foreground
	// `sigil run`, or the monitor.
	Owner owner `json:"owner,omitzero"`
}

// owner identifies a process across PID reuse: its PID and its start
// time in clock ticks since boot (field 22 of /proc/<pid>/stat).
type owner struct {
	Pid       int    `json:"pid,omitempty"`
	StartTime uint64 `json:"start_time,omitempty"`
}

// self is this process as an owner. Its PID and start time never change,
// so /proc/self/stat is read once.
var self = sync.OnceValue(func() owner {
	pid := os.Getpid()
	st, _ := processStartTime(pid)
	return owner{Pid: pid, StartTime: st}
})

// alive reports whether the owner process still exists.
func (o owner) alive() bool {
	if o.Pid <= 0 {
		return false
	}
	st, err := processStartTime(o.Pid)
	if err != nil {
		return false
	}
	return o.StartTime == 0 || st == o.StartTime
}

func processStartTime(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may contain
	// spaces; the fields after the last ')' start at field 3.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	if f[0] == "Z" || f[0] == "X" {
		return 0, fmt.Errorf("process %d is a zombie", pid)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

var validName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`) })

// NewID returns a new random container ID: 64 hexadecimal digits.
func NewID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Paths. See the package documentation for the layout.
func (m *Manager) containersDir() string      { return filepath.Join(m.root, "containers") }
func (m *Manager) recordDir(id string) string { return filepath.Join(m.containersDir(), id) }
func (m *Manager) recordPath(id string) string {
	return filepath.Join(m.recordDir(id), "container.json")
}
func (m *Manager) logPath(id string) string     { return filepath.Join(m.recordDir(id), "container.log") }
func (m *Manager) stateDir(id string) string    { return filepath.Join(m.state, "containers", id) }
func (m *Manager) rootfsDir(id string) string   { return filepath.Join(m.stateDir(id), "rootfs") }
func (m *Manager) specPath(id string) string    { return filepath.Join(m.stateDir(id), "config.json") }
func (m *Manager) monitorLog(id string) string  { return filepath.Join(m.stateDir(id), "monitor.log") }
func (m *Manager) controlPath(id string) string { return filepath.Join(m.stateDir(id), "control") }
func (m *Manager) attachPath(id string) string  { return filepath.Join(m.stateDir(id), "attach.sock") }
func (m *Manager) libcontainerRoot() string     { return filepath.Join(m.state, "libcontainer") }

// imageVolumeDir is where the i-th image volume's view is mounted.
func (m *Manager) imageVolumeDir(id string, i int) string {
	return filepath.Join(m.stateDir(id), "image-volumes", strconv.Itoa(i))
}

// lock takes the store's exclusive lock (flock on <root>/containers/.lock),
// shared by every sigil process using this root. Hold it only for short
// record reads and writes.
func (m *Manager) lock(ctx context.Context) (unlock func(), err error) {
	return lockfile.Lock(ctx, filepath.Join(m.containersDir(), ".lock"))
}

func (m *Manager) readRecord(id string) (*record, error) {
	b, err := os.ReadFile(m.recordPath(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("container %s: %w", id, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("container %s: record %s is corrupt: %w", id, m.recordPath(id), err)
	}
	if r.Version > recordVersion {
		return nil, fmt.Errorf("container %s: record version %d is newer than this sigil understands (%d): use a newer sigil", id, r.Version, recordVersion)
	}
	return &r, nil
}

// writeRecord writes r atomically (temporary file, fsync, rename). The
// record directory must exist: a removed container is not recreated.
func (m *Manager) writeRecord(r *record) error {
	r.Version = recordVersion
	return atomicfile.WriteJSON(m.recordPath(r.ID), r, 0o600)
}

// update applies fn to the current record of id under the store lock and
// writes it back.
func (m *Manager) update(ctx context.Context, id string, fn func(r *record)) (*record, error) {
	unlock, err := m.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	r, err := m.readRecord(id)
	if err != nil {
		return nil, err
	}
	fn(r)
	if err := m.writeRecord(r); err != nil {
		return nil, fmt.Errorf("container %s: write record: %w", id, err)
	}
	return r, nil
}

// allRecords reads every record, skipping those removed concurrently.
func (m *Manager) allRecords() ([]*record, error) {
	entries, err := os.ReadDir(m.containersDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*record
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		r, err := m.readRecord(e.Name())
		if errors.Is(err, errdefs.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// resolve finds a container by full ID, name, or unique ID prefix, in
// that order, and refreshes its status.
func (m *Manager) resolve(ctx context.Context, ref string) (*record, error) {
	if ref == "" {
		return nil, fmt.Errorf("no container named: give a container name or ID: %w", errdefs.ErrInvalidArgument)
	}
	if r, err := m.readRecord(ref); err == nil && r.ID == ref {
		return m.refresh(ctx, r)
	}
	all, err := m.allRecords()
	if err != nil {
		return nil, err
	}
	if i := slices.IndexFunc(all, func(r *record) bool { return r.Name == ref }); i >= 0 {
		return m.refresh(ctx, all[i])
	}
	var matches []*record
	for _, r := range all {
		if strings.HasPrefix(r.ID, ref) {
			matches = append(matches, r)
		}
	}
	switch len(matches) {
	case 0:
		return nil, fmt.Errorf("container %q: no such container (see 'sigil ps -a'): %w", ref, errdefs.ErrNotFound)
	case 1:
		return m.refresh(ctx, matches[0])
	default:
		return nil, fmt.Errorf("container %q: the prefix matches %d containers: give more of the ID: %w", ref, len(matches), errdefs.ErrInvalidArgument)
	}
}

// refresh corrects the status of a record whose supervisor died without
// recording the container's end: the container died with it (its init has
// a parent-death signal), so it is recorded as exited, code unknown. An
// unsupervised container's record is corrected when its init is gone.
func (m *Manager) refresh(ctx context.Context, r *record) (*record, error) {
	if r.Status == StatusExited || r.Owner.alive() {
		return r, nil
	}
	if r.Unsupervised && r.Status == StatusRunning {
		return m.refreshUnsupervised(ctx, r)
	}
	if r.Status == StatusCreated && r.Owner.Pid == 0 {
		return r, nil
	}
	wasRunning := r.Status == StatusRunning
	changed := false
	updated, err := m.update(ctx, r.ID, func(cur *record) {
		if cur.Status == StatusExited || cur.Owner != r.Owner {
			return
		}
		changed = true
		if cur.Status == StatusRunning {
			cur.Status = StatusExited
			cur.ExitCode = ExitCodeUnknown
			cur.FinishedAt = time.Now().UTC()
			cur.Error = fmt.Sprintf("the sigil process that supervised the container (pid %d) died without recording its exit; the container was killed with it", r.Owner.Pid)
		} else if cur.Error == "" {
			cur.Error = fmt.Sprintf("the sigil process that was starting the container (pid %d) died", r.Owner.Pid)
		}
		cur.Pid = 0
		cur.Owner = owner{}
	})
	if err != nil {
		return nil, err
	}
	if wasRunning {
		m.logger.WarnContext(ctx, "container supervisor died", "container_id", r.ID, "owner_pid", r.Owner.Pid)
	}
	if changed {
		// The supervisor died before releasing what the container held
		// (its rootfs mount, cgroups, pod namespaces): whoever notices
		// first releases them, so nothing stays mounted until 'sigil rm'.
		log := m.logger.With("container_id", r.ID, "pod_id", r.PodID)
		if err := m.teardown(ctx, updated, log); err != nil {
			log.WarnContext(ctx, "releasing a dead supervisor's container", "error", err)
		}
	}
	return updated, nil
}

// refreshUnsupervised records the exit of an unsupervised container whose
// init is gone, and releases what it held (its cgroup, libcontainer
// state, rootfs mount), once: whoever notices first does it.
func (m *Manager) refreshUnsupervised(ctx context.Context, r *record) (*record, error) {
	if r.initAlive() {
		return r, nil
	}
	changed := false
	updated, err := m.update(ctx, r.ID, func(cur *record) {
		if cur.Status != StatusRunning || cur.Pid != r.Pid || cur.PidStartTime != r.PidStartTime {
			return
		}
		changed = true
		cur.Status = StatusExited
		cur.ExitCode = ExitCodeUnknown
		cur.FinishedAt = time.Now().UTC()
		cur.Error = fmt.Sprintf("its init (pid %d) has exited; the container was not supervised, so its exit code is unknown", r.Pid)
		cur.Pid = 0
	})
	if err != nil {
		return nil, err
	}
	if changed {
		log := m.logger.With("container_id", r.ID, "pod_id", r.PodID)
		log.InfoContext(ctx, "unsupervised container exited", "pid", r.Pid)
		if err := m.teardown(ctx, updated, log); err != nil {
			log.WarnContext(ctx, "releasing an exited unsupervised container", "error", err)
		}
	}
	return updated, nil
}
