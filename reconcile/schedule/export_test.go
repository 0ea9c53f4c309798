package schedule

// NotScheduled exposes the workload fields a Cache does not compare.
var NotScheduled = notScheduled
