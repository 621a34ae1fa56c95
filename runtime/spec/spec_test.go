package spec

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

const testID = "0123456789abcdef0123456789abcdef"

// writeRootfs makes a rootfs with an /etc/passwd and /etc/group.
func writeRootfs(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(root, "etc/passwd"),
		"root:x:0:0:root:/root:/bin/sh\n"+
			"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"+
			"app:x:1000:1000:app:/home/app:/bin/sh\n")
	write(t, filepath.Join(root, "etc/group"),
		"root:x:0:\n"+
			"audio:x:29:app\n"+
			"video:x:44:\n"+
			"nogroup:x:65534:\n"+
			"app:x:1000:\n"+
			"staff:x:50:app\n")
	return root
}

func write(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func env(s *specs.Spec, key string) (string, bool) { return envIn(s.Process.Env, key) }

func envIn(list []string, key string) (string, bool) {
	for _, e := range list {
		k, v, _ := strings.Cut(e, "=")
		if k == key {
			return v, true
		}
	}
	return "", false
}

func mountAt(s *specs.Spec, dst string) (specs.Mount, bool) {
	for _, m := range s.Mounts {
		if m.Destination == dst {
			return m, true
		}
	}
	return specs.Mount{}, false
}

func nsPath(s *specs.Spec, typ specs.LinuxNamespaceType) (string, bool) {
	for _, n := range s.Linux.Namespaces {
		if n.Type == typ {
			return n.Path, true
		}
	}
	return "", false
}

func TestGenerate(t *testing.T) {
	t.Parallel()
	rootfs := writeRootfs(t)
	var nofile unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &nofile); err != nil {
		t.Fatal(err)
	}
	img := ocispec.ImageConfig{
		Entrypoint: []string{"/docker-entrypoint.sh"},
		Cmd:        []string{"nginx", "-g", "daemon off;"},
		Env:        []string{"PATH=/opt/bin:/bin", "NGINX_VERSION=1.27", "SHARED=image"},
		WorkingDir: "/srv",
	}

	tests := []struct {
		name  string
		img   ocispec.ImageConfig
		run   RunOptions
		ns    Namespaces
		check func(t *testing.T, s *specs.Spec)
	}{
		{
			name: "image entrypoint and cmd",
			img:  img,
			check: func(t *testing.T, s *specs.Spec) {
				want := []string{"/docker-entrypoint.sh", "nginx", "-g", "daemon off;"}
				if !slices.Equal(s.Process.Args, want) {
					t.Errorf("args = %q, want %q", s.Process.Args, want)
				}
			},
		},
		{
			name: "args replace cmd but keep entrypoint",
			img:  img,
			run:  RunOptions{Args: []string{"nginx", "-t"}},
			check: func(t *testing.T, s *specs.Spec) {
				want := []string{"/docker-entrypoint.sh", "nginx", "-t"}
				if !slices.Equal(s.Process.Args, want) {
					t.Errorf("args = %q, want %q", s.Process.Args, want)
				}
			},
		},
		{
			name: "entrypoint override resets image cmd",
			img:  img,
			run:  RunOptions{OverrideEntrypoint: true, Entrypoint: []string{"/bin/sh"}},
			check: func(t *testing.T, s *specs.Spec) {
				if want := []string{"/bin/sh"}; !slices.Equal(s.Process.Args, want) {
					t.Errorf("args = %q, want %q", s.Process.Args, want)
				}
			},
		},
		{
			name: "empty entrypoint override with args",
			img:  img,
			run:  RunOptions{OverrideEntrypoint: true, Args: []string{"echo", "hi"}},
			check: func(t *testing.T, s *specs.Spec) {
				if want := []string{"echo", "hi"}; !slices.Equal(s.Process.Args, want) {
					t.Errorf("args = %q, want %q", s.Process.Args, want)
				}
			},
		},
		{
			name: "env merge order and defaults",
			img:  img,
			run:  RunOptions{Env: []string{"SHARED=flag", "EXTRA=1", "NGINX_VERSION"}},
			check: func(t *testing.T, s *specs.Spec) {
				for k, want := range map[string]string{
					"PATH":     "/opt/bin:/bin",
					"SHARED":   "flag",
					"EXTRA":    "1",
					"HOSTNAME": testID[:12],
					"HOME":     "/root",
				} {
					if got, _ := env(s, k); got != want {
						t.Errorf("env %s = %q, want %q (env %q)", k, got, want, s.Process.Env)
					}
				}
				if _, ok := env(s, "NGINX_VERSION"); ok {
					t.Errorf("env NGINX_VERSION present, want removed by bare key (env %q)", s.Process.Env)
				}
				if _, ok := env(s, "TERM"); ok {
					t.Errorf("TERM set without a tty")
				}
				// Each key once.
				seen := map[string]bool{}
				for _, e := range s.Process.Env {
					k, _, _ := strings.Cut(e, "=")
					if seen[k] {
						t.Errorf("env key %s twice: %q", k, s.Process.Env)
					}
					seen[k] = true
				}
			},
		},
		{
			name: "default PATH when the image has none, TERM with tty",
			img:  ocispec.ImageConfig{Cmd: []string{"sh"}},
			run:  RunOptions{Tty: true},
			check: func(t *testing.T, s *specs.Spec) {
				if got, _ := env(s, "PATH"); got != DefaultPath {
					t.Errorf("PATH = %q, want %q", got, DefaultPath)
				}
				if got, _ := env(s, "TERM"); got != "xterm" {
					t.Errorf("TERM = %q, want xterm", got)
				}
				if !s.Process.Terminal {
					t.Errorf("terminal = false, want true")
				}
			},
		},
		{
			name: "workdir from image, default, and override",
			img:  img,
			check: func(t *testing.T, s *specs.Spec) {
				if s.Process.Cwd != "/srv" {
					t.Errorf("cwd = %q, want /srv", s.Process.Cwd)
				}
			},
		},
		{
			name: "workdir flag overrides",
			img:  img,
			run:  RunOptions{Workdir: "/tmp/x/"},
			check: func(t *testing.T, s *specs.Spec) {
				if s.Process.Cwd != "/tmp/x" {
					t.Errorf("cwd = %q, want /tmp/x", s.Process.Cwd)
				}
			},
		},
		{
			name: "workdir defaults to /",
			img:  ocispec.ImageConfig{Cmd: []string{"sh"}},
			check: func(t *testing.T, s *specs.Spec) {
				if s.Process.Cwd != "/" {
					t.Errorf("cwd = %q, want /", s.Process.Cwd)
				}
			},
		},
		{
			name: "named user with groups from /etc/group and home",
			img:  ocispec.ImageConfig{Cmd: []string{"id"}, User: "app"},
			check: func(t *testing.T, s *specs.Spec) {
				u := s.Process.User
				if u.UID != 1000 || u.GID != 1000 {
					t.Errorf("user = %d:%d, want 1000:1000", u.UID, u.GID)
				}
				if want := []uint32{29, 50}; !slices.Equal(u.AdditionalGids, want) {
					t.Errorf("additional gids = %v, want %v", u.AdditionalGids, want)
				}
				if got, _ := env(s, "HOME"); got != "/home/app" {
					t.Errorf("HOME = %q, want /home/app", got)
				}
			},
		},
		{
			name: "flag user uid:gid overrides image user, group-add by name",
			img:  ocispec.ImageConfig{Cmd: []string{"id"}, User: "app"},
			run:  RunOptions{User: "1234:44", GroupAdd: []string{"video", "7"}},
			check: func(t *testing.T, s *specs.Spec) {
				u := s.Process.User
				if u.UID != 1234 || u.GID != 44 {
					t.Errorf("user = %d:%d, want 1234:44", u.UID, u.GID)
				}
				// gid 44 is the primary group, so "video" is not repeated.
				if want := []uint32{7}; !slices.Equal(u.AdditionalGids, want) {
					t.Errorf("additional gids = %v, want %v", u.AdditionalGids, want)
				}
			},
		},
		{
			name: "user name with group name",
			img:  ocispec.ImageConfig{Cmd: []string{"id"}},
			run:  RunOptions{User: "nobody:staff"},
			check: func(t *testing.T, s *specs.Spec) {
				if u := s.Process.User; u.UID != 65534 || u.GID != 50 {
					t.Errorf("user = %d:%d, want 65534:50", u.UID, u.GID)
				}
			},
		},
		{
			name: "hostname default and flag",
			img:  img,
			run:  RunOptions{Hostname: "web"},
			check: func(t *testing.T, s *specs.Spec) {
				if s.Hostname != "web" {
					t.Errorf("hostname = %q, want web", s.Hostname)
				}
				if got, _ := env(s, "HOSTNAME"); got != "web" {
					t.Errorf("HOSTNAME = %q, want web", got)
				}
			},
		},
		{
			name: "default mounts",
			img:  img,
			check: func(t *testing.T, s *specs.Spec) {
				for dst, typ := range map[string]string{
					"/proc": "proc", "/dev": "tmpfs", "/dev/pts": "devpts", "/dev/shm": "tmpfs",
					"/dev/mqueue": "mqueue", "/sys": "sysfs", "/sys/fs/cgroup": "cgroup",
				} {
					m, ok := mountAt(s, dst)
					if !ok || m.Type != typ {
						t.Errorf("mount %s = %+v (present %v), want type %s", dst, m, ok, typ)
					}
				}
				for _, dst := range []string{"/sys", "/sys/fs/cgroup"} {
					if m, _ := mountAt(s, dst); !slices.Contains(m.Options, "ro") {
						t.Errorf("mount %s options %q, want ro", dst, m.Options)
					}
				}
			},
		},
		{
			name: "volumes rbind rprivate, ro, parents first, replaces default",
			img:  img,
			run: RunOptions{Volumes: []Volume{
				{Source: "/host/data/sub", Destination: "/data/sub"},
				{Source: "/host/data", Destination: "/data", ReadOnly: true},
				{Source: "/host/shm", Destination: "/dev/shm"},
			}},
			check: func(t *testing.T, s *specs.Spec) {
				m, ok := mountAt(s, "/data")
				if !ok || m.Type != "bind" || m.Source != "/host/data" {
					t.Fatalf("mount /data = %+v", m)
				}
				for _, o := range []string{"rbind", "rprivate", "ro"} {
					if !slices.Contains(m.Options, o) {
						t.Errorf("mount /data options %q lack %s", m.Options, o)
					}
				}
				sub, _ := mountAt(s, "/data/sub")
				if slices.Contains(sub.Options, "ro") {
					t.Errorf("mount /data/sub options %q, want rw", sub.Options)
				}
				iParent := slices.IndexFunc(s.Mounts, func(m specs.Mount) bool { return m.Destination == "/data" })
				iChild := slices.IndexFunc(s.Mounts, func(m specs.Mount) bool { return m.Destination == "/data/sub" })
				if iParent > iChild {
					t.Errorf("/data mounted at %d after /data/sub at %d", iParent, iChild)
				}
				n := 0
				for _, m := range s.Mounts {
					if m.Destination == "/dev/shm" {
						n++
						if m.Type != "bind" {
							t.Errorf("/dev/shm is %s, want the volume", m.Type)
						}
					}
				}
				if n != 1 {
					t.Errorf("/dev/shm mounted %d times, want 1", n)
				}
			},
		},
		{
			name: "resources",
			img:  img,
			run:  RunOptions{Memory: 32 << 20, CPUs: 1.5, PidsLimit: 64},
			check: func(t *testing.T, s *specs.Spec) {
				r := s.Linux.Resources
				if r.Memory == nil || *r.Memory.Limit != 32<<20 {
					t.Errorf("memory = %+v, want limit 32MiB", r.Memory)
				}
				if r.CPU == nil || *r.CPU.Quota != 150000 || *r.CPU.Period != 100000 {
					t.Errorf("cpu = %+v, want quota 150000 period 100000", r.CPU)
				}
				if r.Pids == nil || *r.Pids.Limit != 64 {
					t.Errorf("pids = %+v, want 64", r.Pids)
				}
			},
		},
		{
			name: "no resources by default, devices denied",
			img:  img,
			check: func(t *testing.T, s *specs.Spec) {
				r := s.Linux.Resources
				if r.Memory != nil || r.CPU != nil || r.Pids != nil {
					t.Errorf("resources = %+v, want none", r)
				}
				if len(r.Devices) != 1 || r.Devices[0].Allow || r.Devices[0].Access != "rwm" {
					t.Errorf("device rules = %+v, want deny all", r.Devices)
				}
				if len(s.Linux.Devices) != 0 {
					t.Errorf("devices = %+v, want libcontainer's defaults only", s.Linux.Devices)
				}
			},
		},
		{
			name: "writable rootfs has no scratch tmpfs",
			img:  img,
			check: func(t *testing.T, s *specs.Spec) {
				if m, ok := mountAt(s, "/tmp"); ok {
					t.Errorf("/tmp mounted (%+v) on a writable root", m)
				}
			},
		},
		{
			name: "read-only rootfs",
			img:  img,
			run:  RunOptions{ReadOnly: true},
			check: func(t *testing.T, s *specs.Spec) {
				if !s.Root.Readonly || s.Root.Path != rootfs {
					t.Errorf("root = %+v, want read-only %s", s.Root, rootfs)
				}
				for _, d := range []string{"/tmp", "/var/tmp", "/run"} {
					if m, ok := mountAt(s, d); !ok || m.Type != "tmpfs" {
						t.Errorf("scratch dir %s under a read-only root = %+v (present %v), want tmpfs", d, m, ok)
					}
				}
			},
		},
		{
			name: "secure defaults",
			img:  img,
			check: func(t *testing.T, s *specs.Spec) {
				c := s.Process.Capabilities
				want := []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
					"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
					"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"}
				for name, set := range map[string][]string{"bounding": c.Bounding, "effective": c.Effective, "permitted": c.Permitted} {
					if !slices.Equal(set, want) {
						t.Errorf("%s = %q, want %q", name, set, want)
					}
				}
				if len(c.Inheritable) != 0 || len(c.Ambient) != 0 {
					t.Errorf("inheritable %q ambient %q, want none", c.Inheritable, c.Ambient)
				}
				if slices.Contains(c.Bounding, "CAP_SYS_ADMIN") {
					t.Errorf("CAP_SYS_ADMIN in bounding set")
				}
				if !s.Process.NoNewPrivileges {
					t.Errorf("no_new_privs = false")
				}
				if s.Process.OOMScoreAdj != nil {
					t.Errorf("oomScoreAdj = %d, want unset", *s.Process.OOMScoreAdj)
				}
				sc := s.Linux.Seccomp
				if sc == nil || sc.DefaultAction != specs.ActErrno || len(sc.Syscalls) < 10 {
					t.Fatalf("seccomp = %+v, want docker's default profile", sc)
				}
				// The default profile allows no mount for a process without
				// CAP_SYS_ADMIN.
				for _, r := range sc.Syscalls {
					if r.Action == specs.ActAllow && slices.Contains(r.Names, "mount") {
						t.Errorf("seccomp allows mount: %+v", r)
					}
				}
				for _, p := range []string{"/proc/kcore", "/proc/keys", "/sys/firmware", "/proc/timer_list"} {
					if !slices.Contains(s.Linux.MaskedPaths, p) {
						t.Errorf("masked paths %q lack %s", s.Linux.MaskedPaths, p)
					}
				}
				for _, p := range []string{"/proc/sys", "/proc/sysrq-trigger", "/proc/bus", "/proc/irq", "/proc/fs"} {
					if !slices.Contains(s.Linux.ReadonlyPaths, p) {
						t.Errorf("readonly paths %q lack %s", s.Linux.ReadonlyPaths, p)
					}
				}
			},
		},
		{
			name: "rlimits clamped to the host hard limit",
			img:  img,
			run:  RunOptions{Ulimits: []specs.POSIXRlimit{{Type: "nproc", Soft: 100, Hard: 200}}},
			check: func(t *testing.T, s *specs.Spec) {
				var nf, np *specs.POSIXRlimit
				for i, r := range s.Process.Rlimits {
					switch r.Type {
					case "RLIMIT_NOFILE":
						nf = &s.Process.Rlimits[i]
					case "RLIMIT_NPROC":
						np = &s.Process.Rlimits[i]
					}
				}
				if nf == nil || np == nil {
					t.Fatalf("rlimits = %+v, want NOFILE and NPROC", s.Process.Rlimits)
				}
				wantHard := uint64(1048576)
				if nofile.Max != unix.RLIM_INFINITY && nofile.Max < wantHard {
					wantHard = nofile.Max
				}
				if nf.Hard != wantHard || nf.Soft != min(1024, wantHard) {
					t.Errorf("NOFILE = %d:%d, want %d:%d", nf.Soft, nf.Hard, min(1024, wantHard), wantHard)
				}
				if np.Soft != 100 || np.Hard != 200 {
					t.Errorf("NPROC = %d:%d, want 100:200", np.Soft, np.Hard)
				}
			},
		},
		{
			name: "pod namespaces joined; pid, mount, cgroup new",
			img:  img,
			ns:   Namespaces{Network: "/run/p/ns/net", IPC: "/run/p/ns/ipc", UTS: "/run/p/ns/uts"},
			check: func(t *testing.T, s *specs.Spec) {
				for typ, want := range map[specs.LinuxNamespaceType]string{
					specs.NetworkNamespace: "/run/p/ns/net", specs.IPCNamespace: "/run/p/ns/ipc",
					specs.UTSNamespace: "/run/p/ns/uts", specs.PIDNamespace: "",
					specs.MountNamespace: "", specs.CgroupNamespace: "",
				} {
					if got, ok := nsPath(s, typ); !ok || got != want {
						t.Errorf("namespace %s = %q (present %v), want %q", typ, got, ok, want)
					}
				}
				if _, ok := nsPath(s, specs.UserNamespace); ok {
					t.Errorf("user namespace requested")
				}
				if s.Linux.CgroupsPath != "/sigil/pod/"+testID {
					t.Errorf("cgroups path = %q", s.Linux.CgroupsPath)
				}
			},
		},
		{
			name: "host network: no network namespace",
			img:  img,
			ns:   Namespaces{HostNetwork: true, IPC: "/run/p/ns/ipc", UTS: "/run/p/ns/uts"},
			check: func(t *testing.T, s *specs.Spec) {
				if p, ok := nsPath(s, specs.NetworkNamespace); ok {
					t.Errorf("network namespace %q present with host network", p)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := Generate(Options{
				ID:          testID,
				Image:       tt.img,
				Rootfs:      rootfs,
				CgroupsPath: "/sigil/pod/" + testID,
				Namespaces:  tt.ns,
				Run:         tt.run,
			})
			if err != nil {
				t.Fatalf("Generate: %v", err)
			}
			tt.check(t, s)
		})
	}
}

