package policy

import (
	"fmt"
	"io/fs"
	"regexp"
	"strings"
	"unicode/utf8"
)

// CodeOwnersPaths are where a CODEOWNERS file is looked for, in GitHub's
// order: the first that exists is used.
var CodeOwnersPaths = []string{".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS"}

// CodeOwners is a parsed CODEOWNERS file: rules of a path pattern and its
// owners, the last matching rule winning, as GitHub reads it.
//
// The parser is berth's own, not github.com/hmarr/codeowners (v1.2.1, the
// maintained one), which was tried against these tests and fuzz seeds: it
// panics on the pattern "/" (an index out of range in its literal matcher)
// and accepts a pattern with an empty segment ("//0") that then matches no
// path, silently dropping its owners. The file comes from a pull request's
// base branch, so neither is acceptable; TestCodeOwnersEdgePatterns keeps
// both cases.
type CodeOwners struct {
	File  string
	rules []codeOwnersRule
}

type codeOwnersRule struct {
	pattern string
	re      *regexp.Regexp
	owners  []string
	line    int
}

// ReadCodeOwners reads the CODEOWNERS of a tree (the BASE revision's), or
// returns nil when there is none.
func ReadCodeOwners(fsys fs.FS) (*CodeOwners, error) {
	for _, p := range CodeOwnersPaths {
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			continue
		}
		return ParseCodeOwners(p, data)
	}
	return nil, nil
}

// ParseCodeOwners parses CODEOWNERS text. A line that cannot be parsed is
// an error naming file:line (GitHub ignores such lines; berth refuses, so a
// typo cannot silently drop an owner).
func ParseCodeOwners(file string, data []byte) (*CodeOwners, error) {
	co := &CodeOwners{File: file}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if j := strings.Index(line, " #"); j >= 0 {
			line = strings.TrimSpace(line[:j])
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		re, err := codeOwnersPattern(fields[0])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: pattern %q: %w", file, i+1, fields[0], err)
		}
		co.rules = append(co.rules, codeOwnersRule{pattern: fields[0], re: re, owners: fields[1:], line: i + 1})
	}
	return co, nil
}

// Owners returns the owners of a path (slash-separated, relative to the
// root) by the last rule that matches it; false when no rule does. A
// matching rule without owners means the path has none.
func (c *CodeOwners) Owners(path string) ([]string, bool) {
	if c == nil {
		return nil, false
	}
	path = strings.TrimPrefix(path, "/")
	for i := len(c.rules) - 1; i >= 0; i-- {
		if c.rules[i].re.MatchString(path) {
			return c.rules[i].owners, true
		}
	}
	return nil, false
}

// codeOwnersPattern turns a gitignore-style pattern into a regular
// expression over slash paths: a leading or inner slash anchors it at the
// root, otherwise it matches at any depth; a pattern matching a directory
// matches everything under it; * and ? stay within one path segment and **
// crosses them.
func codeOwnersPattern(p string) (*regexp.Regexp, error) {
	if strings.HasPrefix(p, "!") {
		return nil, fmt.Errorf("negation is not supported in CODEOWNERS")
	}
	if !utf8.ValidString(p) {
		return nil, fmt.Errorf("the pattern is not valid UTF-8")
	}
	if strings.Contains(p, "//") {
		return nil, fmt.Errorf("an empty path segment (//) matches no path")
	}
	if strings.Contains(p, "[") {
		return nil, fmt.Errorf("character ranges are not supported in CODEOWNERS")
	}
	anchored := strings.HasPrefix(p, "/") || strings.Contains(strings.TrimSuffix(p, "/"), "/")
	p = strings.TrimPrefix(p, "/")
	dirOnly := strings.HasSuffix(p, "/")
	p = strings.TrimSuffix(p, "/")
	var b strings.Builder
	b.WriteString("^")
	if !anchored {
		b.WriteString("(?:.*/)?")
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		// One character at a time, not one byte: a byte of a multi-byte
		// character quoted alone would match another character.
		_, size := utf8.DecodeRuneInString(p[i:])
		switch {
		case strings.HasPrefix(p[i:], "**/"):
			b.WriteString("(?:.*/)?")
			i += 2
		case strings.HasPrefix(p[i:], "**"):
			b.WriteString(".*")
			i++
		case c == '*':
			b.WriteString("[^/]*")
		case c == '?':
			b.WriteString("[^/]")
		default:
			b.WriteString(regexp.QuoteMeta(p[i : i+size]))
			i += size - 1
		}
	}
	if dirOnly {
		b.WriteString("/.*$")
	} else {
		b.WriteString("(?:/.*)?$")
	}
	return regexp.Compile(b.String())
}
