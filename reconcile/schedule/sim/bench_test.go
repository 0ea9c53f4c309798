package sim

import (
	"testing"
)

// BenchmarkReplay replays the whole Alibaba 2023 trace once per policy:
// in trace time, and contended (pods 100 times faster on a tenth of the
// nodes). Target: under 10 s per policy.
func BenchmarkReplay(b *testing.B) {
	tr := fullTrace(b)
	for _, c := range []struct {
		name string
		opts ReplayOptions
	}{{"trace", ReplayOptions{}}, {"contended", ReplayOptions{Speedup: 100, NodeShare: 0.1}}} {
		for _, policy := range Policies {
			b.Run(c.name+"/"+policy, func(b *testing.B) {
				opts := c.opts
				opts.Policies = []string{policy}
				var rep *ReplayReport
				for b.Loop() {
					var err error
					if rep, err = Replay(tr, opts); err != nil {
						b.Fatal(err)
					}
				}
				p := rep.Policies[0]
				b.ReportMetric(float64(p.Cycles), "cycles")
				b.ReportMetric(p.Saturated.UnallocatedPct, "unalloc%")
			})
		}
	}
}

// BenchmarkPaperSeed runs the paper's experiment for one seed (42) per
// policy: about 10,800 pods, one scheduling cycle each.
func BenchmarkPaperSeed(b *testing.B) {
	tr := fullTrace(b)
	for _, policy := range PaperPolicies {
		b.Run(policy, func(b *testing.B) {
			var rep *PaperReport
			for b.Loop() {
				var err error
				if rep, err = Paper(tr, PaperOptions{Seeds: []uint64{42}, Policies: []string{policy}}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(rep.Policies[0].Unallocated, "unalloc%")
			b.ReportMetric(float64(rep.Policies[0].Seeds[0].Pods), "pods")
		})
	}
}
