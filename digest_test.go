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
	a := berth.Workload{Kind: berth.KindService, Image: "img:1", Env: berth.EnvOf(map[string]string{"A": "1", "B": "2"})}
	b := a
	b.Env = berth.EnvOf(map[string]string{"B": "2", "A": "1"})
	if berth.SpecDigest(a) != berth.SpecDigest(b) {
		t.Error("the digest depends on map order")
	}
}

// TestSpecDigestOfEarlierReleases: a service started by berth before
// SpecDigest covered every field (its digest 91ff4af517d4, computed by
// 8e5fb62's SpecDigest for this spec) is not restarted by the upgrade,
// and is when its spec changes.
func TestSpecDigestOfEarlierReleases(t *testing.T) {
	w := berth.Workload{Name: "chat", Team: "nlp", Kind: berth.KindService, Image: "img:1", Command: []string{"serve"},
		Args: []string{"--x"}, Env: berth.EnvOf(map[string]string{"A": "1"}), Replicas: 2,
		Resources: berth.Resources{CPU: berth.MustQuantity("500m"), Memory: berth.MustQuantity("16Gi"), GPU: 2, Flavor: "h100"},
		Ports:     []berth.Port{{Name: "http", Port: 8080, Protocol: "TCP"}}, Checkpoint: &berth.Checkpoint{Dir: "/ckpt"}}
	const recorded = "91ff4af517d4"
	if berth.SpecDigest(w) == recorded {
		t.Fatal("the test needs a digest of the earlier form")
	}
	if !berth.SpecDigestMatches(recorded, w) {
		t.Error("a run recorded by an earlier berth would restart on upgrade")
	}
	changed := w
	changed.Image = "img:2"
	if berth.SpecDigestMatches(recorded, changed) {
		t.Error("a changed image matches the earlier digest")
	}
	if !berth.SpecDigestMatches(berth.SpecDigest(w), w) {
		t.Error("a digest does not match its own spec")
	}
}

// TestAutoscaleDoesNotRestart: min and max replicas are decisions, not a
// new spec for the replicas that run.
func TestAutoscaleDoesNotRestart(t *testing.T) {
	w := berth.Workload{Kind: berth.KindService, Image: "img:1"}
	scaled := w
	scaled.Autoscale = &berth.Autoscale{Min: 1, Max: 4, TargetRPS: 50}
	if berth.SpecDigest(w) != berth.SpecDigest(scaled) {
		t.Error("an autoscale change restarts the service")
	}
}
