package cue

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/token"

	"github.com/berth-gpu/berth"
)

// SchemaPosFile is the file name schema positions carry, so they cannot be
// mistaken for a file of the user's repository.
const SchemaPosFile = "$berth/schema.cue"

// Error is one problem with a repository: the CUE path it concerns (empty
// for a problem with a whole file: its syntax, size or encoding, an import),
// what is wrong, and every position in the repository involved, sorted.
// Positions in berth's embedded schema are left out when the repository's
// own are known.
type Error struct {
	Path      string      `json:"path,omitempty"`
	Message   string      `json:"message"`
	Positions []berth.Pos `json:"positions"`
}

// Error prints "path: message" and the positions, one per line.
func (e Error) Error() string {
	var b strings.Builder
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	for _, p := range e.Positions {
		b.WriteString("\n    ")
		b.WriteString(p.String())
	}
	return b.String()
}

// Pos is the first position, or the zero Pos.
func (e Error) Pos() berth.Pos {
	if len(e.Positions) == 0 {
		return berth.Pos{}
	}
	return e.Positions[0]
}

// Errors is every problem found, sorted by position. It is the error Load
// returns when the repository is invalid: the commit is wrong, not berth.
type Errors []Error

func (es Errors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
}

// sort orders errors by their first position, then path, then message, and
// removes exact duplicates (CUE can report one conflict from two sides).
func (es Errors) sort() Errors {
	for i := range es {
		sortPositions(es[i].Positions)
	}
	slices.SortStableFunc(es, func(a, b Error) int {
		if c := a.Pos().Compare(b.Pos()); c != 0 {
			// errors without a position go last
			if !a.Pos().IsValid() {
				return 1
			}
			if !b.Pos().IsValid() {
				return -1
			}
			return c
		}
		return cmp.Or(cmp.Compare(a.Path, b.Path), cmp.Compare(a.Message, b.Message))
	})
	out := es[:0]
	for i, e := range es {
		if i > 0 && sameError(e, es[i-1]) {
			continue
		}
		out = append(out, e)
	}
	return out
}

func sameError(a, b Error) bool {
	if a.Path != b.Path || a.Message != b.Message || len(a.Positions) != len(b.Positions) {
		return false
	}
	for i := range a.Positions {
		if a.Positions[i] != b.Positions[i] {
			return false
		}
	}
	return true
}

// sortPositions puts the user's positions first, each group sorted, and
// drops duplicates.
func sortPositions(ps []berth.Pos) {
	slices.SortStableFunc(ps, func(a, b berth.Pos) int {
		// false before true: the user's positions before the schema's
		sa, sb := a.File == SchemaPosFile, b.File == SchemaPosFile
		if sa != sb {
			if sb {
				return -1
			}
			return 1
		}
		return a.Compare(b)
	})
}

// userPositions drops the schema's positions when the user's are known:
// the schema is embedded in berth, so a line number in it is not one a
// person can open, and the path and message already say what it wants.
func userPositions(ps []berth.Pos) []berth.Pos {
	out := ps[:0:0]
	for _, p := range ps {
		if p.File != SchemaPosFile {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return ps
	}
	return out
}

func dedupPositions(ps []berth.Pos) []berth.Pos {
	sortPositions(ps)
	out := ps[:0]
	for i, p := range ps {
		if i > 0 && p == ps[i-1] {
			continue
		}
		out = append(out, p)
	}
	return out
}

// fromCUE converts a CUE error into Errors with repository-relative
// positions. extra adds positions for a path (the user's definition of the
// field, which CUE does not always name).
//
// CUE reports a value that fails a disjunction as one error per
// alternative, defaults included ("conflicting values 1 and -2" for
// workers: -2, next to the bound that matters). Those are collapsed into
// one error per path that says what is wrong and what was wanted.
func fromCUE(err error, extra func(path []string) []berth.Pos) Errors {
	var raws []rawError
	for _, e := range cueerrors.Errors(err) {
		format, args := e.Msg()
		r := rawError{path: trimPath(e.Path()), format: format, argv: args}
		for _, a := range args {
			r.args = append(r.args, fmt.Sprint(a))
		}
		if m := r.message(); m == "" || strings.Contains(m, "%!") {
			// Some errors (wrapped ones, from the loader) keep their text
			// in Error, not in Msg.
			r.format, r.args, r.argv = "%s", []string{e.Error()}, []any{e.Error()}
		}
		for _, p := range cueerrors.Positions(e) {
			if pp, ok := convertPos(p); ok {
				r.pos = append(r.pos, pp)
			}
		}
		raws = append(raws, r)
	}
	var out Errors
	for _, g := range groupByPath(raws) {
		for _, e := range collapse(g) {
			if extra != nil {
				e.Positions = append(e.Positions, extra(g[0].path)...)
			}
			e.Positions = userPositions(dedupPositions(e.Positions))
			out = append(out, e)
		}
	}
	return out
}

// rawError is one CUE error before it becomes an Error.
type rawError struct {
	path   []string
	format string
	argv   []any    // the arguments as CUE gave them
	args   []string // and as text
	pos    []berth.Pos
}

func (r rawError) message() string { return fmt.Sprintf(r.format, r.argv...) }

// groupByPath groups errors by path, keeping the order paths first appear.
func groupByPath(raws []rawError) [][]rawError {
	index := map[string]int{}
	var groups [][]rawError
	for _, r := range raws {
		k := strings.Join(r.path, "\x00")
		i, ok := index[k]
		if !ok {
			i = len(groups)
			index[k] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], r)
	}
	return groups
}

