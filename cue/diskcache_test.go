package cue_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/cue"
	"github.com/berth-gpu/berth/fixtures/gen"
)

// cachedRepo is a generated repository of 4 teams (6 instances, one of
// them the templates every team imports) as a MapFS a test may edit.
func cachedRepo() fstest.MapFS {
	m := fstest.MapFS{}
	for p, b := range gen.Generate(gen.Options{Teams: 4, Workloads: 40, Seed: 3}) {
		m[p] = &fstest.MapFile{Data: b}
	}
	return m
}

// loadFresh loads m with a new Loader (a new process, as far as caches
// go) on the disk cache in dir, and returns what it loaded and did.
func loadFresh(t *testing.T, m fs.FS, opts cue.Options) (cue.Result, error) {
	t.Helper()
	l := cue.NewLoader(opts)
	return l.LoadResult(m)
}

// entries lists the entries of the disk cache in dir (not the file that
// says when it was last pruned).
func entries(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Dir(p) != dir {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// TestDiskCache: a second process evaluates only what changed since any
// process evaluated it, and loads what a cold load does.
func TestDiskCache(t *testing.T) {
	dir := t.TempDir()
	opts := isolated(t, cue.Options{CacheDir: dir, CacheVersion: "test"})
	m := cachedRepo()
	first, err := loadFresh(t, m, opts)
	if err != nil {
		t.Fatal(err)
	}
	if s := first.Stats; s.Evaluated != s.Instances || s.FromDisk != 0 {
		t.Fatalf("cold load: %+v, want every instance evaluated", s)
	}
	edit := func(p string, f func(string) string) {
		m[p] = &fstest.MapFile{Data: []byte(f(string(m[p].Data)))}
	}
	team := gen.TeamDir(gen.TeamName(1))
	for _, step := range []struct {
		name      string
		change    func()
		evaluated int
	}{
		{"nothing changed", func() {}, 0},
		{"one workload file", func() {
			edit(team+"/workloads-00.cue", func(s string) string { return strings.Replace(s, "retries: ", "retries: 1 + ", 1) })
		}, 1},
		{"back as it was in the first load", func() {
			edit(team+"/workloads-00.cue", func(s string) string { return strings.Replace(s, "retries: 1 + ", "retries: ", 1) })
		}, 0},
		{"the templates every team imports", func() {
			edit("templates/templates.cue", func(s string) string { return s + "\n#Unused: {}\n" })
		}, 4 + 1},
	} {
		t.Run(step.name, func(t *testing.T) {
			step.change()
			got, err := loadFresh(t, m, opts)
			if err != nil {
				t.Fatal(err)
			}
			if s := got.Stats; s.Evaluated != step.evaluated || s.FromDisk != s.Instances-step.evaluated {
				t.Errorf("stats %+v: want %d evaluated, the rest from disk", s, step.evaluated)
			}
			// The package digests differ from the first load's where
			// the package was evaluated again (every step but one goes
			// back to the first load's files first), and list every
			// workload.
			changed, listed := 0, map[berth.WorkloadID]bool{}
			for dir, p := range got.Config.Packages {
				if p.Digest != first.Config.Packages[dir].Digest {
					changed++
				}
				for _, id := range p.Workloads {
					listed[id] = true
				}
			}
			if changed != step.evaluated || len(listed) != len(got.Config.Workloads) {
				t.Errorf("%d package digests changed, want %d; %d workloads listed in packages, want %d",
					changed, step.evaluated, len(listed), len(got.Config.Workloads))
			}
			want := mustLoad(t, m, cue.Options{})
			if d := cmp.Diff(want, got.Config, quantityEqual); d != "" {
				t.Errorf("load from the disk cache differs from a cold load (-cold +cached):\n%s", d)
			}
		})
	}
}

// TestDiskCacheErrors: an invalid instance's errors come from the cache
// as they came from the evaluation, positions included.
func TestDiskCacheErrors(t *testing.T) {
	opts := isolated(t, cue.Options{CacheDir: t.TempDir(), CacheVersion: "test"})
	m := newRepo().platform().team("vision").
		file("teams/vision/w.cue", "package vision\n\nworkloads: vision: w: {kind: \"batch\", image: 3}\n").fs()
	want := loadErrors(t, m, cue.Options{})
	for range 2 {
		res, err := loadFresh(t, m, opts)
		var errs cue.Errors
		if !errors.As(err, &errs) {
			t.Fatalf("got %v, want Errors", err)
		}
		if d := cmp.Diff(want, errs); d != "" {
			t.Errorf("errors differ (-want +got):\n%s", d)
		}
		t.Logf("%+v", res.Stats)
	}
	if res, _ := loadFresh(t, m, opts); res.Stats.FromDisk != res.Stats.Instances {
		t.Errorf("stats %+v: want every instance from disk", res.Stats)
	}
}

// TestDiskCacheUntrusted: an entry that is not what berth wrote (cut
// short, altered, written by another version of berth, or for other
// content) is never used: its instance is evaluated again and the entry
// rewritten.
func TestDiskCacheUntrusted(t *testing.T) {
	m := cachedRepo()
	for _, tc := range []struct {
		name    string
		damage  func(t *testing.T, path string)
		version string
	}{
		{"truncated", func(t *testing.T, p string) {
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)/2], 0o600)
		}, "test"},
		{"a byte changed", func(t *testing.T, p string) {
			b, _ := os.ReadFile(p)
			// A digit of a number in a workload: valid JSON, other data.
			i := strings.LastIndex(string(b), `"retries":`) + len(`"retries":`)
			b[i] = '0' + (b[i]-'0'+1)%10
			os.WriteFile(p, b, 0o600)
		}, "test"},
		{"empty", func(t *testing.T, p string) { os.WriteFile(p, nil, 0o600) }, "test"},
		{"another version of berth", func(t *testing.T, p string) {}, "other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := cue.Options{CacheDir: dir, CacheVersion: "test"}
			if _, err := loadFresh(t, m, opts); err != nil {
				t.Fatal(err)
			}
			files := entries(t, dir)
			if len(files) == 0 {
				t.Fatal("nothing cached")
			}
			for _, p := range files {
				tc.damage(t, p)
			}
			opts.CacheVersion = tc.version
			got, err := loadFresh(t, m, opts)
			if err != nil {
				t.Fatal(err)
			}
			if s := got.Stats; s.FromDisk != 0 || s.Evaluated != s.Instances {
				t.Errorf("stats %+v: want every instance evaluated again", s)
			}
			want := mustLoad(t, m, cue.Options{})
			if d := cmp.Diff(want, got.Config, quantityEqual); d != "" {
				t.Errorf("(-cold +after damage):\n%s", d)
			}
			if again, _ := loadFresh(t, m, opts); again.Stats.FromDisk != again.Stats.Instances {
				t.Errorf("stats %+v: want the entries rewritten", again.Stats)
			}
		})
	}
}

