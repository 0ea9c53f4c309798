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

// TestGPUReplicas: a target of GPU utilisation asks for ceil(running x
// average / target), as the HorizontalPodAutoscaler does, and keeps the
// count within its 10% tolerance of the target.
func TestGPUReplicas(t *testing.T) {
	a := berth.Autoscale{Min: 1, Max: 8, TargetGPUUtilization: 60}
	for _, tc := range []struct {
		running int
		avg     float64
		want    int
	}{
		{running: 2, avg: 90, want: 3},
		{running: 2, avg: 100, want: 4},
		{running: 4, avg: 30, want: 2},
		{running: 3, avg: 63, want: 3}, // within the tolerance
		{running: 3, avg: 0, want: 0},  // RecommendReplicas keeps min
	} {
		if got := GPUReplicas(a, tc.running, tc.avg); got != tc.want {
			t.Errorf("%d replicas at %v%%: %d, want %d", tc.running, tc.avg, got, tc.want)
		}
	}
	if avg, ok := AverageUtilisation(map[int]int{0: 80, 1: 40, 2: 100}, []int{0, 1, 5}); !ok || avg != 60 {
		t.Errorf("average of GPUs 0 and 1 (5 unread): %v %v, want 60", avg, ok)
	}
	if _, ok := AverageUtilisation(map[int]int{0: 80}, []int{3}); ok {
		t.Error("an average of GPUs the reading does not have")
	}
}
