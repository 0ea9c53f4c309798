package policy_test

import (
	"testing"

	"github.com/berth-gpu/berth/fixtures/build"
	"github.com/berth-gpu/berth/policy"
)

// TestServiceScaleRoom: how far a service of one GPU per replica may
// scale, with 2 replicas running, in a team of nominal 4 whose cohort
// has 4 more to lend.
func TestServiceScaleRoom(t *testing.T) {
	cfg := build.Config().GPUFlavor("h100", "H100").Cohort("org", "").
		Team(build.Team("serving").Cohort("org").Quota("h100", build.GPU("4"))).
		Team(build.Team("idle").Cohort("org").Quota("h100", build.GPU("4"))).Obj()
	replica := policy.Demand{1000, 0, 0}
	for _, tc := range []struct {
		name string
		max  int
		want string
	}{
		{"within nominal", 4, "may scale to 4 replicas: 4 GPUs, within nominal"},
		{"borrowing", 6, "may scale to 6 replicas: 6 GPUs, 2 borrowed from the cohort"},
		{"beyond what the cohort lends", 10, "may scale to 8 of max 10 replicas: 8 GPUs, 4 borrowed from the cohort; replica 9 needs 1 GPU more than the cohort can lend"},
	} {
		q := policy.NewQuotas(cfg, []string{"h100"})
		q.Add("serving", "h100", policy.Demand{2000, 0, 0}) // the 2 running
		if got := policy.ServiceScaleRoom(q, "serving", "h100", replica, 2, tc.max).String(); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
		if used := q.Used("serving", "h100", "gpu"); used != 2000 {
			t.Errorf("%s: the quota's usage changed to %d", tc.name, used)
		}
	}
}
