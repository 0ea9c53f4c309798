package local

import (
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile/local/traffic"
)

// minRateWindow is the least time between two readings of a proxy's
// request count that makes a rate: Observe runs after every Apply too,
// and a rate over a few milliseconds says nothing.
const minRateWindow = time.Second

// scaler is what the autoscaler of one service on this machine keeps:
// the proxy's request count when last read, and the recommendations of
// the scale-down window (traffic.Recommend).
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
		if w.Autoscale != nil && w.Autoscale.TargetRPS > 0 {
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
// autoscaled on the request rate here.
func (c *Cluster) desiredReplicas(id berth.WorkloadID, running int, now time.Time) int {
	a, ok := c.autoscale[id]
	if !ok {
		return 0
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
