package ldaptest_test

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"slices"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/sigil-project/sigil/auth/ldaptest"
)

// TestDirectory checks the promises of the package doc against the
// running server, so tests built on them test what they think they test.
func TestDirectory(t *testing.T) {
	srv := ldaptest.StartSlapd(t, ldaptest.WithTLS())

	c, err := ldap.DialURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// The trap: a DN with an empty password "binds", as anonymous.
	if err := c.UnauthenticatedBind(ldaptest.UserDN(ldaptest.Admin)); err != nil {
		t.Errorf("unauthenticated bind = %v, want success (allow bind_anon_dn)", err)
	}

	// Users bind with their passwords, and see only themselves.
	if err := c.Bind(ldaptest.UserDN(ldaptest.Alice), ldaptest.Password(ldaptest.Alice)); err != nil {
		t.Fatalf("bind as alice: %v", err)
	}
	res, err := c.Search(ldap.NewSearchRequest(ldaptest.GroupsDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		0, 0, false, "(objectClass=*)", []string{"cn"}, nil))
	if err == nil && len(res.Entries) > 0 {
		t.Errorf("alice reads %d group entries, want none (only the service account may)", len(res.Entries))
	}

	// The reader sees memberOf, nested groups included.
	if err := c.Bind(srv.BindDN, srv.BindPassword); err != nil {
		t.Fatalf("bind as reader: %v", err)
	}
	for dn, want := range map[string][]string{
		ldaptest.UserDN(ldaptest.Alice):        {ldaptest.GroupDN("team-a")},
		ldaptest.UserDN(ldaptest.Carol):        {ldaptest.GroupDN("team-a-contractors")},
		ldaptest.GroupDN("team-a-contractors"): {ldaptest.GroupDN("team-a")},
		ldaptest.UserDN(ldaptest.Dave):         nil,
	} {
		res, err := c.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases,
			0, 0, false, "(objectClass=*)", []string{"memberOf"}, nil))
		if err != nil || len(res.Entries) != 1 {
			t.Fatalf("read %s: %v", dn, err)
		}
		if got := res.Entries[0].GetAttributeValues("memberOf"); !slices.Equal(got, want) {
			t.Errorf("memberOf(%s) = %q, want %q", dn, got, want)
		}
	}

	// TLS both ways with the generated CA.
	pem, err := os.ReadFile(srv.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tc := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	// StartTLS on a fresh connection: slapd refuses it while it still
	// counts an earlier operation as outstanding.
	st, err := ldap.DialURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.StartTLS(tc); err != nil {
		t.Errorf("StartTLS: %v", err)
	}
	if err := st.Bind(srv.BindDN, srv.BindPassword); err != nil {
		t.Errorf("bind after StartTLS: %v", err)
	}
	s, err := ldap.DialURL(srv.LDAPSURL, ldap.DialWithTLSConfig(tc))
	if err != nil {
		t.Fatalf("ldaps: %v", err)
	}
	defer s.Close()
	if err := s.Bind(srv.BindDN, srv.BindPassword); err != nil {
		t.Errorf("bind over ldaps: %v", err)
	}

	// Stop really stops it, and Restart brings it back with its data.
	srv.Stop()
	if c, err := ldap.DialURL(srv.URL); err == nil {
		c.Close()
		t.Fatal("slapd still answers after Stop")
	}
	srv.Restart(t)
	c2, err := ldap.DialURL(srv.URL)
	if err != nil {
		t.Fatalf("after Restart: %v", err)
	}
	defer c2.Close()
	if err := c2.Bind(ldaptest.UserDN(ldaptest.Bob), ldaptest.Password(ldaptest.Bob)); err != nil {
		t.Errorf("bind as bob after Restart: %v", err)
	}
}
