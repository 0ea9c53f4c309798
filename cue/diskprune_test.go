package cue

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/fixtures/gen"
)

// pruneRepo is a small generated repository (6 instances).
func pruneRepo() fstest.MapFS {
	m := fstest.MapFS{}
	for p, b := range gen.Generate(gen.Options{Teams: 4, Workloads: 40, Seed: 3}) {
		m[p] = &fstest.MapFile{Data: b}
	}
	return m
}

// cacheFiles lists the files under dir, relative, with their times.
func cacheFiles(t *testing.T, dir string) map[string]time.Time {
	t.Helper()
	out := map[string]time.Time{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			fi, _ := d.Info()
			rel, _ := filepath.Rel(dir, p)
			out[rel] = fi.ModTime()
		}
		return nil
	})
	return out
}

func age(t *testing.T, path string, d time.Duration) {
	t.Helper()
	when := time.Now().Add(-d)
	if err := os.Chtimes(path, when, when); err != nil {
		t.Fatal(err)
	}
}

// ageTree ages root and everything under it, directories included.
func ageTree(t *testing.T, root string, d time.Duration) {
	t.Helper()
	filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err == nil {
			age(t, p, d)
		}
		return nil
	})
}

// TestPrune: a prune removes another version's entries unused for a day,
// any entry unused for CacheMaxAge, a dead writer's temporary file, and,
// over CacheMaxSize, the entries used longest ago; it keeps what berth
// does not name, and a load after it evaluates only what it removed.
func TestPrune(t *testing.T) {
	dir := t.TempDir()
	m := pruneRepo()
	opts := func(version string) Options {
		return Options{CacheDir: dir, CacheVersion: version}
	}
	for _, v := range []string{"old", "other", "now"} {
		if _, err := NewLoader(opts(v)).Load(m); err != nil {
			t.Fatal(err)
		}
	}
	now := newDiskCache(opts("now").withDefaults())
	old := newDiskCache(opts("old").withDefaults())
	other := newDiskCache(opts("other").withDefaults())
	os.WriteFile(filepath.Join(dir, "README"), []byte("not berth's"), 0o644)
	os.MkdirAll(filepath.Join(dir, "notes", "ab"), 0o755)
	os.WriteFile(filepath.Join(dir, "notes", "ab", "x"), nil, 0o644)
	// One of this version's entries unused for longer than CacheMaxAge,
	// and two temporary files beside it: a dead writer's, a live one's.
	tr, _, _ := readTree(m, Options{}.withDefaults())
	stale, _ := filepath.Rel(dir, now.name(tr, tr.dirs[0]))
	fan := filepath.Join(dir, filepath.Dir(stale))
	writing, _ := filepath.Rel(dir, filepath.Join(fan, tempPrefix+"2-writing"))
	os.WriteFile(filepath.Join(fan, tempPrefix+"1-dead"), []byte("torn"), 0o644)
	os.WriteFile(filepath.Join(dir, writing), []byte("torn"), 0o644)
	age(t, filepath.Join(fan, tempPrefix+"1-dead"), 2*time.Hour)

	// "old" unused for two days, "other" for an hour: only "old" goes.
	before := cacheFiles(t, dir)
	ageTree(t, filepath.Join(dir, old.sub), 48*time.Hour)
	ageTree(t, filepath.Join(dir, other.sub), time.Hour)
	age(t, filepath.Join(dir, stale), DefaultCacheMaxAge+time.Hour)

	got := now.prune(time.Now())
	after := cacheFiles(t, dir)
	for p := range before {
		_, kept := after[p]
		gone := strings.HasPrefix(p, old.sub) || p == stale || strings.HasSuffix(p, "1-dead")
		if kept == gone {
			t.Errorf("%s: kept %v, want kept %v", p, kept, !gone)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, old.sub)); !os.IsNotExist(err) {
		t.Errorf("the old version's directory is still there: %v", err)
	}
	if got.Entries != len(before)-len(after) {
		t.Errorf("prune says it removed %d, %d are gone", got.Entries, len(before)-len(after))
	}

	// Over the size cap: the entries used longest ago go first, until
	// the cache is under nine tenths of the cap.
	now.maxSize = got.Kept / 2
	for p := range after {
		if strings.HasPrefix(p, other.sub) {
			age(t, filepath.Join(dir, p), 2*time.Hour) // older than this version's
		}
	}
	capped := now.prune(time.Now())
	if capped.Kept > now.maxSize/10*9 {
		t.Errorf("kept %d bytes, want at most %d", capped.Kept, now.maxSize/10*9)
	}
	left := cacheFiles(t, dir)
	for p := range left {
		if strings.HasPrefix(p, other.sub) {
			t.Errorf("%s (used longest ago) kept while newer entries went", p)
		}
	}
	for _, p := range []string{"README", filepath.Join("notes", "ab", "x"), writing} {
		if _, ok := left[p]; !ok {
			t.Errorf("%s was removed", p)
		}
	}

	// A load after the prunes evaluates what they removed and reads the rest.
	l := NewLoader(opts("now"))
	if _, err := l.Load(m); err != nil {
		t.Fatal(err)
	}
	if s := l.Stats(); s.Evaluated == 0 || s.FromDisk+s.Evaluated != s.Instances {
		t.Errorf("stats %+v after the prunes, want some evaluated and the rest from disk", s)
	}
}

