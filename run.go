package berth

import (
	"cmp"
	"fmt"
	"strings"
)

// RunKey names one run of a workload: the workload and its run id. It is
// comparable, so every map of runs is keyed by it; String writes it as
// "team/name@run" and ParseRunKey reads that back.
type RunKey struct {
	Workload WorkloadID
	RunID    string
}

// String is "team/name@run", how berth writes a run wherever a person reads
// one.
func (k RunKey) String() string { return string(k.Workload) + "@" + k.RunID }

// Compare orders runs by workload, then run id (for slices.SortFunc).
func (k RunKey) Compare(o RunKey) int {
	return cmp.Or(cmp.Compare(k.Workload, o.Workload), cmp.Compare(k.RunID, o.RunID))
}

// ParseRunKey reads "team/name@run". The run id is everything after the
// first "@": team and workload names are DNS-1123 labels and have none,
// a run id may.
func ParseRunKey(s string) (RunKey, error) {
	w, run, ok := strings.Cut(s, "@")
	if !ok {
		return RunKey{}, fmt.Errorf("run %q: want team/name@run", s)
	}
	id := WorkloadID(w)
	if id.Team() == "" || id.Name() == "" || strings.Count(w, "/") != 1 {
		return RunKey{}, fmt.Errorf("run %q: workload %q is not team/name", s, w)
	}
	return RunKey{Workload: id, RunID: run}, nil
}

// Key is the run the decision is about.
func (d Decision) Key() RunKey { return RunKey{d.Workload, d.RunID} }

// Key is the run the victim is.
func (v Victim) Key() RunKey { return RunKey{v.Workload, v.RunID} }

// Key is the running run.
func (r RunningWorkload) Key() RunKey { return RunKey{r.Workload, r.RunID} }

// Key is the waiting run. An empty RunID (the workload's current run) stays
// empty: the caller knows the workload's run id.
func (q QueuedWorkload) Key() RunKey { return RunKey{q.Workload, q.RunID} }

// Key is the finished run.
func (f FinishedRun) Key() RunKey { return RunKey{f.Workload, f.RunID} }

// Key is the workload's current run (its runId as written).
func (w Workload) Key() RunKey { return RunKey{w.ID(), w.RunID} }
