package sources

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDir(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{
		"teams/vision.cue": "teams: vision: {}\n",
		"link.cue":         "->teams/vision.cue",
		".git/HEAD":        "ref: refs/heads/main\n",
		"big.bin":          strings.Repeat("x", 2000),
	})
	d, err := NewDir(dir, DirOptions{HashLimit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	latest := func() Revision {
		t.Helper()
		rev, err := d.Latest(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		return rev
	}
	first := latest()
	if first.Kind != WorkingDir || len(first.Hash) != 64 || first.String() != "dir@sha256:"+first.Hash {
		t.Errorf("revision %+v named %s", first, first)
	}
	if b, err := fs.ReadFile(first.FS, "link.cue"); err != nil || string(b) != "teams: vision: {}\n" {
		t.Errorf("ReadFile(link.cue) = %q, %v", b, err)
	}
	if target, err := fs.ReadLink(first.FS, "link.cue"); err != nil || target != "teams/vision.cue" {
		t.Errorf("ReadLink(link.cue) = %q, %v", target, err)
	}

	same := func(what string, want bool) {
		t.Helper()
		if got := latest().Hash == first.Hash; got != want {
			t.Errorf("%s: same hash = %v, want %v", what, got, want)
		}
	}
	same("unchanged", true)
	future := time.Now().Add(time.Hour)
	os.Chtimes(filepath.Join(dir, "teams/vision.cue"), future, future)
	same("touched", true)
	write(t, dir, map[string]string{".git/index": "x", ".vision.cue.swp": "x", "teams/vision.cue~": "x"})
	same("hidden files written", true)
	write(t, dir, map[string]string{"teams/vision.cue": "teams: vision: {x: 1}\n"})
	same("content changed", false)
	write(t, dir, map[string]string{"teams/vision.cue": "teams: vision: {}\n"})
	same("content changed back", true)
	os.Chmod(filepath.Join(dir, "teams/vision.cue"), 0o755)
	same("made executable", false)
	os.Chmod(filepath.Join(dir, "teams/vision.cue"), 0o644)
	// A file over the hash limit is named by its size and time.
	os.Chtimes(filepath.Join(dir, "big.bin"), future, future)
	same("large file touched", false)

	if _, err := NewDir(filepath.Join(dir, "missing"), DirOptions{}); err == nil {
		t.Error("NewDir of a missing directory succeeded")
	}
}
