package policy_test

import (
	"strings"
	"testing"

	"github.com/berth-gpu/berth/policy"
)

// FuzzCodeOwners parses CODEOWNERS text (from the BASE revision of a pull
// request: anyone with write access wrote it) and asks for the owners of
// a path. It must never panic, and a rule whose pattern is a plain path
// (no wildcard, not a directory) must own that path: a pattern berth
// accepts but cannot match would silently drop an owner.
func FuzzCodeOwners(f *testing.F) {
	f.Add([]byte(`
# everything defaults to the platform team
*                   @acme/platform
/teams/vision/      @ana @acme/vision
teams/nlp/*.cue     @ben
docs/               # no owners
**/secrets/**       @sec
*.md                @writers   # trailing comment
`), "teams/vision/train.cue")
	f.Add([]byte("/platform/policy.cue @acme/platform\n"), "platform/policy.cue")
	f.Add([]byte("teams/**/x.cue @a\n!negated @b\n"), "teams/a/b/x.cue")
	f.Fuzz(func(t *testing.T, data []byte, path string) {
		co, err := policy.ParseCodeOwners("CODEOWNERS", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "CODEOWNERS:") {
				t.Fatalf("error without file:line: %v", err)
			}
			return
		}
		co.Owners(path)
		// The last plain-path rule of the file must own its path, unless a
		// later rule (any pattern) owns it instead.
		lines := strings.Split(string(data), "\n")
		for i := len(lines) - 1; i >= 0; i-- {
			line := strings.TrimSpace(lines[i])
			if j := strings.Index(line, " #"); j >= 0 {
				line = strings.TrimSpace(line[:j])
			}
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			p := strings.Fields(line)[0]
			if strings.ContainsAny(p, "*?") || strings.HasSuffix(p, "/") || strings.Trim(p, "/") == "" {
				return // only the last rule is checked: earlier ones may be overridden
			}
			if _, ok := co.Owners(strings.TrimPrefix(p, "/")); !ok {
				t.Fatalf("the rule %q (line %d) does not own its own path", p, i+1)
			}
			return
		}
	})
}
