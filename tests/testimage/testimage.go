// Package testimage builds real container images from the host's static
// busybox (Debian's busybox-static) and pushes them to a registry, so tests,
// the demo and the benchmarks run real binaries from real images without
// the internet.
//
//	reg := testimage.StartRegistry(t)            // a registry on 127.0.0.1
//	ref, err := testimage.Push(ctx, reg.Host+"/demo/busybox:1", testimage.Busybox(testimage.OCI))
package testimage

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// BusyboxPath is where Debian's busybox-static installs its binary.
const BusyboxPath = "/bin/busybox"

// Format chooses the manifest format of a built image.
type Format int

const (
	OCI    Format = iota // OCI manifest and config media types
	Docker               // Docker schema2 media types
)

// applets are linked to busybox in the image's /bin.
var applets = []string{
	"sh", "echo", "cat", "ls", "id", "hostname", "sleep", "true", "false", "env", "pwd",
	"touch", "mkdir", "rm", "head", "tr", "dd", "grep", "wc", "yes", "test", "[", "kill",
	"ps", "stat", "readlink", "mount", "seq", "nc", "wget", "printf", "uname", "date", "tail",
}

// File is one tar entry of a test layer.
type File struct {
	Name     string
	Mode     int64
	Body     []byte
	Typeflag byte // 0 means a regular file
	Linkname string
	UID, GID int
}

