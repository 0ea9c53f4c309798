// Package redact keeps env values out of the text people read. A Scrubber
// is built from the env values of the configurations berth holds (the
// revision being reconciled and the last valid one) and replaces each
// value with Marker wherever text leaves the engine: the errors of
// reconcile reports, the status API, serve's log (Handler), commit
// statuses and pull-request comments.
//
// Every env value is treated as a secret, whatever its length: berth
// cannot tell a password from a debug flag. It owns no credentials of its
// own (tokens are redacted by the clients that hold them) and no positions
// of errors: a CUE error about an env value is formed without the value in
// the cue package.
//
// Credential (credential.go) says whether a value written in Git looks
// like a credential, for `berth validate`'s warnings; it is a heuristic of
// known token formats and entropy, not a scrubber.
package redact

import (
	"cmp"
	"slices"
	"strings"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"github.com/berth-gpu/berth"
)

// Marker is what a scrubbed value reads as.
const Marker = "<redacted>"

// MinSubstring is the length from which a value is replaced wherever it
// appears, inside words too. A shorter value ("abc") is replaced only where
// it stands as a whole token (not next to a letter, digit or '_' on a side
// where the value itself ends in one): replacing every "abc" inside
// "abcdef" would destroy the text around it without hiding anything, since
// the value is no longer what is printed there. So is a number of any
// length ("4711" where it stands, not inside "847110").
//
// Some values are not secrets and are words of every message; they are
// left alone: numbers under 1000 (guessed in a thousand tries, and in
// "1 error" or "needs 2 approvals"), the flag words true, false, yes, no,
// on and off, and short values of punctuation only ("-", "::").
const MinSubstring = 4

// Scrubber replaces a fixed set of values. The zero value and nil replace
// nothing. It is safe for concurrent use.
type Scrubber struct {
	values []string          // sorted, unique
	long   *strings.Replacer // values of MinSubstring bytes or more, longest first
	words  map[string]bool   // shorter values made of word characters only
	odd    []string          // shorter values mixing word and other characters
}

