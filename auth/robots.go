package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/crypto/bcrypt"

	"github.com/sigil-project/sigil/runtime/lockfile"
)

// RobotPrefix starts the user name a robot account logs in with: the robot
// "ci" is "robot$ci" (Harbor's convention, which CI people know). Quote it
// in shells: docker login -u 'robot$ci'. Directory user names cannot take
// this form: a Chain sends such names to the robot store only.
const RobotPrefix = "robot$"

// Robot is a robot account as listed: no secret, not even its hash.
type Robot struct {
	Name         string    `json:"name"`
	Repositories []string  `json:"repositories"`
	Actions      []string  `json:"actions"`
	Created      time.Time `json:"created"`
}

// Username is what the robot logs in with.
func (r Robot) Username() string { return RobotPrefix + r.Name }

type robotRecord struct {
	Robot
	// SecretHash is the bcrypt hash of the secret; the secret itself is
	// shown once, by CreateRobot.
	SecretHash string `json:"secretHash"`
}

// robotFile is the JSON file:
//
//	{"version": 1, "robots": [
//	  {"name": "ci", "repositories": ["team-a/**"], "actions": ["pull", "push"],
//	   "created": "2026-08-01T10:00:00Z", "secretHash": "$2a$10$..."}]}
type robotFile struct {
	Version int           `json:"version"`
	Robots  []robotRecord `json:"robots"`
}

const robotFileVersion = 1

// RobotsOption configures OpenRobots.
type RobotsOption func(*Robots)

// WithBcryptCost sets the bcrypt cost of new secrets. Default
// bcrypt.DefaultCost; tests use bcrypt.MinCost.
func WithBcryptCost(cost int) RobotsOption {
	return func(s *Robots) { s.cost = cost }
}

// Robots is the store of robot accounts: named, scoped to repository
// patterns and actions, revocable. It is an Authenticator, a Lookuper and
// an Owner of the "robot$" names. The JSON file (mode 0600) is the only
// state: `sigil registry robot create|list|rm` and a running registry can
// use it at the same time; changes are serialised with flock(2) on
// FILE.lock and written by atomic rename, and a running registry sees
// them at its next login check (a removed robot is refused at once).
type Robots struct {
	path  string
	cost  int
	dummy []byte

	mu     sync.Mutex
	stamp  fileStamp
	robots map[string]robotRecord
	err    error
}

