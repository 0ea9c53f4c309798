package cue

import (
	"encoding/json"
	"io/fs"
	"reflect"
	"testing"

	cuelang "cuelang.org/go/cue"
	"cuelang.org/go/cue/load"
	"github.com/google/go-cmp/cmp"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/fixtures"
	"github.com/berth-gpu/berth/fixtures/gen"
)

// TestDecodeMatchesJSON checks the field-by-field decoder against the JSON
// round trip it replaces, on every object of the demo and of a generated
// repository.
func TestDecodeMatchesJSON(t *testing.T) {
	for name, tr := range map[string]*tree{
		"demo": mustReadTree(t, fixtures.Demo()),
		"gen":  mustReadTree(t, gen.Generate(gen.Options{Teams: 3, Workloads: 60, Seed: 7}).FS()),
	} {
		ev, err := newEvaluator(tr)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, dir := range tr.dirs {
			ev.eachObject(dir, func(kind string, v cuelang.Value) {
				n++
				var typ reflect.Type
				switch kind {
				case "clusters":
					typ = reflect.TypeFor[berth.Cluster]()
				case "flavors":
					typ = reflect.TypeFor[berth.Flavor]()
				case "cohorts":
					typ = reflect.TypeFor[berth.Cohort]()
				case "teams":
					typ = reflect.TypeFor[berth.Team]()
				case "workloads":
					typ = reflect.TypeFor[berth.Workload]()
				default:
					return
				}
				got := reflect.New(typ)
				if err := decode(v, got.Interface()); err != nil {
					t.Fatalf("%s: decode: %v", name, err)
				}
				b, err := v.MarshalJSON()
				if err != nil {
					t.Fatal(err)
				}
				want := reflect.New(typ)
				if err := json.Unmarshal(b, want.Interface()); err != nil {
					t.Fatal(err)
				}
				if d := cmp.Diff(want.Interface(), got.Interface(), cmp.Comparer(func(a, b berth.Quantity) bool { return a.String() == b.String() && a.Milli() == b.Milli() })); d != "" {
					t.Errorf("%s %s: decode differs from JSON (-json +decode):\n%s", name, kind, d)
				}
			})
		}
		if n < 10 {
			t.Errorf("%s: only %d objects checked", name, n)
		}
	}
}

// eachObject calls f with every object of the instance in dir, unified
// with the schema.
func (ev *evaluator) eachObject(dir string, f func(kind string, v cuelang.Value)) {
	v := ev.build(dir)
	for _, tl := range topLevel {
		uv := v.LookupPath(cuelang.MakePath(cuelang.Str(tl.field)))
		if !uv.Exists() {
			continue
		}
		u := ev.defs[tl.field].Unify(uv)
		it, _ := u.Fields()
		for it.Next() {
			if tl.field != "workloads" {
				f(tl.field, it.Value())
				continue
			}
			inner, _ := it.Value().Fields()
			for inner.Next() {
				f(tl.field, inner.Value())
			}
		}
	}
}

func (ev *evaluator) build(dir string) cuelang.Value {
	arg := "."
	if dir != "." {
		arg = "./" + dir
	}
	return ev.ctx.BuildInstance(load.Instances([]string{arg}, ev.cfg)[0])
}

func mustReadTree(t testing.TB, fsys fs.FS) *tree {
	t.Helper()
	tr, errs, _ := readTree(fsys, Options{}.withDefaults())
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return tr
}