func TestGenerateErrors(t *testing.T) {
	t.Parallel()
	rootfs := writeRootfs(t)
	tests := []struct {
		name string
		img  ocispec.ImageConfig
		run  RunOptions
		want error
		text string
	}{
		{"no command", ocispec.ImageConfig{}, RunOptions{}, errdefs.ErrInvalidArgument, "no command"},
		{"entrypoint cleared and no args", ocispec.ImageConfig{Cmd: []string{"sh"}}, RunOptions{OverrideEntrypoint: true}, errdefs.ErrInvalidArgument, "no command"},
		{"relative workdir", ocispec.ImageConfig{Cmd: []string{"sh"}}, RunOptions{Workdir: "srv"}, errdefs.ErrInvalidArgument, "absolute"},
		{"unknown user", ocispec.ImageConfig{Cmd: []string{"sh"}}, RunOptions{User: "mallory"}, errdefs.ErrNotFound, "mallory"},
		{"unknown group", ocispec.ImageConfig{Cmd: []string{"sh"}}, RunOptions{User: "app:wheel"}, errdefs.ErrNotFound, "wheel"},
		{"memory too small", ocispec.ImageConfig{Cmd: []string{"sh"}}, RunOptions{Memory: 1 << 20}, errdefs.ErrInvalidArgument, "6MiB"},
		{"negative pids", ocispec.ImageConfig{Cmd: []string{"sh"}}, RunOptions{PidsLimit: -1}, errdefs.ErrInvalidArgument, "negative"},
		{"unknown ulimit", ocispec.ImageConfig{Cmd: []string{"sh"}}, RunOptions{Ulimits: []specs.POSIXRlimit{{Type: "bogus", Soft: 1, Hard: 1}}}, errdefs.ErrInvalidArgument, "RLIMIT_BOGUS"},
		{"soft above hard", ocispec.ImageConfig{Cmd: []string{"sh"}}, RunOptions{Ulimits: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 10, Hard: 5}}}, errdefs.ErrInvalidArgument, "soft"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Generate(Options{ID: testID, Image: tt.img, Rootfs: rootfs, Run: tt.run})
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.text) {
				t.Errorf("Generate = %v, want %v mentioning %q", err, tt.want, tt.text)
			}
		})
	}
}

