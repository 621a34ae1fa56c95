package main

import (
	"archive/tar"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/sigil-project/sigil/tests/testimage"
)

// standIn is one image pushed under one or more upstream references
// (repository paths under an upstream host, mirrored by host/<upstream>).
type standIn struct {
	refs []string
	img  v1.Image
}

const (
	e2e     = "registry.k8s.io/e2e-test-images/"
	critest = "gcr.io/k8s-staging-cri-tools/"
	// pathEnv is the busybox images' PATH.
	pathEnv = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// The busybox images' users and groups.
const (
	passwd = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
`
	group = `root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
cdrom:x:11:
dialout:x:18:
floppy:x:19:
video:x:28:
audio:x:29:
tape:x:32:
www-data:x:33:
operator:x:37:
utmp:x:43:
plugdev:x:46:
staff:x:50:
lock:x:54:
netdev:x:82:
users:x:100:
nogroup:x:65534:
`
)

// config is the image configuration a stand-in copies from its upstream.
type config struct {
	entrypoint, cmd, env []string
	workdir, user        string
	stopSignal           string
	ports                []string
}

func file(name string, mode int64, body []byte) testimage.File {
	return testimage.File{Name: name, Mode: mode, Body: body}
}

func dir(name string, mode int64) testimage.File {
	return testimage.File{Name: name + "/", Typeflag: tar.TypeDir, Mode: mode}
}

func symlink(name, target string) testimage.File {
	return testimage.File{Name: name, Typeflag: tar.TypeSymlink, Linkname: target}
}

// busyboxFiles is the busybox image's root: bb (a busybox whose shell runs
// commands through PATH, as the busybox images' does) with the shared
// libraries it needs, every applet as a hard link to it (so masking one
// applet leaves the others), plus ipcs and pgrep, which the busybox images
// have and Debian's builds lack, as programs of their own.
func busyboxFiles(bb string, bins map[string]string) ([]testimage.File, error) {
	body, err := os.ReadFile(bb)
	if err != nil {
		return nil, err
	}
	out, err := exec.Command(bb, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("list the applets of %s: %w", bb, err)
	}
	files := []testimage.File{
		dir("bin", 0o755),
		file("bin/busybox", 0o755, body),
	}
	own := []string{"ipcs", "pgrep"}
	for _, a := range strings.Fields(string(out)) {
		if a == "busybox" || slices.Contains(own, a) {
			continue
		}
		files = append(files, testimage.File{Name: "bin/" + a, Typeflag: tar.TypeLink, Linkname: "bin/busybox"})
	}
	for _, p := range own {
		b, err := os.ReadFile(bins[p])
		if err != nil {
			return nil, err
		}
		files = append(files, file("bin/"+p, 0o755, b))
	}
	libs, err := sharedLibraries(bb)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, l := range libs {
		b, err := os.ReadFile(l)
		if err != nil {
			return nil, fmt.Errorf("read %s, a library %s needs: %w", l, bb, err)
		}
		name := strings.TrimPrefix(l, "/")
		for d := filepath.Dir(name); d != "."; d = filepath.Dir(d) {
			if !seen[d] {
				seen[d] = true
				files = append(files, dir(d, 0o755))
			}
		}
		files = append(files, file(name, 0o755, b))
	}
	files = append(files,
		dir("dev", 0o755), dir("etc", 0o755), dir("home", 0o755), dir("proc", 0o555),
		dir("root", 0o700), dir("sys", 0o555), dir("tmp", 0o1777),
		dir("usr", 0o755), dir("usr/sbin", 0o755), dir("var", 0o755),
		dir("var/spool", 0o755), dir("var/spool/mail", 0o755), dir("var/www", 0o755),
		file("etc/passwd", 0o644, []byte(passwd)),
		file("etc/group", 0o644, []byte(group)),
		file("etc/nsswitch.conf", 0o644, []byte("hosts: files dns\npasswd: files\ngroup: files\nshadow: files\n")),
	)
	return files, nil
}

// sharedLibraries lists the shared libraries (absolute paths, the dynamic
// loader included) that ldd says bin needs; none for a static binary.
func sharedLibraries(bin string) ([]string, error) {
	out, err := exec.Command("ldd", bin).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "not a dynamic executable") {
			return nil, nil
		}
		return nil, fmt.Errorf("ldd %s: %w: %s", bin, err, out)
	}
	var libs []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			libs = append(libs, f[2])
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			libs = append(libs, f[0])
		}
	}
	return libs, nil
}

// debianBusybox fetches Debian's busybox package (not busybox-static, whose
// shell runs applets in preference to the files in PATH, so masking
// /bin/ls would not stop `sh -c ls`) with apt-get into dir and returns the
// path of its binary.
func debianBusybox(ctx context.Context, dir string) (string, error) {
	cmd := exec.CommandContext(ctx, "apt-get", "download", "busybox")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("apt-get download busybox: %w: %s (or give a busybox binary whose shell searches PATH with -busybox)", err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(dir, "busybox_*.deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("apt-get download busybox left %d packages in %s, want 1", len(debs), dir)
	}
	x := filepath.Join(dir, "busybox-deb")
	if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", debs[0], x).CombinedOutput(); err != nil {
		return "", fmt.Errorf("dpkg-deb -x %s: %w: %s", debs[0], err, out)
	}
	return filepath.Join(x, "bin", "busybox"), nil
}

// image stacks layers of files on the busybox layer.
func image(base v1.Layer, cfg config, layers ...[]testimage.File) (v1.Image, error) {
	ls := []v1.Layer{base}
	for _, fs := range layers {
		l, err := testimage.Layer(fs...)
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
	}
	env := cfg.env
	if env == nil {
		env = []string{pathEnv}
	}
	img, err := testimage.Build(testimage.OCI, testimage.Config{
		Entrypoint: cfg.entrypoint, Cmd: cfg.cmd, Env: env, WorkingDir: cfg.workdir, User: cfg.user,
	}, "amd64", ls...)
	if err != nil {
		return nil, err
	}
	if cfg.stopSignal == "" && len(cfg.ports) == 0 {
		return img, nil
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Config.StopSignal = cfg.stopSignal
	if len(cfg.ports) > 0 {
		cf.Config.ExposedPorts = map[string]struct{}{}
		for _, p := range cfg.ports {
			cf.Config.ExposedPorts[p] = struct{}{}
		}
	}
	return mutate.ConfigFile(img, cf)
}

// standIns builds every image critest pulls.
func standIns(bb string, bins map[string]string) ([]standIn, error) {
	read := func(name string) []byte {
		b, err := os.ReadFile(bins[name])
		if err != nil {
			panic(err) // built moments ago by buildPrograms
		}
		return b
	}
	bbFiles, err := busyboxFiles(bb, bins)
	if err != nil {
		return nil, err
	}
	base, err := testimage.Layer(bbFiles...)
	if err != nil {
		return nil, err
	}
	sh := config{cmd: []string{"sh"}}
	var out []standIn
	add := func(img v1.Image, err error, refs ...string) error {
		if err != nil {
			return fmt.Errorf("build the stand-in for %s: %w", refs[0], err)
		}
		out = append(out, standIn{refs: refs, img: img})
		return nil
	}
	// named adds a file naming the stand-in, so images that are distinct
	// upstream are distinct here too.
	named := func(ref string) []testimage.File {
		return []testimage.File{file("etc/critest-standin", 0o644, []byte(ref+"\n"))}
	}

	// The busybox images (e2e-test-images/busybox is busybox unchanged).
	for _, ref := range []string{e2e + "busybox:1.29-2", e2e + "busybox:1.36.1-1", e2e + "busybox:1.28"} {
		img, err := image(base, sh, named(ref))
		if err := add(img, err, ref); err != nil {
			return nil, err
		}
	}

	// nginx:1.14-2 (nginx:1.14-alpine): nginx -g 'daemon off;' as root,
	// workers as user nginx, logs linked to the container's output.
	nginxFiles := func(conf string) []testimage.File {
		return []testimage.File{
			file("etc/passwd", 0o644, []byte(passwd+"nginx:x:101:101:nginx:/var/cache/nginx:/sbin/nologin\n")),
			file("etc/group", 0o644, []byte(group+"nginx:x:101:nginx\n")),
			dir("etc/nginx", 0o755), dir("etc/nginx/conf.d", 0o755),
			file("etc/nginx/nginx.conf", 0o644, []byte("user  nginx;\nworker_processes  1;\npid        /var/run/nginx.pid;\ninclude /etc/nginx/conf.d/*.conf;\n")),
			file("etc/nginx/conf.d/default.conf", 0o644, []byte(conf)),
			dir("usr/sbin", 0o755), file("usr/sbin/nginx", 0o755, read("nginx")),
			dir("usr/share", 0o755), dir("usr/share/nginx", 0o755), dir("usr/share/nginx/html", 0o755),
			file("usr/share/nginx/html/index.html", 0o644, []byte("<!DOCTYPE html>\n<html>\n<head>\n<title>Welcome to nginx!</title>\n</head>\n<body>\n<h1>Welcome to nginx!</h1>\n</body>\n</html>\n")),
			dir("var/cache", 0o755), dir("var/cache/nginx", 0o755),
			dir("var/log", 0o755), dir("var/log/nginx", 0o755),
			symlink("var/log/nginx/access.log", "/dev/stdout"), symlink("var/log/nginx/error.log", "/dev/stderr"),
			dir("run", 0o755), symlink("var/run", "/run"),
		}
	}
	// nginxConf is the images' conf.d/default.conf, serving the document
	// root on port.
	nginxConf := func(port int) string {
		return fmt.Sprintf("server {\n    listen       %d;\n    server_name  localhost;\n    location / {\n        root   /usr/share/nginx/html;\n        index  index.html index.htm;\n    }\n}\n", port)
	}
	img, err := image(base, config{cmd: []string{"nginx", "-g", "daemon off;"}, stopSignal: "SIGTERM", ports: []string{"80/tcp"}},
		nginxFiles(nginxConf(80)))
	if err := add(img, err, e2e+"nginx:1.14-2"); err != nil {
		return nil, err
	}

	// hostnet-nginx (nginx:1.25.0 with images/hostnet-nginx/default.conf:
	// port 12003): the Debian nginx image's entrypoint script, SIGQUIT.
	const entrypoint = "#!/bin/sh\n# stand-in for the nginx image's /docker-entrypoint.sh\nset -e\nif [ \"$1\" = \"nginx\" ] || [ \"$1\" = \"nginx-debug\" ]; then\n    echo \"$0: Configuration complete; ready for start up\"\nfi\nexec \"$@\"\n"
	img, err = image(base, config{entrypoint: []string{"/docker-entrypoint.sh"}, cmd: []string{"nginx", "-g", "daemon off;"}, stopSignal: "SIGQUIT", ports: []string{"80/tcp"}},
		append(nginxFiles(nginxConf(12003)), file("docker-entrypoint.sh", 0o755, []byte(entrypoint))))
	if err := add(img, err, critest+"hostnet-nginx-amd64:latest"); err != nil {
		return nil, err
	}

	// httpd:2.4.39-4 (httpd:2.4.39-alpine): httpd-foreground, SIGWINCH.
	img, err = image(base, config{
		cmd:        []string{"httpd-foreground"},
		env:        []string{"PATH=/usr/local/apache2/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HTTPD_PREFIX=/usr/local/apache2", "HTTPD_VERSION=2.4.39"},
		workdir:    "/usr/local/apache2",
		stopSignal: "SIGWINCH",
		ports:      []string{"80/tcp"},
	}, []testimage.File{
		dir("usr/local", 0o755), dir("usr/local/bin", 0o755),
		file("usr/local/bin/httpd-foreground", 0o755, []byte("#!/bin/sh\nset -e\n\n# Apache gets grumpy about PID files pre-existing\nrm -f /usr/local/apache2/logs/httpd.pid\n\nexec httpd -DFOREGROUND \"$@\"\n")),
		dir("usr/local/apache2", 0o755), dir("usr/local/apache2/bin", 0o755), dir("usr/local/apache2/logs", 0o755),
		file("usr/local/apache2/bin/httpd", 0o755, read("httpd")),
		dir("usr/local/apache2/htdocs", 0o755),
		file("usr/local/apache2/htdocs/index.html", 0o644, []byte("<html><body><h1>It works!</h1></body></html>\n")),
	})
	if err := add(img, err, e2e+"httpd:2.4.39-4"); err != nil {
		return nil, err
	}

	// nonewprivs:1.3: /usr/local/bin/nnp, setuid root, as the entrypoint.
	img, err = image(base, config{entrypoint: []string{"/usr/local/bin/nnp"}}, []testimage.File{
		dir("usr/local", 0o755), dir("usr/local/bin", 0o755),
		file("usr/local/bin/nnp", 0o4755, read("nnp")),
	})
	if err := add(img, err, e2e+"nonewprivs:1.3"); err != nil {
		return nil, err
	}

	// pause: /pause alone, as user 65535. 3.9 is one image under two names.
	pause := func() (v1.Image, error) {
		l, err := testimage.Layer(file("pause", 0o755, read("pause")))
		if err != nil {
			return nil, err
		}
		return testimage.Build(testimage.OCI, testimage.Config{Entrypoint: []string{"/pause"}, User: "65535:65535", Env: []string{pathEnv}}, "amd64", l)
	}
	img, err = pause()
	if err := add(img, err, "registry.k8s.io/pause:3.9", "k8s.gcr.io/pause:3.9", "registry.k8s.io/pause:3.10"); err != nil {
		return nil, err
	}

	// cri-tools' own test images (images/ in its repository): busybox with
	// one empty file (ADD ${TEST} ${TEST}) or a USER.
	for _, name := range []string{"test-image-1", "test-image-2", "test-image-3", "test-image-latest", "test-image-digest"} {
		img, err := image(base, sh, []testimage.File{file(name, 0o644, nil)})
		if err := add(img, err, critest+name+":latest"); err != nil {
			return nil, err
		}
	}
	img, err = image(base, sh, []testimage.File{file("same-image", 0o644, nil)})
	if err := add(img, err, critest+"test-image-tags:1", critest+"test-image-tags:2", critest+"test-image-tags:3"); err != nil {
		return nil, err
	}
	for _, tag := range []string{"test", "all"} {
		img, err := image(base, sh, []testimage.File{file(tag, 0o644, nil)})
		if err := add(img, err, critest+"test-image-tag:"+tag); err != nil {
			return nil, err
		}
	}
	for name, user := range map[string]string{
		"test-image-user-uid":            "1002",
		"test-image-user-username":       "www-data",
		"test-image-user-uid-group":      "1003:1004",
		"test-image-user-username-group": "www-data:1004",
	} {
		img, err := image(base, config{cmd: []string{"sh"}, user: user}, named(name))
		if err := add(img, err, critest+name+":latest"); err != nil {
			return nil, err
		}
	}
	// images/image-predefined-group: default-user (1000) in
	// group-defined-in-image (50000), USER 1000.
	img, err = image(base, config{cmd: []string{"sh"}, user: "1000"}, []testimage.File{
		file("etc/passwd", 0o644, []byte(passwd+"default-user:x:1000:1000:Linux User,,,:/home/default-user:/bin/sh\n")),
		file("etc/group", 0o644, []byte(group+"default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n")),
		testimage.File{Name: "home/default-user/", Typeflag: tar.TypeDir, Mode: 0o755, UID: 1000, GID: 1000},
	})
	if err := add(img, err, critest+"test-image-predefined-group:latest"); err != nil {
		return nil, err
	}
	return out, nil
}
