package cue

import (
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"

	cuelang "cuelang.org/go/cue"
	"cuelang.org/go/cue/build"
	"cuelang.org/go/cue/cuecontext"
	"cuelang.org/go/cue/load"

	"github.com/berth-gpu/berth"
)

// schemaVirtualFile is the name the schema is compiled under.
const schemaVirtualFile = "berth-schema.cue"

// topLevel lists the fields a repository may define, each with the schema
// definition its value is unified with.
var topLevel = []struct{ field, def string }{
	{"clusters", "#Clusters"},
	{"flavors", "#Flavors"},
	{"cohorts", "#Cohorts"},
	{"teams", "#Teams"},
	{"workloads", "#Workloads"},
	{"policy", "#Policy"},
}

// object is one named thing an instance defines: a cluster, flavor, cohort,
// team, workload, or one field of policy.
type object struct {
	key   string // "teams.vision", "workloads.vision.train", "policy.priorities"
	pos   berth.Pos
	value any // the decoded berth type, or json.RawMessage for policy fields
	// positions of the object's reference fields, by full path; or, for
	// an object decoded from a child's answer or the disk cache, not yet
	// decoded: enc, as encodePositions wrote it, with the file table its
	// indexes refer to.
	positions map[string]berth.Pos
	enc       string
	files     []string
}

// instanceResult is what one instance contributed, and what it depends on.
type instanceResult struct {
	dir     string
	deps    []string // directories whose .cue files the result depends on
	key     [32]byte
	errs    Errors
	objects []object
	// invalid holds keys of objects that exist but failed validation, so a
	// reference to them is not reported as dangling as well.
	invalid []string
	// failed is set when the instance could not be loaded or built at all:
	// what it defines is unknown, so no reference can be called dangling.
	failed bool
	// used is the Loader's load count when a load last used the result
	// (guarded by the Loader's mu).
	used uint64
	// wire is the result as a child sent it, until the Loader has stored
	// it in its disk cache.
	wire *wireResult
}

// upToDate reports whether the instance's files and imports are unchanged
// in t.
func (r *instanceResult) upToDate(t *tree) bool {
	return r.key == hashDeps(t, r.deps)
}

func hashDeps(t *tree, deps []string) [32]byte {
	var files []string
	for _, d := range deps {
		files = append(files, t.dirFiles(d)...)
	}
	return t.hashFiles(files)
}

// evaluator evaluates instances in its own CUE context.
type evaluator struct {
	ctx    *cuelang.Context
	schema cuelang.Value
	defs   map[string]cuelang.Value
	cfg    *load.Config
}

func newEvaluator(t *tree) (*evaluator, error) {
	ctx := cuecontext.New()
	schema := ctx.CompileBytes(berth.Schema, cuelang.Filename(schemaVirtualFile))
	if err := schema.Err(); err != nil {
		return nil, fmt.Errorf("compile the embedded schema: %w", err)
	}
	ev := &evaluator{ctx: ctx, schema: schema, defs: map[string]cuelang.Value{}}
	for _, tl := range topLevel {
		ev.defs[tl.field] = schema.LookupPath(cuelang.ParsePath(tl.def))
	}
	ev.cfg = &load.Config{FS: t.fsys(), Dir: "/"}
	return ev, nil
}

// evaluateDirsSafely is evaluateDirs, with a panic in CUE turned into an
// error: berth failed, not the commit, and the process must not die.
func (ev *evaluator) evaluateDirsSafely(dirs []string, run *running) (rs []*instanceResult, err error) {
	defer func() {
		if p := recover(); p != nil {
			run.remove(dirs...)
			err = fmt.Errorf("evaluate %s: CUE panicked: %v", strings.Join(dirs, ", "), p)
		}
	}()
	return ev.evaluateDirs(dirs, run), nil
}

