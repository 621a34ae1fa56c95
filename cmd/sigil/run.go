package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/containerd/errdefs"
	"github.com/spf13/cobra"

	"github.com/sigil-project/sigil/runtime/container"
	"github.com/sigil-project/sigil/runtime/pod"
	"github.com/sigil-project/sigil/runtime/snapshots"
	"github.com/sigil-project/sigil/runtime/spec"
)

type runFlags struct {
	fetch                            fetchOptions
	rm, detach, interactive, tty     bool
	readOnly                         bool
	name, workdir, user, entrypoint  string
	hostname, memory, network, pull  string
	entrypointSet                    bool
	env, envFiles, volumes, groupAdd []string
	cpus                             float64
	pidsLimit                        int64
}

func newRunCommand(a *app) *cobra.Command {
	var f runFlags
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
			f.entrypointSet = cmd.Flags().Changed("entrypoint")
			return a.run(cmd, f, args[0], args[1:])
		},
	}
	cmd.Flags().SetInterspersed(false) // flags after IMAGE belong to the command
	fl := cmd.Flags()
	f.fetch.register(cmd)
	fl.BoolVar(&f.rm, "rm", false, "remove the container when it exits")
	fl.BoolVarP(&f.detach, "detach", "d", false, "run in the background under a monitor and print the container ID")
	fl.BoolVarP(&f.interactive, "interactive", "i", false, "keep stdin open and connect it")
	fl.BoolVarP(&f.tty, "tty", "t", false, "allocate a pseudo-terminal")
	fl.StringVar(&f.name, "name", "", "container name (default: the ID's first 12 characters)")
	fl.StringArrayVarP(&f.env, "env", "e", nil, "set an environment variable KEY=VALUE (KEY alone: take it from this environment)")
	fl.StringArrayVar(&f.envFiles, "env-file", nil, "read KEY=VALUE lines from a file")
	fl.StringArrayVarP(&f.volumes, "volume", "v", nil, "bind mount HOST:CONTAINER[:ro]")
	fl.StringVarP(&f.workdir, "workdir", "w", "", "working directory inside the container")
	fl.StringVarP(&f.user, "user", "u", "", "user: UID[:GID] or NAME[:GROUP]")
	fl.StringArrayVar(&f.groupAdd, "group-add", nil, "additional group (name or GID)")
	fl.StringVar(&f.entrypoint, "entrypoint", "", "override the image's entrypoint (and drop its command)")
	fl.StringVar(&f.hostname, "hostname", "", "hostname (default: the ID's first 12 characters)")
	fl.StringVarP(&f.memory, "memory", "m", "", "memory limit, e.g. 32m or 1g")
	fl.Float64Var(&f.cpus, "cpus", 0, "CPUs' worth of time, e.g. 0.5")
	fl.Int64Var(&f.pidsLimit, "pids-limit", 0, "maximum number of processes")
	fl.BoolVar(&f.readOnly, "read-only", false, "mount the root filesystem read-only (/tmp stays writable)")
	fl.StringVar(&f.network, "net", "none", "network: none (own namespace with loopback only) or host")
	fl.StringVar(&f.pull, "pull", "missing", "when to fetch: missing, always or never")
	return cmd
}

