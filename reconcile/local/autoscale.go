package local

import (
	"sync"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile/local/traffic"
)

// minRateWindow is the least time between two readings of a proxy's
// request count that makes a rate: Observe runs after every Apply too,
// and a rate over a few milliseconds says nothing.
const minRateWindow = time.Second

// scaler is what the autoscaler of one service on this machine keeps:
// the proxy's request count when last read (or the time of the GPU
// reading last used), and the recommendations of the scale-down window
// (traffic.Recommend).
type scaler struct {
	count   uint64
	at      time.Time
	history []traffic.Recommendation
	// ask is the replica count asked for; 0 until a rate is known.
	ask int
}

// noteAutoscale keeps the autoscale settings of cfg's services (nil cfg:
// those kept), and forgets the scalers of services no longer autoscaled.
func (c *Cluster) noteAutoscale(cfg *berth.Config) {
	if cfg == nil {
		return
	}
	specs := map[berth.WorkloadID]berth.Autoscale{}
	for id, w := range cfg.Workloads {
		if w.Autoscale != nil && (w.Autoscale.TargetRPS > 0 || w.Autoscale.TargetGPUUtilization > 0) {
			specs[id] = *w.Autoscale
		}
	}
	c.autoscale = specs
	for id := range c.scalers {
		if _, ok := specs[id]; !ok {
			delete(c.scalers, id)
		}
	}
}

// desiredReplicas is what service id's autoscaler asks for now, from its
// proxy's request rate since the last reading at least minRateWindow
// ago: traffic.Recommend (ceil(rate / targetRPS) within [min, max], a
// scale-down only once the window's recommendations allow it). Until a
// rate is known (the first reading after berth starts) it asks for the
// replicas that run, so a restart of berth scales nothing. 0: not
// autoscaled here. A service autoscaled on GPU utilisation asks
// desiredForGPUs instead, from the GPUs its replicas hold (gpus).
func (c *Cluster) desiredReplicas(id berth.WorkloadID, running int, gpus []int, now time.Time) int {
	a, ok := c.autoscale[id]
	if !ok {
		return 0
	}
	if a.TargetGPUUtilization > 0 {
		return c.desiredForGPUs(id, a, running, gpus)
	}
	count, routed := c.router.Requests(id)
	if !routed {
		return 0
	}
	s := c.scalers[id]
	if s == nil {
		s = &scaler{count: count, at: now}
		c.scalers[id] = s
	}
	if dt := now.Sub(s.at); dt >= minRateWindow && count >= s.count {
		rps := float64(count-s.count) / dt.Seconds()
		s.ask, s.history = traffic.Recommend(a, rps, s.history, now)
		s.count, s.at = count, now
		c.log.Debug("autoscale", "workload", id, "rps", rps, "replicas", running, "ask", s.ask)
	} else if count < s.count {
		s.count, s.at = count, now // the proxy was opened anew
	}
	if s.ask == 0 {
		return running
	}
	return s.ask
}

// gpuReading is the GPUs' latest utilisation, by index, and when it was
// taken.
type gpuReading struct {
	mu   sync.Mutex
	util map[int]int
	at   time.Time
}

// NoteGPUs keeps a reading of the GPUs (as GPUs returns it, taken at at)
// for the GPU-utilisation autoscaler. A GPU in MIG mode has no
// utilisation and is left out.
func (c *Cluster) NoteGPUs(gpus []GPU, at time.Time) {
	util := map[int]int{}
	for _, g := range gpus {
		if g.Utilization >= 0 && !g.MIGEnabled {
			util[g.Index] = g.Utilization
		}
	}
	c.utilisation.mu.Lock()
	c.utilisation.util, c.utilisation.at = util, at
	c.utilisation.mu.Unlock()
}

// desiredForGPUs is what service id's autoscaler asks for from the average
// utilisation of the GPUs its replicas hold, as the HorizontalPodAutoscaler
// computes it: ceil(running x average / target) within [min, max], a
// scale-down only once the window's recommendations allow it. Each reading
// counts once; until there is one of its GPUs (or when it holds none) it
// asks for the replicas that run.
func (c *Cluster) desiredForGPUs(id berth.WorkloadID, a berth.Autoscale, running int, gpus []int) int {
	c.utilisation.mu.Lock()
	util, at := c.utilisation.util, c.utilisation.at
	c.utilisation.mu.Unlock()
	s := c.scalers[id]
	if s == nil {
		s = &scaler{}
		c.scalers[id] = s
	}
	if at.After(s.at) {
		if avg, ok := traffic.AverageUtilisation(util, gpus); ok {
			want := traffic.GPUReplicas(a, running, avg)
			s.ask, s.history = traffic.RecommendReplicas(a, want, s.history, at)
			c.log.Debug("autoscale", "workload", id, "gpuUtilisation", avg, "replicas", running, "ask", s.ask)
		}
		s.at = at
	}
	if s.ask == 0 {
		return running
	}
	return s.ask
}
