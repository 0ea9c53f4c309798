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
