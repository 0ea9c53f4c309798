package traffic

import (
	"testing"
	"time"

	"github.com/berth-gpu/berth"
)

func TestRecommend(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	a := berth.Autoscale{Min: 2, Max: 6, TargetRPS: 20, ScaleDownWindow: berth.Duration(5 * time.Minute)}
	var h []Recommendation
	step := func(at time.Duration, rps float64) int {
		n, next := Recommend(a, rps, h, t0.Add(at))
		h = next
		return n
	}
	for _, tc := range []struct {
		name string
		at   time.Duration
		rps  float64
		want int
	}{
		{"idle: min", 0, 0, 2},
		{"61 rps at 20 per replica: 4", time.Minute, 61, 4},
		{"a burst beyond max: max", 2 * time.Minute, 500, 6},
		{"load drops: held at the window's highest", 3 * time.Minute, 10, 6},
		{"still within the window of the burst", 6 * time.Minute, 10, 6},
		{"the burst left the window: the 4 before it is gone too, down to min", 8 * time.Minute, 10, 2},
	} {
		if got := step(tc.at, tc.rps); got != tc.want {
			t.Errorf("%s: %d replicas, want %d", tc.name, got, tc.want)
		}
	}
}

// TestPoolCountsRequests: the autoscaler's rate comes from the proxy,
// and a request retried on a second replica counts once.
func TestPoolCountsRequests(t *testing.T) {
	p := NewPool("serving/api")
	p.Add("a", "127.0.0.1:1")
	p.Add("b", "127.0.0.1:2")
	p.SetReady("a", true)
	p.SetReady("b", true)
	first := p.pick(map[*member]bool{})
	p.done(first)
	second := p.pick(map[*member]bool{first: true})
	p.done(second)
	if got := p.Requests(); got != 1 {
		t.Errorf("Requests() = %d after one request retried once, want 1", got)
	}
}
