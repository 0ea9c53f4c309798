package cue

import (
	"fmt"
	"path"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/literal"
	"cuelang.org/go/cue/parser"
	"cuelang.org/go/cue/token"

	"github.com/berth-gpu/berth"
)

// The fast path: most of a repository is plain data. A workload file
// writes concrete values, at most unified with a template of a shared
// package (templates.#Training & {...}), and CUE's evaluator spent most of
// a cold load (62%) unifying each such object with the schema. For an
// instance whose every file is of that shape, the fast path reads the
// files with CUE's parser only, evaluates the few forms it knows (struct
// and list literals, concrete scalars, "*default | type" disjunctions,
// "&" of those and of definitions of an imported package that are built
// the same way), checks each object against the schema's rules written in
// Go (fastschema.go) and decodes it with the positions CUE would give.
//
// Anything else makes it give up on the whole instance, which CUE then
// evaluates as before: a form it does not know, a value that is not
// concrete, a conflict, a value the Go rules refuse. So every error a
// user sees is still CUE's, with CUE's wording and positions, and the fast
// path only ever answers for instances that are valid by the schema;
// TestFastPathAgrees holds both paths to the same results.

// fastEnabled turns the fast path off for the differential tests.
var fastEnabled = true

// errNotFast is why the fast path gives an instance to CUE. The reason is
// only for tests and debugging: the user never sees it.
type errNotFast struct{ why string }

func (e *errNotFast) Error() string { return "not on the fast path: " + e.why }

func notFast(format string, args ...any) error {
	return &errNotFast{why: fmt.Sprintf(format, args...)}
}

// fkind is the kind of a value the fast path evaluates.
type fkind uint8

const (
	fStruct fkind = iota
	fList
	fScalar // a concrete string, int, float or bool
	fType   // string, int, number, float or bool
	fDisj   // a disjunction of scalars and types, with at most one default
)

// scalar kinds (fval.sk), and the basic types (fval.sk of an fType).
const (
	skString = "string"
	skInt    = "int"
	skFloat  = "float"
	skBool   = "bool"
	skNumber = "number"
)

// fval is a value the fast path evaluated. Values are never changed once
// built: templates are shared by every object that uses them.
type fval struct {
	kind fkind
	// fStruct: the fields in the order they were first written; closed
	// when it came from a definition without "...".
	fields []ffield
	closed bool
	// fList: the elements, and the type of further elements (open list).
	elems []*fval
	rest  *fval
	// fScalar: the kind and the value (a string unquoted, a number or
	// bool as written); fType: the type in sk.
	sk, lit string
	// fDisj: the alternatives, and the default's index (-1: none).
	alts []*fval
	dflt int
	// pos is where the value is written; user is set when it was written
	// in the instance itself rather than in a template; nested when a
	// template's definition took it from another definition
	// (#Batch: #Job & {...}).
	pos    token.Pos
	user   bool
	nested bool
}

// nestedCopy is v, marked as taken from another definition.
func nestedCopy(v *fval) *fval {
	c := *v
	c.nested = true
	if v.fields != nil {
		c.fields = make([]ffield, len(v.fields))
		for i, f := range v.fields {
			c.fields[i] = ffield{f.name, nestedCopy(f.v)}
		}
	}
	if v.elems != nil {
		c.elems = make([]*fval, len(v.elems))
		for i, e := range v.elems {
			c.elems[i] = nestedCopy(e)
		}
	}
	if v.rest != nil {
		c.rest = nestedCopy(v.rest)
	}
	if v.alts != nil {
		c.alts = make([]*fval, len(v.alts))
		for i, a := range v.alts {
			c.alts[i] = nestedCopy(a)
		}
	}
	return &c
}

type ffield struct {
	name string
	v    *fval
}

func (v *fval) field(name string) *fval {
	for _, f := range v.fields {
		if f.name == name {
			return f.v
		}
	}
	return nil
}

