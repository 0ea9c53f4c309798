package traffic

import (
	"errors"
	"testing"
	"time"

	"github.com/berth-gpu/berth"
)

func TestTracker(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	fail := errors.New("connection refused")
	p := berth.Probe{FailureThreshold: 3, StartupGrace: berth.Duration(10 * time.Second)}
	for _, tc := range []struct {
		name    string
		start   bool
		results []error
		at      []time.Duration
		want    bool
	}{
		{"readiness starts unready", false, nil, nil, false},
		{"one pass makes it ready", false, []error{nil}, []time.Duration{time.Second}, true},
		{"failures in the grace do not count", true, []error{fail, fail, fail}, []time.Duration{1, 2, 3}, true},
		{"threshold failures in a row fail", true, []error{fail, fail, fail}, []time.Duration{11e9, 12e9, 13e9}, false},
		{"a pass resets the count", true, []error{fail, fail, nil, fail, fail}, []time.Duration{11e9, 12e9, 13e9, 14e9, 15e9}, true},
	} {
		tr := NewTracker(p, t0, tc.start)
		for i, err := range tc.results {
			tr.Observe(err, t0.Add(tc.at[i]))
		}
		if tr.Passing != tc.want {
			t.Errorf("%s: passing %v, want %v", tc.name, tr.Passing, tc.want)
		}
	}
}
