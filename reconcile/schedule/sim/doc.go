// Package sim replays GPU cluster traces through berth's scheduler in
// simulated time and measures what placement and queueing do: GPU
// allocation over time, GPUs left unallocated while demand is at or above
// capacity, queue waits, per-team fairness, and the fragmentation
// experiment of Weng et al. (USENIX ATC '23) number for number.
//
// It owns reading traces in the Alibaba 2023 GPU trace's format
// (trace.go), turning a trace into a berth.Config and berth.Snapshot
// (build.go), the portable generator the paper's experiment is specified
// with (rand.go), the two experiments (replay.go: arrivals and departures
// in trace time; paper.go: one pod at a time, nothing departs, inflation to
// 130%), and their reports (report.go). It decides nothing itself: every
// placement comes from schedule.Scheduler, the same code that plans pull
// requests and runs the live reconcile. It opens no files and reads no
// clock: callers pass readers, reports carry no timings, and the same
// input gives the same output byte for byte.
package sim
