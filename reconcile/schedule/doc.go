// Package schedule is berth's scheduler: a pure function from a desired
// configuration and a cluster's observed state to a decision for every
// workload run (admit, queue, preempt, reject, ...) with a named reason.
//
// The same code serves the live reconcile, the plan on a pull request and
// the trace simulator. It does no I/O and reads no clock: the time is the
// snapshot's. Its output is deterministic: ties are broken by name, never by
// map order or chance.
//
// One scheduling cycle, in order:
//  1. Build the cluster state: nodes and their free GPUs, MIG slices, cpu
//     and memory; the quota tree with what is running charged to it.
//  2. Stop what left Git; keep what runs.
//  3. Order the requests: priority, then fair share, then first seen.
//  4. For each request: reject what can never fit; admit on the first
//     flavor of the team's quota where quota and nodes allow; else preempt
//     the minimal set of victims policy allows; else queue with the reason,
//     reserving capacity for the first blocked request of each flavor so
//     later, smaller ones start only if they cannot delay it (EASY backfill).
package schedule
