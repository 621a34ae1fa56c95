// Package ldaptest runs a real OpenLDAP slapd for tests: Debian's slapd,
// started on free loopback ports with its own configuration, database and
// (optionally) TLS certificates in a temporary directory, loaded with a
// small known directory, and stopped by PID when the test ends.
//
//	srv := ldaptest.StartSlapd(t)                    // ldap://127.0.0.1:PORT
//	srv := ldaptest.StartSlapd(t, ldaptest.WithTLS()) // + ldaps:// and StartTLS, srv.CAFile
//	cfg := auth.LDAPConfig{
//		URL: srv.URL, BindDN: srv.BindDN, BindPassword: srv.BindPassword,
//		UserSearch:  auth.UserSearch{BaseDN: ldaptest.PeopleDN, Filter: "(uid={username})"},
//		GroupSearch: auth.GroupSearch{BaseDN: ldaptest.GroupsDN, Filter: "(member={dn})", NameAttribute: "cn"},
//	}
//	// log in as ldaptest.Alice with ldaptest.Password(ldaptest.Alice)
//	srv.Stop() // the directory goes away (Cleanup does it too)
//
// The directory (BaseDN dc=example,dc=org):
//
//	ou=people                     every user's password is Password(uid)
//	  uid=alice                   in team-a (member) and ops (uniqueMember)
//	  uid=bob                     in team-b (member) and web (posixGroup memberUid)
//	  uid=carol                   in team-a-contractors, itself a member of team-a
//	  uid=dave                    in no group
//	  uid=admin                   in admins
//	ou=groups                     groupOfNames team-a, team-a-contractors, team-b,
//	                              admins; groupOfUniqueNames ops; posixGroup web
//	cn=reader                     the service account (BindDN, BindPassword):
//	                              the only one allowed to search
//
// The memberof overlay keeps memberOf on users and nested groups (for
// groupOfNames). Users can read only their own entry, so group lookups
// must run as the service account. The server accepts unauthenticated
// binds (a DN with an empty password: "allow bind_anon_dn"), as some real
// servers do, so a client that forwards an empty password is caught.
//
// Tests skip, saying what to install, when slapd or ldapadd is missing
// (apt-get install -y slapd ldap-utils).
package ldaptest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The directory's fixed names.
const (
	BaseDN         = "dc=example,dc=org"
	PeopleDN       = "ou=people," + BaseDN
	GroupsDN       = "ou=groups," + BaseDN
	ReaderDN       = "cn=reader," + BaseDN
	ReaderPassword = "reader-secret"
	RootDN         = "cn=root," + BaseDN
	RootPassword   = "root-secret"
)

// The directory's users.
const (
	Alice = "alice" // team-a (member), ops (uniqueMember)
	Bob   = "bob"   // team-b (member), web (posixGroup memberUid)
	Carol = "carol" // team-a-contractors, nested in team-a
	Dave  = "dave"  // no group
	Admin = "admin" // admins
)

// Users lists every user of the directory.
var Users = []string{Alice, Bob, Carol, Dave, Admin}

// Password is the password of a user of the directory.
func Password(user string) string { return user + "-password" }

// UserDN is the DN of a user of the directory.
func UserDN(user string) string { return "uid=" + user + "," + PeopleDN }

// GroupDN is the DN of a group of the directory.
func GroupDN(group string) string { return "cn=" + group + "," + GroupsDN }

// Server is a running slapd.
type Server struct {
	// URL is ldap://127.0.0.1:PORT (StartTLS works on it with WithTLS).
	URL string
	// LDAPSURL is ldaps://127.0.0.1:PORT, with WithTLS only.
	LDAPSURL string
	// CAFile is the PEM certificate of the CA that signed the server's
	// certificate (for 127.0.0.1 and localhost), with WithTLS only.
	CAFile string
	// BaseDN, BindDN and BindPassword are the suffix and the service
	// account (ReaderDN, ReaderPassword).
	BaseDN, BindDN, BindPassword string
	// Dir holds slapd.conf, the database and slapd.log.
	Dir string

	t     testing.TB
	slapd string
	urls  string
	mu    sync.Mutex
	cmd   *exec.Cmd
	done  chan struct{}
}