// New returns a scrubber of values. Empty values are ignored.
func New(values ...string) *Scrubber {
	s := &Scrubber{}
	set := map[string]bool{}
	for _, v := range values {
		if v != "" {
			set[v] = true
		}
	}
	for v := range set {
		s.values = append(s.values, v)
	}
	slices.Sort(s.values)
	// Longest first: a value that contains another is replaced whole.
	byLen := slices.Clone(s.values)
	slices.SortStableFunc(byLen, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	var pairs []string
	for _, v := range byLen {
		digits := strings.Trim(v, "0123456789") == ""
		switch {
		case flagWords[strings.ToLower(v)] || (digits && len(v) < MinSubstring):
			// not a secret: see MinSubstring
		case len(v) >= MinSubstring && !digits:
			pairs = append(pairs, v, Marker)
		case allWord(v):
			if s.words == nil {
				s.words = map[string]bool{}
			}
			s.words[v] = true
		case strings.IndexFunc(v, isWord) >= 0:
			s.odd = append(s.odd, v)
		}
	}
	if len(pairs) > 0 {
		// A marker already written is kept as it is (leftmost match wins),
		// so a value such as "redacted" does not eat into it.
		s.long = strings.NewReplacer(append([]string{Marker, Marker}, pairs...)...)
	}
	return s
}

// FromConfigs is a scrubber of every env value of every workload of the
// configurations (nil ones are skipped).
func FromConfigs(cfgs ...*berth.Config) *Scrubber {
	var values []string
	for _, c := range cfgs {
		if c == nil {
			continue
		}
		for _, w := range c.Workloads {
			for _, v := range w.Env.Values() {
				values = append(values, v)
			}
			for _, r := range w.Roles {
				for _, v := range r.Env.Values() {
					values = append(values, v)
				}
			}
		}
	}
	return New(values...)
}

// Merge is a scrubber of both scrubbers' values.
func Merge(a, b *Scrubber) *Scrubber {
	return New(append(slices.Clone(a.Values()), b.Values()...)...)
}

// Values are the values scrubbed, sorted.
func (s *Scrubber) Values() []string {
	if s == nil {
		return nil
	}
	return s.values
}

// String returns text with every value replaced by Marker.
func (s *Scrubber) String(text string) string {
	if s == nil || text == "" {
		return text
	}
	if s.long != nil {
		text = s.long.Replace(text)
	}
	if len(s.words) > 0 {
		text = s.replaceWords(text)
	}
	for _, v := range s.odd {
		text = replaceToken(text, v)
	}
	return text
}

// StringCut is String for text that may have been cut short and ended
// with suffix ("..."): a value of MinSubstring bytes or more whose start
// is all that is left before the suffix is replaced too.
func (s *Scrubber) StringCut(text, suffix string) string {
	if s == nil {
		return text
	}
	body, ok := strings.CutSuffix(text, suffix)
	if !ok {
		return s.String(text)
	}
	for _, v := range s.values {
		for k := len(v) - 1; k >= MinSubstring; k-- {
			if strings.HasSuffix(body, v[:k]) {
				body = body[:len(body)-k] + Marker
				break
			}
		}
	}
	return s.String(body) + suffix
}

// replaceWords replaces every maximal run of word characters that is a
// short value.
func (s *Scrubber) replaceWords(text string) string {
	var b strings.Builder
	last, start := 0, -1 // start of the current word run
	flush := func(end int) {
		if start >= 0 && s.words[text[start:end]] && !insideMarker(text, start, end) {
			if b.Len() == 0 && last == 0 {
				b.Grow(len(text))
			}
			b.WriteString(text[last:start])
			b.WriteString(Marker)
			last = end
		}
		start = -1
	}
	for i, r := range text {
		if isWord(r) {
			if start < 0 {
				start = i
			}
			continue
		}
		flush(i)
	}
	flush(len(text))
	if last == 0 {
		return text
	}
	b.WriteString(text[last:])
	return b.String()
}

// insideMarker reports whether text[start:end] is the word of a Marker
// already written ("redacted" of "<redacted>").
func insideMarker(text string, start, end int) bool {
	return start > 0 && text[start-1] == '<' && end < len(text) && text[end] == '>' && text[start-1:end+1] == Marker
}

// replaceToken replaces v where it stands as a whole token.
func replaceToken(text, v string) string {
	first, _ := utf8.DecodeRuneInString(v)
	lastR, _ := utf8.DecodeLastRuneInString(v)
	var b strings.Builder
	from, done := 0, 0
	for {
		i := strings.Index(text[from:], v)
		if i < 0 {
			break
		}
		i += from
		j := i + len(v)
		before, _ := utf8.DecodeLastRuneInString(text[:i])
		after, _ := utf8.DecodeRuneInString(text[j:])
		whole := (i == 0 || !isWord(first) || !isWord(before)) && (j == len(text) || !isWord(lastR) || !isWord(after))
		if whole {
			b.WriteString(text[done:i])
			b.WriteString(Marker)
			done = j
			from = j
		} else {
			from = i + 1
		}
	}
	if done == 0 {
		return text
	}
	b.WriteString(text[done:])
	return b.String()
}

var flagWords = map[string]bool{"true": true, "false": true, "yes": true, "no": true, "on": true, "off": true}

func isWord(r rune) bool { return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) }

func allWord(v string) bool { return strings.IndexFunc(v, func(r rune) bool { return !isWord(r) }) < 0 }

// Err returns err with its text scrubbed; nil stays nil. The cause is kept
// for errors.Is and errors.As, which decide a status's class (a caller
// that prints an unwrapped cause's fields scrubs them itself).
func (s *Scrubber) Err(err error) error {
	if err == nil {
		return nil
	}
	text := err.Error()
	clean := s.String(text)
	if clean == text {
		return err
	}
	return &Error{err: err, text: clean}
}

// Error is an error whose text was scrubbed.
type Error struct {
	err  error
	text string
}

func (e *Error) Error() string { return e.text }
func (e *Error) Unwrap() error { return e.err }

// Live holds the scrubber of the configurations in force, for whoever
// prints while they change (serve's log handler). The zero value holds
// none.
type Live struct{ p atomic.Pointer[Scrubber] }

// Set replaces the scrubber.
func (l *Live) Set(s *Scrubber) { l.p.Store(s) }

// Get is the scrubber in force (nil replaces nothing).
func (l *Live) Get() *Scrubber {
	if l == nil {
		return nil
	}
	return l.p.Load()
}
