package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/containerd/errdefs"
	"github.com/spf13/cobra"

	"github.com/sigil-project/sigil/runtime/images"
	"github.com/sigil-project/sigil/runtime/reference"
	"github.com/sigil-project/sigil/signing/verdicts"
)

func newImagesCommand(a *app) *cobra.Command {
	var quiet, digests bool
	cmd := &cobra.Command{
		Use:   "images",
		Short: "List the images held locally",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.stores(cmd.Context())
			if err != nil {
				return err
			}
			list, err := s.Images.List(cmd.Context())
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 3, ' ', 0)
			if !quiet {
				if digests {
					fmt.Fprintln(w, "REPOSITORY\tTAG\tDIGEST\tIMAGE ID\tPLATFORM\tCREATED\tSIZE")
				} else {
					fmt.Fprintln(w, "REPOSITORY\tTAG\tIMAGE ID\tPLATFORM\tCREATED\tSIZE")
				}
			}
			for _, img := range list {
				id := img.ID().Encoded()[:12]
				if quiet {
					fmt.Fprintln(w, id)
					continue
				}
				repo, tag := splitName(img.Name)
				if digests {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", repo, tag, img.Target.Digest, id, images.FormatPlatform(img.Platform), humanAge(img.Created), humanSize(img.Size()))
				} else {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", repo, tag, id, images.FormatPlatform(img.Platform), humanAge(img.Created), humanSize(img.Size()))
				}
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "only show image IDs")
	cmd.Flags().BoolVar(&digests, "digests", false, "show the digest each name resolved to")
	return cmd
}

func newImageCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "image", Short: "Manage images: rm, import, export"}
	cmd.AddCommand(newImageRmCommand(a), newImageImportCommand(a), newImageExportCommand(a))
	return cmd
}

func newImageRmCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "rm IMAGE...",
		Aliases: []string{"remove"},
		Short:   "Remove image names (layers go at the next 'sigil gc')",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			s, err := a.stores(ctx)
			if err != nil {
				return err
			}
			var failed []string
			for _, arg := range args {
				found, err := lookupImages(ctx, s.Images, arg)
				if err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "sigil: %v\n", err)
					failed = append(failed, arg)
					continue
				}
				for _, img := range found {
					if err := s.Images.Delete(ctx, img.Name); err != nil && !errdefs.IsNotFound(err) {
						return err
					}
					fmt.Fprintf(cmd.OutOrStdout(), "Untagged: %s\n", img.Name)
				}
			}
			if len(failed) > 0 {
				return fmt.Errorf("could not remove: %s", strings.Join(failed, ", "))
			}
			return nil
		},
	}
}

func newGCCommand(a *app) *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Remove content and snapshots that no image or container uses",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.stores(cmd.Context())
			if err != nil {
				return err
			}
			rep, err := s.GC(cmd.Context(), dryRun)
			if err != nil {
				return err
			}
			if !dryRun {
				// A verdict is cheap to recompute; a week keeps the ones
				// in use warm and bounds the directory.
				if err := verdicts.Prune(filepath.Join(a.opts.Root, "verdicts"), 7*24*time.Hour, time.Now()); err != nil {
					return err
				}
			}
			verb := "Removed"
			if dryRun {
				verb = "Would remove"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %d blobs (%s) and %d layer snapshots; kept %d blobs and %d snapshots in use.\n",
				verb, len(rep.Blobs), humanSize(rep.BlobBytes), len(rep.Snapshots), rep.KeptBlobs, rep.KeptLayers)
			return nil
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "only report what would be removed")
	return cmd
}

func splitName(name string) (repo, tag string) {
	if i := strings.LastIndex(name, "@"); i >= 0 {
		return name[:i], "<none>"
	}
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		return name[:i], name[i+1:]
	}
	return name, "<none>"
}

func humanSize(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%cB", float64(n)/float64(div), "kMGTPE"[exp])
}

func humanAge(t time.Time) string {
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d minutes ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d hours ago", int(d.Hours()))
	default:
		return fmt.Sprintf("%d days ago", int(d.Hours()/24))
	}
}

// lookupImages returns the stored images that arg names: as a normalised
// reference when it parses as one (busybox is docker.io/library/busybox:latest),
// else as given.
func lookupImages(ctx context.Context, imgs *images.Store, arg string) ([]*images.Image, error) {
	key := arg
	if r, err := reference.Parse(arg); err == nil {
		key = r.String()
	}
	return imgs.Lookup(ctx, key)
}
