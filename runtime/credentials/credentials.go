// Package credentials stores registry logins where docker and podman keep
// them, so `sigil login`, `docker login` and `podman login` share them:
// $REGISTRY_AUTH_FILE when set, else $DOCKER_CONFIG/config.json, else
// ~/.docker/config.json. Read them with Keychain: $REGISTRY_AUTH_FILE first,
// as podman reads it, then go-containerregistry's default keychain (docker's
// files, credential helpers, podman's auth.json). The default keychain alone
// ignores $REGISTRY_AUTH_FILE whenever ~/.docker/config.json exists, so a
// login saved there would not be used.
//
//	f := credentials.DefaultFile()
//	err := credentials.Save(f, "registry.example.com", "alice", "secret")
//	client := remote.NewClient(remote.WithKeychain(credentials.Keychain(authn.DefaultKeychain)))
package credentials

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/sigil-project/sigil/runtime/atomicfile"
)

// Keychain reads the credentials for a registry from $REGISTRY_AUTH_FILE
// when it is set and holds them, else from fallback.
func Keychain(fallback authn.Keychain) authn.Keychain { return keychain{fallback} }

type keychain struct{ fallback authn.Keychain }

func (k keychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	if path := os.Getenv("REGISTRY_AUTH_FILE"); path != "" {
		cfg, err := lookup(path, target)
		if err != nil {
			return nil, err
		}
		if cfg != nil {
			return authn.FromConfig(*cfg), nil
		}
	}
	return k.fallback.Resolve(target)
}

// lookup finds target's entry in the auth file at path: by repository
// (podman's per-repository logins), then by registry; nil if none.
func lookup(path string, target authn.Resource) (*authn.AuthConfig, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("auth file %s: %w", path, err)
	}
	var doc struct {
		Auths map[string]authn.AuthConfig `json:"auths"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("auth file %s ($REGISTRY_AUTH_FILE): %w", path, err)
	}
	keys := []string{target.String(), target.RegistryStr()}
	if target.RegistryStr() == name.DefaultRegistry {
		keys = append(keys, authn.DefaultAuthKey, "docker.io")
	}
	for _, key := range keys {
		if c, ok := doc.Auths[key]; ok && c != (authn.AuthConfig{}) {
			return &c, nil
		}
	}
	return nil, nil
}

// DefaultFile is the auth file sigil login writes.
func DefaultFile() string {
	if p := os.Getenv("REGISTRY_AUTH_FILE"); p != "" {
		return p
	}
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		return filepath.Join(d, "config.json")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = "/root"
	}
	return filepath.Join(home, ".docker", "config.json")
}

// Save records user:password for host in the auth file at path, keeping
// every other setting in it untouched. The file is written mode 0600 via a
// temporary file, so a crash never leaves it half-written.
func Save(path, host, user, password string) error {
	doc := map[string]json.RawMessage{}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("auth file %s: %w", path, err)
	default:
		if err := json.Unmarshal(b, &doc); err != nil {
			return fmt.Errorf("auth file %s is not valid JSON: %w; fix or remove it", path, err)
		}
	}
	auths := map[string]map[string]any{}
	if raw, ok := doc["auths"]; ok {
		if err := json.Unmarshal(raw, &auths); err != nil {
			return fmt.Errorf("auth file %s: \"auths\" is malformed: %w", path, err)
		}
	}
	entry := auths[host]
	if entry == nil {
		entry = map[string]any{}
	}
	entry["auth"] = base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	auths[host] = entry
	raw, err := json.Marshal(auths)
	if err != nil {
		return err
	}
	doc["auths"] = raw
	out, err := json.MarshalIndent(doc, "", "\t")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("auth file %s: %w", path, err)
	}
	return atomicfile.WriteFile(path, append(out, '\n'), 0o600)
}
