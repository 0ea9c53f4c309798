// Package reconcile is berth's engine: one reconcile of a revision is a
// straight list of stages (fetch, load, observe, decide, diff, apply,
// report), each returning early with an outcome.
//
// It defines the three interfaces the engine is wired with, where they are
// used: a Source of revisions, a Cluster (Observe and Apply, implemented by
// reconcile/local and reconcile/kube) and a Reporter (logs, commit statuses
// and pull-request comments). Deciding is reconcile/schedule; diffing is
// the pure Diff here. Everything is re-derived on every reconcile from Git,
// the cluster and the cluster's run ledger, so a restart loses nothing and
// a reconcile of an unchanged state writes nothing.
package reconcile