type options struct {
	tls  bool
	ldif []string
}

// Option configures StartSlapd.
type Option func(*options)

// WithTLS generates a CA and a server certificate and adds an ldaps://
// listener; StartTLS works on the ldap:// one.
func WithTLS() Option { return func(o *options) { o.tls = true } }

// WithLDIF adds entries (LDIF, added with ldapadd as the root DN after the
// standard directory).
func WithLDIF(ldif string) Option { return func(o *options) { o.ldif = append(o.ldif, ldif) } }

// StartSlapd starts slapd and loads the directory. It is stopped when the
// test ends; on failure its log is printed.
func StartSlapd(t testing.TB, opts ...Option) *Server {
	t.Helper()
	var o options
	for _, f := range opts {
		f(&o)
	}
	slapd := lookPath("slapd")
	ldapadd := lookPath("ldapadd")
	if slapd == "" || ldapadd == "" {
		t.Skip("slapd or ldapadd not installed: apt-get install -y slapd ldap-utils")
	}
	dir := t.TempDir()
	s := &Server{
		BaseDN: BaseDN, BindDN: ReaderDN, BindPassword: ReaderPassword, Dir: dir,
		t: t, slapd: slapd,
	}
	if err := os.MkdirAll(filepath.Join(dir, "db"), 0o700); err != nil {
		t.Fatal(err)
	}
	var tlsConf string
	if o.tls {
		var err error
		if tlsConf, err = s.makeCerts(); err != nil {
			t.Fatalf("ldaptest: certificates: %v", err)
		}
	}
	conf := filepath.Join(dir, "slapd.conf")
	if err := os.WriteFile(conf, []byte(slapdConf(dir, tlsConf)), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			if log, err := os.ReadFile(filepath.Join(dir, "slapd.log")); err == nil {
				t.Logf("slapd.log:\n%s", tail(log, 4000))
			}
		}
	})

	// A free port can be taken between the probe and slapd's bind;
	// try again with new ones if slapd cannot listen.
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		ports := freePorts(t, 2)
		s.URL = fmt.Sprintf("ldap://127.0.0.1:%d", ports[0])
		s.urls = s.URL + "/"
		if o.tls {
			s.LDAPSURL = fmt.Sprintf("ldaps://127.0.0.1:%d", ports[1])
			s.urls += " " + s.LDAPSURL + "/"
		}
		if err = s.start(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("ldaptest: %v", err)
	}

	ldif := []string{baseLDIF()}
	ldif = append(ldif, o.ldif...)
	for i, l := range ldif {
		f := filepath.Join(dir, fmt.Sprintf("load-%d.ldif", i))
		if err := os.WriteFile(f, []byte(l), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(ldapadd, "-x", "-H", s.URL, "-D", RootDN, "-w", RootPassword, "-f", f).CombinedOutput()
		if err != nil {
			t.Fatalf("ldaptest: ldapadd %s: %v\n%s", f, err, out)
		}
	}
	return s
}

// Stop stops slapd (SIGTERM, then SIGKILL after 5s) and waits for it.
// Calling it again does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Restart starts slapd again after Stop, on the same ports and database.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		t.Fatalf("ldaptest: restart: %v", err)
	}
}

