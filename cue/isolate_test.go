package cue_test

import (
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berth-gpu/berth/cue"
	"github.com/berth-gpu/berth/fixtures"
	"github.com/berth-gpu/berth/fixtures/gen"
)

// TestChildSameAsInProcess: a child process returns the Config this
// process computes, positions included.
func TestChildSameAsInProcess(t *testing.T) {
	for name, fsys := range map[string]fstest.MapFS{
		"demo": toMapFS(t, fixtures.Demo()),
		"gen":  gen.Generate(gen.Options{Teams: 8, Workloads: 200, Seed: 3}).FS().(fstest.MapFS),
	} {
		t.Run(name, func(t *testing.T) {
			want := mustLoad(t, fsys, cue.Options{})
			got := mustLoad(t, fsys, isolated(t, cue.Options{}))
			if d := cmp.Diff(want, got, quantityEqual); d != "" {
				t.Errorf("child process differs (-in process +child):\n%s", d)
			}
			if d := cmp.Diff(allPositions(want), allPositions(got)); d != "" {
				t.Errorf("positions differ (-in process +child):\n%s", d)
			}
		})
	}
}

// TestBombsDoNotGrowTheParent loads the bombs in fixtures/repos/broken in
// child processes: each is an error naming its file, and this process's
// resident memory does not grow by more than a little while the child
// grows to its limit.
func TestBombsDoNotGrowTheParent(t *testing.T) {
	for _, name := range []string{"string-bomb", "comprehension-bomb"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(brokenDir, name)
			opts, _ := readCaseOptions(t, dir)
			before := resetPeakRSS(t)
			start := time.Now()
			_, err := cue.Load(os.DirFS(dir), isolated(t, opts))
			took := time.Since(start)
			var errs cue.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("got %v, want cue.Errors", err)
			}
			for _, e := range errs {
				if !strings.HasPrefix(e.Pos().File, "workloads/vision/") || !strings.Contains(e.Message, "grow without bound") {
					t.Errorf("error does not point at the bomb: %v", e)
				}
			}
			if grew := peakRSS(t) - before; grew > 64<<20 {
				t.Errorf("this process grew by %d MiB while a child evaluated the bomb", grew>>20)
			}
			t.Logf("%s: %d errors in %s", name, len(errs), took.Round(time.Millisecond))
		})
	}
}

// resetPeakRSS resets the process's peak resident set size to its current
// one, and returns it.
func resetPeakRSS(t *testing.T) int64 {
	t.Helper()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Skipf("cannot reset the peak RSS: %v", err)
	}
	return peakRSS(t)
}

// peakRSS is VmHWM from /proc/self/status, in bytes.
func peakRSS(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Skip("no VmHWM")
	return 0
}

