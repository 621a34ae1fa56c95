package auth_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/sigil-project/sigil/auth"
)

// issueRules are the access rules of the registry issue, as written.
var issueRules = []auth.Rule{
	{Repositories: []string{"team-a/**"}, Groups: []string{"team-a"}, Actions: []string{"pull", "push", "delete"}},
	{Repositories: []string{"public/**"}, Anonymous: true, Actions: []string{"pull"}},
	{Repositories: []string{"**"}, Users: []string{"admin"}, Actions: []string{"*"}},
	{Repositories: []string{"ci/*"}, Robots: []string{"robot$builder"}, Actions: []string{"pull", "push"}},
}

func TestACLAllowed(t *testing.T) {
	acl, err := auth.NewACL(issueRules)
	if err != nil {
		t.Fatal(err)
	}
	alice := &auth.Identity{Name: "alice", Groups: []string{"ops", "team-a"}}
	dave := &auth.Identity{Name: "dave"}
	admin := &auth.Identity{Name: "admin"}
	robotAdmin := &auth.Identity{Name: "admin", Robot: true} // a robot named like a user is not that user
	builder := &auth.Identity{Name: "builder", Robot: true}
	scoped := &auth.Identity{Name: "deployer", Robot: true, Permissions: []auth.Permission{
		{Repositories: []string{"team-b/app"}, Actions: []string{"pull"}},
	}}
	userNamedTeamA := &auth.Identity{Name: "team-a"} // a user named like a group is not in it

	for _, tc := range []struct {
		name string
		id   *auth.Identity
		repo string
		want []string
	}{
		{"group member, own namespace", alice, "team-a/app", []string{"delete", "pull", "push"}},
		{"group member, deep path", alice, "team-a/x/y/z", []string{"delete", "pull", "push"}},
		{"** needs a segment after team-a/", alice, "team-a", nil},
		{"prefix is not a namespace", alice, "team-ab/app", nil},
		{"group member, other namespace", alice, "team-b/app", nil},
		{"group member, public", alice, "public/tools", []string{"pull"}},
		{"no group: public only", dave, "public/tools", []string{"pull"}},
		{"no group: nothing else", dave, "team-a/app", nil},
		{"anonymous: public pull", nil, "public/tools", []string{"pull"}},
		{"anonymous: public deep pull", nil, "public/a/b", []string{"pull"}},
		{"anonymous: nothing else", nil, "team-a/app", nil},
		{"admin: * everywhere", admin, "team-a/app", []string{"*", "delete", "pull", "push"}},
		{"admin: top-level repo", admin, "busybox", []string{"*", "delete", "pull", "push"}},
		{"robot named admin is not admin", robotAdmin, "team-a/app", nil},
		{"robot by rule, one segment", builder, "ci/tool", []string{"pull", "push"}},
		{"robot by rule, * stays in a segment", builder, "ci/tool/x", nil},
		{"robot's own scope", scoped, "team-b/app", []string{"pull"}},
		{"robot's own scope, elsewhere", scoped, "team-b/other", nil},
		{"robot gets anonymous rules", scoped, "public/tools", []string{"pull"}},
		{"user named like a group", userNamedTeamA, "team-a/app", nil},
		{"invalid name: upper case", admin, "Team-A/app", nil},
		{"invalid name: dot-dot", admin, "team-a/../x", nil},
		{"invalid name: empty", admin, "", nil},
		{"invalid name: trailing slash", admin, "team-a/", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := acl.Allowed(tc.id, tc.repo); !slices.Equal(got, tc.want) {
				t.Errorf("Allowed(%v, %q) = %q, want %q", tc.id, tc.repo, got, tc.want)
			}
		})
	}
}

func TestACLGrant(t *testing.T) {
	acl, err := auth.NewACL(issueRules)
	if err != nil {
		t.Fatal(err)
	}
	alice := &auth.Identity{Name: "alice", Groups: []string{"team-a"}}
	admin := &auth.Identity{Name: "admin"}
	for _, tc := range []struct {
		id        *auth.Identity
		repo      string
		requested []string
		want      []string
	}{
		{alice, "team-a/app", []string{"pull", "push"}, []string{"pull", "push"}},
		{alice, "team-a/app", []string{"push", "pull", "push"}, []string{"push", "pull"}},
		{alice, "team-a/app", []string{"*"}, nil}, // * only from a rule that grants *
		{alice, "public/x", []string{"pull", "push"}, []string{"pull"}},
		{alice, "team-a/app", []string{"bogus"}, nil},
		{admin, "x", []string{"*", "pull"}, []string{"*", "pull"}},
		{nil, "public/x", []string{"push"}, nil},
	} {
		if got := acl.Grant(tc.id, tc.repo, tc.requested...); !slices.Equal(got, tc.want) {
			t.Errorf("Grant(%v, %q, %q) = %q, want %q", tc.id, tc.repo, tc.requested, got, tc.want)
		}
	}
}

