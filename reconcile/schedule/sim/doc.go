// Package sim replays GPU cluster traces through berth's scheduler, in
// simulated time, and measures what placement and queueing do: GPU
// allocation over time, GPUs left unallocated when demand reaches the
// cluster's capacity, queue waits, per-team fairness, and the fragmentation
// experiment of Weng et al. (USENIX ATC '23) number for number.
//
// It owns reading the Alibaba 2023 GPU trace (trace.go), turning a trace
// into a berth.Config and berth.Snapshot (build.go), and the two
// experiments: Replay (arrivals and departures in trace time) and Paper
// (the paper's one-at-a-time, nothing-departs inflation experiment). It
// does not decide anything itself: every placement comes from
// schedule.Scheduler, the same code that plans pull requests and runs the
// live reconcile. It reads no files and no clock: callers pass readers, and
// results carry no timings, so the same input gives the same output byte
// for byte.
package sim