// unify is "a & b" for the values the fast path knows.
func unify(a, b *fval) (*fval, error) {
	if a.kind == fDisj && b.kind != fDisj {
		a, b = b, a
	}
	switch {
	case a.kind == fStruct && b.kind == fStruct:
		return unifyStructs(a, b)
	case a.kind == fList && b.kind == fList:
		return unifyLists(a, b)
	case a.kind == fScalar && b.kind == fScalar:
		if a.sk != b.sk || a.lit != b.lit {
			return nil, notFast("conflicting values %s and %s", a.lit, b.lit)
		}
		return pickUser(a, b), nil
	case a.kind == fScalar && b.kind == fType:
		if !admits(b.sk, a.sk) {
			return nil, notFast("%s is not %s", a.lit, b.sk)
		}
		return a, nil
	case a.kind == fType && b.kind == fScalar:
		return unify(b, a)
	case a.kind == fType && b.kind == fType && a.sk == b.sk:
		return pickUser(a, b), nil
	case a.kind == fScalar && b.kind == fDisj:
		for _, alt := range b.alts {
			if (alt.kind == fScalar && alt.sk == a.sk && alt.lit == a.lit) || (alt.kind == fType && admits(alt.sk, a.sk)) {
				return a, nil
			}
		}
		return nil, notFast("%s matches no alternative", a.lit)
	}
	return nil, notFast("unifying values of kinds %d and %d", a.kind, b.kind)
}

func pickUser(a, b *fval) *fval {
	if b.user && !a.user {
		return b
	}
	return a
}

// admits reports whether a value of scalar kind sk is of basic type typ.
func admits(typ, sk string) bool {
	return typ == sk || (typ == skNumber && (sk == skInt || sk == skFloat))
}

func unifyStructs(a, b *fval) (*fval, error) {
	out := &fval{kind: fStruct, closed: a.closed || b.closed, pos: a.pos, user: a.user || b.user}
	if b.user && !a.user {
		out.pos = b.pos
	}
	out.fields = make([]ffield, 0, len(a.fields)+len(b.fields))
	for _, f := range a.fields {
		g := b.field(f.name)
		if g == nil {
			if b.closed {
				return nil, notFast("field %s not allowed", f.name)
			}
			out.fields = append(out.fields, f)
			continue
		}
		u, err := unify(f.v, g)
		if err != nil {
			return nil, err
		}
		out.fields = append(out.fields, ffield{f.name, u})
	}
	for _, g := range b.fields {
		if a.field(g.name) != nil {
			continue
		}
		if a.closed {
			return nil, notFast("field %s not allowed", g.name)
		}
		out.fields = append(out.fields, g)
	}
	return out, nil
}

func unifyLists(a, b *fval) (*fval, error) {
	if a.rest != nil && b.rest != nil {
		return nil, notFast("two open lists")
	}
	if b.rest != nil {
		a, b = b, a
	}
	// a may be open; b is closed.
	if len(b.elems) < len(a.elems) || (a.rest == nil && len(a.elems) != len(b.elems)) {
		return nil, notFast("lists of different lengths")
	}
	out := &fval{kind: fList, pos: b.pos, user: a.user || b.user, elems: make([]*fval, len(b.elems))}
	for i, e := range b.elems {
		with := a.rest
		if i < len(a.elems) {
			with = a.elems[i]
		}
		u, err := unify(with, e)
		if err != nil {
			return nil, err
		}
		out.elems[i] = u
	}
	return out, nil
}

// builder turns parsed CUE into fvals.
type builder struct {
	user bool // building the instance's own files, not a template
	// defs resolves an identifier #Name in a template package; imports
	// resolves pkg.#Name in the instance's files.
	defs    func(name string) (*fval, error)
	imports map[string]*templatePkg
	used    map[string]bool // the imports referred to
	inDef   bool            // inside a definition: struct literals close
}

var (
	plainInt   = regexp.MustCompile(`^(0|[1-9][0-9]*)$`)
	plainFloat = regexp.MustCompile(`^(0|[1-9][0-9]*)\.[0-9]*[1-9]$`)
)