const disjunctionHeader = "%d errors in empty disjunction:"

// collapse turns the errors of one path into what a person reads.
func collapse(g []rawError) Errors {
	path := strings.Join(g[0].path, ".")
	var header bool
	var rest []rawError
	for _, r := range g {
		if r.format == disjunctionHeader {
			header = true
			continue
		}
		rest = append(rest, r)
	}
	if header && len(rest) > 0 {
		if e, ok := collapseDisjunction(path, rest); ok {
			return Errors{e}
		}
	}
	if len(rest) == 0 {
		rest = g
	}
	// One error per distinct message, with the positions of all of them.
	var out Errors
	seen := map[string]int{}
	for _, r := range rest {
		msg := explain(r)
		if i, ok := seen[msg]; ok {
			out[i].Positions = append(out[i].Positions, r.pos...)
			continue
		}
		seen[msg] = len(out)
		out = append(out, Error{Path: path, Message: msg, Positions: append([]berth.Pos(nil), r.pos...)})
	}
	return out
}

// collapseDisjunction picks, from the errors of every alternative of a
// disjunction, the one that says what is wrong: a bound the value breaks
// (invalid value -2 (out of bound >=1)) over a conflict with a default; a
// type the value is not (conflicting values "two" and int); or, when the
// value is none of a list of literals, the list (a MIG profile, a kind).
func collapseDisjunction(path string, rest []rawError) (Error, bool) {
	// The user's positions of every alternative, and the schema's positions
	// common to all (where the field is declared), not each alternative's.
	var ps []berth.Pos
	count := map[berth.Pos]int{}
	for _, r := range rest {
		for _, p := range dedupPositions(append([]berth.Pos(nil), r.pos...)) {
			if p.File != SchemaPosFile {
				ps = append(ps, p)
			} else if count[p]++; count[p] == len(rest) {
				ps = append(ps, p)
			}
		}
	}
	for _, r := range rest {
		if strings.HasPrefix(r.format, "invalid value") {
			return Error{Path: path, Message: explain(r), Positions: ps}, true
		}
	}
	// Every other error should be "conflicting values A and B": find the
	// value common to all of them (the user's) and the alternatives.
	var conflicts []rawError
	for _, r := range rest {
		if strings.HasPrefix(r.format, "conflicting values %s and %s") && len(r.args) >= 2 {
			conflicts = append(conflicts, r)
		}
	}
	if len(conflicts) != len(rest) {
		return Error{}, false
	}
	var common string
	for _, cand := range conflicts[0].args[:2] {
		all := true
		for _, c := range conflicts {
			if c.args[0] != cand && c.args[1] != cand {
				all = false
				break
			}
		}
		if all {
			common = cand
			break
		}
	}
	if common == "" {
		return Error{}, false
	}
	var alts []string
	for _, c := range conflicts {
		alt := c.args[0]
		if alt == common {
			alt = c.args[1]
		}
		if isTypeName(alt) {
			// "two" against int: the type is what was wanted; a default
			// of that type is not worth a mention. (An env value is not
			// quoted: explain says it without the value.)
			msg := c.message()
			if isEnvPath(c.path) {
				msg = explain(c)
			}
			return Error{Path: path, Message: msg, Positions: ps}, true
		}
		alts = append(alts, alt)
	}
	var plain []string
	for _, a := range alts {
		if u, err := strconv.Unquote(a); err == nil {
			plain = append(plain, u)
		}
	}
	did := ""
	if u, err := strconv.Unquote(common); err == nil && len(plain) == len(alts) {
		did = suggest(u, plain)
		if to, ok := renamedValues[u]; ok && slices.Contains(plain, to.name) {
			did = fmt.Sprintf("; %q was renamed %q (%s)", u, to.name, to.why)
		}
	}
	return Error{Path: path, Message: fmt.Sprintf("invalid value %s: want one of %s%s", common, strings.Join(alts, ", "), did), Positions: ps}, true
}

