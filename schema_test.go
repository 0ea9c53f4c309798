package berth_test

import (
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	cuelang "cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"
	"github.com/google/go-cmp/cmp"

	"github.com/berth-gpu/berth"
)

// TestSchemaMatchesGoTypes walks the schema from #Config and #Snapshot
// alongside the Go types they decode into, and fails on any field one has
// and the other lacks, or whose kinds cannot agree. A field added to
// schema.cue and not to the Go types (or the other way round) fails here.
func TestSchemaMatchesGoTypes(t *testing.T) {
	ctx := cuecontext.New()
	schema := ctx.CompileBytes(berth.Schema, cuelang.Filename("schema.cue"))
	if err := schema.Err(); err != nil {
		t.Fatal(err)
	}
	w := &schemaWalker{ctx: ctx}
	for _, root := range []struct {
		def string
		typ reflect.Type
	}{
		{"#Config", reflect.TypeFor[berth.Config]()},
		{"#Snapshot", reflect.TypeFor[berth.Snapshot]()},
	} {
		v := schema.LookupPath(cuelang.ParsePath(root.def))
		if !v.Exists() {
			t.Fatalf("schema.cue has no %s", root.def)
		}
		w.walk(v, root.typ, root.def)
	}
	for _, p := range w.problems {
		t.Error(p)
	}
	// The walk must have reached the types it exists to compare.
	for _, typ := range []reflect.Type{
		reflect.TypeFor[berth.Cluster](), reflect.TypeFor[berth.Flavor](), reflect.TypeFor[berth.Cohort](),
		reflect.TypeFor[berth.Team](), reflect.TypeFor[berth.Workload](), reflect.TypeFor[berth.Resources](),
		reflect.TypeFor[berth.Policy](), reflect.TypeFor[berth.PriorityTier](), reflect.TypeFor[berth.Node](),
		reflect.TypeFor[berth.RunningWorkload](), reflect.TypeFor[berth.Placement](), reflect.TypeFor[berth.QueuedWorkload](),
		reflect.TypeFor[berth.Role](), reflect.TypeFor[berth.Health](), reflect.TypeFor[berth.Probe](),
		reflect.TypeFor[berth.Rollout](), reflect.TypeFor[berth.Expose](), reflect.TypeFor[berth.Autoscale](),
		reflect.TypeFor[berth.Ingress](), reflect.TypeFor[berth.Volume](), reflect.TypeFor[berth.Checkpoint](),
	} {
		if !w.seen[typ] {
			t.Errorf("the walk never reached %s", typ)
		}
	}
}

// variants are values unified into a definition to reveal the fields it
// declares only under a condition (if backend == "kubernetes" {...}).
var variants = map[reflect.Type][]string{
	reflect.TypeFor[berth.Cluster](): {`{backend: "local"}`, `{backend: "kubernetes"}`},
	reflect.TypeFor[berth.Workload](): {`{kind: "training"}`, `{kind: "batch"}`, `{kind: "service"}`,
		`{kind: "inference"}`, `{kind: "notebook"}`},
	reflect.TypeFor[berth.Volume](): {`{kind: "dataset"}`, `{kind: "team"}`, `{kind: "scratch"}`},
}

type schemaWalker struct {
	ctx      *cuelang.Context
	problems []string
	seen     map[reflect.Type]bool
}

