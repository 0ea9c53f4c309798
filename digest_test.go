package berth_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/berth-gpu/berth"
)

// TestSpecDigestCoversEveryField sets each field of a workload in turn: a
// field named in NotInSpecDigest leaves the digest as it was, and every
// other field, one added later included, changes it. So a new field cannot
// be forgotten: it restarts a service unless someone says it must not.
func TestSpecDigestCoversEveryField(t *testing.T) {
	base := berth.Workload{Name: "serve", Team: "nlp", Kind: berth.KindService, Image: "img:1"}
	before := berth.SpecDigest(base)
	typ := reflect.TypeFor[berth.Workload]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue // not part of the spec (Pos)
		}
		t.Run(name, func(t *testing.T) {
			w := base
			setNonZero(reflect.ValueOf(&w).Elem().Field(i))
			changed := berth.SpecDigest(w) != before
			if left := slices.Contains(berth.NotInSpecDigest, name); changed == left {
				t.Errorf("changing %s changed the digest: %v, want %v", name, changed, !left)
			}
		})
	}
}

// setNonZero gives v a value other than its own (a struct: each of its
// exported fields).
func setNonZero(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(v.String() + "x")
	case reflect.Int, reflect.Int64:
		v.SetInt(v.Int() + 1)
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.Slice:
		v.Set(reflect.Append(v, reflect.Zero(v.Type().Elem())))
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		m.SetMapIndex(reflect.ValueOf("k").Convert(v.Type().Key()), reflect.Zero(v.Type().Elem()))
		v.Set(m)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
	case reflect.Float64:
		v.SetFloat(v.Float() + 0.5)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Field(i).CanSet() {
				setNonZero(v.Field(i))
			}
		}
	default:
		panic("setNonZero: no case for " + v.Kind().String())
	}
}

// TestSpecDigestStable: the same spec gives the same digest whatever the
// order its env was written in.
func TestSpecDigestStable(t *testing.T) {
	a := berth.Workload{Kind: berth.KindService, Image: "img:1", Env: map[string]string{"A": "1", "B": "2"}}
	b := a
	b.Env = map[string]string{"B": "2", "A": "1"}
	if berth.SpecDigest(a) != berth.SpecDigest(b) {
		t.Error("the digest depends on map order")
	}
}