func (b *builder) expr(x ast.Expr) (*fval, error) {
	switch x := x.(type) {
	case *ast.BasicLit:
		v := &fval{kind: fScalar, pos: x.ValuePos, user: b.user, lit: x.Value}
		switch x.Kind {
		case token.STRING:
			if !strings.HasPrefix(x.Value, `"`) {
				return nil, notFast("a bytes literal")
			}
			s, err := literal.Unquote(x.Value)
			if err != nil {
				return nil, notFast("a string: %v", err)
			}
			v.sk, v.lit = skString, s
		case token.INT:
			if !plainInt.MatchString(x.Value) {
				return nil, notFast("the number %s", x.Value)
			}
			v.sk = skInt
		case token.FLOAT:
			if !plainFloat.MatchString(x.Value) {
				return nil, notFast("the number %s", x.Value)
			}
			v.sk = skFloat
		case token.TRUE, token.FALSE:
			v.sk = skBool
		default:
			return nil, notFast("a %s literal", x.Kind)
		}
		return v, nil
	case *ast.StructLit:
		return b.structLit(x)
	case *ast.ListLit:
		return b.listLit(x)
	case *ast.BinaryExpr:
		switch x.Op {
		case token.AND:
			l, err := b.expr(x.X)
			if err != nil {
				return nil, err
			}
			r, err := b.expr(x.Y)
			if err != nil {
				return nil, err
			}
			return unify(l, r)
		case token.OR:
			return b.disjunction(x)
		}
	case *ast.Ident:
		switch x.Name {
		case skString, skInt, skFloat, skBool, skNumber:
			return &fval{kind: fType, sk: x.Name, pos: x.NamePos, user: b.user}, nil
		}
		if b.defs != nil && strings.HasPrefix(x.Name, "#") {
			v, err := b.defs(x.Name)
			if err != nil {
				return nil, err
			}
			return nestedCopy(v), nil
		}
	case *ast.SelectorExpr:
		pkg, ok := x.X.(*ast.Ident)
		sel, ok2 := x.Sel.(*ast.Ident)
		if ok && ok2 && b.imports != nil && strings.HasPrefix(sel.Name, "#") {
			if t := b.imports[pkg.Name]; t != nil {
				b.used[pkg.Name] = true
				return t.def(sel.Name)
			}
		}
	case *ast.ParenExpr:
		return b.expr(x.X)
	}
	return nil, notFast("the expression %T", x)
}

func (b *builder) disjunction(x *ast.BinaryExpr) (*fval, error) {
	var alts []ast.Expr
	var flat func(e ast.Expr)
	flat = func(e ast.Expr) {
		if be, ok := e.(*ast.BinaryExpr); ok && be.Op == token.OR {
			flat(be.X)
			flat(be.Y)
			return
		}
		alts = append(alts, e)
	}
	flat(x)
	v := &fval{kind: fDisj, dflt: -1, pos: x.Pos(), user: b.user}
	for i, a := range alts {
		if u, ok := a.(*ast.UnaryExpr); ok && u.Op == token.MUL {
			if v.dflt >= 0 {
				return nil, notFast("two defaults")
			}
			v.dflt = i
			a = u.X
		}
		av, err := b.expr(a)
		if err != nil {
			return nil, err
		}
		if av.kind != fScalar && av.kind != fType {
			return nil, notFast("a disjunction of %d", av.kind)
		}
		v.alts = append(v.alts, av)
	}
	if v.dflt >= 0 && v.alts[v.dflt].kind != fScalar {
		return nil, notFast("a default that is not concrete")
	}
	return v, nil
}

func (b *builder) structLit(x *ast.StructLit) (*fval, error) {
	v := &fval{kind: fStruct, pos: x.Pos(), user: b.user, closed: b.inDef}
	for _, d := range x.Elts {
		switch d := d.(type) {
		case *ast.Field:
			name, err := fieldName(d)
			if err != nil {
				return nil, err
			}
			if strings.HasPrefix(name, "#") || strings.HasPrefix(name, "_") {
				return nil, notFast("a definition or hidden field")
			}
			fv, err := b.expr(d.Value)
			if err != nil {
				return nil, err
			}
			if prev := v.field(name); prev != nil {
				if fv, err = unify(prev, fv); err != nil {
					return nil, err
				}
				for i := range v.fields {
					if v.fields[i].name == name {
						v.fields[i].v = fv
					}
				}
				continue
			}
			v.fields = append(v.fields, ffield{name, fv})
		case *ast.Ellipsis:
			if d.Type != nil {
				return nil, notFast("a typed ellipsis in a struct")
			}
			v.closed = false
		default:
			return nil, notFast("the declaration %T", d)
		}
	}
	return v, nil
}

