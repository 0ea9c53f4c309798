package kube

import (
	"context"
	"slices"

	"github.com/fluxcd/pkg/ssa"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/berth-gpu/berth/reconcile"
)

// applyOptions are ssa's defaults: no force (an immutable field berth
// changes gets a new object from berth itself, recreateJobs), no
// exclusions.
var applyOptions = ssa.DefaultApplyOptions()

// applyObject applies one object with fluxcd/pkg/ssa: a server-side
// dry-run apply compared with the object as it is, then, only if it
// drifted, server-side apply under berth's field manager, taking fields
// from other managers (a hand edit) back. ssa's errors start with the
// object ("Job/team-a/train-1 apply failed: ...").
func (c *Cluster) applyObject(ctx context.Context, obj *unstructured.Unstructured) (reconcile.Outcome, error) {
	e, err := c.ssa.Apply(ctx, obj, applyOptions)
	if err != nil {
		return reconcile.OutcomeFailed, err
	}
	return outcomeOf(e.Action), nil
}

// applyObjects applies a run's objects with ssa's ApplyAll (in its kind
// order: a Service before the Jobs or Deployment that use it); the outcome
// is the strongest of theirs (created over configured over unchanged).
func (c *Cluster) applyObjects(ctx context.Context, objs []*unstructured.Unstructured) (reconcile.Outcome, error) {
	// ApplyAll sorts what it is given: the caller's order stays.
	cs, err := c.ssa.ApplyAll(ctx, slices.Clone(objs), applyOptions)
	if err != nil {
		return reconcile.OutcomeFailed, err
	}
	out := reconcile.OutcomeUnchanged
	for _, e := range cs.Entries {
		o := outcomeOf(e.Action)
		if o == reconcile.OutcomeCreated || (o == reconcile.OutcomeConfigured && out == reconcile.OutcomeUnchanged) {
			out = o
		}
	}
	return out, nil
}
