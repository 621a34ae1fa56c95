package credentials

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

func TestSaveKeepsTheRestOfTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth.json")
	before := `{"auths":{"quay.io":{"auth":"eDp5"}},"psFormat":"table {{.ID}}"}`
	if err := os.WriteFile(path, []byte(before), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Save(path, "registry.example.com", "alice", "s3cret"); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("auth file mode = %o, want 600", fi.Mode().Perm())
	}
	var doc map[string]any
	b, _ := os.ReadFile(path)
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	auths := doc["auths"].(map[string]any)
	if auths["quay.io"] == nil || doc["psFormat"] != "table {{.ID}}" {
		t.Errorf("Save dropped unrelated settings: %s", b)
	}
	if got := auths["registry.example.com"].(map[string]any)["auth"]; got != "YWxpY2U6czNjcmV0" {
		t.Errorf("saved auth = %v, want base64(alice:s3cret)", got)
	}
}

func TestSaveRefusesACorruptFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth.json")
	os.WriteFile(path, []byte("{not json"), 0o600)
	if err := Save(path, "h", "u", "p"); err == nil {
		t.Fatal("Save over a corrupt auth file succeeded; want an error naming it")
	}
	if b, _ := os.ReadFile(path); string(b) != "{not json" {
		t.Errorf("the corrupt file was overwritten: %q", b)
	}
}

type noCreds struct{}

func (noCreds) Resolve(authn.Resource) (authn.Authenticator, error) { return authn.Anonymous, nil }

func TestKeychainReadsRegistryAuthFileFirst(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth.json")
	t.Setenv("REGISTRY_AUTH_FILE", path)
	if err := Save(path, "registry.example.com", "alice", "s3cret"); err != nil {
		t.Fatal(err)
	}
	reg, _ := name.NewRegistry("registry.example.com")
	a, err := Keychain(noCreds{}).Resolve(reg)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := a.Authorization()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Username != "alice" || cfg.Password != "s3cret" {
		t.Errorf("Keychain creds for registry.example.com = %q/%q, want alice/s3cret", cfg.Username, cfg.Password)
	}
	other, _ := name.NewRegistry("other.example.com")
	if a, _ := Keychain(noCreds{}).Resolve(other); a != authn.Anonymous {
		t.Errorf("Keychain for a registry not in the file = %v, want the fallback's answer", a)
	}
}