// TestTreeEvaluatedOnce: a tree is evaluated once per Loader. A valid one
// is then served from the instance cache, an invalid one from the
// remembered errors, even one that ran away; the child processes started
// are counted by their Pool.
func TestTreeEvaluatedOnce(t *testing.T) {
	bomb := toMapFS(t, os.DirFS(filepath.Join(brokenDir, "string-bomb")))
	for name, tc := range map[string]struct {
		repo  fstest.MapFS
		valid bool
	}{
		"valid":   {toMapFS(t, fixtures.Demo()), true},
		"invalid": {toMapFS(t, os.DirFS(filepath.Join(brokenDir, "dangling-team"))), false},
		"bomb":    {bomb, false},
	} {
		t.Run(name, func(t *testing.T) {
			pool := cue.NewPool(2)
			l := cue.NewLoader(isolated(t, cue.Options{Pool: pool}))
			var first error
			for i := range 3 {
				r, err := l.LoadResult(tc.repo)
				if (err == nil) != tc.valid {
					t.Fatalf("load %d: %v", i, err)
				}
				if i == 0 {
					first = err
				} else if d := cmp.Diff(errText(first), errText(err)); d != "" {
					t.Errorf("load %d differs from the first:\n%s", i, d)
				}
				if want := max(0, 1-i); r.Stats.Processes != want {
					t.Errorf("load %d: %d processes, want %d", i, r.Stats.Processes, want)
				}
			}
			if n := pool.Started(); n != 1 {
				t.Errorf("%d child processes started for three loads of one tree, want 1", n)
			}
		})
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestConcurrentLoadsShareOneEvaluation: loads of one tree at the same
// time wait for one evaluation and get its result.
func TestConcurrentLoadsShareOneEvaluation(t *testing.T) {
	for name, repo := range map[string]fstest.MapFS{
		"valid": toMapFS(t, fixtures.Demo()),
		"bomb":  toMapFS(t, os.DirFS(filepath.Join(brokenDir, "string-bomb"))),
	} {
		t.Run(name, func(t *testing.T) {
			pool := cue.NewPool(4)
			l := cue.NewLoader(isolated(t, cue.Options{Pool: pool}))
			const n = 8
			errs := make([]string, n)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range n {
				wg.Go(func() {
					<-start
					_, err := l.Load(repo)
					errs[i] = errText(err)
				})
			}
			close(start)
			wg.Wait()
			if got := pool.Started(); got != 1 {
				t.Errorf("%d loads at once started %d child processes, want 1", n, got)
			}
			for i := range errs {
				if errs[i] != errs[0] {
					t.Errorf("load %d: %q, load 0: %q", i, errs[i], errs[0])
				}
			}
		})
	}
}

// TestPoolBoundsChildren: loads of different trees share the pool's
// slots; they all finish, and no more children than slots ever run at
// once.
func TestPoolBoundsChildren(t *testing.T) {
	pool := cue.NewPool(2)
	var wg sync.WaitGroup
	for i := range 5 {
		repo := newRepo().platform().team("t" + strconv.Itoa(i)).fs()
		l := cue.NewLoader(isolated(t, cue.Options{Pool: pool}))
		wg.Go(func() {
			if _, err := l.Load(repo); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := pool.Started(); got != 5 {
		t.Errorf("started %d, want 5", got)
	}
	if got := pool.Busiest(); got > 2 {
		t.Errorf("%d children ran at once in a pool of 2", got)
	}
}

// toMapFS copies a repository's regular files into memory.
func toMapFS(t testing.TB, fsys fs.FS) fstest.MapFS {
	t.Helper()
	m := fstest.MapFS{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		m[p] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestChildDeaths: a child that dies without an answer is the commit's
// fault when a limit killed it (cue.Errors at the instance it was
// evaluating, remembered), and berth's otherwise (retried). The children
// run without the parent's environment.
func TestChildDeaths(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	repo := toMapFS(t, os.DirFS(filepath.Join(brokenDir, "string-bomb")))
	t.Setenv("BERTH_TEST_SECRET", "hunter2") // a child never sees it
	for _, tc := range []struct {
		mode      string
		commit    bool // cue.Errors
		want      string
		processes int // after two loads
	}{
		{"oom", true, "evaluation used more than 512 MiB", 1},
		{"hang", false, "took longer than 1s", 2},
		{"crash", false, "panic: boom", 2},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			pool := cue.NewPool(1)
			l := cue.NewLoader(cue.Options{Child: []string{exe, "__eval-fault", tc.mode}, Pool: pool, Timeout: 100 * time.Millisecond})
			for range 2 {
				_, err := l.Load(repo)
				var errs cue.Errors
				if errors.As(err, &errs) != tc.commit {
					t.Fatalf("got %T %v, want cue.Errors: %v", err, err, tc.commit)
				}
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("got %v, want %q", err, tc.want)
				}
				if tc.commit && (len(errs) == 0 || !strings.HasPrefix(errs[0].Pos().File, "workloads/vision/")) {
					t.Errorf("errors do not point at the instance being evaluated: %v", errs)
				}
			}
			if got := pool.Started(); got != tc.processes {
				t.Errorf("two loads started %d children, want %d", got, tc.processes)
			}
		})
	}
}

// TestFirstTriesDoNotWaitForBombs: with a Pool of one slot, while CPU-only
// bombs (the comprehension bomb) are being retried with their full budget,
// a valid tree's first try still gets the slot, and is not retried; each
// bomb is tried twice (the second time in the retry lane), reported with
// its full budget, and, remembered by its tree, never evaluated again.
func TestFirstTriesDoNotWaitForBombs(t *testing.T) {
	if testing.Short() {
		t.Skip("evaluates bombs for seconds")
	}
	pool := cue.NewPool(1)
	opts := isolated(t, cue.Options{Timeout: 4 * time.Second, FirstTimeout: 300 * time.Millisecond, Pool: pool})
	bomb := toMapFS(t, os.DirFS(filepath.Join(brokenDir, "comprehension-bomb")))
	bombs := cue.NewLoader(opts)
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		bombsDone int
	)
	bombErrs := make([]error, 3)
	for i := range bombErrs {
		fsys := maps.Clone(bomb)
		fsys["workloads/vision/n.cue"] = &fstest.MapFile{Data: []byte("package vision\n_n: " + strconv.Itoa(i) + "\n")}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, bombErrs[i] = bombs.Load(fsys)
			mu.Lock()
			bombsDone++
			mu.Unlock()
		}()
	}
	time.Sleep(100 * time.Millisecond) // the bombs are first in the queue
	valid := cue.NewLoader(opts)
	start := time.Now()
	r, err := valid.LoadResult(toMapFS(t, fixtures.Demo()))
	took := time.Since(start)
	mu.Lock()
	doneBefore := bombsDone
	mu.Unlock()
	if err != nil {
		t.Fatalf("the valid tree: %v", err)
	}
	if r.Stats.Retried || r.Stats.Processes != 1 {
		t.Errorf("the valid tree was retried: %+v", r.Stats)
	}
	wg.Wait()
	// The retry lane is one child: the bombs' retries end one after the
	// other, and the valid tree, behind their first tries only, ends
	// before the second.
	t.Logf("the valid tree was evaluated %s after it came, behind the bombs' first tries", took.Round(time.Millisecond))
	if doneBefore > 1 {
		t.Errorf("the valid tree waited for %d bombs' retries (%s)", doneBefore, took)
	}
	for i, err := range bombErrs {
		var errs cue.Errors
		if !errors.As(err, &errs) || !strings.Contains(errs.Error(), "evaluation used more than 4s of CPU time") ||
			!strings.Contains(errs.Error(), "workloads/vision/grid.cue") {
			t.Errorf("bomb %d: %v, want its full budget's runaway at grid.cue", i, err)
		}
	}
	if n := pool.Started(); n != 7 {
		t.Errorf("%d children started, want 7: two per bomb, one for the valid tree", n)
	}
	started := pool.Started()
	for i := range bombErrs {
		fsys := maps.Clone(bomb)
		fsys["workloads/vision/n.cue"] = &fstest.MapFile{Data: []byte("package vision\n_n: " + strconv.Itoa(i) + "\n")}
		if _, err := bombs.Load(fsys); err == nil {
			t.Errorf("bomb %d loaded the second time", i)
		}
	}
	if n := pool.Started() - started; n != 0 {
		t.Errorf("the bombs were evaluated again: %d children", n)
	}
}

// TestRetryLater: with Options.RetryLater, a load whose first try is not
// enough returns a *cue.Retrying at once while the retry goes on in the
// background; a load of the same tree meanwhile gets the same Retrying
// (one evaluation per tree), and, once Done is closed, the retry's
// outcome, without a third child. A tree within the first try's budget
// loads as before.
func TestRetryLater(t *testing.T) {
	if testing.Short() {
		t.Skip("evaluates a bomb for seconds")
	}
	pool := cue.NewPool(1)
	// The first try's budget holds the demo (a child's start and its
	// evaluation, about 150 ms of CPU, more on a busy machine: 200 ms
	// was once not enough in CI) and not the bomb.
	l := cue.NewLoader(isolated(t, cue.Options{Timeout: 2 * time.Second, FirstTimeout: 600 * time.Millisecond,
		RetryLater: true, Pool: pool}))
	if _, err := l.Load(toMapFS(t, fixtures.Demo())); err != nil {
		t.Fatalf("the demo: %v", err)
	}
	bomb := toMapFS(t, os.DirFS(filepath.Join(brokenDir, "comprehension-bomb")))
	_, err := l.Load(bomb)
	var r *cue.Retrying
	if !errors.As(err, &r) {
		t.Fatalf("the bomb's first load: %v, want *cue.Retrying", err)
	}
	if !strings.Contains(r.Error(), "retrying with the full budget (2s)") {
		t.Errorf("Retrying says %q", r.Error())
	}
	_, err = l.Load(bomb)
	var again *cue.Retrying
	if !errors.As(err, &again) || again != r {
		t.Errorf("a load during the retry: %v, want the same Retrying", err)
	}
	<-r.Done
	_, err = l.Load(bomb)
	var errs cue.Errors
	if !errors.As(err, &errs) || !strings.Contains(errs.Error(), "evaluation used more than 2s of CPU time") {
		t.Fatalf("the load after the retry: %v, want the full budget's runaway", err)
	}
	if _, err := l.Load(bomb); !errors.As(err, &errs) {
		t.Errorf("the bomb's next load: %v, want its remembered errors", err)
	}
	if n := pool.Started(); n != 3 {
		t.Errorf("%d children started, want 3: the demo's, the bomb's first try and its retry", n)
	}
}

// TestRetryOnlyUnfinished: when the first try's CPU budget runs out, the
// instances it finished are not evaluated again; the retry takes the rest.
func TestRetryOnlyUnfinished(t *testing.T) {
	if testing.Short() {
		t.Skip("evaluates a bomb for seconds")
	}
	m := cachedRepo() // its instances sort before zz
	grid, err := os.ReadFile(filepath.Join(brokenDir, "comprehension-bomb", "workloads", "vision", "grid.cue"))
	if err != nil {
		t.Fatal(err)
	}
	m["zz/grid.cue"] = &fstest.MapFile{Data: []byte(strings.Replace(string(grid), "package vision", "package zz", 1))}
	l := cue.NewLoader(isolated(t, cue.Options{Timeout: 4 * time.Second, FirstTimeout: time.Second, Parallelism: 1}))
	_, err = l.Load(m)
	var errs cue.Errors
	if !errors.As(err, &errs) || !strings.Contains(errs.Error(), "evaluation used more than 4s of CPU time") ||
		!strings.Contains(errs.Error(), "zz/grid.cue") {
		t.Fatalf("got %v, want the bomb's runaway with the full budget", err)
	}
	// The bomb's batch may hold another small instance; the teams'
	// come first, and are done.
	if s := l.Stats(); !s.Retried || s.EvaluatedAgain < 1 || s.EvaluatedAgain > 2 {
		t.Errorf("stats %+v: want a retry of the bomb's batch only", s)
	}
}
