package auth

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
)

// Actions a rule can grant on a repository. ActionAll grants every action,
// including ones a client asks for by "*" (distribution's catalog scope
// "registry:catalog:*").
const (
	ActionPull   = "pull"
	ActionPush   = "push"
	ActionDelete = "delete"
	ActionAll    = "*"
)

var knownActions = []string{ActionAll, ActionDelete, ActionPull, ActionPush}

// Rule is one entry of the config's `access:` list: the subjects it names
// may do Actions on the repositories matching any of Repositories.
//
// Repository patterns are repository names (lowercase path segments joined
// by "/") where a segment may be:
//
//   - "**": one or more whole segments: "team-a/**" matches "team-a/app"
//     and "team-a/x/y" but not "team-a" itself; "**" alone matches every
//     repository;
//   - a glob with "*" for any run of characters inside one segment:
//     "public/*" matches "public/app" but not "public/x/y"; "app-*" matches
//     "app-web".
//
// Subjects: Users and Groups name directory (or htpasswd) users and groups;
// Robots name robot accounts (with or without the RobotPrefix); Anonymous
// makes the rule apply to every caller, signed in or not (what a public
// repository needs). A caller's actions are the union over all rules that
// match it; there are no deny rules.
type Rule struct {
	Repositories []string `json:"repositories" yaml:"repositories"`
	Groups       []string `json:"groups,omitempty" yaml:"groups,omitempty"`
	Users        []string `json:"users,omitempty" yaml:"users,omitempty"`
	Robots       []string `json:"robots,omitempty" yaml:"robots,omitempty"`
	Anonymous    bool     `json:"anonymous,omitempty" yaml:"anonymous,omitempty"`
	Actions      []string `json:"actions" yaml:"actions"`
}

// ACL answers which actions an identity has on a repository. It is
// immutable and safe for concurrent use; build a new one to change rules.
type ACL struct {
	rules []compiledRule
}

type compiledRule struct {
	repos     []pattern
	users     []string
	groups    []string
	robots    []string
	anonymous bool
	actions   []string
}