func (w *schemaWalker) errorf(format string, args ...any) {
	w.problems = append(w.problems, fmt.Sprintf(format, args...))
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// leafKindsOK reports whether t is a struct compared field by field rather
// than a leaf (time.Time, Quantity).
func leafKindsOK(t reflect.Type) bool {
	_, leaf := leafKinds(t)
	return !leaf
}

// leafKinds is what CUE kinds a Go leaf type accepts.
func leafKinds(t reflect.Type) (cuelang.Kind, bool) {
	switch {
	case t == reflect.TypeFor[berth.Quantity]():
		return cuelang.NumberKind | cuelang.StringKind, true
	case t == reflect.TypeFor[time.Time](), reflect.PointerTo(t).Implements(textUnmarshaler):
		return cuelang.StringKind, true
	case reflect.PointerTo(t).Implements(jsonUnmarshaler):
		return cuelang.TopKind, true
	}
	switch t.Kind() {
	case reflect.String:
		return cuelang.StringKind, true
	case reflect.Bool:
		return cuelang.BoolKind, true
	case reflect.Int, reflect.Int64, reflect.Int32:
		return cuelang.IntKind, true
	case reflect.Float64, reflect.Float32:
		return cuelang.NumberKind, true
	}
	return 0, false
}

func (w *schemaWalker) walk(v cuelang.Value, t reflect.Type, path string) {
	if w.seen == nil {
		w.seen = map[reflect.Type]bool{}
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() == reflect.Struct && leafKindsOK(t) {
		// A struct is compared under each of its variants below; the
		// definition on its own may not evaluate (if kind == ... with no
		// kind).
		w.seen[t] = true
		w.structFields(v, t, path)
		return
	}
	if v.Err() != nil {
		return // a field that is an error under this variant (workers on a service)
	}
	kind := v.IncompleteKind()
	if want, ok := leafKinds(t); ok {
		if kind&want == 0 {
			w.errorf("%s: schema kind %v, Go type %s", path, kind, t)
		}
		return
	}
	switch t.Kind() {
	case reflect.Map:
		if kind&cuelang.StructKind == 0 {
			w.errorf("%s: schema kind %v, Go type %s (a map)", path, kind, t)
			return
		}
		if _, leaf := leafKinds(t.Elem()); leaf {
			return // env, labels: the pattern may constrain the keys
		}
		elem := v.LookupPath(cuelang.MakePath(cuelang.AnyString))
		if t.Key() == reflect.TypeFor[berth.WorkloadID]() {
			// workloads: team: name: #Workload; Go keys them by "team/name".
			elem = elem.LookupPath(cuelang.MakePath(cuelang.AnyString))
		}
		if !elem.Exists() {
			w.errorf("%s: Go type %s is a map, the schema has no [string]: pattern", path, t)
			return
		}
		w.walk(elem, t.Elem(), path+".[string]")
	case reflect.Slice:
		if kind&cuelang.ListKind == 0 {
			w.errorf("%s: schema kind %v, Go type %s (a list)", path, kind, t)
			return
		}
		if _, leaf := leafKinds(t.Elem()); leaf {
			return
		}
		elem := v.LookupPath(cuelang.MakePath(cuelang.AnyIndex))
		if !elem.Exists() {
			w.errorf("%s: Go type %s is a list, the schema has no element type", path, t)
			return
		}
		w.walk(elem, t.Elem(), path+".[]")
	default:
		w.errorf("%s: Go type %s has no counterpart in this test", path, t)
	}
}

// structFields compares the fields of a CUE struct (optional ones included,
// definitions and hidden fields not) with the json names of a Go struct.
func (w *schemaWalker) structFields(v cuelang.Value, t reflect.Type, path string) {
	var values []cuelang.Value
	if v.Err() == nil {
		values = append(values, v)
	}
	for _, src := range variants[t] {
		if vv := v.Unify(w.ctx.CompileString(src)); vv.Err() == nil {
			values = append(values, vv)
		}
	}
	if len(values) == 0 {
		w.errorf("%s: does not evaluate: %v", path, v.Err())
		return
	}
	if kind := values[0].IncompleteKind(); kind&cuelang.StructKind == 0 {
		w.errorf("%s: schema kind %v, Go type %s (a struct)", path, kind, t)
		return
	}
	cueFields := map[string]cuelang.Value{}
	for _, vv := range values {
		it, err := vv.Fields(cuelang.Optional(true))
		if err != nil {
			w.errorf("%s: %v", path, err)
			return
		}
		for it.Next() {
			name := it.Selector().Unquoted()
			if prev, ok := cueFields[name]; !ok || prev.Err() != nil {
				cueFields[name] = it.Value()
			}
		}
	}
	goFields := map[string]reflect.StructField{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			w.errorf("%s: Go field %s.%s has no json tag", path, t, f.Name)
			continue
		}
		goFields[name] = f
	}
	var onlyCUE, onlyGo []string
	for name := range cueFields {
		if _, ok := goFields[name]; !ok {
			onlyCUE = append(onlyCUE, name)
		}
	}
	for name := range goFields {
		if _, ok := cueFields[name]; !ok {
			onlyGo = append(onlyGo, name)
		}
	}
	slices.Sort(onlyCUE)
	slices.Sort(onlyGo)
	for _, name := range onlyCUE {
		w.errorf("%s.%s is in schema.cue but Go type %s has no field with json name %q", path, name, t, name)
	}
	for _, name := range onlyGo {
		w.errorf("%s.%s: Go field %s.%s is not in schema.cue", path, name, t, goFields[name].Name)
	}
	names := make([]string, 0, len(goFields))
	for name := range goFields {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if cv, ok := cueFields[name]; ok {
			w.walk(cv, goFields[name].Type, path+"."+name)
		}
	}
}

// TestSchemaWalkerCatchesDrift proves the walk fails when the two sides
// differ: a schema with an extra field, and one missing a field.
func TestSchemaWalkerCatchesDrift(t *testing.T) {
	type portGo struct {
		Name     string `json:"name,omitempty"`
		Port     int    `json:"port"`
		Protocol string `json:"protocol"`
	}
	for _, tc := range []struct {
		name, src string
		want      []string
	}{
		{"agree", `{name?: string, port: int, protocol: *"TCP" | "UDP"}`, nil},
		{"extra in schema", `{name?: string, port: int, protocol: string, hostPort?: int}`,
			[]string{`#P.hostPort is in schema.cue but Go type berth_test.portGo has no field with json name "hostPort"`}},
		{"missing in schema", `{name?: string, port: int}`,
			[]string{`#P.protocol: Go field berth_test.portGo.Protocol is not in schema.cue`}},
		{"kind differs", `{name?: string, port: string, protocol: string}`,
			[]string{`#P.port: schema kind string, Go type int`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := cuecontext.New()
			w := &schemaWalker{ctx: ctx}
			w.walk(ctx.CompileString(tc.src), reflect.TypeFor[portGo](), "#P")
			if d := cmp.Diff(tc.want, w.problems); d != "" {
				t.Errorf("problems (-want +got):\n%s", d)
			}
		})
	}
}
