package runcmd

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sigil-project/sigil/runtime/pod"
	"github.com/sigil-project/sigil/runtime/spec"
)

// FetchFlags are the flags fetch and run share.
type FetchFlags struct {
	Platform     string
	Quiet        bool
	MaxLayerSize string
}

// Register defines the fetch flags on fs.
func (o *FetchFlags) Register(fs *pflag.FlagSet) {
	fs.StringVar(&o.Platform, "platform", "", "platform to choose from a multi-platform image, os/arch[/variant] (default: this host's)")
	fs.BoolVarP(&o.Quiet, "quiet", "q", false, "no progress output")
	fs.StringVar(&o.MaxLayerSize, "max-layer-size", "", "refuse a layer that decompresses to more than this (default 64GiB), the guard against decompression bombs")
}

// Flags are run's flags.
type Flags struct {
	Fetch                            FetchFlags
	Rm, Detach, Interactive, TTY     bool
	ReadOnly                         bool
	Name, Workdir, User, Entrypoint  string
	Hostname, Memory, Network, Pull  string
	EntrypointSet                    bool
	Env, EnvFiles, Volumes, GroupAdd []string
	CPUs                             float64
	PidsLimit                        int64
}

// RunFunc carries out a parsed `run`: image is the IMAGE argument, args
// the command that follows it.
type RunFunc func(cmd *cobra.Command, f *Flags, image string, args []string) error

