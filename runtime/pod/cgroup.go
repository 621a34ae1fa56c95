package pod

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// cgroupMounts returns the mount points of every cgroup hierarchy of this
// host: each v1 hierarchy and the unified (v2) one, whichever exist. Only
// hierarchies whose root is the host root ("/") are listed, so a cgroup
// path such as "/sigil/<id>" is <mount point>/sigil/<id> in each.
func cgroupMounts() ([]string, error) {
	// /proc/thread-self, from a locked thread: /proc/self is the main
	// thread's view, and a library (libcontainer's mount-source thread)
	// may have left the main thread in another mount namespace.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	f, err := os.Open("/proc/thread-self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var mounts []string
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source superopts
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		fields, postFields := strings.Fields(pre), strings.Fields(post)
		if len(fields) < 5 || len(postFields) < 1 {
			continue
		}
		if fstype := postFields[0]; fstype != "cgroup" && fstype != "cgroup2" {
			continue
		}
		if fields[3] != "/" {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		if !seen[mp] {
			seen[mp] = true
			mounts = append(mounts, mp)
		}
	}
	return mounts, sc.Err()
}

// unescapeMountinfo undoes the octal escapes (\040 for space...) of
// /proc/self/mountinfo.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range s[i+1 : i+4] {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + byte(c-'0')
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// removeCgroups removes the cgroup cgPath, and any cgroup left under it,
// in every hierarchy. A cgroup that still has processes cannot be removed
// (EBUSY); processes that are exiting get a short grace period.
func removeCgroups(ctx context.Context, cgPath string) error {
	mounts, err := cgroupMounts()
	if err != nil {
		return fmt.Errorf("find cgroup mounts: %w", err)
	}
	var errs []error
	for _, mp := range mounts {
		if err := removeCgroupTree(ctx, filepath.Join(mp, cgPath)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func removeCgroupTree(ctx context.Context, dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeCgroupTree(ctx, filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	// rmdir on a cgroup whose last task is still exiting returns EBUSY for
	// a moment.
	delay := 10 * time.Millisecond
	for attempt := 0; ; attempt++ {
		err := unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) || attempt == 8 {
			return fmt.Errorf("remove cgroup %s: %w (does it still hold processes? see its cgroup.procs)", dir, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("remove cgroup %s: %w", dir, ctx.Err())
		case <-time.After(delay):
		}
		delay *= 2
	}
}
