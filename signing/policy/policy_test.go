package policy

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fedoraDefault is /etc/containers/policy.json as Fedora and podman ship it.
const fedoraDefault = `{"default":[{"type":"insecureAcceptAnything"}],"transports":{"docker-daemon":{"":[{"type":"insecureAcceptAnything"}]}}}`

// complexPolicy uses every requirement type, key source and identity type.
const complexPolicy = `{
    "default": [{"type": "reject"}],
    "transports": {
        "docker": {
            "docker.io/library/busybox": [{"type": "insecureAcceptAnything"}],
            "registry.example.com/team": [
                {
                    "type": "sigstoreSigned",
                    "keyPath": "/etc/pki/sigil/team.pub",
                    "signedIdentity": {"type": "matchRepository"}
                }
            ],
            "registry.example.com/multi": [
                {"type": "sigstoreSigned", "keyPaths": ["/k/a.pub", "/k/b.pub"]},
                {"type": "sigstoreSigned", "keyData": "LS0tLS1CRUdJTiBQVUJMSUMgS0VZLS0tLS0=", "signedIdentity": {"type": "matchExact"}},
                {"type": "sigstoreSigned", "keyDatas": ["YQ==", "Yg=="], "signedIdentity": {"type": "matchRepoDigestOrExact"}}
            ],
            "ghcr.io/keyless": [
                {
                    "type": "sigstoreSigned",
                    "fulcio": {
                        "caPath": "/etc/pki/sigil/fulcio.pem",
                        "oidcIssuer": "https://token.actions.githubusercontent.com",
                        "subjectEmail": "release@example.com"
                    },
                    "rekorPublicKeyPath": "/etc/pki/sigil/rekor.pub",
                    "signedIdentity": {"type": "exactRepository", "dockerRepository": "ghcr.io/keyless/app"}
                }
            ],
            "ghcr.io/keyless2": [
                {
                    "type": "sigstoreSigned",
                    "fulcio": {"caData": "Y2E=", "oidcIssuer": "https://issuer", "subjectEmail": "a@b.c"},
                    "rekorPublicKeyPaths": ["/r/1.pub", "/r/2.pub"]
                },
                {
                    "type": "sigstoreSigned",
                    "fulcio": {"caData": "Y2E=", "oidcIssuer": "https://issuer", "subjectEmail": "a@b.c"},
                    "rekorPublicKeyData": "cmVrb3I="
                },
                {
                    "type": "sigstoreSigned",
                    "fulcio": {"caData": "Y2E=", "oidcIssuer": "https://issuer", "subjectEmail": "a@b.c"},
                    "rekorPublicKeyDatas": ["cjE=", "cjI="]
                }
            ],
            "pki.example.com": [
                {
                    "type": "sigstoreSigned",
                    "pki": {
                        "caRootsPath": "/etc/pki/roots.pem",
                        "caIntermediatesData": "aW50",
                        "subjectEmail": "builder@example.com",
                        "subjectHostname": "builder.example.com"
                    },
                    "signedIdentity": {"type": "exactReference", "dockerReference": "pki.example.com/app:1.0"}
                }
            ],
            "mirror.local:5000/vendor": [
                {
                    "type": "signedBy",
                    "keyType": "GPGKeys",
                    "keyPath": "/etc/pki/vendor.gpg",
                    "signedIdentity": {"type": "remapIdentity", "prefix": "mirror.local:5000/vendor", "signedPrefix": "vendor.example.com"}
                },
                {"type": "signedBy", "keyType": "GPGKeys", "keyPaths": ["/a.gpg"]},
                {"type": "signedBy", "keyType": "GPGKeys", "keyData": "Z3Bn"}
            ],
            "*.temporary.example.com": [{"type": "insecureAcceptAnything"}],
            "": [{"type": "reject"}]
        },
        "oci": {
            "/srv/layouts": [{"type": "insecureAcceptAnything"}],
            "": [{"type": "reject"}]
        },
        "atomic": {
            "hostname:5000/myns/official": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/official.gpg"}]
        },
        "dir": {"": [{"type": "insecureAcceptAnything"}]},
        "docker-daemon": {"": [{"type": "insecureAcceptAnything"}]},
        "containers-storage": {"": [{"type": "signedBaseLayer", "baseLayerIdentity": {"type": "matchRepository"}}]},
        "some-future-transport": {"whatever:scope": [{"type": "reject"}]}
    }
}`

func mustParse(t *testing.T, s string) *Policy {
	t.Helper()
	p, err := Parse([]byte(s))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return p
}

