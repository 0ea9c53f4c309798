package kube

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/berth-gpu/berth/reconcile"
)

// applyObject applies one object with server-side apply under berth's
// field manager, taking fields from other managers (a hand edit) back.
// An object the cache holds as rendered is not sent at all; one it holds
// otherwise goes through the dry-run drift check first (drift.go).
func (c *Cluster) applyObject(ctx context.Context, obj *unstructured.Unstructured) (reconcile.Outcome, error) {
	kind, ns, name := obj.GetKind(), obj.GetNamespace(), obj.GetName()
	live, exists := c.objs().get(kind, ns, name)
	if exists {
		if Drift(obj, liveMap(live.(runtime.Object))) == "" {
			return reconcile.OutcomeUnchanged, nil
		}
		drifted, err := c.drifted(ctx, obj)
		if err != nil {
			return reconcile.OutcomeFailed, fmt.Errorf("%s %s/%s: %w", kind, ns, name, err)
		}
		if !drifted {
			return reconcile.OutcomeUnchanged, nil
		}
	}
	applied := obj.DeepCopy()
	if err := c.crc.Patch(ctx, applied, client.Apply, client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		return reconcile.OutcomeFailed, fmt.Errorf("%s %s/%s: apply: %w", kind, ns, name, err)
	}
	c.written.add(kind, ns, name, applied.GetResourceVersion())
	if exists {
		return reconcile.OutcomeConfigured, nil
	}
	return reconcile.OutcomeCreated, nil
}

// applyObjects applies a run's objects in order; the outcome is the
// strongest of theirs (created over configured over unchanged).
func (c *Cluster) applyObjects(ctx context.Context, objs []*unstructured.Unstructured) (reconcile.Outcome, error) {
	out := reconcile.OutcomeUnchanged
	for _, obj := range objs {
		o, err := c.applyObject(ctx, obj)
		if err != nil {
			return reconcile.OutcomeFailed, err
		}
		if o == reconcile.OutcomeCreated || (o == reconcile.OutcomeConfigured && out == reconcile.OutcomeUnchanged) {
			out = o
		}
	}
	return out, nil
}