func (b *builder) listLit(x *ast.ListLit) (*fval, error) {
	v := &fval{kind: fList, pos: x.Pos(), user: b.user}
	for i, e := range x.Elts {
		if el, ok := e.(*ast.Ellipsis); ok {
			if i != len(x.Elts)-1 {
				return nil, notFast("an ellipsis inside a list")
			}
			if el.Type == nil {
				return nil, notFast("an untyped list ellipsis")
			}
			r, err := b.expr(el.Type)
			if err != nil {
				return nil, err
			}
			if r.kind != fStruct || len(r.fields) > 0 || r.closed {
				return nil, notFast("a list ellipsis of a type other than {...}")
			}
			v.rest = r
			continue
		}
		ev, err := b.expr(e)
		if err != nil {
			return nil, err
		}
		v.elems = append(v.elems, ev)
	}
	return v, nil
}

// fieldName is a regular field's name: an identifier or a string, with no
// constraint (? or !), alias or attribute.
func fieldName(f *ast.Field) (string, error) {
	if f.Constraint != token.ILLEGAL || f.Alias != nil || len(f.Attrs) > 0 {
		return "", notFast("an optional, required, aliased or attributed field")
	}
	switch l := f.Label.(type) {
	case *ast.Ident:
		return l.Name, nil
	case *ast.BasicLit:
		if l.Kind != token.STRING || !strings.HasPrefix(l.Value, `"`) || strings.HasPrefix(l.Value, `"""`) {
			return "", notFast("the label %s", l.Value)
		}
		s, err := literal.Unquote(l.Value)
		if err != nil {
			return "", notFast("the label %s", l.Value)
		}
		return s, nil
	}
	return "", notFast("the label %T", f.Label)
}

// templatePkg is a package the instances import, read once per
// evaluation: its definitions, evaluated on first use.
type templatePkg struct {
	dir   string
	files []string // the package's files, for the instance's deps
	decls map[string]ast.Expr
	err   error

	mu   sync.Mutex
	defs map[string]*fval
	errs map[string]error
	busy map[string]bool
}

