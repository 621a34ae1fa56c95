package auth_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
	"golang.org/x/crypto/bcrypt"

	"github.com/sigil-project/sigil/auth"
)

func openRobots(t *testing.T, path string) *auth.Robots {
	t.Helper()
	r, err := auth.OpenRobots(path, auth.WithBcryptCost(bcrypt.MinCost))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRobots(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "registry", "robots.json")
	// Two handles on one file: the CLI (sigil registry robot ...) and the
	// running registry.
	cli, server := openRobots(t, path), openRobots(t, path)

	if list, err := server.ListRobots(ctx); err != nil || len(list) != 0 {
		t.Fatalf("empty store: %v, %v", list, err)
	}
	secret, err := cli.CreateRobot(ctx, "ci", []string{"team-a/**"}, []string{"push", "pull", "pull"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, "sigil_") || len(secret) < 40 {
		t.Errorf("secret %q: want a long sigil_ secret", secret)
	}

	// The file holds the hash only, and only its owner reads it.
	data, _ := os.ReadFile(path)
	if strings.Contains(string(data), secret) || strings.Contains(string(data), strings.TrimPrefix(secret, "sigil_")) {
		t.Error("robot file contains the secret")
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("robot file mode %o, want 600", fi.Mode().Perm())
	}

	id, err := server.Authenticate(ctx, "robot$ci", secret)
	if err != nil {
		t.Fatalf("robot login: %v", err)
	}
	want := &auth.Identity{Name: "ci", Robot: true, Source: "robot",
		Permissions: []auth.Permission{{Repositories: []string{"team-a/**"}, Actions: []string{"pull", "push"}}}}
	if !reflect.DeepEqual(id, want) {
		t.Errorf("identity = %+v, want %+v", id, want)
	}
	if id.Subject() != "robot$ci" {
		t.Errorf("Subject = %q, want robot$ci", id.Subject())
	}

	// Its scope is what the ACL grants it, with no access rule naming it.
	acl, _ := auth.NewACL(nil)
	if got := acl.Allowed(id, "team-a/app"); !slices.Equal(got, []string{"pull", "push"}) {
		t.Errorf("Allowed(robot, team-a/app) = %q", got)
	}
	if got := acl.Allowed(id, "team-b/app"); got != nil {
		t.Errorf("Allowed(robot, team-b/app) = %q, want nothing", got)
	}

	for _, tc := range []struct {
		user, pass string
		want       error
	}{
		{"robot$ci", secret + "x", auth.ErrInvalidCredentials},
		{"robot$ci", "", auth.ErrInvalidCredentials},
		{"robot$cd", secret, auth.ErrUnknownUser},
		{"ci", secret, auth.ErrUnknownUser}, // the bare name is not the robot
		{"ROBOT$ci", secret, auth.ErrUnknownUser},
	} {
		if id, err := server.Authenticate(ctx, tc.user, tc.pass); id != nil || !errors.Is(err, tc.want) {
			t.Errorf("Authenticate(%q) = %v, %v; want %v", tc.user, id, err, tc.want)
		}
	}

	if _, err := cli.CreateRobot(ctx, "robot$ci", []string{"x/**"}, []string{"pull"}); !errdefs.IsAlreadyExists(err) {
		t.Errorf("creating ci again: %v, want ErrAlreadyExists", err)
	}
	if _, err := cli.CreateRobot(ctx, "deploy", []string{"prod/**"}, []string{"pull"}); err != nil {
		t.Fatal(err)
	}
	list, err := server.ListRobots(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "ci" || list[1].Username() != "robot$deploy" {
		t.Errorf("ListRobots = %+v, %v", list, err)
	}

	// Revocation: removed by the CLI, refused by the server at once, for
	// logins and refresh lookups alike.
	if err := cli.RemoveRobot(ctx, "robot$ci"); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Authenticate(ctx, "robot$ci", secret); !errors.Is(err, auth.ErrUnknownUser) {
		t.Errorf("removed robot login: %v, want ErrUnknownUser", err)
	}
	if _, err := server.Lookup(ctx, "robot$ci"); !errors.Is(err, auth.ErrUnknownUser) {
		t.Errorf("removed robot lookup: %v, want ErrUnknownUser", err)
	}
	if err := cli.RemoveRobot(ctx, "ci"); !errdefs.IsNotFound(err) {
		t.Errorf("removing it twice: %v, want ErrNotFound", err)
	}
	// Re-created with the same name, the old secret does not work.
	newSecret, err := cli.CreateRobot(ctx, "ci", []string{"team-a/**"}, []string{"pull"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := server.Authenticate(ctx, "robot$ci", secret); !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Errorf("old secret after re-creation: %v, want ErrInvalidCredentials", err)
	}
	if _, err := server.Authenticate(ctx, "robot$ci", newSecret); err != nil {
		t.Errorf("new secret: %v", err)
	}

	// A corrupt file fails closed.
	if err := os.WriteFile(path, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Authenticate(ctx, "robot$ci", newSecret); !errors.Is(err, auth.ErrUnavailable) {
		t.Errorf("corrupt file: %v, want ErrUnavailable", err)
	}
	if _, err := auth.OpenRobots(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("OpenRobots(corrupt) = %v, want an error naming the file", err)
	}
}

func TestRobotsInvalid(t *testing.T) {
	r := openRobots(t, filepath.Join(t.TempDir(), "robots.json"))
	for _, tc := range []struct {
		name           string
		repos, actions []string
		want           string
	}{
		{"", []string{"a/**"}, []string{"pull"}, "robot name"},
		{"CI", []string{"a/**"}, []string{"pull"}, "robot name"},
		{"ci/x", []string{"a/**"}, []string{"pull"}, "robot name"},
		{"ci$", []string{"a/**"}, []string{"pull"}, "robot name"},
		{strings.Repeat("a", 65), []string{"a/**"}, []string{"pull"}, "robot name"},
		{"ci", nil, []string{"pull"}, "no repositories"},
		{"ci", []string{"a**"}, []string{"pull"}, "whole path segment"},
		{"ci", []string{"a/**"}, nil, "no actions"},
		{"ci", []string{"a/**"}, []string{"admin"}, "unknown action"},
	} {
		_, err := r.CreateRobot(context.Background(), tc.name, tc.repos, tc.actions)
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CreateRobot(%q, %q, %q) = %v, want ErrInvalidArgument with %q", tc.name, tc.repos, tc.actions, err, tc.want)
		}
	}
	if list, _ := r.ListRobots(context.Background()); len(list) != 0 {
		t.Errorf("refused robots were stored: %+v", list)
	}
}

// Concurrent creators (several CLI runs, say) do not lose each other's
// robots: changes are serialised by the lock file.
func TestRobotsConcurrentCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "robots.json")
	const n = 12
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			r, err := auth.OpenRobots(path, auth.WithBcryptCost(bcrypt.MinCost))
			if err == nil {
				_, err = r.CreateRobot(context.Background(), fmt.Sprintf("bot%d", i), []string{"a/**"}, []string{"pull"})
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	list, err := openRobots(t, path).ListRobots(context.Background())
	if err != nil || len(list) != n {
		t.Errorf("after %d concurrent creates: %d robots, %v", n, len(list), err)
	}
}
