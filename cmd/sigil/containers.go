package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/containerd/errdefs"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/sigil-project/sigil/cmd/sigil/internal/runcmd"
	"github.com/sigil-project/sigil/runtime/container"
)

// containers is the container manager over --root and --state.
// Detached containers' monitors run the embedded runtime shim when this
// build has one (see shim.go).
func (a *app) containers() (*container.Manager, error) {
	opts := []container.Option{container.WithLogger(a.logger)}
	shim, err := a.shimPath()
	if err != nil {
		return nil, err
	}
	if shim != "" {
		opts = append(opts, container.WithExecutable(shim))
	}
	return container.New(a.opts.Root, a.opts.State, opts...)
}

func newPsCommand(a *app) *cobra.Command {
	var all, quiet bool
	cmd := &cobra.Command{
		Use:   "ps [flags]",
		Short: "List containers (running ones; -a for all)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			mgr, err := a.containers()
			if err != nil {
				return err
			}
			list, err := mgr.List(cmd.Context())
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 3, ' ', 0)
			if !quiet {
				fmt.Fprintln(w, "CONTAINER ID\tIMAGE\tCOMMAND\tCREATED\tSTATUS\tNAMES")
			}
			for _, c := range list {
				if !all && !c.Running() {
					continue
				}
				if quiet {
					fmt.Fprintln(w, c.ID[:12])
					continue
				}
				command := strings.Join(c.Command, " ")
				if len(command) > 30 {
					command = command[:29] + "…"
				}
				fmt.Fprintf(w, "%s\t%s\t%q\t%s\t%s\t%s\n", c.ID[:12], c.ImageRef, command, humanAge(c.CreatedAt), statusText(c), c.Name)
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "show all containers, not only running ones")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "only show IDs")
	return cmd
}

// statusText renders a status as docker ps does.
func statusText(c container.Info) string {
	switch c.Status {
	case container.StatusRunning:
		return "Up " + humanDuration(time.Since(c.StartedAt))
	case container.StatusExited:
		s := fmt.Sprintf("Exited (%d) %s ago", c.ExitCode, humanDuration(time.Since(c.FinishedAt)))
		if c.OOMKilled {
			s += " (OOM killed)"
		}
		return s
	default:
		if c.Error != "" {
			return "Created (start failed)"
		}
		return "Created"
	}
}

func humanDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return "less than a second"
	case d < time.Minute:
		return fmt.Sprintf("%d seconds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d minutes", int(d.Minutes()))
	default:
		return fmt.Sprintf("%d hours", int(d.Hours()))
	}
}

func newLogsCommand(a *app) *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs [flags] CONTAINER",
		Short: "Print a container's output (-f: follow until it exits)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			mgr, err := a.containers()
			if err != nil {
				return err
			}
			return mgr.Logs(cmd.Context(), args[0], follow, cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new output until the container exits")
	return cmd
}

func newExecCommand(a *app) *cobra.Command {
	var o container.ExecOptions
	var env []string
	cmd := &cobra.Command{
		Use:   "exec [flags] CONTAINER COMMAND [ARG...]",
		Short: "Run a command in a running container",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			mgr, err := a.containers()
			if err != nil {
				return err
			}
			o.Args = args[1:]
			for _, e := range env {
				o.Env = append(o.Env, runcmd.ExpandEnv(e))
			}
			stdio := container.IO{Stdout: cmd.OutOrStdout(), Stderr: cmd.ErrOrStderr()}
			if o.Stdin {
				stdio.Stdin = cmd.InOrStdin()
			}
			if o.Tty && !term.IsTerminal(int(os.Stdin.Fd())) {
				fmt.Fprintln(cmd.ErrOrStderr(), "sigil: -t given but stdin is not a terminal; the terminal size will not follow")
			}
			// Exec forwards signals to the process itself (see run).
			code, err := mgr.Exec(context.WithoutCancel(cmd.Context()), args[0], o, stdio)
			if err != nil {
				return err
			}
			if code != 0 {
				return runcmd.ExitError{Code: code}
			}
			return nil
		},
	}
	cmd.Flags().SetInterspersed(false)
	cmd.Flags().BoolVarP(&o.Stdin, "interactive", "i", false, "connect stdin")
	cmd.Flags().BoolVarP(&o.Tty, "tty", "t", false, "allocate a pseudo-terminal")
	cmd.Flags().StringVarP(&o.User, "user", "u", "", "user: UID[:GID] or NAME[:GROUP]")
	cmd.Flags().StringVarP(&o.Cwd, "workdir", "w", "", "working directory")
	cmd.Flags().StringArrayVarP(&env, "env", "e", nil, "set an environment variable")
	return cmd
}