func (t *templatePkg) def(name string) (*fval, error) {
	if t.err != nil {
		return nil, t.err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.defLocked(name)
}

func (t *templatePkg) defLocked(name string) (*fval, error) {
	if v, ok := t.defs[name]; ok {
		return v, nil
	}
	if err, ok := t.errs[name]; ok {
		return nil, err
	}
	x, ok := t.decls[name]
	if !ok {
		return nil, notFast("no definition %s in %s", name, t.dir)
	}
	if t.busy[name] {
		return nil, notFast("a definition that refers to itself")
	}
	t.busy[name] = true
	b := &builder{inDef: true, defs: t.defLocked}
	v, err := b.expr(x)
	delete(t.busy, name)
	if err != nil {
		t.errs[name] = err
		return nil, err
	}
	t.defs[name] = v
	return v, nil
}

// fastEval is the fast path's state for one evaluation: the tree, its
// module and the template packages read so far.
type fastEval struct {
	t      *tree
	module string // the module path without its major version, or "" when unknown

	mu   sync.Mutex
	pkgs map[string]*templatePkg
}

var moduleRE = regexp.MustCompile(`(?m)^module:\s*"([^"@]+)(@v[0-9]+)?"\s*$`)

func newFastEval(t *tree) *fastEval {
	f := &fastEval{t: t, pkgs: map[string]*templatePkg{}}
	if m := moduleRE.FindSubmatch(t.files["cue.mod/module.cue"]); m != nil {
		f.module = string(m[1])
	}
	return f
}

// parse parses one file of the tree. A test or tool file (x_test.cue,
// x_tool.cue), which cue/load leaves out of an instance, goes to CUE.
func (f *fastEval) parse(p string) (*ast.File, error) {
	if strings.HasSuffix(p, "_test.cue") || strings.HasSuffix(p, "_tool.cue") {
		return nil, notFast("%s: a test or tool file", p)
	}
	file, err := parser.ParseFile(p, f.t.files[p])
	if err != nil {
		return nil, notFast("%s does not parse", p)
	}
	return file, nil
}

// templates returns the package imported by path.
func (f *fastEval) templates(importPath string) *templatePkg {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t, ok := f.pkgs[importPath]; ok {
		return t
	}
	t := &templatePkg{decls: map[string]ast.Expr{}, defs: map[string]*fval{}, errs: map[string]error{}, busy: map[string]bool{}}
	f.pkgs[importPath] = t
	rel, ok := strings.CutPrefix(importPath, f.module+"/")
	if f.module == "" || !ok || strings.Contains(rel, ":") || !ancestorsFree(f.t, rel) {
		t.err = notFast("the import %s", importPath)
		return t
	}
	t.dir = rel
	t.files = f.t.dirFiles(rel)
	if len(t.files) == 0 {
		t.err = notFast("the import %s has no files", importPath)
		return t
	}
	for _, p := range t.files {
		file, err := f.parse(p)
		if err != nil {
			t.err = err
			return t
		}
		if file.PackageName() != path.Base(rel) {
			t.err = notFast("%s is not package %s", p, path.Base(rel))
			return t
		}
		for _, d := range file.Decls {
			switch d := d.(type) {
			case *ast.Package, *ast.CommentGroup:
			case *ast.Field:
				name, err := fieldName(d)
				if err != nil || !strings.HasPrefix(name, "#") {
					t.err = notFast("%s holds more than definitions", p)
					return t
				}
				if _, dup := t.decls[name]; dup {
					t.err = notFast("%s defined twice", name)
					return t
				}
				t.decls[name] = d.Value
			default:
				t.err = notFast("%s holds a %T", p, d)
				return t
			}
		}
	}
	return t
}

// ancestorsFree reports whether no directory above dir holds .cue files
// (CUE would add those of the same package to the instance).
func ancestorsFree(t *tree, dir string) bool {
	for d := dir; d != "."; {
		d = path.Dir(d)
		if len(t.dirFiles(d)) > 0 {
			return false
		}
	}
	return true
}

// instance evaluates the instance in dir on the fast path. The files are
// read, and the objects checked, by as many goroutines as there are
// CPUs: one package may hold thousands of files.
func (f *fastEval) instance(dir string) (*instanceResult, error) {
	if !ancestorsFree(f.t, dir) {
		return nil, notFast("files above %s", dir)
	}
	files := f.t.dirFiles(dir)
	if len(files) == 0 {
		return nil, notFast("no files")
	}
	read := make([]fileObjects, len(files))
	if err := inParallel(len(files), func(i int) error {
		var err error
		read[i], err = f.file(files[i])
		return err
	}); err != nil {
		return nil, err
	}
	deps := []string{dir, "cue.mod"}
	seen := map[string]bool{}
	var objs []*objSrc
	pkg := read[0].pkg
	for i, fo := range read {
		if fo.pkg != pkg {
			return nil, notFast("package clauses")
		}
		deps = append(deps, fo.deps...)
		for _, o := range fo.objects {
			if seen[o.key] {
				return nil, notFast("%s written twice", o.key)
			}
			seen[o.key] = true
			objs = append(objs, o)
		}
		read[i] = fileObjects{}
	}
	for d := dir; d != "."; {
		d = path.Dir(d)
		deps = append(deps, d)
	}
	r := &instanceResult{dir: dir, deps: sortedUnique(deps)}
	r.key = hashDeps(f.t, r.deps)
	r.objects = make([]object, len(objs))
	if err := inParallel(len(objs), func(i int) error {
		var err error
		r.objects[i], err = objs[i].check()
		return err
	}); err != nil {
		return nil, err
	}
	return r, nil
}

// fileObjects is what one file of an instance holds.
type fileObjects struct {
	pkg     string
	deps    []string // the directories of the packages it imports
	objects []*objSrc
}

// file reads one file of an instance.
func (f *fastEval) file(p string) (fileObjects, error) {
	var out fileObjects
	file, err := f.parse(p)
	if err != nil {
		return out, err
	}
	out.pkg = file.PackageName()
	if out.pkg == "" || out.pkg == "_" {
		return out, notFast("package clauses")
	}
	b := &builder{user: true, imports: map[string]*templatePkg{}, used: map[string]bool{}}
	labels := map[string]bool{}
	objects := map[string]*objSrc{}
	for _, d := range file.Decls {
		switch d := d.(type) {
		case *ast.Package, *ast.CommentGroup:
		case *ast.ImportDecl:
			for _, s := range d.Specs {
				ip, err := literal.Unquote(s.Path.Value)
				if err != nil {
					return out, notFast("an import path")
				}
				ident := path.Base(ip)
				if s.Name != nil {
					ident = s.Name.Name
				}
				t := f.templates(ip)
				if t.err != nil {
					return out, t.err
				}
				b.imports[ident] = t
				out.deps = append(out.deps, t.dir)
			}
		case *ast.Field:
			if err := collect(d, nil, b, labels, objects, &out.objects); err != nil {
				return out, err
			}
		default:
			return out, notFast("the declaration %T", d)
		}
	}
	for ident := range b.imports {
		if labels[ident] {
			return out, notFast("a label named as an import")
		}
		if !b.used[ident] {
			return out, notFast("an import %s does not use", p)
		}
	}
	return out, nil
}

// inParallel calls do(i) for every i below n, on as many goroutines as
// there are CPUs, and returns the first error. A panic is an error: the
// instance goes to CUE rather than the process dying.
func inParallel(n int, do func(i int) error) error {
	do = recovering(do)
	workers := min(runtime.GOMAXPROCS(0), n/16+1)
	if workers <= 1 {
		for i := range n {
			if err := do(i); err != nil {
				return err
			}
		}
		return nil
	}
	var next atomic.Int64
	var failed atomic.Bool
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := do(i); err != nil {
					errs[w] = err
					failed.Store(true)
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// objSrc is one object an instance defines: its path and value.
type objSrc struct {
	key  string   // the path joined with NUL
	path []string // ["workloads", team, name] or ["teams", name]
	v    *fval
	pos  token.Pos // the position of the object's label
}

// collect walks a top-level field down to the objects it defines
// (workloads.<team>.<name>, teams.<name>).
func collect(f *ast.Field, prefix []string, b *builder, labels map[string]bool, objects map[string]*objSrc, order *[]*objSrc) error {
	name, err := fieldName(f)
	if err != nil {
		return err
	}
	labels[name] = true
	p := append(append([]string(nil), prefix...), name)
	depth := map[string]int{"workloads": 3, "teams": 2}[p[0]]
	if depth == 0 {
		return notFast("the top-level field %s", p[0])
	}
	if len(p) == depth {
		v, err := b.expr(f.Value)
		if err != nil {
			return err
		}
		key := strings.Join(p, "\x00")
		if _, dup := objects[key]; dup {
			return notFast("%s written twice", strings.Join(p, "."))
		}
		o := &objSrc{key: key, path: p, v: v, pos: f.Label.Pos()}
		objects[key] = o
		*order = append(*order, o)
		return nil
	}
	s, ok := f.Value.(*ast.StructLit)
	if !ok {
		return notFast("%s is not a struct literal", strings.Join(p, "."))
	}
	for _, d := range s.Elts {
		g, ok := d.(*ast.Field)
		if !ok {
			return notFast("the declaration %T", d)
		}
		if err := collect(g, p, b, labels, objects, order); err != nil {
			return err
		}
	}
	return nil
}

func sortedUnique(s []string) []string {
	seen := map[string]bool{}
	out := s[:0]
	for _, x := range s {
		if x == "" {
			x = "."
		}
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	slices.Sort(out)
	return out
}

// fpos converts a position the parser gave (the file's path in the tree).
func fpos(p token.Pos) berth.Pos {
	if !p.IsValid() {
		return berth.Pos{}
	}
	return berth.Pos{File: p.Filename(), Line: p.Line(), Col: p.Column()}
}

// try evaluates the instance in dir on the fast path, or returns nil when
// CUE must. A panic is the fast path's bug: CUE evaluates the instance.
func (f *fastEval) try(dir string) (r *instanceResult) {
	if !fastEnabled {
		return nil
	}
	defer func() {
		if recover() != nil {
			r = nil
		}
	}()
	r, err := f.instance(dir)
	if err != nil {
		return nil
	}
	return r
}

// recovering is do with a panic turned into an error.
func recovering(do func(i int) error) func(i int) error {
	return func(i int) (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = notFast("panic: %v", p)
			}
		}()
		return do(i)
	}
}