// NewCommand returns the run command, calling run once its flags are
// parsed.
func NewCommand(run RunFunc) *cobra.Command {
	var f Flags
	cmd := &cobra.Command{
		Use:   "run [flags] IMAGE [COMMAND [ARG...]]",
		Short: "Run a command in a new container, in a pod of its own",
		Long: `Run fetches IMAGE if it is not here (after the trust policy accepts it),
judges a stored image again by the current policy, and runs it in a new pod:
own PID, mount, cgroup, network, IPC and UTS namespaces, a pod cgroup with the
container's cgroup in it, docker's default capabilities and seccomp profile,
no_new_privs, masked /proc paths and a minimal /dev.

The exit code is the container's; 125 means sigil itself failed.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f.EntrypointSet = cmd.Flags().Changed("entrypoint")
			return run(cmd, &f, args[0], args[1:])
		},
	}
	cmd.Flags().SetInterspersed(false) // flags after IMAGE belong to the command
	fl := cmd.Flags()
	f.Fetch.Register(fl)
	fl.BoolVar(&f.Rm, "rm", false, "remove the container when it exits")
	fl.BoolVarP(&f.Detach, "detach", "d", false, "run in the background under a monitor and print the container ID")
	fl.BoolVarP(&f.Interactive, "interactive", "i", false, "keep stdin open and connect it")
	fl.BoolVarP(&f.TTY, "tty", "t", false, "allocate a pseudo-terminal")
	fl.StringVar(&f.Name, "name", "", "container name (default: the ID's first 12 characters)")
	fl.StringArrayVarP(&f.Env, "env", "e", nil, "set an environment variable KEY=VALUE (KEY alone: take it from this environment)")
	fl.StringArrayVar(&f.EnvFiles, "env-file", nil, "read KEY=VALUE lines from a file")
	fl.StringArrayVarP(&f.Volumes, "volume", "v", nil, "bind mount HOST:CONTAINER[:ro]")
	fl.StringVarP(&f.Workdir, "workdir", "w", "", "working directory inside the container")
	fl.StringVarP(&f.User, "user", "u", "", "user: UID[:GID] or NAME[:GROUP]")
	fl.StringArrayVar(&f.GroupAdd, "group-add", nil, "additional group (name or GID)")
	fl.StringVar(&f.Entrypoint, "entrypoint", "", "override the image's entrypoint (and drop its command)")
	fl.StringVar(&f.Hostname, "hostname", "", "hostname (default: the ID's first 12 characters)")
	fl.StringVarP(&f.Memory, "memory", "m", "", "memory limit, e.g. 32m or 1g")
	fl.Float64Var(&f.CPUs, "cpus", 0, "CPUs' worth of time, e.g. 0.5")
	fl.Int64Var(&f.PidsLimit, "pids-limit", 0, "maximum number of processes")
	fl.BoolVar(&f.ReadOnly, "read-only", false, "mount the root filesystem read-only (/tmp stays writable)")
	fl.StringVar(&f.Network, "net", "none", "network: none (own namespace with loopback only) or host")
	fl.StringVar(&f.Pull, "pull", string(PullMissing), "when to fetch: missing, always or never")
	return cmd
}

// PullPolicy is run's --pull: when to fetch.
type PullPolicy string

const (
	PullMissing PullPolicy = "missing"
	PullAlways  PullPolicy = "always"
	PullNever   PullPolicy = "never"
)

// Checked is what the flags say once checked: everything that can be
// wrong with them is found before an image is looked at.
type Checked struct {
	Options spec.RunOptions
	Network pod.Network
	Pull    PullPolicy
}

// Check turns the flags and the command after IMAGE into the spec
// package's options, the pod's network and the pull policy.
func (f *Flags) Check(args []string) (Checked, error) {
	var c Checked
	switch f.Network {
	case "none", "":
		c.Network = pod.NetworkNone
	case "host":
		c.Network = pod.NetworkHost
	default:
		return c, fmt.Errorf("--net %q: want none or host (CNI bridge networks come with the CRI)", f.Network)
	}
	c.Pull = PullPolicy(f.Pull)
	if c.Pull != PullMissing && c.Pull != PullAlways && c.Pull != PullNever {
		return c, fmt.Errorf("--pull %q: want missing, always or never", f.Pull)
	}
	o := spec.RunOptions{
		Args:      args,
		Workdir:   f.Workdir,
		User:      f.User,
		GroupAdd:  f.GroupAdd,
		Hostname:  f.Hostname,
		Tty:       f.TTY,
		CPUs:      f.CPUs,
		PidsLimit: f.PidsLimit,
		ReadOnly:  f.ReadOnly,
	}
	if f.EntrypointSet {
		o.OverrideEntrypoint = true
		if f.Entrypoint != "" {
			o.Entrypoint = []string{f.Entrypoint}
		}
	}
	if f.Memory != "" {
		n, err := ParseBytes(f.Memory)
		if err != nil {
			return c, fmt.Errorf("--memory: %w", err)
		}
		o.Memory = n
	}
	for _, file := range f.EnvFiles {
		env, err := readEnvFile(file)
		if err != nil {
			return c, err
		}
		o.Env = append(o.Env, env...)
	}
	for _, e := range f.Env {
		o.Env = append(o.Env, ExpandEnv(e))
	}
	for _, v := range f.Volumes {
		vol, err := spec.ParseVolume(v)
		if err != nil {
			return c, err
		}
		o.Volumes = append(o.Volumes, vol)
	}
	c.Options = o
	return c, nil
}

// ExpandEnv takes a bare KEY's value from this environment, as docker does.
func ExpandEnv(e string) string {
	if strings.Contains(e, "=") {
		return e
	}
	if v, ok := os.LookupEnv(e); ok {
		return e + "=" + v
	}
	return e
}

// readEnvFile reads docker's env-file format: KEY=VALUE lines, # comments,
// blank lines, and bare KEYs taken from this environment.
func readEnvFile(path string) ([]string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--env-file: %w", err)
	}
	defer fh.Close()
	var out []string
	sc := bufio.NewScanner(fh)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, _, _ := strings.Cut(line, "=")
		if key == "" || strings.ContainsAny(key, " \t") {
			return nil, fmt.Errorf("--env-file %s line %d: %q is not KEY=VALUE", path, n, line)
		}
		out = append(out, ExpandEnv(line))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("--env-file %s: %w", path, err)
	}
	return out, nil
}
