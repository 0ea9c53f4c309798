package cue

import (
	"testing"

	"github.com/berth-gpu/berth/fixtures"
)

// BenchmarkNewEvaluator is the cost of compiling the schema, paid once per
// batch of instances.
func BenchmarkNewEvaluator(b *testing.B) {
	tr := mustReadTree(b, fixtures.Demo())
	for b.Loop() {
		if _, err := newEvaluator(tr); err != nil {
			b.Fatal(err)
		}
	}
}
