package auth

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseScopes(t *testing.T) {
	for _, tc := range []struct {
		in      []string
		want    []ResourceActions
		wantErr string
	}{
		{in: nil, want: nil},
		{in: []string{"repository:team-a/app:pull,push"},
			want: []ResourceActions{{Type: "repository", Name: "team-a/app", Actions: []string{"pull", "push"}}}},
		// OAuth2 POST: several scopes in one value.
		{in: []string{"repository:a:pull repository:b:push"},
			want: []ResourceActions{{Type: "repository", Name: "a", Actions: []string{"pull"}}, {Type: "repository", Name: "b", Actions: []string{"push"}}}},
		// Repeats merge.
		{in: []string{"repository:a:pull", "repository:a:push,pull"},
			want: []ResourceActions{{Type: "repository", Name: "a", Actions: []string{"pull", "push"}}}},
		// Class, and a name with a colon (host:port) as distribution allows.
		{in: []string{"repository(plugin):x/y:pull", "repository:localhost:5000/a:pull"},
			want: []ResourceActions{{Type: "repository", Class: "plugin", Name: "x/y", Actions: []string{"pull"}}, {Type: "repository", Name: "localhost:5000/a", Actions: []string{"pull"}}}},
		{in: []string{"registry:catalog:*"},
			want: []ResourceActions{{Type: "registry", Name: "catalog", Actions: []string{"*"}}}},
		{in: []string{"repository:a:"}, want: []ResourceActions{{Type: "repository", Name: "a"}}},
		{in: []string{"repository"}, wantErr: "malformed scope"},
		{in: []string{"repository:a"}, wantErr: "malformed scope"},
		{in: []string{":a:pull"}, wantErr: "malformed scope"},
		{in: []string{"repository::pull"}, wantErr: "malformed scope"},
		{in: []string{strings.Repeat("repository:a:pull ", 1) + manyScopes(maxScopes+1)}, wantErr: "more than"},
	} {
		got, err := parseScopes(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parseScopes(%.60q) error = %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseScopes(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func manyScopes(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString("repository:r")
		b.WriteString(strings.Repeat("x", i+1))
		b.WriteString(":pull ")
	}
	return b.String()
}

func TestPatternMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, name string
		want          bool
	}{
		{"**", "a", true},
		{"**", "a/b/c", true},
		{"a/**", "a", false},
		{"a/**", "a/b", true},
		{"a/**/z", "a/z", false},
		{"a/**/z", "a/b/z", true},
		{"a/**/z", "a/b/c/z", true},
		{"a/**/z", "a/b/c/y", false},
		{"a/*", "a/b", true},
		{"a/*", "a/b/c", false},
		{"app-*", "app-web", true},
		{"app-*", "app/web", false},
		{"*/tools", "public/tools", true},
		{"exact/name", "exact/name", true},
		{"exact/name", "exact/name2", false},
	} {
		p, err := compilePattern(tc.pattern)
		if err != nil {
			t.Fatalf("compilePattern(%q): %v", tc.pattern, err)
		}
		if got := p.match(tc.name); got != tc.want {
			t.Errorf("%q matches %q = %v, want %v", tc.pattern, tc.name, got, tc.want)
		}
	}
}
