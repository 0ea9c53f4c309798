package cue

import (
	"fmt"
	"sort"
	"strings"

	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/token"

	"github.com/berth-gpu/berth"
)

// SchemaPosFile is the file name schema positions carry, so they cannot be
// mistaken for a file of the user's repository.
const SchemaPosFile = "$berth/schema.cue"

// Error is one problem with a repository: the CUE path it concerns (empty
// for a file-level problem), what is wrong, and every position involved,
// the user's files first.
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
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i], es[j]
		if c := a.Pos().Compare(b.Pos()); c != 0 {
			// errors without a position go last
			if !a.Pos().IsValid() {
				return false
			}
			if !b.Pos().IsValid() {
				return true
			}
			return c < 0
		}
		if a.Path != b.Path {
			return a.Path < b.Path
		}
		return a.Message < b.Message
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
	sort.SliceStable(ps, func(i, j int) bool {
		si, sj := ps[i].File == SchemaPosFile, ps[j].File == SchemaPosFile
		if si != sj {
			return sj
		}
		return ps[i].Compare(ps[j]) < 0
	})
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
func fromCUE(err error, extra func(path []string) []berth.Pos) Errors {
	var out Errors
	for _, e := range cueerrors.Errors(err) {
		path := e.Path()
		format, args := e.Msg()
		msg := fmt.Sprintf(format, args...)
		var ps []berth.Pos
		for _, p := range cueerrors.Positions(e) {
			if pp, ok := convertPos(p); ok {
				ps = append(ps, pp)
			}
		}
		path = trimPath(path)
		msg += hint(msg)
		if extra != nil {
			ps = append(ps, extra(path)...)
		}
		out = append(out, Error{Path: strings.Join(path, "."), Message: msg, Positions: dedupPositions(ps)})
	}
	return out
}

// hint adds what to do for CUE messages that do not say it.
func hint(msg string) string {
	switch {
	case strings.HasPrefix(msg, "incomplete value") && strings.Contains(msg, "|"):
		return " (no single value: two defaults conflict, often the schema's and a template's; set the field, or drop one default)"
	case strings.HasPrefix(msg, "incomplete value"):
		return " (the field needs a concrete value)"
	}
	return ""
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
