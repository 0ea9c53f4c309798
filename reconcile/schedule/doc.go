// Package schedule is berth's scheduler: a pure function from a desired
// configuration and a cluster's observed state to a decision for every
// workload run (admit, queue, preempt, reject, ...) with a named reason.
//
// The same code serves the live reconcile, the plan on a pull request and
// the trace simulator. It does no I/O and reads no clock: the time is the
// snapshot's. Its output is deterministic: ties are broken by name, never by
// map order or chance.
//
// A Cache keeps a cluster's state between cycles and updates it with what
// changed (cache.go); Schedule is a Cache used once, so the two decide
// alike, decision for decision. The engine and the pull-request planner
// keep one per cluster.
//
// One scheduling cycle, in order:
//  1. Build the cluster state: nodes and their free GPUs, MIG slices, cpu
//     and memory; the quota tree with what is running charged to it.
//  2. Stop what left Git; keep what runs.
//  3. Order the requests: first those that fit within their team's nominal
//     quota; then the rest, the teams' heads by how far up the cohort tree
//     they borrow; then priority, fair share, first seen.
//  4. For each request: reject what can never fit; choose the flavor as
//     Kueue's flavor assigner does (flavor fungibility); admit, or preempt
//     the minimal set of victims Kueue's preemptor would (assign.go,
//     preempt.go: Kueue v0.12.10); else admit the most pods between a
//     gang's minimum and its full size; else queue with the reason,
//     reserving capacity for the first blocked request of each flavor so
//     later, smaller ones start only if they cannot delay it (EASY backfill).
package schedule
