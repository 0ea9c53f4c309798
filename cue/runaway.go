package cue

import (
	"fmt"
	"slices"
	"sync"

	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/parser"
	"cuelang.org/go/cue/token"

	"github.com/berth-gpu/berth"
)

// running is the set of instance directories being evaluated now.
type running struct {
	mu   sync.Mutex
	dirs map[string]int
	// notify, when set, is told every change, in order (it is called with
	// mu held): a child process tells its parent what it is evaluating,
	// so that the parent can say where a child that the kernel killed ran
	// away.
	notify func(started bool, dirs []string)
}

func (r *running) add(dirs ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dirs == nil {
		r.dirs = map[string]int{}
	}
	for _, d := range dirs {
		r.dirs[d]++
	}
	if r.notify != nil {
		r.notify(true, dirs)
	}
}

func (r *running) remove(dirs ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range dirs {
		if r.dirs[d]--; r.dirs[d] <= 0 {
			delete(r.dirs, d)
		}
	}
	if r.notify != nil {
		r.notify(false, dirs)
	}
}

func (r *running) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.dirs))
	for d := range r.dirs {
		out = append(out, d)
	}
	slices.Sort(out)
	return out
}

// runaway reports an evaluation stopped by its time or memory bound. CUE
// cannot say where it was, so the report points at what can run away in
// the instances still being evaluated: every comprehension (for ... in),
// every call to a list or string builtin that builds values, and every
// concatenation of two values (a + a doubles a string or a list), with
// the path of the field it is in. An instance with none of them is
// reported at its files, unless another instance has some: it was only
// being evaluated at the same time (which one was depends on timing, and
// the report must not).
func runaway(t *tree, dirs []string, what string) Errors {
	var errs Errors
	var plain []string // instances with nothing that grows
	for _, dir := range dirs {
		found := false
		for _, p := range t.dirFiles(dir) {
			f, err := parser.ParseFile(p, t.files[p])
			if err != nil {
				continue
			}
			for _, s := range growthSites(f) {
				found = true
				errs = append(errs, Error{
					Path:      s.path,
					Message:   fmt.Sprintf("%s: this %s may grow without bound; bound it, or generate the values outside CUE", what, s.what),
					Positions: []berth.Pos{s.pos},
				})
			}
		}
		if !found {
			plain = append(plain, dir)
		}
	}
	if len(errs) == 0 {
		for _, dir := range plain {
			var ps []berth.Pos
			for _, p := range t.dirFiles(dir) {
				ps = append(ps, berth.Pos{File: p})
			}
			errs = append(errs, Error{Message: what + ": evaluating this package did not finish; look for a value that grows without bound", Positions: ps})
		}
	}
	if len(errs) == 0 {
		errs = Errors{{Message: what + "; look for a comprehension that grows without bound"}}
	}
	return errs.sort()
}

type growthSite struct {
	path string
	what string
	pos  berth.Pos
}

// growthSites finds the comprehensions, list-building calls and
// concatenations of references in a file, outermost first.
func growthSites(f *ast.File) []growthSite {
	var out []growthSite
	var labels []string
	var inside int // inside a comprehension already reported
	ast.Walk(f, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.Field:
			name, _, err := ast.LabelName(x.Label)
			if err != nil {
				name = "?"
			}
			labels = append(labels, name)
		case *ast.Comprehension:
			if inside == 0 {
				out = append(out, growthSite{path: joinLabels(labels), what: "comprehension", pos: astPos(x.Pos())})
			}
			inside++
		case *ast.BinaryExpr:
			if inside == 0 && (x.Op == token.ADD || x.Op == token.MUL) && onlyReferences(x) {
				out = append(out, growthSite{path: joinLabels(labels), what: opName[x.Op], pos: astPos(x.Pos())})
				return false // one site, not one per operator
			}
		case *ast.CallExpr:
			if sel, ok := x.Fun.(*ast.SelectorExpr); ok && inside == 0 {
				name, _, _ := ast.LabelName(sel.Sel)
				if pkg, ok := sel.X.(*ast.Ident); ok {
					switch fn := pkg.Name + "." + name; fn {
					case "list.Range", "list.Repeat", "strings.Repeat":
						out = append(out, growthSite{path: joinLabels(labels), what: "call of " + fn, pos: astPos(x.Pos())})
					}
				}
			}
		}
		return true
	}, func(n ast.Node) {
		switch n.(type) {
		case *ast.Field:
			labels = labels[:len(labels)-1]
		case *ast.Comprehension:
			inside--
		}
	})
	return out
}

var opName = map[token.Token]string{token.ADD: "concatenation (+)", token.MUL: "multiplication (*)"}

// onlyReferences reports whether every operand of a chain of binary
// operators is a reference (a, a.b, a[0]): a + a doubles a string or a
// list at each step of a chain of such fields.
func onlyReferences(e ast.Expr) bool {
	switch x := e.(type) {
	case *ast.BinaryExpr:
		return onlyReferences(x.X) && onlyReferences(x.Y)
	case *ast.Ident, *ast.SelectorExpr, *ast.IndexExpr:
		return true
	case *ast.ParenExpr:
		return onlyReferences(x.X)
	}
	return false
}

func joinLabels(labels []string) string {
	s := ""
	for i, l := range labels {
		if i > 0 {
			s += "."
		}
		s += l
	}
	return s
}

func astPos(p token.Pos) berth.Pos {
	return berth.Pos{File: p.Filename(), Line: p.Line(), Col: p.Column()}
}
