package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sigil-project/sigil/runtime/pull"
	"github.com/sigil-project/sigil/runtime/reference"
	"github.com/sigil-project/sigil/runtime/transfer"
)

func newImageImportCommand(a *app) *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "import [flags] FILE",
		Short: "Import images from a docker-archive (docker save) or an oci-archive",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			verifier, err := a.verifier()
			if err != nil {
				return err
			}
			stores, err := a.stores(ctx)
			if err != nil {
				return err
			}
			tmp, err := a.scratchDir()
			if err != nil {
				return err
			}
			arc, err := transfer.OpenArchive(ctx, args[0], tmp)
			if err != nil {
				return err
			}
			defer arc.Close()
			if len(arc.Images) == 0 {
				return fmt.Errorf("import %s: the archive holds no image", args[0])
			}
			if name != "" {
				// One image may be listed once per name it has
				// (docker save IMG:1 IMG:latest); --name replaces them all.
				distinct := map[string]bool{}
				for _, im := range arc.Images {
					distinct[im.Tag] = true
				}
				if len(distinct) > 1 {
					return fmt.Errorf("import %s: --name given but the archive holds %d images", args[0], len(distinct))
				}
				arc.Images = arc.Images[:1]
			}
			puller := pull.New(stores.Content, stores.Images, stores.Snapshots, pull.WithVerifier(verifier), pull.WithLogger(a.logger))
			for _, im := range arc.Images {
				n := im.Name
				if name != "" {
					n = name
				}
				if n == "" {
					return fmt.Errorf("import %s: an image in it has no name; give one with --name", args[0])
				}
				ref, err := reference.Parse(n)
				if err != nil {
					return err
				}
				desc, b, err := im.Layout.Resolve(ctx, im.Tag)
				if err != nil {
					return err
				}
				img, err := puller.Pull(ctx, ref.String(), desc, b, im.Layout)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Imported %s (%s) from %s\n", img.Name, img.Target.Digest, arc.Format)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "name to record the image under (for an archive image without one)")
	return cmd
}

func newImageExportCommand(a *app) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "export [flags] IMAGE FILE",
		Short: "Export an image as a docker-archive (default, docker load reads it) or an oci-archive",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			stores, err := a.stores(ctx)
			if err != nil {
				return err
			}
			found, err := lookupImages(ctx, stores.Images, args[0])
			if err != nil {
				return err
			}
			if len(found) > 1 {
				return fmt.Errorf("%q matches %d images; give a full name", args[0], len(found))
			}
			f := transfer.Format(format)
			if format == "" {
				f = transfer.DockerArchive
				if strings.HasSuffix(args[1], ".oci.tar") {
					f = transfer.OCIArchive
				}
			}
			tmp, err := a.scratchDir()
			if err != nil {
				return err
			}
			if err := transfer.Export(ctx, stores.Content, found[0], args[1], f, tmp); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "Exported %s to %s (%s)\n", found[0].Name, args[1], f)
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "", "docker-archive or oci-archive (default: docker-archive, or oci-archive for a *.oci.tar file)")
	return cmd
}

// scratchDir is --root/tmp, made if needed: the scratch directory of
// import and export.
func (a *app) scratchDir() (string, error) {
	tmp := filepath.Join(a.opts.Root, "tmp")
	return tmp, os.MkdirAll(tmp, 0o700)
}
