// Package history keeps what berth serve saw happen, for the dashboard,
// `berth usage` and the audit trail: every run's lifecycle (queued,
// admitted, running, preempted, succeeded, failed, with times and
// reasons), every decision that changed (admit, queue, preempt, reject)
// and every change applied or pruned, with the revision, pull request and
// merger it came from; GPU-hours per team, cluster, flavor and day; and
// per-device GPU utilisation, downsampled.
//
// What to record is decided by a pure step (Step: the previous marks and
// one reconcile's report in, events and usage out, with the time as a
// value); Store is the thin bbolt adapter that keeps the marks, events,
// usage and samples in one file and writes each reconcile's outcome in one
// transaction, so a crash mid-write leaves the store as it was before the
// write and nothing is billed twice or lost.
//
// GPU-hours are billed from the run's own start and end times as the
// cluster reports them, not from sampling: a run that held 2 GPUs from
// StartedAt to FinishedAt is billed 2 x (FinishedAt - StartedAt), to the
// millisecond, whether berth ran the whole time or was restarted in
// between. It owns no decision: the scheduler decided, the clusters ran.
package history