// TestUserLookupStaysInRootfs checks that hostile symlinks in the image
// resolve inside the rootfs, never on the host.
func TestUserLookupStaysInRootfs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		user    string
		setup   func(t *testing.T, root string)
		wantUID uint32
		wantErr error
	}{
		{
			name: "absolute symlink resolves in the rootfs",
			setup: func(t *testing.T, root string) {
				mkdir(t, root, "etc", "real")
				write(t, filepath.Join(root, "real/passwd"), "app:x:4242:4242::/:/bin/sh\n")
				symlink(t, "/real/passwd", filepath.Join(root, "etc/passwd"))
			},
			wantUID: 4242,
		},
		{
			name: "dot-dot symlink cannot climb out",
			setup: func(t *testing.T, root string) {
				mkdir(t, root, "etc")
				write(t, filepath.Join(root, "passwd"), "app:x:4343:4343::/:/bin/sh\n")
				symlink(t, "../../../../../../../../passwd", filepath.Join(root, "etc/passwd"))
			},
			wantUID: 4343,
		},
		{
			name: "symlink to a host file is not followed out",
			user: "mallory",
			setup: func(t *testing.T, root string) {
				mkdir(t, root, "etc")
				// A host file names mallory; this rootfs has none, so
				// resolving "mallory" must fail.
				host := filepath.Join(t.TempDir(), "passwd")
				write(t, host, "mallory:x:777:777::/:/bin/sh\n")
				symlink(t, host, filepath.Join(root, "etc/passwd"))
			},
			wantErr: errdefs.ErrNotFound,
		},
		{
			name: "fifo is refused instead of blocking",
			setup: func(t *testing.T, root string) {
				mkdir(t, root, "etc")
				if err := unix.Mkfifo(filepath.Join(root, "etc/passwd"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: errdefs.ErrInvalidArgument,
		},
		{
			name: "symlink loop is refused",
			setup: func(t *testing.T, root string) {
				mkdir(t, root, "etc")
				symlink(t, "/etc/passwd", filepath.Join(root, "etc/passwd"))
			},
			wantErr: errdefs.ErrInvalidArgument,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			tt.setup(t, root)
			user := tt.user
			if user == "" {
				user = "app"
			}
			s, err := Generate(Options{ID: testID, Image: ocispec.ImageConfig{Cmd: []string{"sh"}, User: user}, Rootfs: root})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Generate = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Generate: %v", err)
			}
			if s.Process.User.UID != tt.wantUID {
				t.Errorf("uid = %d, want %d", s.Process.User.UID, tt.wantUID)
			}
		})
	}
}

func mkdir(t *testing.T, root string, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func symlink(t *testing.T, target, name string) {
	t.Helper()
	if err := os.Symlink(target, name); err != nil {
		t.Fatal(err)
	}
}

func TestParseVolume(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want Volume
		err  bool
	}{
		{in: "/a:/b", want: Volume{Source: "/a", Destination: "/b"}},
		{in: "/a/:/b/c/../d:ro", want: Volume{Source: "/a", Destination: "/b/d", ReadOnly: true}},
		{in: "/a:/b:rw", want: Volume{Source: "/a", Destination: "/b"}},
		{in: "data:/b", err: true},
		{in: "/a:b", err: true},
		{in: "/a:/", err: true},
		{in: "/a:/b:rx", err: true},
		{in: "/a", err: true},
		{in: "/a:/b:ro:z", err: true},
	}
	for _, tt := range tests {
		got, err := ParseVolume(tt.in)
		if tt.err {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("ParseVolume(%q) = %+v, %v, want invalid argument", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseVolume(%q) = %+v, %v, want %+v", tt.in, got, err, tt.want)
		}
	}
}
