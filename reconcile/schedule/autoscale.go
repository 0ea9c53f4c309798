package schedule

import (
	"fmt"

	"github.com/berth-gpu/berth"
)

// An autoscaled service's replicas above its spec's are runs of their own
// ("1-r2", berth.ReplicaRunID), each one pod: prepare asks for each
// replica its autoscaler wants and that does not run, so each is admitted
// within quota or waits with a reason like any other pod; keepOrStop
// stops each replica above what the autoscaler wants now. The backend
// says what the autoscaler wants (RunningWorkload.DesiredReplicas); the
// decision of what runs is made here, once, for the engine and the plans.

// scaleAsks are the replicas each autoscaled service's autoscaler asks
// for, from its running runs that say (none: the service is not in it).
func scaleAsks(cfg *berth.Config, snap *berth.Snapshot) map[berth.WorkloadID]int {
	var out map[berth.WorkloadID]int
	for i := range snap.Running {
		rw := &snap.Running[i]
		if rw.DesiredReplicas == 0 {
			continue
		}
		if out == nil {
			out = map[berth.WorkloadID]int{}
		}
		out[rw.Workload] = max(out[rw.Workload], rw.DesiredReplicas)
	}
	return out
}

// scaleWant is how many replicas autoscaled service w runs: its
// autoscaler's ask within [min, max], never below the spec's replicas;
// with no ask, min or the spec's replicas.
func scaleWant(w *berth.Workload, ask int) int {
	a := w.Autoscale
	if ask == 0 {
		return max(w.Replicas, a.Min)
	}
	return max(min(max(ask, a.Min), a.Max), w.Replicas)
}

// scaledDown is the reason to stop run runID of w when it is a replica
// above what the autoscaler asks for now (nil: keep it). With no ask,
// every replica is kept.
func scaledDown(w *berth.Workload, runID string, asks map[berth.WorkloadID]int, id berth.WorkloadID) *berth.Reason {
	if w.Autoscale == nil {
		return nil
	}
	if _, k, ok := berth.ParseReplicaRunID(runID); ok {
		if ask := asks[id]; ask > 0 {
			if want := scaleWant(w, ask); k > want {
				return &berth.Reason{Code: berth.ReasonScaledDown,
					Message: fmt.Sprintf("scaled down to %d replicas: its autoscaler asks for %d", want, ask)}
			}
		}
	}
	return nil
}

// baseRuns reports whether a service runs a run that is not an autoscaled
// replica: the run that its spec's replicas run in.
func hasBaseRun(runs []*run) bool {
	for _, r := range runs {
		if _, _, ok := berth.ParseReplicaRunID(r.runID); !ok {
			return true
		}
	}
	return false
}