// OpenRobots opens the store at path; a missing file is an empty store,
// created at the first CreateRobot.
func OpenRobots(path string, opts ...RobotsOption) (*Robots, error) {
	s := &Robots{path: path, cost: bcrypt.DefaultCost}
	for _, o := range opts {
		o(s)
	}
	var err error
	if s.dummy, err = bcrypt.GenerateFromPassword([]byte(randomID()), s.cost); err != nil {
		return nil, fmt.Errorf("robot accounts: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refreshLocked()
	if s.err != nil {
		return nil, s.err
	}
	return s, nil
}

// CreateRobot adds a robot and returns its secret, which is stored only as
// a bcrypt hash: show it once. name may carry the RobotPrefix. An existing
// name is an errdefs.ErrAlreadyExists (remove it first: the old secret
// must stop working); bad input an errdefs.ErrInvalidArgument.
func (s *Robots) CreateRobot(ctx context.Context, name string, repositories, actions []string) (string, error) {
	name = strings.TrimPrefix(name, RobotPrefix)
	if err := checkRobotName(name); err != nil {
		return "", err
	}
	if len(repositories) == 0 {
		return "", fmt.Errorf("robot %q: no repositories: give patterns such as team-a/**: %w", name, errdefs.ErrInvalidArgument)
	}
	for _, p := range repositories {
		if _, err := compilePattern(p); err != nil {
			return "", fmt.Errorf("robot %q: %w: %w", name, err, errdefs.ErrInvalidArgument)
		}
	}
	if len(actions) == 0 {
		return "", fmt.Errorf("robot %q: no actions: give some of pull, push, delete: %w", name, errdefs.ErrInvalidArgument)
	}
	acts, err := checkActions(actions)
	if err != nil {
		return "", fmt.Errorf("robot %q: %w: %w", name, err, errdefs.ErrInvalidArgument)
	}
	var raw [32]byte
	_, _ = rand.Read(raw[:])
	secret := "sigil_" + base64.RawURLEncoding.EncodeToString(raw[:])
	hash, err := bcrypt.GenerateFromPassword([]byte(secret), s.cost)
	if err != nil {
		return "", fmt.Errorf("robot %q: %w", name, err)
	}
	err = s.update(ctx, func(f *robotFile) error {
		if slices.ContainsFunc(f.Robots, func(r robotRecord) bool { return r.Name == name }) {
			return fmt.Errorf("robot %q already exists: remove it first to give it a new secret: %w", name, errdefs.ErrAlreadyExists)
		}
		f.Robots = append(f.Robots, robotRecord{
			Robot: Robot{
				Name: name, Repositories: slices.Clone(repositories), Actions: acts,
				Created: time.Now().UTC().Truncate(time.Second),
			},
			SecretHash: string(hash),
		})
		return nil
	})
	if err != nil {
		return "", err
	}
	return secret, nil
}

// ListRobots returns the robots sorted by name.
func (s *Robots) ListRobots(_ context.Context) ([]Robot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refreshLocked()
	if s.err != nil {
		return nil, s.err
	}
	out := make([]Robot, 0, len(s.robots))
	for _, r := range s.robots {
		out = append(out, r.Robot)
	}
	slices.SortFunc(out, func(a, b Robot) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// RemoveRobot deletes a robot; its secret stops working at once. A
// missing robot is an errdefs.ErrNotFound.
func (s *Robots) RemoveRobot(ctx context.Context, name string) error {
	name = strings.TrimPrefix(name, RobotPrefix)
	return s.update(ctx, func(f *robotFile) error {
		i := slices.IndexFunc(f.Robots, func(r robotRecord) bool { return r.Name == name })
		if i < 0 {
			return fmt.Errorf("robot %q: %w (sigil registry robot list shows the robots)", name, errdefs.ErrNotFound)
		}
		f.Robots = slices.Delete(f.Robots, i, i+1)
		return nil
	})
}

// Owns implements Owner: every name with the RobotPrefix.
func (s *Robots) Owns(username string) bool { return strings.HasPrefix(username, RobotPrefix) }

// Authenticate implements Authenticator for "robot$NAME" user names.
func (s *Robots) Authenticate(_ context.Context, username, password string) (*Identity, error) {
	rec, err := s.find(username)
	if err != nil {
		return nil, err
	}
	if password == "" {
		return nil, fmt.Errorf("robot %q: empty secret refused: %w", rec.Name, ErrInvalidCredentials)
	}
	if rec.SecretHash == "" {
		// As long as a real check, so timing does not tell which robots exist.
		_ = bcrypt.CompareHashAndPassword(s.dummy, []byte(password))
		return nil, fmt.Errorf("robot account %q does not exist: %w", username, ErrUnknownUser)
	}
	if err := bcrypt.CompareHashAndPassword([]byte(rec.SecretHash), []byte(password)); err != nil {
		return nil, fmt.Errorf("robot %q: wrong secret: %w", rec.Name, ErrInvalidCredentials)
	}
	return rec.identity(), nil
}

// Lookup implements Lookuper.
func (s *Robots) Lookup(_ context.Context, username string) (*Identity, error) {
	rec, err := s.find(username)
	if err != nil {
		return nil, err
	}
	if rec.SecretHash == "" {
		return nil, fmt.Errorf("robot account %q does not exist: %w", username, ErrUnknownUser)
	}
	return rec.identity(), nil
}

// find returns the record for a "robot$" name; an unknown robot comes
// back as a record without hash, for the dummy comparison.
func (s *Robots) find(username string) (robotRecord, error) {
	if !s.Owns(username) {
		return robotRecord{}, fmt.Errorf("%q is not a robot account (those are %sNAME): %w", username, RobotPrefix, ErrUnknownUser)
	}
	name := strings.TrimPrefix(username, RobotPrefix)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refreshLocked()
	if s.err != nil {
		return robotRecord{}, unavailablef(s.err, "%s; robot logins fail until it is fixed", s.err)
	}
	rec, ok := s.robots[name]
	if !ok {
		rec.Name = name
	}
	return rec, nil
}

func (r robotRecord) identity() *Identity {
	return &Identity{
		Name: r.Name, Robot: true, Source: "robot",
		Permissions: []Permission{{Repositories: slices.Clone(r.Repositories), Actions: slices.Clone(r.Actions)}},
	}
}

// refreshLocked rereads the file when it changed since the last read.
func (s *Robots) refreshLocked() {
	st, err := statFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		s.stamp, s.robots, s.err = fileStamp{}, map[string]robotRecord{}, nil
		return
	}
	if err == nil && st == s.stamp && s.robots != nil {
		return
	}
	f, err := readRobotFile(s.path)
	if err != nil {
		s.robots, s.err = nil, err
		return
	}
	s.stamp, s.robots, s.err = st, map[string]robotRecord{}, nil
	for _, r := range f.Robots {
		s.robots[r.Name] = r
	}
}

func readRobotFile(path string) (*robotFile, error) {
	var f robotFile
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &robotFile{Version: robotFileVersion}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("robot accounts %s: %w", path, err)
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("robot accounts %s: %w; restore it from a backup or move it away (every robot must then be created again)", path, err)
	}
	if f.Version != robotFileVersion {
		return nil, fmt.Errorf("robot accounts %s: version %d, this sigil reads version %d; use a matching sigil", path, f.Version, robotFileVersion)
	}
	return &f, nil
}

// update applies change to the file under an exclusive flock, so that two
// `sigil registry robot` commands never lose each other's changes.
func (s *Robots) update(ctx context.Context, change func(*robotFile) error) error {
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return fmt.Errorf("robot accounts: %w", err)
	}
	unlock, err := lockfile.Lock(ctx, s.path+".lock")
	if err != nil {
		return fmt.Errorf("robot accounts: %w", err)
	}
	defer unlock()
	f, err := readRobotFile(s.path)
	if err != nil {
		return err
	}
	if err := change(f); err != nil {
		return err
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(s.path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("robot accounts %s: %w", s.path, err)
	}
	s.mu.Lock()
	s.stamp = fileStamp{} // force a reread
	s.refreshLocked()
	s.mu.Unlock()
	return nil
}

func checkRobotName(name string) error {
	ok := name != "" && len(name) <= 64 && validComponent(name)
	if !ok {
		return fmt.Errorf("robot name %q: use 1 to 64 lowercase letters and digits, separated by '.', '_' or '-': %w", name, errdefs.ErrInvalidArgument)
	}
	return nil
}