// NewACL checks and compiles the rules. An error names the rule (by its
// position in the list, counting from 1), the offending value and the fix.
func NewACL(rules []Rule) (*ACL, error) {
	a := &ACL{}
	var errs []error
	for i, r := range rules {
		c, err := compileRule(r)
		if err != nil {
			errs = append(errs, fmt.Errorf("access rule %d: %w", i+1, err))
			continue
		}
		a.rules = append(a.rules, c)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return a, nil
}

func compileRule(r Rule) (compiledRule, error) {
	var c compiledRule
	if len(r.Repositories) == 0 {
		return c, errors.New(`no repositories: list patterns such as "team-a/**" or "**"`)
	}
	for _, p := range r.Repositories {
		cp, err := compilePattern(p)
		if err != nil {
			return c, err
		}
		c.repos = append(c.repos, cp)
	}
	if len(r.Actions) == 0 {
		return c, errors.New("no actions: list some of pull, push, delete, \"*\"")
	}
	actions, err := checkActions(r.Actions)
	if err != nil {
		return c, err
	}
	c.actions = actions
	if len(r.Users)+len(r.Groups)+len(r.Robots) == 0 && !r.Anonymous {
		return c, errors.New("no subjects: name users, groups or robots, or set anonymous: true")
	}
	for _, list := range []struct {
		what string
		in   []string
		out  *[]string
	}{{"user", r.Users, &c.users}, {"group", r.Groups, &c.groups}, {"robot", r.Robots, &c.robots}} {
		for _, s := range list.in {
			if list.what == "robot" {
				s = strings.TrimPrefix(s, RobotPrefix)
			}
			if strings.TrimSpace(s) == "" {
				return c, fmt.Errorf("empty %s name", list.what)
			}
			*list.out = append(*list.out, s)
		}
	}
	c.anonymous = r.Anonymous
	return c, nil
}

// checkActions validates and normalises a list of actions: sorted, unique.
func checkActions(in []string) ([]string, error) {
	var out []string
	for _, a := range in {
		if !slices.Contains(knownActions, a) {
			return nil, fmt.Errorf("unknown action %q: use pull, push, delete or \"*\"", a)
		}
		out = append(out, a)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Allowed returns the actions id has on repository: the union of every
// matching rule and of id's own Permissions, sorted. ActionAll is expanded
// to pull, push and delete and kept as "*" too. An invalid repository name
// gets nothing.
func (a *ACL) Allowed(id *Identity, repository string) []string {
	if !ValidRepository(repository) {
		return nil
	}
	var got []string
	for _, r := range a.rules {
		if r.appliesTo(id) && matchAny(r.repos, repository) {
			got = append(got, r.actions...)
		}
	}
	if id != nil {
		for _, p := range id.Permissions {
			for _, s := range p.Repositories {
				if cp, err := compilePattern(s); err == nil && cp.match(repository) {
					got = append(got, p.Actions...)
					break
				}
			}
		}
	}
	return expandActions(got)
}

// Grant returns the subset of requested actions that id has on repository,
// in the order requested, without duplicates. This is what goes into a
// token: a client never gets more than it asked for.
func (a *ACL) Grant(id *Identity, repository string, requested ...string) []string {
	allowed := a.Allowed(id, repository)
	var out []string
	for _, r := range requested {
		if slices.Contains(out, r) {
			continue
		}
		if slices.Contains(allowed, r) {
			out = append(out, r)
		}
	}
	return out
}

// CatalogAllowed reports whether id may list the catalog at all: whether
// some rule lets it pull something. The registry must still filter the
// list with FilterCatalog, as distribution's catalog shows every
// repository to anyone holding the "registry:catalog:*" scope.
func (a *ACL) CatalogAllowed(id *Identity) bool {
	for _, r := range a.rules {
		if r.appliesTo(id) && (slices.Contains(r.actions, ActionPull) || slices.Contains(r.actions, ActionAll)) {
			return true
		}
	}
	if id != nil {
		for _, p := range id.Permissions {
			if slices.Contains(p.Actions, ActionPull) || slices.Contains(p.Actions, ActionAll) {
				return true
			}
		}
	}
	return false
}

// FilterCatalog returns the repositories id may pull, in the given order:
// the catalog a caller is shown.
func (a *ACL) FilterCatalog(id *Identity, repositories []string) []string {
	var out []string
	for _, r := range repositories {
		if len(a.Grant(id, r, ActionPull)) > 0 {
			out = append(out, r)
		}
	}
	return out
}

func (r *compiledRule) appliesTo(id *Identity) bool {
	switch {
	case r.anonymous:
		return true
	case id == nil:
		return false
	case id.Robot:
		return slices.Contains(r.robots, id.Name)
	default:
		return slices.Contains(r.users, id.Name) || slices.ContainsFunc(r.groups, id.InGroup)
	}
}

func expandActions(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	if slices.Contains(in, ActionAll) {
		in = append(in, ActionPull, ActionPush, ActionDelete)
	}
	slices.Sort(in)
	return slices.Compact(in)
}

// pattern is a compiled repository pattern: its segments.
type pattern []string

func compilePattern(p string) (pattern, error) {
	if p == "" {
		return nil, errors.New(`empty repository pattern: use "**" for every repository`)
	}
	segs := strings.Split(p, "/")
	for _, s := range segs {
		switch {
		case s == "":
			return nil, fmt.Errorf("repository pattern %q has an empty path segment (leading, trailing or double /)", p)
		case s == "**":
		case strings.Contains(s, "**"):
			return nil, fmt.Errorf("repository pattern %q: ** must be a whole path segment, as in \"team-a/**\"", p)
		case strings.ContainsFunc(s, func(r rune) bool { return r >= 'A' && r <= 'Z' }):
			return nil, fmt.Errorf("repository pattern %q has upper-case letters, which repository names never have: write it in lower case", p)
		case strings.ContainsFunc(s, func(r rune) bool { return !isNameChar(r) && r != '*' }):
			return nil, fmt.Errorf("repository pattern %q: only a-z, 0-9, '.', '_', '-', '/' and '*' are allowed", p)
		}
	}
	return pattern(segs), nil
}

func (p pattern) match(name string) bool {
	return matchSegments(p, strings.Split(name, "/"))
}

func matchSegments(p pattern, name []string) bool {
	for len(p) > 0 {
		if p[0] == "**" {
			// One or more segments: try every split, shortest first.
			for n := 1; n <= len(name); n++ {
				if matchSegments(p[1:], name[n:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, _ := path.Match(p[0], name[0]); !ok {
			return false
		}
		p, name = p[1:], name[1:]
	}
	return len(name) == 0
}

func matchAny(ps []pattern, name string) bool {
	return slices.ContainsFunc(ps, func(p pattern) bool { return p.match(name) })
}

func isNameChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
}

// ValidRepository reports whether name is a repository name as the
// distribution spec defines it: path components of lowercase letters and
// digits, separated inside a component by ".", "_", "__" or runs of "-",
// joined by "/", at most 255 bytes.
func ValidRepository(name string) bool {
	if name == "" || len(name) > 255 {
		return false
	}
	for _, c := range strings.Split(name, "/") {
		if !validComponent(c) {
			return false
		}
	}
	return true
}

// validComponent checks [a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)* without a
// regexp, as it runs on every scope of every token request.
func validComponent(c string) bool {
	alnum := func(b byte) bool { return b >= 'a' && b <= 'z' || b >= '0' && b <= '9' }
	i := 0
	for {
		start := i
		for i < len(c) && alnum(c[i]) {
			i++
		}
		if i == start {
			return false
		}
		if i == len(c) {
			return true
		}
		switch {
		case c[i] == '.':
			i++
		case c[i] == '_':
			i++
			if i < len(c) && c[i] == '_' {
				i++
			}
		case c[i] == '-':
			for i < len(c) && c[i] == '-' {
				i++
			}
		default:
			return false
		}
	}
}