// evaluateDirs evaluates the instances in dirs. They are loaded with one
// call so that CUE reads cue.mod and parses each imported package once for
// all of them, not once per instance.
func (ev *evaluator) evaluateDirs(dirs []string, run *running) []*instanceResult {
	args := make([]string, len(dirs))
	for i, dir := range dirs {
		args[i] = "."
		if dir != "." {
			args[i] = "./" + dir
		}
	}
	run.add(dirs...)
	insts := load.Instances(args, ev.cfg)
	run.remove(dirs...)
	out := make([]*instanceResult, len(dirs))
	for i, dir := range dirs {
		run.add(dir)
		if len(insts) != len(dirs) {
			// load reports a problem with the arguments as one instance.
			out[i] = ev.evaluate(dir, load.Instances(args[i:i+1], ev.cfg)[0])
			run.remove(dir)
			continue
		}
		out[i] = ev.evaluate(dir, insts[i])
		run.remove(dir)
	}
	return out
}

// evaluate unifies each object of the loaded instance in dir with the
// schema, and decodes the valid ones.
func (ev *evaluator) evaluate(dir string, inst *build.Instance) *instanceResult {
	r := &instanceResult{dir: dir}
	r.deps = instanceDeps(dir, inst)
	r.key = hashDeps(ev.treeOf(), r.deps)
	if inst.Err != nil {
		r.errs = ev.loadErrors(dir, inst.Err)
		r.failed = true
		return r
	}
	v := ev.ctx.BuildInstance(inst)
	if err := v.Err(); err != nil {
		r.errs = fromCUE(err, nil)
		r.failed = true
		return r
	}
	userPos := func(p []string) []berth.Pos { return lookupPos(v, p) }

	// Regular top-level fields must be ones berth knows. Definitions and
	// hidden fields are the user's own (templates, helpers).
	it, err := v.Fields()
	if err != nil {
		r.errs = fromCUE(err, userPos)
		return r
	}
	present := map[string]cuelang.Value{}
	for it.Next() {
		name := it.Selector().String()
		if _, ok := ev.defs[name]; !ok {
			r.errs = append(r.errs, Error{
				Path:      name,
				Message:   fmt.Sprintf("unknown top-level field %q: a repository defines clusters, flavors, cohorts, teams, workloads and policy", name),
				Positions: dedupPositions(append(posOf(it.Value()), lookupPos(v, []string{name})...)),
			})
			continue
		}
		present[name] = it.Value()
	}

	for _, tl := range topLevel {
		uv, ok := present[tl.field]
		if !ok {
			continue
		}
		unified := ev.defs[tl.field].Unify(uv)
		switch tl.field {
		case "policy":
			ev.policy(r, v, uv, unified)
		case "workloads":
			teams, err := unified.Fields()
			if err != nil {
				r.errs = append(r.errs, fromCUEAt(err, "workloads", userPos)...)
				continue
			}
			for teams.Next() {
				team := teams.Selector().Unquoted()
				names, err := teams.Value().Fields()
				if err != nil {
					r.errs = append(r.errs, fromCUEAt(err, "workloads", userPos)...)
					continue
				}
				for names.Next() {
					ev.object(r, v, []string{"workloads", team, names.Selector().Unquoted()}, names.Value())
				}
			}
		default:
			objs, err := unified.Fields()
			if err != nil {
				r.errs = append(r.errs, fromCUEAt(err, tl.field, userPos)...)
				continue
			}
			for objs.Next() {
				ev.object(r, v, []string{tl.field, objs.Selector().Unquoted()}, objs.Value())
			}
		}
	}
	return r
}

// treeOf returns the tree the evaluator's load config reads.
func (ev *evaluator) treeOf() *tree { return ev.cfg.FS.(memFS).t }

