package cue_test

import (
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/berth-gpu/berth/cue"
)

// FuzzSnapshot decodes cluster snapshots (`berth plan --snapshot FILE`
// reads one that any CI job may have written). LoadSnapshot must never
// panic; a snapshot it rejects is cue.Errors that name the file; and one
// it accepts is decoded to the same snapshot when written back as JSON.
func FuzzSnapshot(f *testing.F) {
	demo, err := os.ReadFile("../fixtures/snapshots/demo-box.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(demo)
	f.Add([]byte(`{"cluster": "box", "time": "2026-11-21T09:00:00Z", "nodes": []}`))
	f.Add([]byte(`{"cluster": "box", "time": "2026-11-21T09:00:00Z", "nodes": [{"name": "n", "cpu": "500m", "memory": "1Gi", "gpus": 1}],
	"running": [{"workload": "t/w", "runId": "1", "kind": "batch", "since": "2026-11-21T08:00:00Z", "resources": {"gpu": 1}, "placements": [{"node": "n", "gpus": [0]}]}]}`))
	f.Add([]byte(`cluster: "box"
time: "2026-11-21T09:00:00Z"
nodes: [for i, _ in [1, 2] {name: "n\(i)", cpu: 8, memory: "8Gi"}]
`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := cue.LoadSnapshot("snap.json", data)
		if err != nil {
			var errs cue.Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("error %v (%T), want cue.Errors", err, err)
			}
			return
		}
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("an accepted snapshot does not marshal: %v", err)
		}
		again, err := cue.LoadSnapshot("again.json", b)
		if err != nil {
			t.Fatalf("an accepted snapshot, written back, is rejected: %v\n%s", err, b)
		}
		if d := cmp.Diff(s, again, quantityEqual); d != "" {
			t.Fatalf("an accepted snapshot, written back, decodes differently (-first +again):\n%s", d)
		}
	})
}
