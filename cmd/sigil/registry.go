package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/term"

	"github.com/sigil-project/sigil/auth"
	"github.com/sigil-project/sigil/registry"
	"github.com/sigil-project/sigil/registry/config"
	"github.com/sigil-project/sigil/runtime/atomicfile"
)

// defaultRegistryConfig is where `sigil registry` looks without --config.
const defaultRegistryConfig = "/etc/sigil/registry.yaml"

func newRegistryCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "registry",
		Short: "Run Sigil's registry: distribution/v3 with token auth (LDAP, htpasswd, robots), trust enforcement, referrers and audit",
	}
	cmd.AddCommand(newRegistryServeCommand(a), newRegistryGCCommand(a), newRegistryRobotCommand(a), newRegistryHtpasswdCommand(a))
	return cmd
}

// loadRegistryConfig reads and checks the registry configuration; errors
// name the file, the key and what is wrong.
func loadRegistryConfig(path string) (*config.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("registry configuration: %w", err)
	}
	return config.Parse(path, data)
}

// registryLogger is the process logger the configuration asks for.
func registryLogger(w io.Writer, cfg *config.Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level)) // validated by config.Parse
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func newRegistryServeCommand(_ *app) *cobra.Command {
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "serve --config FILE",
		Short: "Serve the registry until SIGTERM or SIGINT",
		Long: `Serve the registry: /v2/ (distribution), /auth/token (Docker token issuer),
/healthz and /metrics on http.addr. See Documentation/registry.md for the
configuration file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadRegistryConfig(cfgPath)
			if err != nil {
				return err
			}
			logger := registryLogger(cmd.ErrOrStderr(), cfg)
			registry.RouteDistributionLogs(logger, cfg.Log.Level == "debug")
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			reg, err := registry.New(ctx, cfg, registry.WithLogger(logger))
			if err != nil {
				return fmt.Errorf("%s: %w", cfgPath, err)
			}
			defer reg.Close()
			if err := reg.ListenAndServe(ctx); err != nil {
				return fmt.Errorf("%s: %w", cfgPath, err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", defaultRegistryConfig, "registry configuration file (YAML)")
	return cmd
}

func newRegistryGCCommand(_ *app) *cobra.Command {
	var cfgPath string
	var opts registry.GCOptions
	var quiet bool
	cmd := &cobra.Command{
		Use:   "gc [--dry-run] [--delete-untagged] --config FILE",
		Short: "Remove blobs nothing uses, keeping those of every manifest, signature and referrer; rebuild the referrers index",
		Long: `Remove the blobs no kept manifest uses and rebuild the referrers index.

Every manifest is kept unless --delete-untagged is given; then manifests no
tag reaches are removed, except the platform manifests of a kept index and
the referrers (signatures, attestations, SBOMs) of a kept manifest.

Run it with the registry stopped, or with every replica in read-only mode
(storage.maintenance.readonly.enabled: true): a push during gc can lose
blobs, as with distribution's garbage-collect.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadRegistryConfig(cfgPath)
			if err != nil {
				return err
			}
			registry.RouteDistributionLogs(registryLogger(cmd.ErrOrStderr(), cfg), false)
			rep, err := registry.GarbageCollect(cmd.Context(), cfg, opts)
			if rep != nil {
				printGCReport(cmd.OutOrStdout(), rep, opts.DryRun, quiet)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfgPath, "config", defaultRegistryConfig, "registry configuration file (YAML)")
	f.BoolVar(&opts.DryRun, "dry-run", false, "report what would be removed; change nothing")
	f.BoolVar(&opts.DeleteUntagged, "delete-untagged", false, "also remove manifests no tag reaches (keeping index children and referrers of kept manifests)")
	f.BoolVarP(&quiet, "quiet", "q", false, "print the summary only")
	return cmd
}