// object validates and decodes one object.
func (ev *evaluator) object(r *instanceResult, inst cuelang.Value, p []string, o cuelang.Value) {
	key := strings.Join(p, ".")
	userPos := func(ep []string) []berth.Pos { return lookupPos(inst, ep) }
	if err := o.Validate(cuelang.Concrete(true)); err != nil {
		r.errs = append(r.errs, explainNotAllowed(fromCUEAt(err, p[0], userPos), o, cuePath(p), kindNames[p[0]])...)
		r.invalid = append(r.invalid, key)
		return
	}
	obj := object{key: key, positions: map[string]berth.Pos{}}
	if ps := lookupPos(inst, p); len(ps) > 0 {
		obj.pos = ps[0]
	}
	var derr error
	switch p[0] {
	case "clusters":
		var c berth.Cluster
		derr = decode(o, &c)
		obj.value = c
		ev.refPos(&obj, o, p, "backend")
	case "flavors":
		var f berth.Flavor
		derr = decode(o, &f)
		obj.value = f
		ev.refPos(&obj, o, p, "cluster", "gpuModel", "mig")
	case "cohorts":
		var c berth.Cohort
		derr = decode(o, &c)
		obj.value = c
		ev.refPos(&obj, o, p, "parent")
		ev.listPos(&obj, o, p, "quota", len(c.Quota), "flavor")
	case "teams":
		var t berth.Team
		derr = decode(o, &t)
		obj.value = t
		ev.refPos(&obj, o, p, "cohort", "preemption.borrowWithinCohort.maxPriorityThreshold")
		ev.listPos(&obj, o, p, "quota", len(t.Quota), "flavor")
		ev.groupPos(&obj, o, p, t.ResourceGroups)
	case "workloads":
		w := new(berth.Workload)
		derr = decode(o, w)
		w.Pos = obj.pos
		obj.value = w
		ev.refPos(&obj, o, p, "kind", "priority", "image", "resources", "resources.gpu", "resources.flavor",
			"resources.gpuModel", "resources.mig", "resources.gpuFraction", "maxDuration", "schedule", "catchUp", "catchUpLimit", "concurrency",
			"replicas", "workers", "minWorkers", "parallelism", "completions", "runId")
		ev.listPos(&obj, o, p, "dependsOn", len(w.DependsOn), "")
		ev.servicePos(&obj, o, p, *w)
		ev.envPos(&obj, o, strings.Join(p, "."), w.Env)
		for _, role := range w.RoleNames() {
			ev.rolePos(&obj, o, p, role)
			rv := o.LookupPath(cuelang.MakePath(cuelang.Str("roles"), cuelang.Str(role)))
			ev.envPos(&obj, rv, strings.Join(p, ".")+".roles."+role, w.Roles[role].Env)
		}
		ev.refPos(&obj, o, p, "checkpoint", "checkpoint.dir", "outputs")
		ev.listPos(&obj, o, p, "inputs", len(w.Inputs), "")
		for _, v := range w.VolumeNames() {
			ev.volumePos(&obj, o, p, v)
		}
	}
	if derr != nil {
		r.errs = append(r.errs, Error{Path: key, Message: "decode: " + derr.Error(), Positions: []berth.Pos{obj.pos}})
		r.invalid = append(r.invalid, key)
		return
	}
	obj.positions[key] = obj.pos
	r.objects = append(r.objects, obj)
}

// kindNames name an object of each top-level field in messages.
var kindNames = map[string]string{
	"clusters": "a cluster", "flavors": "a flavor", "cohorts": "a cohort",
	"teams": "a team", "workloads": "a workload",
}

// earlierHealthFields are the fields of health when it was one check
// (berth before readiness and liveness probes).
var earlierHealthFields = []string{"path", "port", "initialDelay", "period", "failureThreshold"}

// cuePath is p as CUE writes it in an error's path: a label that is not an
// identifier quoted (workloads.serving."chat-api").
func cuePath(p []string) string {
	sels := make([]cuelang.Selector, len(p))
	for i, l := range p {
		sels[i] = cuelang.Str(l)
	}
	return cuelang.MakePath(sels...).String()
}

