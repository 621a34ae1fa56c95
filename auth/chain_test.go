package auth_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/sigil-project/sigil/auth"
)

func TestChain(t *testing.T) {
	ctx := context.Background()
	robots := openRobots(t, filepath.Join(t.TempDir(), "robots.json"))
	secret, err := robots.CreateRobot(ctx, "ci", []string{"a/**"}, []string{"pull"})
	if err != nil {
		t.Fatal(err)
	}
	// The first file "owns" bob and a user posing as the robot.
	first, err := auth.NewHtpasswd(writeHtpasswd(t, map[string]string{"bob": "bob-first", "robot$ci": "impostor"}))
	if err != nil {
		t.Fatal(err)
	}
	second, err := auth.NewHtpasswd(writeHtpasswd(t, map[string]string{"bob": "bob-second", "carol": "carol-pw"}))
	if err != nil {
		t.Fatal(err)
	}
	chain := auth.NewChain(robots, first, second)

	for _, tc := range []struct {
		name, user, pass string
		wantName         string // "" : refused
		wantSource       string
		wantErr          error
	}{
		{"robot", "robot$ci", secret, "ci", "robot", nil},
		{"a robot name never reaches the other backends", "robot$ci", "impostor", "", "", auth.ErrInvalidCredentials},
		{"first backend that knows the user decides", "bob", "bob-first", "bob", "htpasswd", nil},
		{"a wrong password is not retried further down", "bob", "bob-second", "", "", auth.ErrInvalidCredentials},
		{"unknown to the first, known to the second", "carol", "carol-pw", "carol", "htpasswd", nil},
		{"unknown everywhere", "dave", "x", "", "", auth.ErrUnknownUser},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := chain.Authenticate(ctx, tc.user, tc.pass)
			if tc.wantName == "" {
				if id != nil || !errors.Is(err, tc.wantErr) {
					t.Errorf("Authenticate(%q) = %v, %v; want %v", tc.user, id, err, tc.wantErr)
				}
				return
			}
			if err != nil || id.Name != tc.wantName || id.Source != tc.wantSource {
				t.Errorf("Authenticate(%q) = %+v, %v; want %s from %s", tc.user, id, err, tc.wantName, tc.wantSource)
			}
		})
	}
	if id, err := chain.Lookup(ctx, "carol"); err != nil || id.Name != "carol" {
		t.Errorf("Lookup(carol) = %v, %v", id, err)
	}
	if id, err := chain.Lookup(ctx, "robot$ci"); err != nil || !id.Robot {
		t.Errorf("Lookup(robot$ci) = %v, %v", id, err)
	}
	if !chain.Owns("robot$x") || chain.Owns("bob") {
		t.Error("Owns: want robot names only")
	}
	if _, err := auth.NewChain().Authenticate(ctx, "bob", "x"); !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Errorf("empty chain: %v, want ErrInvalidCredentials", err)
	}
}
