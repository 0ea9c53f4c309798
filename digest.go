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
// Autoscale is out too: the replicas it asks for are decisions of their
// own, not a new spec for the replicas that run; so is a notebook's idle
// limit, which berth enforces from outside the notebook.
var NotInSpecDigest = []string{"name", "team", "priority", "maxDuration", "retries", "schedule", "dependsOn", "runId", "autoscale", "idle"}

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

// SpecDigestMatches reports whether recorded, the digest a run was started
// with, is the digest of w: SpecDigest's, or the one berth wrote before
// SpecDigest covered every field (legacySpecDigest). A run recorded by an
// older berth is thus not restarted by the upgrade alone, only when its
// spec changes.
func SpecDigestMatches(recorded string, w Workload) bool {
	return recorded == SpecDigest(w) || recorded == legacySpecDigest(w)
}

// legacySpecDigest is the digest of berth's releases up to December 2026:
// a hash of a hand-kept list of fields. Its health field was the single
// HTTP check of those releases; a workload with readiness or liveness
// probes never matches it (its spec changed form).
func legacySpecDigest(w Workload) string {
	if w.Health != nil || w.Rollout != nil || w.Expose != nil || len(w.Roles) > 0 {
		return ""
	}
	spec := struct {
		Kind        Kind              `json:"kind"`
		Image       string            `json:"image"`
		Command     []string          `json:"command"`
		Args        []string          `json:"args"`
		Env         map[string]string `json:"env"`
		Resources   Resources         `json:"resources"`
		Replicas    int               `json:"replicas"`
		Workers     int               `json:"workers"`
		MinWorkers  int               `json:"minWorkers"`
		Parallelism int               `json:"parallelism"`
		Completions int               `json:"completions"`
		Checkpoint  *Checkpoint       `json:"checkpoint"`
		Ports       []Port            `json:"ports"`
		Health      *struct{}         `json:"health"`
	}{w.Kind, w.Image, w.Command, w.Args, w.Env, w.Resources, w.Replicas, w.Workers, w.MinWorkers,
		w.Parallelism, w.Completions, w.Checkpoint, w.Ports, nil}
	b, err := json.Marshal(spec)
	if err != nil {
		panic(err) // plain data always marshals
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}