// TestPruneOncePerInterval: a load prunes when the last prune is older
// than pruneEvery, and not again within it.
func TestPruneOncePerInterval(t *testing.T) {
	dir := t.TempDir()
	m := pruneRepo()
	if _, err := NewLoader(Options{CacheDir: dir, CacheVersion: "old"}).Load(m); err != nil {
		t.Fatal(err)
	}
	old := newDiskCache(Options{CacheDir: dir, CacheVersion: "old"}.withDefaults())
	ageTree(t, filepath.Join(dir, old.sub), 48*time.Hour)
	age(t, filepath.Join(dir, pruneStamp), pruneEvery+time.Minute)
	if _, err := NewLoader(Options{CacheDir: dir, CacheVersion: "new"}).Load(m); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, old.sub)); err == nil {
		t.Error("the stamp was old, yet the old version's entries were not pruned")
	}
	// Within the hour: an unused old version stays until the next prune.
	if _, err := NewLoader(Options{CacheDir: dir, CacheVersion: "old"}).Load(m); err != nil {
		t.Fatal(err)
	}
	ageTree(t, filepath.Join(dir, old.sub), 48*time.Hour)
	if _, err := NewLoader(Options{CacheDir: dir, CacheVersion: "new"}).Load(m); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, old.sub)); err != nil {
		t.Error("pruned twice within pruneEvery")
	}
}

// TestPruneWhileLoading: processes that load from one cache directory
// while others prune it to nothing all get the right configuration, and
// the cache never turns read-only.
func TestPruneWhileLoading(t *testing.T) {
	dir := t.TempDir()
	m := pruneRepo()
	want, err := Load(m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var warnings []string
	opts := Options{CacheDir: dir, CacheVersion: "test", CacheWarn: func(err error) {
		mu.Lock()
		defer mu.Unlock()
		warnings = append(warnings, err.Error())
	}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() { // a process of another version with a tiny cap
			defer wg.Done()
			c := newDiskCache(Options{CacheDir: dir, CacheVersion: "pruner", CacheMaxSize: 1}.withDefaults())
			for {
				select {
				case <-stop:
					return
				default:
					c.prune(time.Now())
				}
			}
		}()
	}
	var loads sync.WaitGroup
	for range 3 {
		loads.Add(1)
		go func() {
			defer loads.Done()
			for range 4 {
				got, err := NewLoader(opts).Load(m)
				if err != nil {
					t.Error(err)
					return
				}
				if d := cmp.Diff(want, got, cmp.Comparer(func(a, b berth.Quantity) bool { return a.String() == b.String() })); d != "" {
					t.Errorf("a load while the cache was pruned differs from a cold load (-cold +got):\n%s", d)
				}
			}
		}()
	}
	loads.Wait()
	close(stop)
	wg.Wait()
	if len(warnings) > 0 {
		t.Errorf("warnings %q, want none: pruning is not a failure to write", warnings)
	}
}