func (a *app) run(cmd *cobra.Command, f runFlags, ref string, args []string) error {
	ctx := cmd.Context()
	opts, err := f.runOptions(args)
	if err != nil {
		return err
	}
	var network pod.Network
	switch f.network {
	case "none", "":
		network = pod.NetworkNone
	case "host":
		network = pod.NetworkHost
	default:
		return fmt.Errorf("--net %q: want none or host (CNI bridge networks come with the CRI)", f.network)
	}
	pp := pullPolicy(f.pull)
	if pp != pullMissing && pp != pullAlways && pp != pullNever {
		return fmt.Errorf("--pull %q: want missing, always or never", f.pull)
	}
	img, err := a.imageForRun(ctx, ref, pp, f.fetch, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	a.logger.Debug("image ready", "ref", img.Name, "digest", img.Target.Digest)
	stores, err := a.stores(ctx)
	if err != nil {
		return err
	}
	config, err := readImageConfig(ctx, stores, img)
	if err != nil {
		return err
	}
	mgr, err := a.containers()
	if err != nil {
		return err
	}
	id := container.NewID()
	var snapOpts []snapshots.PrepareOption
	if f.rm {
		snapOpts = append(snapOpts, snapshots.WithVolatile())
	}
	rootfs, err := stores.Snapshots.Prepare(ctx, id, img.ChainIDs(), snapOpts...)
	if err != nil {
		return err
	}
	co := container.CreateOptions{
		ID:          id,
		Name:        f.name,
		ImageRef:    img.Name,
		ImageDigest: img.Target.Digest,
		Image:       config.Config,
		Rootfs:      rootfs,
		Run:         opts,
		Stdin:       f.interactive,
		AutoRemove:  f.rm,
		Network:     network,
		OwnedDirs:   []string{stores.Snapshots.ActiveDir(id)},
	}
	// Until the container has a record, the snapshot is ours to remove;
	// after, it goes with the container (OwnedDirs).
	releaseSnapshot := func() {
		if _, err := mgr.Inspect(ctx, id); errdefs.IsNotFound(err) {
			stores.Snapshots.Remove(context.WithoutCancel(ctx), id)
		}
	}
	if f.detach {
		id, err := mgr.Start(ctx, co)
		if err != nil {
			releaseSnapshot()
			return err
		}
		fmt.Fprintln(cmd.OutOrStdout(), id)
		return nil
	}
	if shim, err := a.shimPath(); err != nil {
		releaseSnapshot()
		return err
	} else if shim != "" {
		// Become the small runtime shim for the rest of the run, keeping
		// this process, its standard streams and its exit code: the
		// container's init is then re-executed from the shim, not from
		// the whole of sigil (see shim.go and cmd/sigil/shim). If the
		// exec fails, run the container from here instead.
		err := a.execShim(shim, container.RunRequest{Options: co, Stdin: f.interactive, MemoryLimit: f.memory}, mgr)
		a.logger.Warn("running the container without the runtime shim", "error", err)
	}
	stdio := container.IO{Stdout: cmd.OutOrStdout(), Stderr: cmd.ErrOrStderr()}
	if f.interactive {
		stdio.Stdin = cmd.InOrStdin()
	}
	// Run forwards SIGINT and SIGTERM to the container itself; the
	// context main cancels on SIGTERM must not stop it a second time.
	status, err := mgr.Run(context.WithoutCancel(ctx), co, stdio)
	if err != nil {
		releaseSnapshot()
		return err
	}
	if status.OOMKilled {
		limit := ""
		if f.memory != "" {
			limit = " (--memory " + f.memory + ")"
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "sigil: container was killed: out of memory%s; raise the limit with --memory\n", limit)
	}
	if status.Code != 0 {
		return exitError{code: status.Code}
	}
	return nil
}

// runOptions turns flags into the spec package's options.
func (f runFlags) runOptions(args []string) (spec.RunOptions, error) {
	o := spec.RunOptions{
		Args:      args,
		Workdir:   f.workdir,
		User:      f.user,
		GroupAdd:  f.groupAdd,
		Hostname:  f.hostname,
		Tty:       f.tty,
		CPUs:      f.cpus,
		PidsLimit: f.pidsLimit,
		ReadOnly:  f.readOnly,
	}
	if f.entrypointSet {
		o.OverrideEntrypoint = true
		if f.entrypoint != "" {
			o.Entrypoint = []string{f.entrypoint}
		}
	}
	if f.memory != "" {
		n, err := parseBytes(f.memory)
		if err != nil {
			return o, fmt.Errorf("--memory: %w", err)
		}
		o.Memory = n
	}
	for _, file := range f.envFiles {
		env, err := readEnvFile(file)
		if err != nil {
			return o, err
		}
		o.Env = append(o.Env, env...)
	}
	for _, e := range f.env {
		o.Env = append(o.Env, expandEnv(e))
	}
	for _, v := range f.volumes {
		vol, err := spec.ParseVolume(v)
		if err != nil {
			return o, err
		}
		o.Volumes = append(o.Volumes, vol)
	}
	return o, nil
}

// expandEnv takes a bare KEY's value from this environment, as docker does.
func expandEnv(e string) string {
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
		out = append(out, expandEnv(line))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("--env-file %s: %w", path, err)
	}
	return out, nil
}

// execShim replaces this process with the runtime shim running req. It
// returns only if that failed.
func (a *app) execShim(shim string, req container.RunRequest, mgr *container.Manager) error {
	path, err := mgr.WriteRunRequest(req)
	if err != nil {
		return err
	}
	a.logger.Debug("handing the run to the runtime shim", "shim", shim, "container_id", req.Options.ID)
	a.stopProfile()
	argv := []string{shim, container.RunCommand, "--root=" + a.opts.root, "--state=" + a.opts.state, "--log-level=" + a.opts.logLevel, path}
	err = syscall.Exec(shim, argv, os.Environ())
	os.Remove(path)
	return fmt.Errorf("run the runtime shim %s: %w", shim, err)
}