// renamedValues are values of the schema's enumerations that berth once
// took under another name: the error says what the old one is called now,
// and why it changed.
var renamedValues = map[string]struct{ name, why string }{
	"bestFit": {"tightestFit", "berth's tightest fit is not the FGD paper's BestFit, which berth simulate --mode paper runs as paperBestFit"},
}

func isTypeName(s string) bool {
	switch s {
	case "int", "uint", "number", "float", "string", "bytes", "bool", "null", "struct", "list", "{...}", "[...]":
		return true
	}
	return false
}

// patterns say in words what the schema's regular expressions want, keyed
// by a piece of each pattern as CUE prints it in an error.
var patterns = []struct{ piece, want string }{
	{`=~"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"`, "a name is a DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter or digit"},
	{`(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"`, `a quantity is a number, or a string such as "500m", "16Gi" or "1.5"`},
	{`(ns|us|µs|ms|s|m|h))+$"`, `a duration is written like "90s", "30m", "24h" or "1h30m"`},
	{`@(yearly|annually|monthly`, `a schedule is five cron fields ("0 3 * * *") or @hourly, @daily, @weekly, @monthly, "@every 6h"`},
	{`=~"^@[A-Za-z0-9]`, `an owner is a GitHub user ("@alice") or team ("@acme/vision-leads")`},
	{`=~"^([a-z0-9]([-a-z0-9]*[a-z0-9])?/)?`, `dependsOn names a workload: "name" in the same team, or "team/name"`},
	{`=~"^[A-Za-z0-9._-]{1,63}$"`, "a runId is 1 to 63 letters, digits, '.', '_' or '-'"},
	{`x[A-Za-z0-9._-]+(:[1-7]g`, `simulatedGPUs is written like "8xH100" or "7xH100,1xH100:1g.10gb"`},
	{`=~"^/"`, `a health check path starts with "/"`},
}

// isEnvPath reports whether a path is one env value's:
// workloads.TEAM.NAME.env.KEY, or TEAM.NAME.env.KEY when the error was
// found against the workloads' definition.
func isEnvPath(path []string) bool {
	n := len(path)
	return n >= 4 && path[n-2] == "env" && (n == 4 || (n == 5 && path[0] == "workloads"))
}

// explain is a CUE error's message, said so a person knows what to do.
func explain(r rawError) string {
	if isEnvPath(r.path) {
		// An env value may be a secret, and this message is printed by
		// validate, logged by serve and served by its status API: it
		// never quotes the values, of any length.
		switch {
		case strings.HasPrefix(r.format, "conflicting values %s and %s") && len(r.args) == 2 &&
			!isTypeName(r.args[0]) && !isTypeName(r.args[1]):
			return "set to two different values (not shown: env values may be secret); set it in one place"
		case strings.HasPrefix(r.format, "conflicting values %s and %s"):
			return "not a string (not shown: env values may be secret); an env value is a string (quote it) or {secret: {name, key}}"
		case r.format == "incomplete value %v":
			return "has no value; set it to a string"
		}
		return "invalid env value (not shown: env values may be secret)"
	}
	msg := r.message()
	switch {
	case r.format == "incomplete value %v" && strings.Contains(msg, "|"):
		return msg + ": two defaults conflict (often the schema's and a template's); set the field, or drop one of the defaults"
	case r.format == "incomplete value %v":
		return msg + ": the field is required and has no value; set it"
	case strings.Contains(msg, "strings.MaxRunes(63)"):
		return msg + ": a name is at most 63 characters"
	}
	if strings.HasPrefix(r.format, "invalid value %v (out of bound %s)") && len(r.args) == 2 {
		for _, p := range patterns {
			if strings.Contains(r.args[1], p.piece) {
				return fmt.Sprintf("invalid value %s: %s", r.args[0], p.want)
			}
		}
	}
	return msg
}

// trimPath removes the schema's own prefix (#Config) from an error path.
func trimPath(path []string) []string {
	if len(path) > 0 && strings.HasPrefix(path[0], "#") {
		return path[1:]
	}
	return path
}

func convertPos(p token.Pos) (berth.Pos, bool) {
	if !p.IsValid() {
		return berth.Pos{}, false
	}
	file := p.Filename()
	if file == "" {
		return berth.Pos{}, false
	}
	if file == berth.SchemaFile || strings.HasSuffix(file, "/"+schemaVirtualFile) || file == schemaVirtualFile {
		file = SchemaPosFile
	} else {
		file = strings.TrimPrefix(file, "/")
	}
	return berth.Pos{File: file, Line: p.Line(), Col: p.Column()}, true
}
