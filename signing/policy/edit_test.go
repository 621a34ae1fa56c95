package policy

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

func TestTrustKeyRotation(t *testing.T) {
	p := mustParse(t, `{
  "default": [{"type": "reject"}],
  "transports": {
    "docker": {
      "quay.io/team": [{"type": "insecureAcceptAnything"}],
      "quay.io/other": [{"type": "sigstoreSigned", "keyData": "a2V5"}]
    },
    "atomic": {"": [{"type": "reject"}]}
  }
}`)
	mr := &SignedIdentity{Type: MatchRepository}
	steps := []struct {
		name string
		do   func() (bool, error)
		want []string // keys of quay.io/team after the step; nil: scope absent
	}{
		{"replace accept-anything", func() (bool, error) { return p.TrustKey(TransportDocker, "quay.io/team", "/k1.pub", mr) }, []string{"/k1.pub"}},
		{"add second key", func() (bool, error) { return p.TrustKey(TransportDocker, "quay.io/team", "/k2.pub", mr) }, []string{"/k1.pub", "/k2.pub"}},
		{"rotate out first", func() (bool, error) { return p.UntrustKey(TransportDocker, "quay.io/team", "/k1.pub") }, []string{"/k2.pub"}},
		{"remove last", func() (bool, error) { return p.UntrustKey(TransportDocker, "quay.io/team", "/k2.pub") }, nil},
	}
	for _, s := range steps {
		changed, err := s.do()
		if err != nil || !changed {
			t.Fatalf("%s: changed=%v err=%v", s.name, changed, err)
		}
		reqs, ok := p.Transports[TransportDocker]["quay.io/team"]
		if s.want == nil {
			if ok {
				t.Fatalf("%s: scope still present: %v", s.name, reqs)
			}
			continue
		}
		got := reqs[0].(*SigstoreSigned)
		if !reflect.DeepEqual(got.KeyPathList(), s.want) || got.SignedIdentity.Type != MatchRepository {
			t.Fatalf("%s: requirement = %+v, want keys %v", s.name, got, s.want)
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
	}
	// The rest of the policy is untouched and survives a round trip.
	if _, ok := p.Transports["atomic"][""]; !ok {
		t.Error("transport atomic lost")
	}
	if _, err := p.TrustKey(TransportDocker, "quay.io/other", "/k.pub", nil); err == nil {
		t.Error("TrustKey merged a key into a keyData scope")
	}
	if changed, err := p.TrustKey(TransportDocker, "quay.io/new", "/k.pub", nil); err != nil || !changed {
		t.Fatal(err)
	}
	if changed, _ := p.TrustKey(TransportDocker, "quay.io/new", "/k.pub", nil); changed {
		t.Error("adding a key twice changed the policy")
	}
	out, _ := json.Marshal(p)
	if _, err := Parse(out); err != nil {
		t.Fatalf("edited policy does not parse: %v\n%s", err, out)
	}
	if _, err := p.RemoveScope(TransportDocker, "nope.io"); !errors.Is(err, ErrScopeNotFound) {
		t.Errorf("RemoveScope(missing) = %v, want ErrScopeNotFound", err)
	}
	if _, err := p.TrustKey(TransportDocker, "busybox", "/k.pub", nil); err == nil {
		t.Error("TrustKey accepted a scope that can never match")
	}
}

func TestMatchDockerHubAlias(t *testing.T) {
	// cosign writes Docker Hub as index.docker.io.
	if err := (&SignedIdentity{Type: MatchRepository}).Match("docker.io/library/busybox:1", "index.docker.io/library/busybox"); err != nil {
		t.Errorf("Match(index.docker.io alias) = %v", err)
	}
}
