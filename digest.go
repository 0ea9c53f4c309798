package berth

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"strings"
)

// NotInSpecDigest are the workload fields, by JSON name, that SpecDigest
// leaves out: changing them does not change what a run executes (its
// identity, place in line, retries, timing, dependencies and run id).
// Every other field is in the digest, so a field added to Workload restarts
// a service when it changes unless it is named here.
var NotInSpecDigest = []string{"name", "team", "priority", "maxDuration", "retries", "schedule", "dependsOn", "runId"}

// notInSpecDigest are the indexes in Workload of NotInSpecDigest's fields.
var notInSpecDigest = func() []int {
	byName := map[string]int{}
	t := reflect.TypeFor[Workload]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		byName[name] = i
	}
	var out []int
	for _, name := range NotInSpecDigest {
		i, ok := byName[name]
		if !ok {
			panic("berth: NotInSpecDigest names " + name + ", which is no Workload field")
		}
		out = append(out, i)
	}
	return out
}()

// SpecDigest is a short hash of what a run of the workload executes: the
// workload's JSON (fields in declaration order, map keys sorted) with the
// fields in NotInSpecDigest set to their zero value. A service whose
// digest changes is restarted with the new spec; a batch or training run
// keeps running with the spec it started with (bump runId for a new run).
func SpecDigest(w Workload) string {
	v := reflect.ValueOf(&w).Elem()
	for _, i := range notInSpecDigest {
		v.Field(i).SetZero()
	}
	b, err := json.Marshal(w)
	if err != nil {
		panic(err) // plain data always marshals
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}
