package traffic

import (
	"math"
	"time"

	"github.com/berth-gpu/berth"
)

// Recommendation is one replica count the autoscaler computed, and when.
type Recommendation struct {
	At       time.Time
	Replicas int
}

// Recommend is the replica count a service's autoscale asks for now, given
// the request rate its proxy saw (requests per second over all replicas)
// and the recommendations of the stabilisation window before now: the
// count the rate needs is ceil(rps / targetRPS) within [min, max]; a
// larger count applies at once, a smaller one only as far down as the
// largest recommended within scaleDownWindow (as the Kubernetes
// HorizontalPodAutoscaler's scale-down stabilisation does), so a dip in
// load does not stop replicas that the next burst needs. It returns the
// count and the history to pass next time (the window's entries and this
// one). Pure: the time comes in.
func Recommend(a berth.Autoscale, rps float64, history []Recommendation, now time.Time) (int, []Recommendation) {
	want := a.Min
	if a.TargetRPS > 0 {
		want = int(math.Ceil(rps / a.TargetRPS))
	}
	return RecommendReplicas(a, want, history, now)
}

// GPUReplicas is the replica count a target of GPU utilisation needs when
// running replicas average avg percent: ceil(running x avg / target), as
// the HorizontalPodAutoscaler computes it (a utilisation within 10% of the
// target, its tolerance, keeps the count).
func GPUReplicas(a berth.Autoscale, running int, avg float64) int {
	t := float64(a.TargetGPUUtilization)
	if t <= 0 || running <= 0 {
		return running
	}
	if ratio := avg / t; ratio > 0.9 && ratio < 1.1 {
		return running
	}
	return int(math.Ceil(float64(running) * avg / t))
}

// AverageUtilisation is the average utilisation of the GPUs of indices
// gpus in a reading (util, by index); ok is false when the reading has
// none of them.
func AverageUtilisation(util map[int]int, gpus []int) (avg float64, ok bool) {
	n, sum := 0, 0
	for _, g := range gpus {
		if u, found := util[g]; found {
			n, sum = n+1, sum+u
		}
	}
	if n == 0 {
		return 0, false
	}
	return float64(sum) / float64(n), true
}

// RecommendReplicas is Recommend for a count already computed from the
// load (want): within [min, max], a scale-down only as far as the window's
// recommendations allow.
func RecommendReplicas(a berth.Autoscale, want int, history []Recommendation, now time.Time) (int, []Recommendation) {
	want = min(max(want, a.Min, 1), max(a.Max, a.Min))
	window := a.ScaleDownWindow.D()
	kept := history[:0:0]
	out := want
	for _, r := range history {
		if now.Sub(r.At) > window {
			continue
		}
		kept = append(kept, r)
		out = max(out, r.Replicas)
	}
	return out, append(kept, Recommendation{At: now, Replicas: want})
}

// Requests is how many requests the proxy has sent to the pool's
// replicas: the autoscaler's rate is its change over time.
func (p *Pool) Requests() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.requests
}
