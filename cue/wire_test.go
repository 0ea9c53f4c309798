package cue

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/berth-gpu/berth"
)

// TestResultBudget: a child sends the results of its instances while they
// fit in its budget; an instance whose configuration does not fit (a
// value CUE grew from a few lines) is an error at its files instead, and
// takes only the error's size from the budget.
func TestResultBudget(t *testing.T) {
	files := map[string][]byte{
		"a/a.cue": []byte("package a\n"),
		"b/b.cue": []byte("package b\n"),
		"c/c.cue": []byte("package c\n"),
	}
	tr := newTree(files)
	result := func(dir string, padding int) *instanceResult {
		w := berth.Workload{Name: dir, Team: "t", Env: map[string]string{"PADDING": strings.Repeat("x", padding)}}
		return &instanceResult{dir: dir, deps: []string{dir}, objects: []object{{key: "workloads.t." + dir, value: w}}}
	}
	budget := int64(3 << 20)
	var got []*wireResult
	for _, r := range []*instanceResult{result("a", 1<<20), result("b", 4<<20), result("c", 1<<20)} {
		b, err := encodeResult(tr, r, &budget, 3<<20)
		if err != nil {
			t.Fatal(err)
		}
		var m message
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		got = append(got, m.Result)
	}
	if len(got[0].Objects) != 1 || len(got[2].Objects) != 1 {
		t.Errorf("the results that fit were not sent: %+v, %+v", got[0].Errs, got[2].Errs)
	}
	if len(got[1].Objects) != 0 || !got[1].Failed || len(got[1].Errs) != 1 ||
		!strings.Contains(got[1].Errs[0].Message, "more than 4 MiB of configuration, and berth accepts 3 MiB") || got[1].Errs[0].Pos().File != "b/b.cue" {
		t.Errorf("an oversized result: got %+v", got[1])
	}
	if budget <= 0 || budget > 1<<20 {
		t.Errorf("budget left %d, want what two 1 MiB results and an error leave of 3 MiB", budget)
	}
}

// TestPositionsRoundTrip: an object's positions come back from their
// compact form as they were, odd paths and files included.
func TestPositionsRoundTrip(t *testing.T) {
	key := "workloads.vision.train"
	ps := map[string]berth.Pos{
		key:                     {File: "teams/vision/a.cue", Line: 3, Col: 8},
		key + ".image":          {File: "templates/t.cue", Line: 6, Col: 15},
		key + `.env."A\tB"`:     {File: "teams/vision/a b.cue", Line: 1, Col: 1},
		key + ".roles.\"x\ny\"": {File: "teams/vision/a.cue", Line: 9, Col: 2},
		"policy.priorities.low": {File: "p\t.cue", Line: 1, Col: 2},
		key + "!":               {File: "teams/vision/a.cue", Line: 4, Col: 4},
	}
	files := &fileTable{index: map[string]int{}}
	s := encodePositions(key, ps, files)
	got, err := decodePositions(key, s, files.names)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(ps, got); d != "" {
		t.Errorf("(-sent +received):\n%s", d)
	}
	if _, err := decodePositions(key, ".image\t7\t1\t1\n", files.names); err == nil {
		t.Error("a file index out of range was accepted")
	}
}

// TestDecodersAgree: the decoder of cached and child results
// (decodeObject) decodes what encoding/json wrote as encoding/json does,
// nil and empty lists and maps included (a workload's spec digest is its
// JSON): for every object of the example repositories, and for every
// type's value with every field set, recursively.
func TestDecodersAgree(t *testing.T) {
	var objs []wireObject
	add := func(key string, v any) {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, wireObject{Key: key, Value: b})
	}
	for _, dir := range []string{"../fixtures/repos/demo", "../fixtures/repos/kube-demo"} {
		cfg, err := Load(os.DirFS(dir), Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range cfg.Workloads {
			add("workloads."+w.Team+"."+w.Name, w)
		}
		for _, v := range cfg.Teams {
			add("teams."+v.Name, v)
		}
		for _, v := range cfg.Clusters {
			add("clusters."+v.Name, v)
		}
		for _, v := range cfg.Flavors {
			add("flavors."+v.Name, v)
		}
		for _, v := range cfg.Cohorts {
			add("cohorts."+v.Name, v)
		}
	}
	add("workloads.t.full", filled[berth.Workload]())
	add("teams.full", filled[berth.Team]())
	add("clusters.full", filled[berth.Cluster]())
	add("flavors.full", filled[berth.Flavor]())
	add("cohorts.full", filled[berth.Cohort]())
	for _, wo := range objs {
		got, err := decodeObject(wo, nil)
		if err != nil {
			t.Fatalf("%s: %v", wo.Key, err)
		}
		want := reflect.New(reflect.TypeOf(got.value))
		if err := json.Unmarshal(wo.Value, want.Interface()); err != nil {
			t.Fatalf("%s: %v", wo.Key, err)
		}
		if !reflect.DeepEqual(want.Elem().Interface(), got.value) {
			t.Errorf("%s: decoded differently from encoding/json:\n%#v\n%#v", wo.Key, want.Elem().Interface(), got.value)
		}
	}
}

// filled returns a T with every field set, recursively: one element in
// every list and map, every pointer set.
func filled[T any]() T {
	var v T
	fill(reflect.ValueOf(&v).Elem(), 0)
	return v
}

func fill(v reflect.Value, depth int) {
	if depth > 6 {
		return
	}
	switch {
	case v.Type() == reflect.TypeFor[berth.Quantity]():
		v.Set(reflect.ValueOf(berth.MustQuantity("1500m")))
		return
	case v.Type() == reflect.TypeFor[berth.PortRef]():
		v.Set(reflect.ValueOf(berth.PortRef{Name: "http"}))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString("x")
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(3)
	case reflect.Float64:
		v.SetFloat(0.5)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Slice:
		e := reflect.New(v.Type().Elem()).Elem()
		fill(e, depth+1)
		v.Set(reflect.Append(reflect.MakeSlice(v.Type(), 0, 1), e))
	case reflect.Map:
		k := reflect.New(v.Type().Key()).Elem()
		fill(k, depth+1)
		e := reflect.New(v.Type().Elem()).Elem()
		fill(e, depth+1)
		m := reflect.MakeMap(v.Type())
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(p.Elem(), depth+1)
		v.Set(p)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), depth+1)
			}
		}
	}
}