func TestParseFedoraDefault(t *testing.T) {
	p := mustParse(t, fedoraDefault)
	want := &Policy{
		Default: Requirements{&InsecureAcceptAnything{}},
		Transports: map[string]Scopes{
			"docker-daemon": {"": Requirements{&InsecureAcceptAnything{}}},
		},
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("got %+v", p)
	}
	out, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != fedoraDefault {
		t.Errorf("round trip:\n got %s\nwant %s", out, fedoraDefault)
	}
}

func TestParseComplex(t *testing.T) {
	p := mustParse(t, complexPolicy)
	d := p.Transports["docker"]

	team := d["registry.example.com/team"][0].(*SigstoreSigned)
	if team.KeyPath != "/etc/pki/sigil/team.pub" || team.SignedIdentity.Type != MatchRepository {
		t.Errorf("team = %+v", team)
	}
	multi := d["registry.example.com/multi"]
	if got := multi[0].(*SigstoreSigned).KeyPaths; !reflect.DeepEqual(got, []string{"/k/a.pub", "/k/b.pub"}) {
		t.Errorf("keyPaths = %q", got)
	}
	if got := string(multi[1].(*SigstoreSigned).KeyData); got != "-----BEGIN PUBLIC KEY-----" {
		t.Errorf("keyData not base64-decoded: %q", got)
	}
	if got := multi[2].(*SigstoreSigned).KeyDatas; len(got) != 2 || string(got[1]) != "b" {
		t.Errorf("keyDatas = %q", got)
	}
	keyless := d["ghcr.io/keyless"][0].(*SigstoreSigned)
	if keyless.Fulcio == nil || keyless.Fulcio.OIDCIssuer != "https://token.actions.githubusercontent.com" ||
		keyless.Fulcio.SubjectEmail != "release@example.com" || keyless.RekorPublicKeyPath != "/etc/pki/sigil/rekor.pub" ||
		keyless.SignedIdentity.DockerRepository != "ghcr.io/keyless/app" {
		t.Errorf("keyless = %+v fulcio %+v", keyless, keyless.Fulcio)
	}
	pki := d["pki.example.com"][0].(*SigstoreSigned)
	if pki.PKI == nil || string(pki.PKI.CAIntermediatesData) != "int" || pki.PKI.SubjectHostname != "builder.example.com" ||
		pki.SignedIdentity.Type != ExactReference {
		t.Errorf("pki = %+v %+v", pki, pki.PKI)
	}
	gpg := d["mirror.local:5000/vendor"][0].(*SignedBy)
	if gpg.KeyType != "GPGKeys" || gpg.SignedIdentity.SignedPrefix != "vendor.example.com" {
		t.Errorf("signedBy = %+v", gpg)
	}
	if _, ok := p.Transports["containers-storage"][""][0].(*SignedBaseLayer); !ok {
		t.Error("signedBaseLayer not parsed")
	}
	if _, ok := p.Transports["some-future-transport"]["whatever:scope"]; !ok {
		t.Error("unknown transport not kept")
	}

	// Marshalling and parsing again yields the same policy.
	out, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	q, err := Parse(out)
	if err != nil {
		t.Fatalf("re-parse: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(p, q) {
		t.Errorf("round trip changed the policy:\n%s", out)
	}
	// json.Unmarshal applies the same rules.
	var viaJSON Policy
	if err := json.Unmarshal([]byte(complexPolicy), &viaJSON); err != nil || !reflect.DeepEqual(&viaJSON, p) {
		t.Errorf("json.Unmarshal: %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	wrap := func(req string) string {
		return `{"default":[{"type":"reject"}],"transports":{"docker":{"quay.io/team":[` + req + `]}}}`
	}
	const loc = `transports.docker["quay.io/team"][0]`
	tests := []struct {
		name, policy string
		want         []string
	}{
		{"not json", `{"default": [`, []string{"invalid trust policy: "}},
		{"trailing data", `{"default":[{"type":"reject"}]} {}`, []string{"unexpected data"}},
		{"missing default", `{"transports":{}}`, []string{`"default" is missing`}},
		{"empty default", `{"default":[]}`, []string{"default: the list of requirements is empty"}},
		{"null scope", `{"default":[{"type":"reject"}],"transports":{"docker":{"quay.io":null}}}`, []string{`transports.docker["quay.io"]: the list of requirements is empty`}},
		{"unknown top-level", `{"default":[{"type":"reject"}],"transport":{}}`, []string{`unknown field "transport"`}},
		{"unknown type", wrap(`{"type":"signedByMagic"}`), []string{loc, `unknown requirement type "signedByMagic"`}},
		{"no type", wrap(`{"keyPath":"/k"}`), []string{loc, `requirement has no "type"`}},
		{"unknown field", wrap(`{"type":"sigstoreSigned","keyPth":"/k"}`), []string{loc, "sigstoreSigned", `unknown field "keyPth"`}},
		{"unknown field on reject", wrap(`{"type":"reject","reason":"x"}`), []string{loc, `unknown field "reason"`}},
		{"no key", wrap(`{"type":"sigstoreSigned"}`), []string{loc, "exactly one of keyPath, keyPaths, keyData, keyDatas, fulcio or pki must be set, found none"}},
		{"two keys", wrap(`{"type":"sigstoreSigned","keyPath":"/k","keyData":"YQ=="}`), []string{loc, "found keyPath and keyData"}},
		{"key and fulcio", wrap(`{"type":"sigstoreSigned","keyPaths":["/k"],"fulcio":{"caPath":"/c","oidcIssuer":"i","subjectEmail":"e"},"rekorPublicKeyPath":"/r"}`), []string{"found keyPaths and fulcio"}},
		{"empty keyPaths", wrap(`{"type":"sigstoreSigned","keyPaths":[]}`), []string{"keyPaths has no entries"}},
		{"empty keyData", wrap(`{"type":"sigstoreSigned","keyData":""}`), []string{"keyData is empty"}},
		{"bad base64", wrap(`{"type":"sigstoreSigned","keyData":"%%%"}`), []string{loc, "illegal base64"}},
		{"fulcio without rekor", wrap(`{"type":"sigstoreSigned","fulcio":{"caPath":"/c","oidcIssuer":"i","subjectEmail":"e"}}`), []string{"fulcio needs a Rekor public key"}},
		{"two rekor keys", wrap(`{"type":"sigstoreSigned","keyPath":"/k","rekorPublicKeyPath":"/r","rekorPublicKeyData":"YQ=="}`), []string{"found rekorPublicKeyPath and rekorPublicKeyData"}},
		{"fulcio no issuer", wrap(`{"type":"sigstoreSigned","fulcio":{"caPath":"/c","subjectEmail":"e"},"rekorPublicKeyPath":"/r"}`), []string{"fulcio: oidcIssuer is missing"}},
		{"fulcio two CAs", wrap(`{"type":"sigstoreSigned","fulcio":{"caPath":"/c","caData":"YQ==","oidcIssuer":"i","subjectEmail":"e"},"rekorPublicKeyPath":"/r"}`), []string{"fulcio: exactly one of caPath or caData must be set, found caPath and caData"}},
		{"fulcio unknown field", wrap(`{"type":"sigstoreSigned","fulcio":{"caPath":"/c","oidcIssuer":"i","subjectEmail":"e","subject":"x"},"rekorPublicKeyPath":"/r"}`), []string{`unknown field "subject"`}},
		{"pki no roots", wrap(`{"type":"sigstoreSigned","pki":{"subjectEmail":"e"}}`), []string{"pki: exactly one of caRootsPath or caRootsData must be set, found none"}},
		{"pki no subject", wrap(`{"type":"sigstoreSigned","pki":{"caRootsPath":"/r"}}`), []string{"pki: at least one of subjectEmail or subjectHostname"}},
		{"pki two intermediates", wrap(`{"type":"sigstoreSigned","pki":{"caRootsPath":"/r","caIntermediatesPath":"/i","caIntermediatesData":"YQ==","subjectEmail":"e"}}`), []string{"caIntermediatesPath and caIntermediatesData cannot both be set"}},
		{"signedBy no keyType", wrap(`{"type":"signedBy","keyPath":"/k"}`), []string{"keyType is missing"}},
		{"signedBy bad keyType", wrap(`{"type":"signedBy","keyType":"RSA","keyPath":"/k"}`), []string{`keyType "RSA" is not one of`}},
		{"signedBy two keys", wrap(`{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","keyPaths":["/j"]}`), []string{"found keyPath and keyPaths"}},
		{"identity unknown type", wrap(`{"type":"sigstoreSigned","keyPath":"/k","signedIdentity":{"type":"matchAnything"}}`), []string{`signedIdentity: unknown type "matchAnything"`}},
		{"identity missing type", wrap(`{"type":"sigstoreSigned","keyPath":"/k","signedIdentity":{}}`), []string{"signedIdentity: type is missing"}},
		{"exactReference name only", wrap(`{"type":"sigstoreSigned","keyPath":"/k","signedIdentity":{"type":"exactReference","dockerReference":"quay.io/a/b"}}`), []string{"has neither a tag nor a digest"}},
		{"exactReference missing", wrap(`{"type":"sigstoreSigned","keyPath":"/k","signedIdentity":{"type":"exactReference"}}`), []string{"dockerReference is missing"}},
		{"exactRepository invalid", wrap(`{"type":"sigstoreSigned","keyPath":"/k","signedIdentity":{"type":"exactRepository","dockerRepository":"quay.io/UPPER"}}`), []string{`dockerRepository "quay.io/UPPER"`}},
		{"remap missing", wrap(`{"type":"sigstoreSigned","keyPath":"/k","signedIdentity":{"type":"remapIdentity","prefix":"a.io"}}`), []string{"signedPrefix is missing"}},
		{"remap with tag", wrap(`{"type":"sigstoreSigned","keyPath":"/k","signedIdentity":{"type":"remapIdentity","prefix":"a.io/x:1","signedPrefix":"b.io"}}`), []string{`prefix "a.io/x:1" is not a host[:port], namespace or repository`}},
		{"stray identity field", wrap(`{"type":"sigstoreSigned","keyPath":"/k","signedIdentity":{"type":"matchExact","dockerReference":"a.io/b:1"}}`), []string{"dockerReference does not apply"}},
		{"signedBaseLayer no identity", wrap(`{"type":"signedBaseLayer"}`), []string{"baseLayerIdentity is missing"}},
		{"duplicate scope", `{"default":[{"type":"reject"}],"transports":{"docker":{"quay.io":[{"type":"reject"}],"quay.io":[{"type":"insecureAcceptAnything"}]}}}`, []string{`transports.docker["quay.io"] appears twice`}},
		{"duplicate field", wrap(`{"type":"sigstoreSigned","keyPath":"/a","keyPath":"/b"}`), []string{`keyPath appears twice`}},
		{"familiar scope", `{"default":[{"type":"reject"}],"transports":{"docker":{"busybox":[{"type":"reject"}]}}}`, []string{`scope "busybox" does not start with a registry host`, `"docker.io/library/busybox"`}},
		{"url scope", `{"default":[{"type":"reject"}],"transports":{"docker":{"https://quay.io":[{"type":"reject"}]}}}`, []string{"URL scheme"}},
		{"bad wildcard scope", `{"default":[{"type":"reject"}],"transports":{"docker":{"*.example.com/ns":[{"type":"reject"}]}}}`, []string{"wildcard scope names hosts only"}},
		{"relative oci scope", `{"default":[{"type":"reject"}],"transports":{"oci":{"layouts/x":[{"type":"reject"}]}}}`, []string{"must be an absolute path"}},
		{"root oci scope", `{"default":[{"type":"reject"}],"transports":{"oci":{"/":[{"type":"reject"}]}}}`, []string{`scope "/" is not allowed`}},
		{"unclean oci scope", `{"default":[{"type":"reject"}],"transports":{"oci":{"/srv//x/:tag":[{"type":"reject"}]}}}`, []string{`write "/srv/x:tag"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.policy))
			if err == nil {
				t.Fatal("Parse succeeded, want error")
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Errorf("error %T is not *FormatError", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestScopePrecedence(t *testing.T) {
	const dg = "sha256:7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa"
	// Each scope accepts or rejects distinctively so the test can tell them
	// apart: the requirement's detail is irrelevant, the returned scope is
	// what is checked.
	pol := mustParse(t, `{
		"default": [{"type": "reject"}],
		"transports": {
			"docker": {
				"registry.example.com/ns/repo@`+dg+`": [{"type": "reject"}],
				"registry.example.com/ns/repo:1.0": [{"type": "reject"}],
				"registry.example.com/ns/repo": [{"type": "reject"}],
				"registry.example.com/ns": [{"type": "reject"}],
				"registry.example.com": [{"type": "reject"}],
				"*.sub.example.com": [{"type": "reject"}],
				"*.example.com": [{"type": "reject"}],
				"localhost:5000": [{"type": "reject"}],
				"docker.io/library": [{"type": "reject"}],
				"": [{"type": "insecureAcceptAnything"}]
			},
			"oci": {
				"/srv/layouts/app:1.0": [{"type": "reject"}],
				"/srv/layouts": [{"type": "reject"}]
			},
			"docker-daemon": {
				"busybox:latest": [{"type": "reject"}]
			}
		}
	}`)
	tests := []struct {
		transport, ref, scope string
	}{
		{"docker", "registry.example.com/ns/repo@" + dg, "registry.example.com/ns/repo@" + dg},
		{"docker", "registry.example.com/ns/repo:1.0@" + dg, "registry.example.com/ns/repo@" + dg},
		{"docker", "registry.example.com/ns/repo:1.0", "registry.example.com/ns/repo:1.0"},
		{"docker", "docker://registry.example.com/ns/repo:1.0", "registry.example.com/ns/repo:1.0"},
		{"docker", "registry.example.com/ns/repo:2.0", "registry.example.com/ns/repo"},
		{"docker", "registry.example.com/ns/repo", "registry.example.com/ns/repo"},
		{"docker", "registry.example.com/ns/repo2:1.0", "registry.example.com/ns"},
		{"docker", "registry.example.com/ns/deep/er/repo", "registry.example.com/ns"},
		{"docker", "registry.example.com/nsx/repo", "registry.example.com"},
		{"docker", "registry.example.com:443/ns/repo", "*.example.com"},
		{"docker", "a.sub.example.com/x", "*.sub.example.com"},
		{"docker", "sub.example.com/x", "*.example.com"},
		{"docker", "other.example.com:5000/x", "*.example.com"},
		{"docker", "example.com/x", ""},
		{"docker", "localhost:5000/a/b", "localhost:5000"},
		{"docker", "localhost/a", ""},
		{"docker", "busybox", "docker.io/library"},
		{"docker", "quay.io/x/y", ""},
		{"docker", "NOT VALID", ""},
		{"oci", "/srv/layouts/app:1.0", "/srv/layouts/app:1.0"},
		{"oci", "oci:/srv/layouts/app:2.0", "/srv/layouts"},
		{"oci", "/srv/layouts/nested/app", "/srv/layouts"},
		{"oci", "/srv/layoutsx/app", "default"},
		{"oci", "relative/app:1.0", "default"},
		{"docker-daemon", "busybox:latest", "busybox:latest"},
		{"docker-daemon", "busybox:1", "default"},
		{"dir", "/x", "default"},
	}
	for _, tt := range tests {
		t.Run(tt.transport+":"+tt.ref, func(t *testing.T) {
			scope, reqs := pol.RequirementsFor(tt.transport, tt.ref)
			if scope != tt.scope {
				t.Errorf("scope = %q, want %q", scope, tt.scope)
			}
			if len(reqs) == 0 {
				t.Error("no requirements")
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "policy.json")
	_, err := Load(missing)
	if !errors.Is(err, ErrNoPolicy) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load(missing) = %v, want ErrNoPolicy and fs.ErrNotExist", err)
	}
	want := "no trust policy at " + missing + ": sigil refuses to fetch images it cannot judge; create one with 'sigil trust add --scope REGISTRY/REPOSITORY --key KEY.pub' (images outside the scopes you add are then refused) or pass --insecure-policy"
	if err.Error() != want {
		t.Errorf("error text\n got %q\nwant %q", err, want)
	}

	if err := os.WriteFile(missing, []byte(fedoraDefault), 0o644); err != nil {
		t.Fatal(err)
	}
	if p, err := Load(missing); err != nil || len(p.Default) != 1 {
		t.Errorf("Load = %v, %v", p, err)
	}

	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"default":[{"type":"nope"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad)
	if err == nil || !strings.Contains(err.Error(), "invalid trust policy "+bad+": default[0]: unknown requirement type \"nope\"") {
		t.Errorf("Load(bad) = %v", err)
	}
	if errors.Is(err, ErrNoPolicy) {
		t.Error("a malformed policy must not look like a missing one")
	}
}

func TestValidateEditedPolicy(t *testing.T) {
	p := AcceptAnything()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	p.Transports = map[string]Scopes{"docker": {"quay.io": Requirements{&SigstoreSigned{}}}}
	err := p.Validate()
	if err == nil || !strings.Contains(err.Error(), `transports.docker["quay.io"][0] (sigstoreSigned): exactly one of`) {
		t.Errorf("Validate = %v", err)
	}
	p.Transports = map[string]Scopes{"docker": {"quay.io": Requirements{}}}
	if err := p.Validate(); err == nil {
		t.Error("empty requirements accepted")
	}
}

func TestParseEmptyFileSaysSo(t *testing.T) {
	for _, data := range []string{"", "  \n"} {
		_, err := Parse([]byte(data))
		if err == nil || !strings.Contains(err.Error(), "empty") {
			t.Errorf("Parse(%q) = %v, want an error saying the file is empty", data, err)
		}
	}
}