func printGCReport(w io.Writer, rep *registry.GCReport, dryRun, quiet bool) {
	verb := "removed"
	if dryRun {
		verb = "would remove"
	}
	if !quiet {
		for _, m := range rep.DeletedManifests {
			fmt.Fprintf(w, "%s manifest %s@%s\n", verb, m.Repository, m.Digest)
		}
		for _, l := range rep.DeletedLinks {
			fmt.Fprintf(w, "%s blob link %s@%s\n", verb, l.Repository, l.Digest)
		}
		for _, b := range rep.DeletedBlobs {
			fmt.Fprintf(w, "%s blob %s\n", verb, b)
		}
	}
	fmt.Fprintf(w, "%d repositories, %d manifests: %d kept, %s %d; blobs: %d kept, %s %d; referrers index: %d entries added, %d removed\n",
		rep.Repositories, rep.Manifests, rep.ManifestsKept, verb, len(rep.DeletedManifests),
		rep.BlobsKept, verb, len(rep.DeletedBlobs), rep.IndexAdded, rep.IndexRemoved)
}

// robotStore opens the robot accounts of the configuration (or --robots).
func robotStore(cfgPath, robotsPath string) (*auth.Robots, error) {
	if robotsPath == "" {
		cfg, err := loadRegistryConfig(cfgPath)
		if err != nil {
			return nil, err
		}
		robotsPath = cfg.Auth.Robots.Path
	}
	return auth.OpenRobots(robotsPath)
}

func newRegistryRobotCommand(_ *app) *cobra.Command {
	var cfgPath, robotsPath string
	cmd := &cobra.Command{
		Use:   "robot",
		Short: "Manage robot accounts for CI: named, scoped to repositories and actions, revocable",
		Long: `Robot accounts log in as robot$NAME with the secret "robot create" prints
once. Their scope (repository patterns and actions) is their own; access
rules may grant them more (robots: [NAME]). A running registry sees
changes at the robot's next login; "rm" revokes at once.`,
	}
	// Each subcommand takes the store flags itself, so its help lists them.
	storeFlags := func(c *cobra.Command) {
		c.Flags().StringVar(&cfgPath, "config", defaultRegistryConfig, "registry configuration file (YAML), for auth.robots.path")
		c.Flags().StringVar(&robotsPath, "robots", "", "robot store file (default: auth.robots.path of --config)")
	}

	var repos, actions []string
	var asJSON bool
	create := &cobra.Command{
		Use:   "create NAME --repository PATTERN... --action ACTION...",
		Short: "Create a robot account and print its secret (shown only once)",
		Example: `  sigil registry robot create ci --repository 'team-a/**' --action pull,push
  docker login -u 'robot$ci' --password-stdin registry.example.org`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(repos) == 0 || len(actions) == 0 {
				return fmt.Errorf("robot create %s: give --repository and --action: a robot without them can do nothing", args[0])
			}
			store, err := robotStore(cfgPath, robotsPath)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			secret, err := store.CreateRobot(ctx, args[0], repos, actions)
			if err != nil {
				return err
			}
			name := auth.RobotPrefix + strings.TrimPrefix(args[0], auth.RobotPrefix)
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]string{"username": name, "secret": secret})
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "robot %s created; its secret follows (it is not stored and cannot be shown again):\n", name)
			fmt.Fprintln(cmd.OutOrStdout(), secret)
			return nil
		},
	}
	create.Flags().StringSliceVar(&repos, "repository", nil, `repository patterns the robot may use ("team-a/**", "public/app")`)
	create.Flags().StringSliceVar(&actions, "action", nil, "actions on them: pull, push, delete")
	create.Flags().BoolVar(&asJSON, "json", false, `print {"username": ..., "secret": ...}`)

	var listJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List robot accounts (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			store, err := robotStore(cfgPath, robotsPath)
			if err != nil {
				return err
			}
			robots, err := store.ListRobots(cmd.Context())
			if err != nil {
				return err
			}
			if listJSON {
				if robots == nil {
					robots = []auth.Robot{}
				}
				return json.NewEncoder(cmd.OutOrStdout()).Encode(robots)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "USERNAME\tREPOSITORIES\tACTIONS\tCREATED")
			for _, r := range robots {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Username(), strings.Join(r.Repositories, ","), strings.Join(r.Actions, ","), r.Created.Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	list.Flags().BoolVar(&listJSON, "json", false, "print JSON")

	rm := &cobra.Command{
		Use:   "rm NAME...",
		Short: "Remove robot accounts; their secrets stop working at once",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, err := robotStore(cfgPath, robotsPath)
			if err != nil {
				return err
			}
			for _, name := range args {
				if err := store.RemoveRobot(cmd.Context(), name); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "robot %s removed\n", auth.RobotPrefix+strings.TrimPrefix(name, auth.RobotPrefix))
			}
			return nil
		},
	}
	for _, c := range []*cobra.Command{create, list, rm} {
		storeFlags(c)
		cmd.AddCommand(c)
	}
	return cmd
}