func newStopCommand(a *app) *cobra.Command {
	var seconds int
	cmd := &cobra.Command{
		Use:   "stop [flags] CONTAINER...",
		Short: "Stop containers: SIGTERM, then SIGKILL after the timeout",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.eachContainer(cmd, args, func(mgr *container.Manager, ref string) error {
				return mgr.Stop(cmd.Context(), ref, time.Duration(seconds)*time.Second)
			})
		},
	}
	cmd.Flags().IntVarP(&seconds, "time", "t", 10, "seconds to wait before SIGKILL")
	return cmd
}

func newRmCommand(a *app) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "rm [flags] CONTAINER...",
		Short: "Remove containers (-f: stop running ones first)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.eachContainer(cmd, args, func(mgr *container.Manager, ref string) error {
				return mgr.Remove(cmd.Context(), ref, force)
			})
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "kill and remove a running container")
	return cmd
}

// eachContainer applies fn to every argument, printing each one done, as
// docker does, and fails if any failed.
func (a *app) eachContainer(cmd *cobra.Command, refs []string, fn func(*container.Manager, string) error) error {
	mgr, err := a.containers()
	if err != nil {
		return err
	}
	var failed []string
	for _, ref := range refs {
		if err := fn(mgr, ref); err != nil {
			if len(refs) == 1 {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "sigil: %v\n", err)
			failed = append(failed, ref)
			continue
		}
		fmt.Fprintln(cmd.OutOrStdout(), ref)
	}
	if len(failed) > 0 {
		return fmt.Errorf("failed for: %s", strings.Join(failed, ", "))
	}
	return nil
}

// inspectState is the docker-compatible State block of sigil inspect.
type inspectState struct {
	Status     string
	Running    bool
	Pid        int
	ExitCode   int
	OOMKilled  bool
	Error      string
	StartedAt  string
	FinishedAt string
}

type inspectOutput struct {
	ID          string `json:"Id"`
	Name        string
	Created     string
	Image       string
	ImageDigest string
	PodID       string
	Command     []string
	LogPath     string
	State       inspectState
	Config      any
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func newInspectCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect CONTAINER...",
		Short: "Show containers' records as JSON (exit status, times, OOM kill, options)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			mgr, err := a.containers()
			if err != nil {
				return err
			}
			var out []inspectOutput
			for _, ref := range args {
				c, err := mgr.Inspect(cmd.Context(), ref)
				if err != nil {
					if errdefs.IsNotFound(err) {
						return fmt.Errorf("%w; 'sigil ps -a' lists containers", err)
					}
					return err
				}
				out = append(out, inspectOutput{
					ID: c.ID, Name: c.Name, Created: formatTime(c.CreatedAt), Image: c.ImageRef,
					ImageDigest: c.ImageDigest.String(), PodID: c.PodID, Command: c.Command, LogPath: c.LogPath,
					State: inspectState{
						Status: string(c.Status), Running: c.Running(), Pid: c.Pid, ExitCode: c.ExitCode,
						OOMKilled: c.OOMKilled, Error: c.Error, StartedAt: formatTime(c.StartedAt), FinishedAt: formatTime(c.FinishedAt),
					},
					Config: c.Options,
				})
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "    ")
			return enc.Encode(out)
		},
	}
}
