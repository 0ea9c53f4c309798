package sources

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func watchDir(t *testing.T, dir string, opts WatchOptions) *Watcher {
	t.Helper()
	w, err := WatchDir(t.Context(), dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// waitFor receives Changes until one reports path; it returns every path
// reported on the way.
func waitFor(t *testing.T, w *Watcher, path string) []string {
	t.Helper()
	var seen []string
	for {
		c := recv(t, w.Changes(), "waiting for "+path)
		seen = append(seen, c.Paths...)
		if slices.Contains(c.Paths, path) {
			return seen
		}
	}
}

func TestWatchDir(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, map[string]string{"a.cue": "a: 1\n", "sub/b.cue": "b: 1\n", ".git/HEAD": "ref: refs/heads/main\n"})
	w := watchDir(t, dir, WatchOptions{})

	t.Run("write", func(t *testing.T) {
		write(t, dir, map[string]string{"sub/b.cue": "b: 2\n"})
		waitFor(t, w, "sub/b.cue")
	})
	t.Run("atomic save by rename", func(t *testing.T) {
		// VS Code, and most tools: write a temporary file, rename it over.
		write(t, dir, map[string]string{"a.cue.tmp-1234": "a: 2\n"})
		if err := os.Rename(filepath.Join(dir, "a.cue.tmp-1234"), filepath.Join(dir, "a.cue")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, w, "a.cue")
		// vim: move the file to a backup, write a new one, drop the backup.
		if err := os.Rename(filepath.Join(dir, "a.cue"), filepath.Join(dir, "a.cue~")); err != nil {
			t.Fatal(err)
		}
		write(t, dir, map[string]string{"a.cue": "a: 3\n"})
		os.Remove(filepath.Join(dir, "a.cue~"))
		seen := waitFor(t, w, "a.cue")
		if slices.Contains(seen, "a.cue~") {
			t.Errorf("backup file reported: %v", seen)
		}
	})
	t.Run("new directory", func(t *testing.T) {
		write(t, dir, map[string]string{"new/deep/": ""})
		write(t, dir, map[string]string{"new/deep/c.cue": "c: 1\n"})
		waitFor(t, w, "new/deep/c.cue")
		// The new directory is watched: a later write is seen too.
		write(t, dir, map[string]string{"new/deep/c.cue": "c: 2\n"})
		waitFor(t, w, "new/deep/c.cue")
	})
	t.Run("renamed directory", func(t *testing.T) {
		if err := os.Rename(filepath.Join(dir, "new"), filepath.Join(dir, "moved")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, w, "moved")
		write(t, dir, map[string]string{"moved/deep/c.cue": "c: 3\n"})
		waitFor(t, w, "moved/deep/c.cue")
	})
	t.Run("hidden", func(t *testing.T) {
		write(t, dir, map[string]string{".git/index": "x", ".a.cue.swp": "x", "sub/.hidden/x.cue": "x"})
		write(t, dir, map[string]string{"sub/b.cue": "b: 4\n"})
		for _, p := range waitFor(t, w, "sub/b.cue") {
			if p != "sub/b.cue" {
				t.Errorf("reported %q", p)
			}
		}
	})
}

func TestWatchDirBurst(t *testing.T) {
	dir := t.TempDir()
	// A long debounce, so that the burst fits in it however slow the
	// machine; the count of Changes is what is checked, not a time.
	w := watchDir(t, dir, WatchOptions{Debounce: 500 * time.Millisecond, MaxDelay: time.Minute})
	for i := range 100 {
		write(t, dir, map[string]string{fmt.Sprintf("w/%03d.cue", i%10): fmt.Sprintf("x: %d\n", i)})
	}
	write(t, dir, map[string]string{"done.cue": "done: true\n"})
	n := 0
	for {
		c := recv(t, w.Changes(), "burst")
		n++
		if slices.Contains(c.Paths, "done.cue") {
			break
		}
	}
	if n > 3 {
		t.Errorf("100 writes became %d changes, want them coalesced", n)
	}
}

func TestWatchGitRefs(t *testing.T) {
	repo := newRepo(t)
	commit(t, repo, "first", map[string]string{"a.cue": "a: 1\n"})
	w, err := WatchGitRefs(t.Context(), repo, WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	commit(t, repo, "second", map[string]string{"a.cue": "a: 2\n"})
	waitFor(t, w, "refs/heads/main")

	run(t, repo, "checkout", "-q", "-b", "feature/x")
	waitFor(t, w, "HEAD")
	commit(t, repo, "on a nested branch", map[string]string{"b.cue": "b: 1\n"})
	waitFor(t, w, "refs/heads/feature/x")

	run(t, repo, "pack-refs", "--all")
	waitFor(t, w, "packed-refs")

	// A linked work tree: its HEAD is in its own git directory, its
	// branches shared.
	wt := filepath.Join(t.TempDir(), "wt")
	run(t, repo, "worktree", "add", "-q", "-b", "wt", wt)
	w2, err := WatchGitRefs(t.Context(), wt, WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	commit(t, wt, "in the work tree", map[string]string{"c.cue": "c: 1\n"})
	waitFor(t, w2, "refs/heads/wt")
	run(t, wt, "checkout", "-q", "--detach")
	waitFor(t, w2, "HEAD")

	if _, err := WatchGitRefs(t.Context(), t.TempDir(), WatchOptions{}); err == nil {
		t.Error("WatchGitRefs on a directory without a repository succeeded")
	}
}

func TestWatchClose(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	w, err := WatchDir(ctx, t.TempDir(), WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	for range w.Changes() {
	}
	w.Close() // after the context ended: returns at once
	if _, err := WatchDir(t.Context(), filepath.Join(t.TempDir(), "missing"), WatchOptions{}); err == nil {
		t.Error("WatchDir of a missing directory succeeded")
	}
}
