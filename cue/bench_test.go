package cue_test

import (
	"fmt"
	"testing"
	"testing/fstest"

	"github.com/berth-gpu/berth/cue"
	"github.com/berth-gpu/berth/fixtures/gen"
)

// benchRepo is the repository the issue sets targets for: 10,000 workloads
// in 200 teams.
var benchOpts = gen.Options{Teams: 200, Workloads: 10000, Seed: 1}

// BenchmarkLoadCold loads the whole generated repository with an empty
// cache: what `berth validate` does. Target: at most 5 s on 2 cores.
func BenchmarkLoadCold(b *testing.B) {
	fsys := gen.Generate(benchOpts).FS()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cue.Load(fsys, cue.Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRevalidateOneFile loads the repository once, then measures a
// re-validation after one workload file changed. Target: at most 300 ms.
func BenchmarkRevalidateOneFile(b *testing.B) {
	repo := gen.Generate(benchOpts)
	m := fstest.MapFS{}
	for p, data := range repo {
		m[p] = &fstest.MapFile{Data: data}
	}
	l := cue.NewLoader(cue.Options{})
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
