package cue_test

import (
	"fmt"
	"os"
	"testing"
	"testing/fstest"
	"time"

	"github.com/berth-gpu/berth/cue"
	"github.com/berth-gpu/berth/fixtures/gen"
)

// benchRepo is the repository the issue sets targets for: 10,000 workloads
// in 200 teams.
var benchOpts = gen.Options{Teams: 200, Workloads: 10000, Seed: 1}

// benchChild is the options berth's commands load with: evaluation in a
// child process, berth itself when BERTH_BIN names it (make bench does),
// this test binary otherwise (which starts faster than berth: berth's
// start, client-go's registrations included, was 20 to 40 ms here).
func benchChild(b *testing.B) cue.Options {
	if bin := os.Getenv("BERTH_BIN"); bin != "" {
		return cue.Options{Child: []string{bin, "__eval"}}
	}
	return isolated(b, cue.Options{})
}

// BenchmarkLoadCold loads the whole generated repository with an empty
// cache in a child process: what `berth validate` does. Target: at most
// 5 s on 2 cores.
func BenchmarkLoadCold(b *testing.B) {
	fsys := gen.Generate(benchOpts).FS()
	opts := benchChild(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cue.Load(fsys, opts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoadColdOnePackage is BenchmarkLoadCold on one package
// instance of 20,000 workload files (and 200 team files): a monorepo's
// single workloads package, whose cost grows with the files of one
// package. Target: under 10 s.
func BenchmarkLoadColdOnePackage(b *testing.B) {
	fsys := gen.Generate(gen.Options{Teams: 200, Workloads: 20000, Seed: 1, FilesPerTeam: 100, OnePackage: true}).FS()
	opts := benchChild(b)
	// Before the fast path it took 107 s and 905 MB: bounds that let
	// the benchmark measure it rather than fail.
	opts.Timeout = 10 * time.Minute
	opts.MaxMemory = 4 << 30
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cue.Load(fsys, opts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRevalidateOneFile loads the repository once, then measures a
// re-validation after one workload file changed, as berth serve does: the
// changed instance evaluated in a child process, the rest from the
// parent's cache. Target: at most 300 ms. The in-process variant is the
// cost without the child.
func BenchmarkRevalidateOneFile(b *testing.B) {
	b.Run("child", func(b *testing.B) { benchRevalidate(b, benchChild(b)) })
	b.Run("in-process", func(b *testing.B) { benchRevalidate(b, cue.Options{}) })
}

func benchRevalidate(b *testing.B, opts cue.Options) {
	repo := gen.Generate(benchOpts)
	m := fstest.MapFS{}
	for p, data := range repo {
		m[p] = &fstest.MapFile{Data: data}
	}
	l := cue.NewLoader(opts)
	if _, err := l.Load(m); err != nil {
		b.Fatal(err)
	}
	target := gen.TeamDir(gen.TeamName(7)) + "/workloads-00.cue"
	orig := m[target].Data
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		m[target] = &fstest.MapFile{Data: fmt.Appendf(append([]byte(nil), orig...), "\n// edit %d\n", i)}
		if _, err := l.Load(m); err != nil {
			b.Fatal(err)
		}
		if s := l.Stats(); s.Evaluated != 1 {
			b.Fatalf("evaluated %d instances after one changed file, want 1", s.Evaluated)
		}
	}
}

// BenchmarkLoadDiskCacheOneFile is what a new process (berth validate in
// CI with a kept cache) does after one workload file changed: a fresh
// Loader on a filled evaluation cache, the changed instance evaluated in
// a child process, the rest read from disk.
func BenchmarkLoadDiskCacheOneFile(b *testing.B) {
	repo := gen.Generate(benchOpts)
	m := fstest.MapFS{}
	for p, data := range repo {
		m[p] = &fstest.MapFile{Data: data}
	}
	opts := benchChild(b)
	opts.CacheDir = b.TempDir()
	opts.CacheVersion = "bench"
	if _, err := cue.NewLoader(opts).Load(m); err != nil {
		b.Fatal(err)
	}
	target := gen.TeamDir(gen.TeamName(7)) + "/workloads-00.cue"
	orig := m[target].Data
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		m[target] = &fstest.MapFile{Data: fmt.Appendf(append([]byte(nil), orig...), "\n// edit %d\n", i)}
		l := cue.NewLoader(opts)
		if _, err := l.Load(m); err != nil {
			b.Fatal(err)
		}
		if s := l.Stats(); s.Evaluated != 1 || s.FromDisk != s.Instances-1 {
			b.Fatalf("stats %+v after one changed file, want 1 evaluated and the rest from disk", s)
		}
	}
}