func TestACLCatalog(t *testing.T) {
	acl, err := auth.NewACL(issueRules)
	if err != nil {
		t.Fatal(err)
	}
	repos := []string{"busybox", "public/tools", "team-a/app", "team-b/app"}
	for _, tc := range []struct {
		id      *auth.Identity
		allowed bool
		want    []string
	}{
		{nil, true, []string{"public/tools"}},
		{&auth.Identity{Name: "alice", Groups: []string{"team-a"}}, true, []string{"public/tools", "team-a/app"}},
		{&auth.Identity{Name: "admin"}, true, repos},
	} {
		if got := acl.CatalogAllowed(tc.id); got != tc.allowed {
			t.Errorf("CatalogAllowed(%v) = %v, want %v", tc.id, got, tc.allowed)
		}
		if got := acl.FilterCatalog(tc.id, repos); !slices.Equal(got, tc.want) {
			t.Errorf("FilterCatalog(%v) = %q, want %q", tc.id, got, tc.want)
		}
	}
	pushOnly, err := auth.NewACL([]auth.Rule{{Repositories: []string{"drop/**"}, Users: []string{"u"}, Actions: []string{"push"}}})
	if err != nil {
		t.Fatal(err)
	}
	if pushOnly.CatalogAllowed(&auth.Identity{Name: "u"}) {
		t.Error("CatalogAllowed for a push-only user = true, want false")
	}
	if pushOnly.CatalogAllowed(nil) {
		t.Error("CatalogAllowed(anonymous) without anonymous rules = true, want false")
	}
}

func TestNewACLErrors(t *testing.T) {
	for _, tc := range []struct {
		rule auth.Rule
		want string // in the error
	}{
		{auth.Rule{Users: []string{"u"}, Actions: []string{"pull"}}, "no repositories"},
		{auth.Rule{Repositories: []string{"x/**"}, Users: []string{"u"}}, "no actions"},
		{auth.Rule{Repositories: []string{"x/**"}, Actions: []string{"pull"}}, "no subjects"},
		{auth.Rule{Repositories: []string{"x/**"}, Users: []string{"u"}, Actions: []string{"read"}}, `unknown action "read"`},
		{auth.Rule{Repositories: []string{"team-**"}, Users: []string{"u"}, Actions: []string{"pull"}}, "whole path segment"},
		{auth.Rule{Repositories: []string{"Team/**"}, Users: []string{"u"}, Actions: []string{"pull"}}, "lower case"},
		{auth.Rule{Repositories: []string{"a//b"}, Users: []string{"u"}, Actions: []string{"pull"}}, "empty path segment"},
		{auth.Rule{Repositories: []string{"a/[bc]"}, Users: []string{"u"}, Actions: []string{"pull"}}, "only a-z"},
		{auth.Rule{Repositories: []string{""}, Users: []string{"u"}, Actions: []string{"pull"}}, "empty repository pattern"},
		{auth.Rule{Repositories: []string{"x"}, Groups: []string{" "}, Actions: []string{"pull"}}, "empty group name"},
	} {
		ok := auth.Rule{Repositories: []string{"**"}, Users: []string{"admin"}, Actions: []string{"*"}}
		_, err := auth.NewACL([]auth.Rule{ok, tc.rule})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "access rule 2") {
			t.Errorf("NewACL(%+v) = %v, want an error naming rule 2 and %q", tc.rule, err, tc.want)
		}
	}
}

func TestValidRepository(t *testing.T) {
	for name, want := range map[string]bool{
		"a": true, "team-a/app": true, "a.b_c__d---e/f": true, "x/y/z": true,
		"": false, "A": false, "a/": false, "/a": false, "a//b": false, "a/../b": false,
		"-a": false, "a-": false, "a___b": false, "a..b": false, "a:b": false, "a b": false,
		strings.Repeat("a", 256): false, strings.Repeat("a", 255): true,
	} {
		if got := auth.ValidRepository(name); got != want {
			t.Errorf("ValidRepository(%q) = %v, want %v", name, got, want)
		}
	}
}