// explainNotAllowed rewrites CUE's "field not allowed" (a field the schema
// does not have, usually a typo) to name the fields that are allowed and
// the likeliest one meant. root is the value at rootPath.
func explainNotAllowed(errs Errors, root cuelang.Value, rootPath, rootName string) Errors {
	for i, e := range errs {
		if e.Message != "field not allowed" {
			continue
		}
		rel, ok := strings.CutPrefix(e.Path, rootPath+".")
		if !ok {
			continue
		}
		// CUE can report a field that is not allowed at an element of
		// its list value (owners misspelled: ewners.0); the field is the
		// one not allowed.
		for {
			j := strings.LastIndexByte(rel, '.')
			if j < 0 {
				break
			}
			if _, err := strconv.Atoi(rel[j+1:]); err != nil {
				break
			}
			rel = rel[:j]
			errs[i].Path = rootPath + "." + rel
		}
		if _, err := strconv.Atoi(rel); err == nil {
			continue // an element of the object itself, which is not a list
		}
		parent, field := root, rel
		where := rootName
		if j := strings.LastIndexByte(rel, '.'); j >= 0 {
			parent = root.LookupPath(parsePath(rel[:j]))
			field = rel[j+1:]
			where = rel[:j]
		}
		if u, err := strconv.Unquote(field); err == nil {
			field = u
		}
		if where == "env" || strings.HasSuffix(where, ".env") {
			errs[i].Message = fmt.Sprintf("%q is not allowed in env: a variable name is letters, digits and '_', not starting with a digit", field)
			continue
		}
		var allowed []string
		it, err := parent.Fields(cuelang.Optional(true))
		if err != nil {
			continue
		}
		for it.Next() {
			if it.Selector().LabelType() != cuelang.StringLabel {
				continue // a list's index, not a field
			}
			if name := it.Selector().Unquoted(); name != field {
				allowed = append(allowed, name)
			}
		}
		if len(allowed) == 0 {
			continue
		}
		slices.Sort(allowed)
		if where == "health" && slices.Contains(earlierHealthFields, field) {
			// A repository written for a berth whose health was one check.
			errs[i].Message = fmt.Sprintf("field %q is not allowed in health: health holds a readiness and a liveness probe now (health: readiness: {%s: ...}); readiness gates traffic, liveness restarts", field, field)
			continue
		}
		errs[i].Message = fmt.Sprintf("field %q is not allowed in %s%s (allowed: %s)", field, where, suggest(field, allowed), strings.Join(allowed, ", "))
	}
	return errs
}

// refPos records where the object's fields are written, when the user wrote
// them (a defaulted field has the schema's position, which is not recorded).
func (ev *evaluator) refPos(obj *object, o cuelang.Value, p []string, fields ...string) {
	for _, f := range fields {
		fv := o.LookupPath(parsePath(f))
		if !fv.Exists() {
			continue
		}
		if pos, ok := convertPos(fv.Pos()); ok && pos.File != SchemaPosFile {
			obj.positions[strings.Join(p, ".")+"."+f] = pos
		}
	}
}

// envPos records where each plain env value of o (a workload or a role,
// at path prefix) is written, for the credential warnings.
func (ev *evaluator) envPos(obj *object, o cuelang.Value, prefix string, env berth.Env) {
	for name, v := range env {
		if v.Secret != nil {
			continue
		}
		fv := o.LookupPath(cuelang.MakePath(cuelang.Str("env"), cuelang.Str(name)))
		if pos, ok := convertPos(fv.Pos()); ok && pos.File != SchemaPosFile {
			obj.positions[prefix+".env."+name] = pos
		}
	}
}

// rolePos records the positions of one role of a workload and of its
// fields that errors point at. Role names may hold "-", so the path is
// built from selectors, not parsed.
func (ev *evaluator) rolePos(obj *object, o cuelang.Value, p []string, role string) {
	rv := o.LookupPath(cuelang.MakePath(cuelang.Str("roles"), cuelang.Str(role)))
	if !rv.Exists() {
		return
	}
	prefix := strings.Join(p, ".") + ".roles." + role
	if pos, ok := convertPos(rv.Pos()); ok && pos.File != SchemaPosFile {
		obj.positions[prefix] = pos
	}
	for _, f := range []string{"count", "minCount", "resources", "resources.gpu", "resources.flavor",
		"resources.gpuModel", "resources.mig", "nodeSelector"} {
		fv := rv.LookupPath(parsePath(f))
		if !fv.Exists() {
			continue
		}
		if pos, ok := convertPos(fv.Pos()); ok && pos.File != SchemaPosFile {
			obj.positions[prefix+"."+f] = pos
		}
	}
}

