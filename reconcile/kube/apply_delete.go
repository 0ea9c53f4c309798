package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/berth-gpu/berth/reconcile"
	batchv1 "k8s.io/api/batch/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// applyDeletions is Apply's stage 4: the objects the changes remove (a
// change whose team's ledger write failed removes nothing: the ledger must
// hold what goes first), and release: the finished Jobs the ledger now
// records and the storage of runs that ended (staleClaims). A failed
// deletion fails its change; a failed release is only logged (the next
// Apply releases it again).
func (c *Cluster) applyDeletions(ctx context.Context, results []reconcile.Result, plans []*changePlan, ledgerErrs map[string]error, release []objRef) {
	type deletion struct {
		i   int // change, or -1
		ref objRef
	}
	var dels []deletion
	for i, p := range plans {
		if p == nil || p.err != nil {
			continue
		}
		if err := ledgerErrs[p.team]; err != nil && len(p.ledger) > 0 {
			results[i].Outcome, results[i].Err = reconcile.OutcomeFailed, err
			continue
		}
		for _, ref := range p.remove {
			dels = append(dels, deletion{i, ref})
		}
	}
	for _, ref := range release {
		if ledgerErrs[ref.team] == nil {
			dels = append(dels, deletion{-1, ref})
		}
	}
	var mu sync.Mutex
	c.parallel(len(dels), func(k int) {
		d := dels[k]
		err := c.remove(ctx, d.ref)
		if d.i < 0 {
			if err != nil {
				c.opts.Logger.Warn("releasing an ended run's object failed", "cluster", c.opts.Name, "kind", d.ref.kind, "object", d.ref.ns+"/"+d.ref.name, "err", err)
			}
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if err != nil && results[d.i].Err == nil {
			results[d.i].Outcome, results[d.i].Err = reconcile.OutcomeFailed, err
		}
	})
}

// objRef names an object to delete. job marks a Job whose ledger
// finalizer must go first.
type objRef struct {
	kind, ns, name, team string
}

// remove deletes one object berth owns: one that does not carry berth's
// label is left alone, and the delete is conditional on the UID berth
// read, so an object recreated meanwhile by someone else survives. A Job
// loses berth's ledger finalizer first.
func (c *Cluster) remove(ctx context.Context, ref objRef) error {
	if ref.kind == kindJob {
		if err := c.releaseJob(ctx, ref.ns, ref.name); err != nil {
			return err
		}
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvkOf(ref.kind))
	err := c.crc.Get(ctx, client.ObjectKey{Namespace: ref.ns, Name: ref.name}, u)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s %s/%s: %w", ref.kind, ref.ns, ref.name, err)
	}
	if u.GetLabels()[LabelManagedBy] != ManagedByValue {
		return fmt.Errorf("%s %s/%s is not berth's (no %s=%s label): left alone", ref.kind, ref.ns, ref.name, LabelManagedBy, ManagedByValue)
	}
	uid := u.GetUID()
	err = c.crc.Delete(ctx, u, client.PropagationPolicy(metav1.DeletePropagationBackground),
		client.Preconditions{UID: &uid})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("%s %s/%s: delete: %w", ref.kind, ref.ns, ref.name, err)
	}
	c.written.add(ref.kind, ref.ns, ref.name, "")
	return nil
}

// releaseJob removes berth's ledger finalizer from a Job, by position with
// a test, so no other finalizer is touched.
func (c *Cluster) releaseJob(ctx context.Context, ns, name string) error {
	job, err := c.client.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("Job %s/%s: %w", ns, name, err)
	}
	for i, f := range job.Finalizers {
		if f != FinalizerLedger {
			continue
		}
		path := fmt.Sprintf("/metadata/finalizers/%d", i)
		patch, _ := json.Marshal([]map[string]any{
			{"op": "test", "path": path, "value": FinalizerLedger},
			{"op": "remove", "path": path},
		})
		_, err := c.client.BatchV1().Jobs(ns).Patch(ctx, name, types.JSONPatchType, patch, metav1.PatchOptions{FieldManager: FieldManager})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("Job %s/%s: finalizer: %w", ns, name, err)
		}
		return nil
	}
	return nil
}

// recreateJob replaces a Job whose pod template must change (a queued
// Job's spec changed in Git, or a failed run is retried): the old Job
// goes, and once the API server no longer has it, the new one is applied.
func (c *Cluster) recreateJob(ctx context.Context, old *batchv1.Job) error {
	if err := c.remove(ctx, objRef{kind: kindJob, ns: old.Namespace, name: old.Name}); err != nil {
		return err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := c.client.BatchV1().Jobs(old.Namespace).Get(ctx, old.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("Job %s/%s: still there a minute after it was deleted", old.Namespace, old.Name)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func gvkOf(kind string) schema.GroupVersionKind {
	switch kind {
	case kindJob:
		return batchv1.SchemeGroupVersion.WithKind(kind)
	case kindDeployment:
		return schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: kind}
	case kindIngress:
		return networkingv1.SchemeGroupVersion.WithKind(kind)
	case kindHPA:
		return schema.GroupVersionKind{Group: "autoscaling", Version: "v2", Kind: kind}
	case kindHTTPRoute:
		return gatewayv1.SchemeGroupVersion.WithKind(kind)
	default:
		return schema.GroupVersionKind{Version: "v1", Kind: kind}
	}
}

// recreateJobs deletes the Jobs of a run whose pod templates must change
// (recreateJob) and waits until the informers no longer hold them, so the
// new ones are applied as new.
func (c *Cluster) recreateJobs(ctx context.Context, jobs []*batchv1.Job) error {
	var gone []writtenObj
	var names []string
	for _, j := range jobs {
		if err := c.recreateJob(ctx, j); err != nil {
			return err
		}
		c.written.add(kindJob, j.Namespace, j.Name, "")
		gone = append(gone, writtenObj{kindJob, j.Namespace, j.Name, ""})
		names = append(names, j.Namespace+"/"+j.Name)
	}
	if !c.objs().waitCaughtUp(ctx, gone, 30*time.Second) {
		return fmt.Errorf("Job %s: the cache still holds it after its deletion", strings.Join(names, ", "))
	}
	return nil
}
