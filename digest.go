package berth

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
)

// SpecDigest is a short hash of what a run of the workload executes: image,
// command, args, env, resources and shape. Priority, dependencies,
// schedule, limits and runId are not part of it: changing them does not
// change what runs. A service whose digest changes is restarted with the
// new spec; a batch or training run keeps running with the spec it started
// with (bump runId for a new run).
func SpecDigest(w Workload) string {
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
		Health      *HealthCheck      `json:"health"`
	}{w.Kind, w.Image, w.Command, w.Args, w.Env, w.Resources, w.Replicas, w.Workers, w.MinWorkers,
		w.Parallelism, w.Completions, w.Checkpoint, w.Ports, w.Health}
	b, err := json.Marshal(spec) // map keys are sorted: the digest is stable
	if err != nil {
		panic(err) // plain data always marshals
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}