// volumePos records the positions of one volume of a workload and of the
// fields its checks point at. Volume names may hold "-", so the path is
// built from selectors, not parsed.
func (ev *evaluator) volumePos(obj *object, o cuelang.Value, p []string, name string) {
	vv := o.LookupPath(cuelang.MakePath(cuelang.Str("volumes"), cuelang.Str(name)))
	if !vv.Exists() {
		return
	}
	prefix := strings.Join(p, ".") + ".volumes." + name
	for _, f := range []string{"kind", "mountPath", "readOnly", "claim", "size", "path"} {
		if pos, ok := convertPos(vv.LookupPath(parsePath(f)).Pos()); ok && pos.File != SchemaPosFile {
			obj.positions[prefix+"."+f] = pos
		}
	}
	// The volume's own position; where CUE has none of the user's (a
	// value unified from the schema's pattern), its kind's.
	if pos, ok := convertPos(vv.Pos()); ok && pos.File != SchemaPosFile {
		obj.positions[prefix] = pos
	} else if pos, ok := obj.positions[prefix+".kind"]; ok {
		obj.positions[prefix] = pos
	}
}

// groupPos records the positions of a team's resource groups: each
// group, covered resource, flavor name and resource name, which the
// checks across groups point at.
func (ev *evaluator) groupPos(obj *object, o cuelang.Value, p []string, groups []berth.ResourceGroup) {
	prefix := strings.Join(p, ".") + ".resourceGroups"
	at := func(key string, sels ...cuelang.Selector) {
		fv := o.LookupPath(cuelang.MakePath(append([]cuelang.Selector{cuelang.Str("resourceGroups")}, sels...)...))
		if pos, ok := convertPos(fv.Pos()); ok && pos.File != SchemaPosFile {
			obj.positions[key] = pos
		}
	}
	for i, g := range groups {
		gk := fmt.Sprintf("%s.%d", prefix, i)
		at(gk, cuelang.Index(i))
		for j := range g.CoveredResources {
			at(fmt.Sprintf("%s.coveredResources.%d", gk, j), cuelang.Index(i), cuelang.Str("coveredResources"), cuelang.Index(j))
		}
		for j, f := range g.Flavors {
			fk := fmt.Sprintf("%s.flavors.%d", gk, j)
			at(fk+".name", cuelang.Index(i), cuelang.Str("flavors"), cuelang.Index(j), cuelang.Str("name"))
			for k := range f.Resources {
				at(fmt.Sprintf("%s.resources.%d.name", fk, k), cuelang.Index(i), cuelang.Str("flavors"), cuelang.Index(j),
					cuelang.Str("resources"), cuelang.Index(k), cuelang.Str("name"))
			}
		}
	}
}

var pathCache sync.Map // string -> cuelang.Path

// parsePath is cuelang.ParsePath, remembered: parsing runs the CUE parser,
// and the same few paths are looked up in every object.
func parsePath(s string) cuelang.Path {
	if p, ok := pathCache.Load(s); ok {
		return p.(cuelang.Path)
	}
	p := cuelang.ParsePath(s)
	pathCache.Store(s, p)
	return p
}

// listPos records positions of a list's elements (or of one field of each
// element).
func (ev *evaluator) listPos(obj *object, o cuelang.Value, p []string, list string, n int, field string) {
	for i := range n {
		sel := cuelang.MakePath(cuelang.Str(list), cuelang.Index(i))
		if field != "" {
			sel = cuelang.MakePath(cuelang.Str(list), cuelang.Index(i), cuelang.Str(field))
		}
		fv := o.LookupPath(sel)
		if pos, ok := convertPos(fv.Pos()); ok && pos.File != SchemaPosFile {
			k := fmt.Sprintf("%s.%s.%d", strings.Join(p, "."), list, i)
			if field != "" {
				k += "." + field
			}
			obj.positions[k] = pos
		}
	}
}

