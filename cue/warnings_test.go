package cue_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/cue"
	"github.com/berth-gpu/berth/fixtures"
)

// TestWarnings: every entry that could hold CUE but is not read is a
// warning with its file and the reason, the repository is loaded as if it
// were not there, and the warnings come whether the repository is valid
// or not.
func TestWarnings(t *testing.T) {
	root := t.TempDir()
	repo := filepath.Join(root, "repo")
	if err := os.CopyFS(repo, fixtures.Demo()); err != nil {
		t.Fatal(err)
	}
	write := func(p, s string) {
		if err := os.WriteFile(filepath.Join(repo, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A workload in each: none of them is read.
	w := "package vision\n\nworkloads: vision: hidden: {kind: \"batch\", image: \"x\"}\n"
	write("workloads/vision/.draft.cue", w)
	write("workloads/vision/_old.cue", w)
	if err := syscall.Mkfifo(filepath.Join(repo, "workloads/vision/pipe.cue"), 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	if err := os.MkdirAll(filepath.Join(root, "shared"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "shared", "w.cue"), []byte(w), 0o644)
	if err := os.Symlink("../../shared", filepath.Join(repo, "workloads/shared")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("nowhere", filepath.Join(repo, "workloads/gone")); err != nil {
		t.Fatal(err)
	}

	want := []cue.Warning{
		{Pos: berth.Pos{File: "workloads/gone"}, Message: "skipped: symlink to workloads/nowhere, which does not exist"},
		{Pos: berth.Pos{File: "workloads/shared"}, Message: "symlink to ../../shared leads outside the repository; berth does not follow it, so no CUE behind it is read"},
		{Pos: berth.Pos{File: "workloads/vision/.draft.cue"}, Message: `skipped: CUE ignores files whose names start with "."; rename it if it is meant to be read`},
		{Pos: berth.Pos{File: "workloads/vision/_old.cue"}, Message: `skipped: CUE ignores files whose names start with "_"; rename it if it is meant to be read`},
		{Pos: berth.Pos{File: "workloads/vision/pipe.cue"}, Message: "skipped: a named pipe (fifo), not a regular file; berth reads only regular files"},
	}
	r, err := cue.NewLoader(cue.Options{}).LoadResult(os.DirFS(repo))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, r.Warnings); d != "" {
		t.Errorf("warnings (-want +got):\n%s", d)
	}
	if _, ok := r.Config.Workloads["vision/hidden"]; ok {
		t.Error("a skipped file's workload was loaded")
	}

	write("workloads/vision/bad.cue", "package vision\n\nworkloads: vision: bad: {kind: \"batch\"}\n")
	r, err = cue.NewLoader(cue.Options{}).LoadResult(os.DirFS(repo))
	if err == nil {
		t.Fatal("an invalid repository loaded")
	}
	if d := cmp.Diff(want, r.Warnings); d != "" {
		t.Errorf("warnings of an invalid repository (-want +got):\n%s", d)
	}
}