// start launches slapd in the foreground (-d 0: no fork, so the PID we
// hold is slapd's) and waits until it accepts connections.
func (s *Server) start() error {
	logf, err := os.OpenFile(filepath.Join(s.Dir, "slapd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(s.slapd, "-f", filepath.Join(s.Dir, "slapd.conf"), "-h", s.urls, "-d", "0")
	cmd.Dir = s.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so a ^C to the test run does not race our
	// cleanup; the kernel kills it with us if the test binary dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting slapd: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	addr := strings.TrimPrefix(s.URL, "ldap://")
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-done:
			log, _ := os.ReadFile(filepath.Join(s.Dir, "slapd.log"))
			return fmt.Errorf("slapd exited at start (%v):\n%s", cmd.ProcessState, tail(log, 2000))
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return errors.New("slapd did not listen within 15s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	return nil
}

func slapdConf(dir, tlsConf string) string {
	return fmt.Sprintf(`# generated by ldaptest
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
pidfile %[1]s/slapd.pid
argsfile %[1]s/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
# A DN with an empty password binds anonymously instead of failing: the
# "unauthenticated bind" that clients must not fall for.
allow bind_anon_dn
%[2]s
database mdb
maxsize 16777216
suffix "%[3]s"
rootdn "%[4]s"
rootpw %[5]s
directory %[1]s/db
access to attrs=userPassword
	by anonymous auth
	by * none
access to *
	by dn.exact="%[6]s" read
	by self read
	by * none
overlay memberof
memberof-group-oc groupOfNames
memberof-member-ad member
memberof-memberof-ad memberOf
memberof-refint TRUE
`, dir, tlsConf, BaseDN, RootDN, RootPassword, ReaderDN)
}

func baseLDIF() string {
	var b strings.Builder
	fmt.Fprintf(&b, `dn: %s
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: %s
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: reader
userPassword: %s

dn: %s
objectClass: organizationalUnit
ou: people

dn: %s
objectClass: organizationalUnit
ou: groups
`, BaseDN, ReaderDN, ReaderPassword, PeopleDN, GroupsDN)
	for _, u := range Users {
		fmt.Fprintf(&b, `
dn: %s
objectClass: inetOrgPerson
uid: %s
cn: %s
sn: %s
mail: %s@example.org
userPassword: %s
`, UserDN(u), u, strings.ToUpper(u[:1])+u[1:], u, u, Password(u))
	}
	group := func(name string, members ...string) {
		fmt.Fprintf(&b, "\ndn: %s\nobjectClass: groupOfNames\ncn: %s\n", GroupDN(name), name)
		for _, m := range members {
			fmt.Fprintf(&b, "member: %s\n", m)
		}
	}
	group("team-a-contractors", UserDN(Carol))
	group("team-a", UserDN(Alice), GroupDN("team-a-contractors"))
	group("team-b", UserDN(Bob))
	group("admins", UserDN(Admin))
	fmt.Fprintf(&b, "\ndn: %s\nobjectClass: groupOfUniqueNames\ncn: ops\nuniqueMember: %s\n", GroupDN("ops"), UserDN(Alice))
	fmt.Fprintf(&b, "\ndn: %s\nobjectClass: posixGroup\ncn: web\ngidNumber: 5000\nmemberUid: %s\n", GroupDN("web"), Bob)
	return b.String()
}

// makeCerts writes a CA and a server certificate for 127.0.0.1 and
// localhost, and returns the slapd.conf TLS lines.
func (s *Server) makeCerts() (string, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "ldaptest CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return "", err
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return "", err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", err
	}
	s.CAFile = filepath.Join(s.Dir, "ca.crt")
	certFile, keyFile := filepath.Join(s.Dir, "server.crt"), filepath.Join(s.Dir, "server.key")
	for _, f := range []struct {
		path, typ string
		der       []byte
	}{{s.CAFile, "CERTIFICATE", caDER}, {certFile, "CERTIFICATE", der}, {keyFile, "PRIVATE KEY", keyDER}} {
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), 0o600); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("TLSCACertificateFile %s\nTLSCertificateFile %s\nTLSCertificateKeyFile %s\n", s.CAFile, certFile, keyFile), nil
}

func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

func lookPath(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/usr/bin"} {
		if p := filepath.Join(d, name); fileExists(p) {
			return p
		}
	}
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func tail(b []byte, n int) []byte {
	b = bytes.TrimSpace(b)
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
