// Package policy holds berth's rules as pure functions over plain values:
// the quota tree (teams and nested cohorts lending and borrowing per flavor
// and resource) and, for pull requests, who must approve what.
//
// It does no I/O and keeps no clock: the scheduler in reconcile/schedule
// asks it whether a demand fits and records usage in it; the GitHub
// integration asks it which approvals a change needs.
package policy
