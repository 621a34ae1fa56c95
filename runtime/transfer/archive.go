package transfer

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/sigil-project/sigil/runtime/content"
	"github.com/sigil-project/sigil/runtime/images"
)

// Format names an archive format.
type Format string

const (
	DockerArchive Format = "docker-archive"
	OCIArchive    Format = "oci-archive"
)

// Imported is one image found in an archive, ready to be pulled from its
// layout by the caller.
type Imported struct {
	Name   string // the name the archive gives it; empty if it has none
	Tag    string // its ref.name inside Layout
	Layout *Layout
}

// Archive is an unpacked archive's images; Close removes the scratch copy.
type Archive struct {
	Format  Format
	Images  []Imported
	scratch string
	layout  *Layout
}

// Close releases the layout and removes the scratch directory.
func (a *Archive) Close() error {
	if a.layout != nil {
		a.layout.Close()
	}
	return os.RemoveAll(a.scratch)
}

// maxArchiveEntry bounds one file in an archive (a layer), so a corrupt
// archive cannot fill the disk with a single entry.
const maxArchiveEntry = 64 << 30

// OpenArchive unpacks a docker-archive or oci-archive file into scratch
// space under tmpDir and lists its images. The format is detected: an
// archive with manifest.json is read as docker-archive, one with an
// oci-layout marker as oci-archive.
func OpenArchive(ctx context.Context, file, tmpDir string) (*Archive, error) {
	scratch, err := os.MkdirTemp(tmpDir, "import-")
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", file, err)
	}
	a := &Archive{scratch: scratch}
	if err := a.open(ctx, file); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

func (a *Archive) open(ctx context.Context, file string) error {
	raw := filepath.Join(a.scratch, "raw")
	if err := extractTar(ctx, file, raw); err != nil {
		return fmt.Errorf("import %s: %w", file, err)
	}
	if _, err := os.Stat(filepath.Join(raw, "manifest.json")); err == nil {
		return a.openDocker(raw, file)
	}
	if _, err := os.Stat(filepath.Join(raw, ocispec.ImageLayoutFile)); err == nil {
		return a.openOCI(raw, file)
	}
	return fmt.Errorf("import %s: neither a docker-archive (no manifest.json) nor an oci-archive (no oci-layout): %w", file, errdefs.ErrInvalidArgument)
}

func (a *Archive) openOCI(dir, file string) error {
	a.Format = OCIArchive
	l, err := OpenLayout(dir)
	if err != nil {
		return fmt.Errorf("import %s: %w", file, err)
	}
	a.layout = l
	idx, err := l.Index()
	if err != nil {
		return fmt.Errorf("import %s: %w", file, err)
	}
	for _, m := range idx.Manifests {
		tag := m.Annotations[ocispec.AnnotationRefName]
		n := m.Annotations["io.containerd.image.name"]
		if n == "" {
			n = tag
		}
		a.Images = append(a.Images, Imported{Name: n, Tag: tag, Layout: l})
	}
	return nil
}

// openDocker converts a docker-archive into an OCI layout with
// go-containerregistry, which knows every docker save variant.
func (a *Archive) openDocker(dir, file string) error {
	a.Format = DockerArchive
	opener := func() (io.ReadCloser, error) { return os.Open(file) }
	entries, err := tarball.LoadManifest(opener)
	if err != nil {
		return fmt.Errorf("import %s: manifest.json: %w", file, err)
	}
	lp, err := layout.Write(filepath.Join(a.scratch, "layout"), empty.Index)
	if err != nil {
		return fmt.Errorf("import %s: %w", file, err)
	}
	for i, e := range entries {
		var tag *name.Tag
		for _, rt := range e.RepoTags {
			t, err := name.NewTag(rt)
			if err != nil {
				return fmt.Errorf("import %s: image %d has an invalid name %q: %w", file, i, rt, err)
			}
			if tag == nil {
				tag = &t
			}
		}
		im, err := tarball.Image(opener, tag)
		if err != nil {
			return fmt.Errorf("import %s: image %d: %w", file, i, err)
		}
		ref := fmt.Sprintf("image-%d", i)
		if err := lp.AppendImage(im, layout.WithAnnotations(map[string]string{ocispec.AnnotationRefName: ref})); err != nil {
			return fmt.Errorf("import %s: image %d: %w", file, i, err)
		}
		// docker save IMG:1 IMG:latest lists both names for one image;
		// docker load tags both, so every name is imported.
		if len(e.RepoTags) == 0 {
			a.Images = append(a.Images, Imported{Tag: ref})
		}
		for _, rt := range e.RepoTags {
			a.Images = append(a.Images, Imported{Name: rt, Tag: ref})
		}
	}
	l, err := OpenLayout(string(lp))
	if err != nil {
		return err
	}
	a.layout = l
	for i := range a.Images {
		a.Images[i].Layout = l
	}
	return nil
}

