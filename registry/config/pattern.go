package config

import (
	"errors"
	"regexp"
	"strings"
)

// Pattern matches repository names with the syntax and meaning of the
// access rules (package auth): "**" is a whole segment matching one or more
// segments ("team-a/**" is everything below team-a but not team-a itself,
// "**" every repository), "*" any run of characters inside one segment, "?"
// one character; anything else matches itself.
type Pattern struct {
	text string
	re   *regexp.Regexp
}

// CompilePattern parses a repository pattern.
func CompilePattern(p string) (Pattern, error) {
	if err := ValidatePattern(p); err != nil {
		return Pattern{}, err
	}
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(p); i++ {
		switch {
		case strings.HasPrefix(p[i:], "/**") && i+3 == len(p):
			// "team-a/**" also matches "team-a" itself? No: a repository
			// named exactly like the namespace is a different thing, and
			// granting it silently would surprise; require the slash.
			b.WriteString("/.+")
			i += 2
		case strings.HasPrefix(p[i:], "**"):
			b.WriteString(".*")
			i++
		case p[i] == '*':
			b.WriteString("[^/]*")
		case p[i] == '?':
			b.WriteString("[^/]")
		default:
			b.WriteString(regexp.QuoteMeta(p[i : i+1]))
		}
	}
	b.WriteString("$")
	return Pattern{text: p, re: regexp.MustCompile(b.String())}, nil
}

// Match reports whether repository matches.
func (p Pattern) Match(repository string) bool { return p.re != nil && p.re.MatchString(repository) }

// String returns the pattern as written.
func (p Pattern) String() string { return p.text }

// ValidatePattern checks a repository pattern's syntax.
func ValidatePattern(p string) error {
	if p == "" {
		return errors.New("empty pattern; use \"**\" for every repository")
	}
	if strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.Contains(p, "//") {
		return errors.New("no leading, trailing or double slash; e.g. team-a/**")
	}
	for _, r := range p {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', strings.ContainsRune("._-/*?", r):
		case r >= 'A' && r <= 'Z':
			return errors.New("repository names are lower case")
		default:
			return errors.New("only a-z 0-9 . _ - / and the wildcards * ** ? may appear")
		}
	}
	for _, seg := range strings.Split(p, "/") {
		if strings.Contains(seg, "**") && seg != "**" {
			return errors.New("** must be a whole path segment, as in team-a/**")
		}
	}
	return nil
}

// Patterns is a set of patterns that matches when any member does.
type Patterns []Pattern

// CompilePatterns compiles each of ps.
func CompilePatterns(ps []string) (Patterns, error) {
	out := make(Patterns, 0, len(ps))
	for _, s := range ps {
		p, err := CompilePattern(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// Match reports whether any pattern matches repository.
func (ps Patterns) Match(repository string) bool {
	for _, p := range ps {
		if p.Match(repository) {
			return true
		}
	}
	return false
}
