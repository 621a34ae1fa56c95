package auth_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runClient runs a real client with its own HOME and credential files,
// and returns its combined output.
func runClient(t *testing.T, home string, name string, args ...string) (string, error) {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (make deps installs it)", name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(),
		"HOME="+home,
		"DOCKER_CONFIG="+filepath.Join(home, ".docker"),
		"REGISTRY_AUTH_FILE="+filepath.Join(home, "auth.json"),
		"XDG_RUNTIME_DIR="+filepath.Join(home, "run"),
		"XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
	)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// The clients the issue names log in, and read with the tokens they get,
// against the token endpoint and distribution's verifier: wrong passwords
// and missing rights fail as the user expects.
func TestRealClients(t *testing.T) {
	if testing.Short() {
		t.Skip("runs external clients")
	}
	e := newTokenEnv(t, nil)
	host := strings.TrimPrefix(e.srv.URL, "http://")
	alice := "alice:" + htUsers["alice"]
	// One home for all: crane's steps share its login.
	home := t.TempDir()

	for _, tc := range []struct {
		name, client string
		args         []string
		ok           bool
		want         string // in the output
	}{
		{"skopeo login", "skopeo", []string{"login", "--tls-verify=false", "-u", "alice", "-p", htUsers["alice"], host}, true, "Login Succeeded"},
		{"skopeo login, wrong password", "skopeo", []string{"login", "--tls-verify=false", "-u", "alice", "-p", "wrong", host}, false, "invalid username/password"},
		{"skopeo login, robot", "skopeo", []string{"login", "--tls-verify=false", "-u", "robot$ci", "-p", e.secret, host}, true, "Login Succeeded"},
		{"skopeo --creds pull scope", "skopeo", []string{"list-tags", "--tls-verify=false", "--creds", alice, "docker://" + host + "/team-a/app"}, true, `"1.0"`},
		{"skopeo --creds without rights", "skopeo", []string{"list-tags", "--tls-verify=false", "--creds", "dave:" + htUsers["dave"], "docker://" + host + "/team-a/app"}, false, "insufficient scope"},
		{"skopeo anonymous, public", "skopeo", []string{"list-tags", "--tls-verify=false", "--no-creds", "docker://" + host + "/public/tools"}, true, `"1.0"`},
		{"skopeo anonymous, private", "skopeo", []string{"list-tags", "--tls-verify=false", "--no-creds", "docker://" + host + "/team-a/app"}, false, "insufficient scope"},
		{"podman login", "podman", []string{"login", "--tls-verify=false", "-u", "alice", "-p", htUsers["alice"], host}, true, "Login Succeeded"},
		{"podman login, wrong password", "podman", []string{"login", "--tls-verify=false", "-u", "alice", "-p", "wrong", host}, false, "invalid username/password"},
		{"crane auth login", "crane", []string{"auth", "login", host, "-u", "alice", "-p", htUsers["alice"]}, true, ""},
		{"crane ls after login", "crane", []string{"ls", "--insecure", host + "/team-a/app"}, true, "1.0"},
		{"crane ls, no rights", "crane", []string{"ls", "--insecure", host + "/team-b/app"}, false, "insufficient scope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runClient(t, home, tc.client, tc.args...)
			t.Logf("%s", out)
			if (err == nil) != tc.ok || !strings.Contains(out, tc.want) {
				t.Errorf("%s %q: err=%v, output:\n%s\nwant ok=%v and %q", tc.client, tc.args, err, out, tc.ok, tc.want)
			}
		})
	}
}