// extractTar unpacks the regular files and directories of an archive into
// dest. Archives come from outside, so names that would leave dest, links
// and special files are refused rather than resolved.
func extractTar(ctx context.Context, file, dest string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := os.MkdirAll(dest, 0o700); err != nil {
		return err
	}
	root, err := os.OpenRoot(dest)
	if err != nil {
		return err
	}
	defer root.Close()
	tr := tar.NewReader(f)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("not a valid tar archive: %w", err)
		}
		clean := path.Clean(strings.TrimPrefix(hdr.Name, "./"))
		if clean == "." {
			continue
		}
		if path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
			return fmt.Errorf("archive entry %q escapes the archive: %w", hdr.Name, errdefs.ErrInvalidArgument)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(clean, 0o700); err != nil {
				return fmt.Errorf("archive entry %q: %w", hdr.Name, err)
			}
		case tar.TypeReg:
			if hdr.Size > maxArchiveEntry {
				return fmt.Errorf("archive entry %q is %d bytes, more than the %d allowed", hdr.Name, hdr.Size, int64(maxArchiveEntry))
			}
			if dir := path.Dir(clean); dir != "." {
				if err := root.MkdirAll(dir, 0o700); err != nil {
					return fmt.Errorf("archive entry %q: %w", hdr.Name, err)
				}
			}
			out, err := root.OpenFile(clean, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
			if err != nil {
				return fmt.Errorf("archive entry %q: %w", hdr.Name, err)
			}
			_, err = io.Copy(out, io.LimitReader(tr, hdr.Size))
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("archive entry %q: %w (is the disk full?)", hdr.Name, err)
			}
		default:
			// docker save writes symlinks between layer dirs in old
			// formats; manifest.json names real files, so skip links.
			if hdr.Typeflag == tar.TypeSymlink || hdr.Typeflag == tar.TypeLink {
				continue
			}
			return fmt.Errorf("archive entry %q has unsupported type %q: %w", hdr.Name, hdr.Typeflag, errdefs.ErrInvalidArgument)
		}
	}
}

// Export writes img, read from the content store, to file in the given
// format under the name it is stored as.
func Export(ctx context.Context, cs *content.Store, img *images.Image, file string, format Format, tmpDir string) error {
	scratch, err := os.MkdirTemp(tmpDir, "export-")
	if err != nil {
		return fmt.Errorf("export %s: %w", img.Name, err)
	}
	defer os.RemoveAll(scratch)
	dir := filepath.Join(scratch, "layout")
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("export %s: %w", img.Name, err)
	}
	blobs := append([]ocispec.Descriptor{img.Manifest, img.Config}, img.Layers...)
	for _, d := range blobs {
		if err := copyBlob(ctx, cs, dir, d); err != nil {
			return fmt.Errorf("export %s: %w", img.Name, err)
		}
	}
	_, tag := splitTag(img.Name)
	desc := img.Manifest
	desc.Annotations = map[string]string{ocispec.AnnotationRefName: tag, "io.containerd.image.name": img.Name}
	desc.Platform = &img.Platform
	if err := lp.AppendDescriptor(toV1Descriptor(desc)); err != nil {
		return fmt.Errorf("export %s: %w", img.Name, err)
	}
	out, err := os.CreateTemp(filepath.Dir(file), ".sigil-export-*")
	if err != nil {
		return fmt.Errorf("export %s to %s: %w", img.Name, file, err)
	}
	defer os.Remove(out.Name())
	switch format {
	case OCIArchive:
		err = tarDir(ctx, dir, out)
	case DockerArchive:
		v1img, lerr := lp.Image(toV1Hash(img.Manifest.Digest))
		if lerr != nil {
			err = lerr
			break
		}
		t, terr := name.NewTag(img.Name)
		if terr != nil {
			err = fmt.Errorf("docker-archive needs a tagged name, %q is not one: %w", img.Name, terr)
			break
		}
		err = tarball.Write(t, v1img, out)
	default:
		err = fmt.Errorf("unknown format %q (want docker-archive or oci-archive): %w", format, errdefs.ErrInvalidArgument)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("export %s to %s: %w", img.Name, file, err)
	}
	return os.Rename(out.Name(), file)
}

func splitTag(n string) (repo, tag string) {
	if i := strings.LastIndex(n, ":"); i > strings.LastIndex(n, "/") {
		return n[:i], n[i+1:]
	}
	return n, "latest"
}

func copyBlob(ctx context.Context, cs *content.Store, dir string, d ocispec.Descriptor) error {
	src, err := cs.Open(ctx, d.Digest)
	if err != nil {
		return err
	}
	defer src.Close()
	p := filepath.Join(dir, blobPath(d.Digest))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	dst, err := os.Create(p)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return fmt.Errorf("copy blob %s: %w (is the disk full?)", d.Digest, err)
	}
	return dst.Close()
}

func tarDir(ctx context.Context, dir string, w io.Writer) error {
	tw := tar.NewWriter(w)
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		hdr, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uname, hdr.Gname, hdr.Uid, hdr.Gid = "", "", 0, 0
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}
