//go:build unix

package cue_test

import (
	"syscall"
	"testing"
	"time"

	"github.com/berth-gpu/berth/cue"
	"github.com/berth-gpu/berth/fixtures/gen"
)

// BenchmarkLoadDiskCacheUnchanged is what a new process (berth validate
// or berth plan in CI with a kept cache) does on a repository whose every
// package is in the evaluation cache: find each entry, decode it, merge
// the packages and check the references between them. No child process
// runs, so the figure is the loader's own. cpu-ms/op is the process's CPU
// time (both cores, the garbage collector included).
func BenchmarkLoadDiskCacheUnchanged(b *testing.B) {
	fsys := gen.Generate(benchOpts).FS()
	opts := isolated(b, cue.Options{CacheDir: b.TempDir(), CacheVersion: "bench"})
	if _, err := cue.NewLoader(opts).Load(fsys); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	start, n := processCPU(), 0
	for b.Loop() {
		n++
		l := cue.NewLoader(opts)
		if _, err := l.Load(fsys); err != nil {
			b.Fatal(err)
		}
		if s := l.Stats(); s.Evaluated != 0 || s.FromDisk != s.Instances {
			b.Fatalf("stats %+v, want every package from disk", s)
		}
	}
	b.ReportMetric(float64(processCPU()-start)/float64(n)/float64(time.Millisecond), "cpu-ms/op")
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
