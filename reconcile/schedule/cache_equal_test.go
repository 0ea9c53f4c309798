package schedule

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/berth-gpu/berth"
)

// TestEqualitiesSeeEveryField changes each field of each type a Cache
// compares, in turn, and checks that the change is seen: a field added
// later and left out of an equality would let a cache keep a stale state.
func TestEqualitiesSeeEveryField(t *testing.T) {
	check := func(name string, zero any, same func(a, b any) bool, skip ...string) {
		t.Helper()
		typ := reflect.TypeOf(zero)
		for i := range typ.NumField() {
			f := typ.Field(i)
			if slices.Contains(skip, f.Name) {
				continue
			}
			a := reflect.New(typ).Elem()
			b := reflect.New(typ).Elem()
			if !set(b.Field(i)) {
				t.Errorf("%s.%s: the test cannot set a %s", name, f.Name, f.Type)
				continue
			}
			if same(a.Interface(), b.Interface()) {
				t.Errorf("%s.%s: a change of it is not seen", name, f.Name)
			}
		}
	}
	check("Workload", berth.Workload{}, func(a, b any) bool {
		x, y := a.(berth.Workload), b.(berth.Workload)
		return sameWorkload(&x, &y)
	}, notScheduled...)
	check("Role", berth.Role{}, func(a, b any) bool { return sameRole(a.(berth.Role), b.(berth.Role)) }, notScheduledRole...)
	check("RunningWorkload", berth.RunningWorkload{}, func(a, b any) bool {
		x, y := a.(berth.RunningWorkload), b.(berth.RunningWorkload)
		return sameRunning(&x, &y)
	})
	check("Placement", berth.Placement{}, func(a, b any) bool { return samePlacement(a.(berth.Placement), b.(berth.Placement)) })
	check("RolePlacement", berth.RolePlacement{}, func(a, b any) bool {
		return sameRolePlacement(a.(berth.RolePlacement), b.(berth.RolePlacement))
	})
	check("Node", berth.Node{}, func(a, b any) bool { return sameNode(a.(berth.Node), b.(berth.Node)) })
}

// set gives v a value other than its zero value.
func set(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(1)
	case reflect.Float64:
		v.SetFloat(0.5)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		set(v.Index(0))
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k := reflect.New(v.Type().Key()).Elem()
		set(k)
		e := reflect.New(v.Type().Elem()).Elem()
		set(e)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		set(v.Elem())
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(berth.Quantity{}) {
			v.Set(reflect.ValueOf(berth.MustQuantity("1")))
			return true
		}
		ok := false
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() && set(v.Field(i)) {
				ok = true
				break
			}
		}
		if !ok && v.Type() == reflect.TypeOf(berthT0) {
			v.Set(reflect.ValueOf(berthT0))
			return true
		}
		return ok
	default:
		return false
	}
	return true
}

var berthT0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
