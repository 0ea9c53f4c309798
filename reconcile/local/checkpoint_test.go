package local

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestLatestCheckpoint: the newest complete entry (file or directory),
// never one still being written under a dot name; none in an empty or
// missing directory.
func TestLatestCheckpoint(t *testing.T) {
	dir := t.TempDir()
	if got, err := latestCheckpoint(filepath.Join(dir, "missing")); err != nil || got != "" {
		t.Fatalf("missing directory: %q, %v; want none", got, err)
	}
	if got, err := latestCheckpoint(dir); err != nil || got != "" {
		t.Fatalf("empty directory: %q, %v; want none", got, err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, name := range []string{"step-100", "step-200", ".step-300.tmp"} {
		p := filepath.Join(dir, name)
		mustWrite(t, p, "w")
		if err := os.Chtimes(p, t0, t0.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "epoch-1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(dir, "epoch-1"), t0, t0); err != nil {
		t.Fatal(err)
	}
	if got, _ := latestCheckpoint(dir); got != filepath.Join(dir, "step-200") {
		t.Errorf("latest = %q, want step-200 (the temporary .step-300.tmp is newer but not complete)", got)
	}
}
