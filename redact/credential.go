package redact

import (
	"fmt"
	"math"
	"regexp"
	"strings"
)

// Credential says whether a value written in Git looks like a credential,
// and what kind ("a GitHub personal access token (ghp_...)"): a known
// token prefix, a PEM private key, a URL with a password, or a long value
// of high entropy. It never returns the value or a part of it beyond the
// known prefix, so its answer may be printed.
//
// It is a heuristic for `berth validate`: it finds what was pasted by
// mistake, not every secret.
func Credential(v string) (string, bool) {
	v = strings.TrimSpace(v)
	for _, p := range tokenPrefixes {
		if p.re.MatchString(v) {
			return p.kind, true
		}
	}
	if strings.Contains(v, "-----BEGIN") && strings.Contains(v, "PRIVATE KEY") {
		return "a PEM private key", true
	}
	if urlPassword.MatchString(v) {
		return "a URL with a password in it", true
	}
	if e, ok := highEntropy(v); ok {
		return fmt.Sprintf("%d characters of high entropy (%.1f bits each): a random token", len(v), e), true
	}
	return "", false
}

// tokenPrefixes are the token formats of the services a training job
// reaches most often; each needs enough characters after its prefix that a
// name which merely starts the same way ("sk-learn") is not one.
var tokenPrefixes = []struct {
	re   *regexp.Regexp
	kind string
}{
	{regexp.MustCompile(`^ghp_[A-Za-z0-9]{30,}$`), "a GitHub personal access token (ghp_...)"},
	{regexp.MustCompile(`^github_pat_[A-Za-z0-9_]{30,}$`), "a GitHub fine-grained token (github_pat_...)"},
	{regexp.MustCompile(`^gho_[A-Za-z0-9]{30,}$`), "a GitHub OAuth token (gho_...)"},
	{regexp.MustCompile(`^gh[usr]_[A-Za-z0-9]{30,}$`), "a GitHub app token (ghu_, ghs_ or ghr_...)"},
	{regexp.MustCompile(`^xox[bpars]-[A-Za-z0-9-]{10,}$`), "a Slack token (xoxb-, xoxp-...)"},
	{regexp.MustCompile(`^(AKIA|ASIA)[0-9A-Z]{16}$`), "an AWS access key id (AKIA...)"},
	{regexp.MustCompile(`^sk-[A-Za-z0-9_-]{20,}$`), "an API secret key (sk-..., as OpenAI and Stripe write theirs)"},
	{regexp.MustCompile(`^glpat-[A-Za-z0-9_-]{20,}$`), "a GitLab personal access token (glpat-...)"},
	{regexp.MustCompile(`^hf_[A-Za-z0-9]{30,}$`), "a Hugging Face token (hf_...)"},
}

// urlPassword is scheme://user:password@host.
var urlPassword = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*://[^/@:\s]+:[^/@\s]+@`)

// The entropy rule: a value of MinEntropyLength characters or more, of
// letters, digits and the punctuation of tokens ('-', '_', '+', '=')
// only, with digits and letters, whose Shannon entropy is at least
// EntropyBits per character and whose characters change class (upper,
// lower, digit) at least ClassChanges of the time. Shannon entropy alone
// cannot tell a short token from a name of distinct letters
// ("wandbProjectVisionExp42x" has 4.2 bits per character); a random token
// changes class about twice as often as CamelCase words do. Hex (a
// commit, a UUID) is left alone; so is anything with a space, a '.' or a
// path separator (a model name, a path, a URL).
const (
	MinEntropyLength = 20
	EntropyBits      = 3.7
	ClassChanges     = 0.5
)

// highEntropy reports v's Shannon entropy per character when v is a value
// the entropy rule applies to and reaches it.
func highEntropy(v string) (float64, bool) {
	if len(v) < MinEntropyLength {
		return 0, false
	}
	var letters, digits, nonHex bool
	var prev byte
	changes, classed := 0, 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		var class byte
		switch {
		case c >= 'A' && c <= 'Z':
			class, letters, nonHex = 'u', true, true
		case c >= 'a' && c <= 'z':
			class, letters = 'l', true
			nonHex = nonHex || c > 'f'
		case c >= '0' && c <= '9':
			class, digits = 'd', true
		case c == '+' || c == '=' || c == '_' || c == '-':
			continue
		default:
			return 0, false
		}
		if classed > 0 && class != prev {
			changes++
		}
		prev = class
		classed++
	}
	if !letters || !digits || !nonHex || classed < 2 || float64(changes)/float64(classed-1) < ClassChanges {
		return 0, false
	}
	e := entropy(v)
	return e, e >= EntropyBits
}

// entropy is the Shannon entropy of s's bytes, in bits per byte.
func entropy(s string) float64 {
	var counts [256]int
	for i := 0; i < len(s); i++ {
		counts[s[i]]++
	}
	var h float64
	n := float64(len(s))
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / n
			h -= p * math.Log2(p)
		}
	}
	return h
}