// Layer builds an uncompressed tar layer from files, in order.
func Layer(files ...File) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, f := range files {
		typ := f.Typeflag
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := f.Mode
		if mode == 0 {
			mode = 0o644
			if typ == tar.TypeDir {
				mode = 0o755
			}
		}
		hdr := &tar.Header{Name: f.Name, Mode: mode, Typeflag: typ, Linkname: f.Linkname, Uid: f.UID, Gid: f.GID, ModTime: mtime, Format: tar.FormatPAX}
		if typ == tar.TypeReg {
			hdr.Size = int64(len(f.Body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write(f.Body); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
}

// BaseFiles is a minimal root filesystem: busybox, its applets, users.
func BaseFiles() ([]File, error) {
	bb, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w (install it with: apt-get install busybox-static)", BusyboxPath, err)
	}
	files := []File{
		{Name: "bin/", Typeflag: tar.TypeDir},
		{Name: "bin/busybox", Mode: 0o755, Body: bb},
	}
	for _, a := range slices.Sorted(slices.Values(applets)) {
		files = append(files, File{Name: "bin/" + a, Typeflag: tar.TypeSymlink, Linkname: "busybox"})
	}
	for _, d := range []string{"etc/", "tmp/", "proc/", "sys/", "dev/", "root/", "home/", "home/app/", "data/"} {
		mode := int64(0o755)
		if d == "tmp/" {
			mode = 0o1777
		}
		files = append(files, File{Name: d, Typeflag: tar.TypeDir, Mode: mode})
	}
	files = append(files,
		File{Name: "etc/passwd", Body: []byte("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")},
		File{Name: "etc/group", Body: []byte("root:x:0:\napp:x:1000:\nstaff:x:50:app\nnogroup:x:65534:\n")},
	)
	return files, nil
}

// Config is the part of the image config tests set.
type Config struct {
	Entrypoint []string
	Cmd        []string
	Env        []string
	WorkingDir string
	User       string
}

// Build makes an image from layers with the given config and format.
func Build(format Format, cfg Config, arch string, layers ...v1.Layer) (v1.Image, error) {
	base := empty.Image
	if format == Docker {
		base = mutate.MediaType(base, types.DockerManifestSchema2)
		base = mutate.ConfigMediaType(base, types.DockerConfigJSON)
	} else {
		base = mutate.MediaType(base, types.OCIManifestSchema1)
		base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	}
	var adds []mutate.Addendum
	for _, l := range layers {
		mt := types.OCILayer
		if format == Docker {
			mt = types.DockerLayer
		}
		adds = append(adds, mutate.Addendum{Layer: l, MediaType: mt})
	}
	img, err := mutate.Append(base, adds...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	if len(cfg.Env) == 0 {
		cfg.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	}
	cf.Config = v1.Config{Entrypoint: cfg.Entrypoint, Cmd: cfg.Cmd, Env: cfg.Env, WorkingDir: cfg.WorkingDir, User: cfg.User}
	return mutate.ConfigFile(img, cf)
}

// Busybox is a one-layer busybox image whose default command is sh.
func Busybox(format Format) (v1.Image, error) {
	files, err := BaseFiles()
	if err != nil {
		return nil, err
	}
	l, err := Layer(files...)
	if err != nil {
		return nil, err
	}
	return Build(format, Config{Cmd: []string{"sh"}}, "amd64", l)
}

// Layered is a four-layer image that exercises whiteouts and an opaque
// directory: after unpacking, /data/keep exists, /data/gone does not,
// /opq holds only "new", and /etc/motd says "layer3".
func Layered(format Format) (v1.Image, error) {
	files, err := BaseFiles()
	if err != nil {
		return nil, err
	}
	l1, err := Layer(files...)
	if err != nil {
		return nil, err
	}
	l2, err := Layer(
		File{Name: "data/keep", Body: []byte("keep\n")},
		File{Name: "data/gone", Body: []byte("gone\n")},
		File{Name: "opq/", Typeflag: tar.TypeDir},
		File{Name: "opq/old1", Body: []byte("old\n")},
		File{Name: "opq/old2", Body: []byte("old\n")},
		File{Name: "etc/motd", Body: []byte("layer2\n")},
	)
	if err != nil {
		return nil, err
	}
	l3, err := Layer(
		File{Name: "data/.wh.gone"},
		File{Name: "opq/", Typeflag: tar.TypeDir},
		File{Name: "opq/.wh..wh..opq"},
		File{Name: "opq/new", Body: []byte("new\n")},
		File{Name: "etc/motd", Body: []byte("layer3\n")},
	)
	if err != nil {
		return nil, err
	}
	l4, err := Layer(
		File{Name: "home/app/owned", Body: []byte("mine\n"), UID: 1000, GID: 1000, Mode: 0o600},
		File{Name: "bin/hello", Mode: 0o755, Body: []byte("#!/bin/sh\necho hello from layer4 \"$@\"\n")},
	)
	if err != nil {
		return nil, err
	}
	return Build(format, Config{
		Cmd:        []string{"sh", "-c", "echo $GREETING from $(pwd) as $(id -u)"},
		Env:        []string{"PATH=/bin", "GREETING=hi"},
		WorkingDir: "/data",
	}, "amd64", l1, l2, l3, l4)
}

// MultiPlatform is an index holding amd64 and arm64 variants; each prints
// its architecture from /etc/arch.
func MultiPlatform(format Format) (v1.ImageIndex, error) {
	files, err := BaseFiles()
	if err != nil {
		return nil, err
	}
	base, err := Layer(files...)
	if err != nil {
		return nil, err
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	if format == Docker {
		idx = mutate.IndexMediaType(empty.Index, types.DockerManifestList)
	}
	for _, arch := range []string{"amd64", "arm64"} {
		marker, err := Layer(File{Name: "etc/arch", Body: []byte(arch + "\n")})
		if err != nil {
			return nil, err
		}
		img, err := Build(format, Config{Cmd: []string{"cat", "/etc/arch"}}, arch, base, marker)
		if err != nil {
			return nil, err
		}
		p := &v1.Platform{OS: "linux", Architecture: arch}
		if arch == "arm64" {
			p.Variant = "v8"
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: p}})
	}
	return idx, nil
}

// Push writes an image or index to ref (a tag on a loopback registry).
func Push(ctx context.Context, ref string, what remote.Taggable) (v1.Hash, error) {
	tag, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return v1.Hash{}, err
	}
	switch w := what.(type) {
	case v1.Image:
		if err := remote.Write(tag, w, remote.WithContext(ctx)); err != nil {
			return v1.Hash{}, err
		}
		return w.Digest()
	case v1.ImageIndex:
		if err := remote.WriteIndex(tag, w, remote.WithContext(ctx)); err != nil {
			return v1.Hash{}, err
		}
		return w.Digest()
	}
	return v1.Hash{}, fmt.Errorf("push %s: unsupported %T", ref, what)
}
