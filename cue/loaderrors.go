package cue

import (
	"fmt"
	"regexp"
	"strings"

	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/parser"

	"github.com/berth-gpu/berth"
)

// loadErrors explains why the instance in dir could not be loaded: a
// syntax error in one of its files, an import that does not resolve, or
// what CUE's loader said.
func (ev *evaluator) loadErrors(dir string, err error) Errors {
	t := ev.treeOf()
	var out Errors
	syntax := map[berth.Pos]bool{}
	for _, p := range t.dirFiles(dir) {
		if _, perr := parser.ParseFile(p, t.files[p]); perr != nil {
			for _, e := range fromCUE(perr, nil) {
				e.Message = "syntax error: " + e.Message
				e.Path = ""
				for _, pos := range e.Positions {
					syntax[pos] = true
				}
				out = append(out, e)
			}
		}
	}
	for _, e := range cueerrors.Errors(err) {
		format, _ := e.Msg()
		var ps []berth.Pos
		for _, p := range cueerrors.Positions(e) {
			if pp, ok := convertPos(p); ok {
				ps = append(ps, pp)
			}
		}
		if len(ps) > 0 && syntax[ps[0]] {
			continue // reported above
		}
		if format == "import failed" {
			out = append(out, Error{Message: importMessage(t, e.Error()), Positions: dedupPositions(ps)})
			continue
		}
		for _, ce := range fromCUE(e, nil) {
			if len(ce.Positions) == 0 {
				// A problem with the package as a whole: name its files.
				for _, p := range t.dirFiles(dir) {
					ce.Positions = append(ce.Positions, berth.Pos{File: p})
				}
			}
			out = append(out, ce)
		}
	}
	return out
}

var (
	cannotFindPackage = regexp.MustCompile(`cannot find package "([^"]+)"`)
	moduleField       = regexp.MustCompile(`(?m)^module:\s*"([^"@]+)`)
)

// importMessage says which import did not resolve and where imports
// resolve, from CUE's "import failed: cannot find package ..." chain.
func importMessage(t *tree, detail string) string {
	m := cannotFindPackage.FindStringSubmatch(detail)
	if m == nil {
		if i := strings.Index(detail, "import failed"); i >= 0 {
			return strings.TrimRight(detail[i:], ": \n")
		}
		return strings.TrimRight(detail, ": \n")
	}
	pkg := m[1]
	mod, ok := t.files["cue.mod/module.cue"]
	if !ok {
		return fmt.Sprintf("import %q: no such package; the repository has no cue.mod/module.cue, so its own packages cannot be imported", pkg)
	}
	mm := moduleField.FindSubmatch(mod)
	if mm == nil {
		return fmt.Sprintf("import %q: no such package in this repository or under cue.mod/pkg", pkg)
	}
	module := string(mm[1])
	if rest, ok := strings.CutPrefix(pkg, module+"/"); ok {
		return fmt.Sprintf("import %q: no such package: the repository has no CUE files in directory %s/ (the module is %s, see cue.mod/module.cue)", pkg, rest, module)
	}
	return fmt.Sprintf("import %q: no such package: imports resolve inside the module %s (cue.mod/module.cue) or under cue.mod/pkg", pkg, module)
}