// TestDiskCacheCannotWrite: a cache that cannot be written (here: its
// directory is a file; a full disk is the same to berth) warns once and
// is read-only; every load succeeds.
func TestDiskCacheCannotWrite(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var warnings []string
	opts := cue.Options{CacheDir: filepath.Join(file, "cache"), CacheVersion: "test", CacheWarn: func(err error) {
		mu.Lock()
		defer mu.Unlock()
		warnings = append(warnings, err.Error())
	}}
	l := cue.NewLoader(opts)
	m := cachedRepo()
	for i := range 2 {
		m["teams/new/x.cue"] = &fstest.MapFile{Data: []byte("package extra\n\n// " + strings.Repeat("x", i) + "\n")}
		if _, err := l.Load(m); err != nil {
			t.Fatal(err)
		}
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "not writing to it any more") {
		t.Errorf("warnings %q, want one", warnings)
	}
}

// TestDiskCacheConcurrent: processes that share a cache directory and
// load at once all get the right configuration.
func TestDiskCacheConcurrent(t *testing.T) {
	opts := isolated(t, cue.Options{CacheDir: t.TempDir(), CacheVersion: "test"})
	m := cachedRepo()
	want := mustLoad(t, m, cue.Options{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 2 {
				got, err := loadFresh(t, m, opts)
				if err != nil {
					t.Error(err)
					return
				}
				if d := cmp.Diff(want, got.Config, quantityEqual); d != "" {
					t.Errorf("(-cold +concurrent):\n%s", d)
				}
			}
		}()
	}
	wg.Wait()
}
