package cue_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/berth-gpu/berth/cue"
)

// TestSnapshotIsJSONOnly: a snapshot that is CUE but not JSON (here a
// comprehension that doubles a list forty times) is refused where it
// stops being JSON, before anything evaluates it.
func TestSnapshotIsJSONOnly(t *testing.T) {
	bomb := "{\"cluster\": \"box\", \"time\": \"2026-11-21T09:00:00Z\",\n" +
		" \"nodes\": [for i, _ in [1, 2] {name: \"n\\(i)\", cpu: 8, memory: \"8Gi\"}]}\n"
	_, err := cue.LoadSnapshot("snap.json", []byte(bomb))
	var errs cue.Errors
	if !errors.As(err, &errs) || len(errs) != 1 || !strings.HasPrefix(errs[0].Message, "a snapshot is JSON: invalid character 'o' in literal false") {
		t.Fatalf("got %v, want one error saying a snapshot is JSON", err)
	}
	if p := errs[0].Pos(); p.File != "snap.json" || p.Line != 2 || p.Col != 13 {
		t.Errorf("error at %v, want snap.json:2:13", p)
	}
}