// policy records each policy field the instance defines as its own object,
// so two instances may define different parts of the policy.
func (ev *evaluator) policy(r *instanceResult, inst, user, unified cuelang.Value) {
	userPos := func(ep []string) []berth.Pos { return lookupPos(inst, ep) }
	if err := unified.Validate(cuelang.Concrete(true)); err != nil {
		r.errs = append(r.errs, explainNotAllowed(fromCUEAt(err, "policy", userPos), unified, "policy", "policy")...)
		return
	}
	it, err := user.Fields()
	if err != nil {
		r.errs = append(r.errs, fromCUEAt(err, "policy", userPos)...)
		return
	}
	for it.Next() {
		name := it.Selector().Unquoted()
		key := "policy." + name
		b, err := unified.LookupPath(cuelang.MakePath(cuelang.Str(name))).MarshalJSON()
		if err != nil {
			r.errs = append(r.errs, fromCUEAt(err, "policy", userPos)...)
			continue
		}
		obj := object{key: key, value: json.RawMessage(b), positions: map[string]berth.Pos{}}
		if ps := lookupPos(inst, []string{"policy", name}); len(ps) > 0 {
			obj.pos = ps[0]
		}
		obj.positions[key] = obj.pos
		if name == "priorities" {
			// Where the user wrote each tier (a default tier has no place
			// of its own in the repository: its position is policy's).
			pr, _ := unified.LookupPath(parsePath("priorities")).Fields()
			for pr != nil && pr.Next() {
				tier := pr.Selector().Unquoted()
				if ps := lookupPos(inst, []string{"policy", "priorities", tier}); len(ps) > 0 {
					obj.positions[key+"."+tier] = ps[0]
				}
			}
		}
		r.objects = append(r.objects, obj)
	}
}

// fromCUEAt converts an error whose path starts with a schema definition
// (#Workloads) to one that starts with the top-level field.
func fromCUEAt(err error, field string, extra func([]string) []berth.Pos) Errors {
	es := fromCUE(err, func(p []string) []berth.Pos {
		return extra(withField(p, field))
	})
	for i := range es {
		if es[i].Path == "" {
			es[i].Path = field
		} else if !strings.HasPrefix(es[i].Path, field+".") && es[i].Path != field {
			es[i].Path = field + "." + es[i].Path
		}
	}
	return es
}

func withField(p []string, field string) []string {
	if len(p) > 0 && p[0] == field {
		return p
	}
	return append([]string{field}, p...)
}

// lookupPos returns the positions of the value at p in the user's
// instance, or of its nearest ancestor that exists.
func lookupPos(v cuelang.Value, p []string) []berth.Pos {
	for n := len(p); n > 0; n-- {
		sels := make([]cuelang.Selector, n)
		for i, s := range p[:n] {
			if u, err := strconv.Unquote(s); err == nil {
				s = u
			}
			if idx, err := strconv.Atoi(s); err == nil && idx >= 0 {
				sels[i] = cuelang.Index(idx)
			} else {
				sels[i] = cuelang.Str(s)
			}
		}
		fv := v.LookupPath(cuelang.MakePath(sels...))
		if !fv.Exists() {
			continue
		}
		return posOf(fv)
	}
	return nil
}

// posOf returns the user's positions of a value (where its conjuncts are
// written), without the schema's.
func posOf(v cuelang.Value) []berth.Pos {
	var out []berth.Pos
	if p, ok := convertPos(v.Pos()); ok && p.File != SchemaPosFile {
		out = append(out, p)
	}
	return out
}

// instanceDeps lists the directories an instance's result depends on: its
// own, every directory of a package it imports (transitively), and cue.mod.
func instanceDeps(dir string, inst *build.Instance) []string {
	set := map[string]bool{dir: true, "cue.mod": true}
	// CUE includes files of the same package from parent directories, so a
	// change in any ancestor may change this instance.
	for d := dir; d != "."; {
		d = path.Dir(d)
		set[d] = true
	}
	var visit func(i *build.Instance)
	seen := map[*build.Instance]bool{}
	visit = func(i *build.Instance) {
		if i == nil || seen[i] {
			return
		}
		seen[i] = true
		for _, f := range i.BuildFiles {
			if f.Filename != "" {
				set[strings.TrimPrefix(path.Dir(f.Filename), "/")] = true
			}
		}
		for _, imp := range i.Imports {
			visit(imp)
		}
	}
	visit(inst)
	out := make([]string, 0, len(set))
	for d := range set {
		if d == "" {
			d = "."
		}
		out = append(out, d)
	}
	slices.Sort(out)
	return out
}