func newRegistryHtpasswdCommand(_ *app) *cobra.Command {
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "htpasswd FILE USER",
		Short: "Add or change a user of an htpasswd file (bcrypt), the registry's embedded login default",
		Long: `Write USER's bcrypt hash into FILE (created with mode 0600), replacing the
user's line if there is one: what "htpasswd -B FILE USER" does, for hosts
without apache2-utils. The password is read from standard input with
--password-stdin, else asked twice on the terminal. A running registry
reads the file again when it changes.`,
		Example: `  echo "$PASSWORD" | sigil registry htpasswd --password-stdin /etc/sigil/htpasswd admin`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			file, user := args[0], args[1]
			if user == "" || strings.ContainsAny(user, ":\n\r") || strings.HasPrefix(user, auth.RobotPrefix) {
				return fmt.Errorf("htpasswd: user name %q: must be non-empty, without ':' or line breaks, and not start with %q (robot accounts: sigil registry robot create)", user, auth.RobotPrefix)
			}
			var pw []byte
			if passwordStdin {
				b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 4096))
				if err != nil {
					return fmt.Errorf("htpasswd: reading the password: %w", err)
				}
				pw = []byte(strings.TrimRight(string(b), "\r\n"))
			} else {
				var err error
				if pw, err = askPassword(cmd.ErrOrStderr(), "Password for "+user); err != nil {
					return fmt.Errorf("htpasswd: %w", err)
				}
			}
			if len(pw) == 0 {
				return errors.New("htpasswd: empty password refused")
			}
			hash, err := bcrypt.GenerateFromPassword(pw, bcrypt.DefaultCost)
			if err != nil {
				return fmt.Errorf("htpasswd: %w", err)
			}
			old, err := os.ReadFile(file)
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("htpasswd: %w", err)
			}
			var out []string
			for _, line := range strings.Split(strings.TrimRight(string(old), "\n"), "\n") {
				if line != "" && !strings.HasPrefix(line, user+":") {
					out = append(out, line)
				}
			}
			out = append(out, user+":"+string(hash))
			// Written aside and renamed: the registry never reads half a file.
			if err := atomicfile.WriteFile(file, []byte(strings.Join(out, "\n")+"\n"), 0o600); err != nil {
				return fmt.Errorf("htpasswd: %w", err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "user %s written to %s\n", user, file)
			return nil
		},
	}
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input")
	return cmd
}

// askPassword reads a new password twice on the terminal.
func askPassword(stderr io.Writer, prompt string) ([]byte, error) {
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return nil, errors.New("no password: use --password-stdin, or run on a terminal to be asked")
	}
	fmt.Fprint(stderr, prompt+": ")
	pw, err := term.ReadPassword(fd)
	fmt.Fprintln(stderr)
	if err != nil {
		return nil, err
	}
	fmt.Fprint(stderr, prompt+" (again): ")
	again, err := term.ReadPassword(fd)
	fmt.Fprintln(stderr)
	if err != nil {
		return nil, err
	}
	if string(pw) != string(again) {
		return nil, errors.New("the passwords do not match")
	}
	return pw, nil
}
