package kube

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// assignRanks gives each pod waiting at RankGate its global rank, the
// offset its role's Job wrote on it plus its completion index, and removes
// the gate, so it is scheduled and its BERTH_RANK reads the rank. The
// downward API cannot add, and a pod's env is fixed once it starts: the
// gate holds it until the rank is there. Idempotent: a pod without the
// gate is left alone. It reports the pods it could not release (retried
// at the next reconcile).
func (c *Cluster) assignRanks(ctx context.Context) []error {
	var errs []error
	for _, p := range c.objs().gatedPods() {
		patch, err := rankPatch(p)
		if err == nil {
			_, err = c.client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.StrategicMergePatchType, patch,
				metav1.PatchOptions{FieldManager: FieldManager})
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// rankPatch writes a gated pod's rank into its annotation and removes
// berth's gate (and no other).
func rankPatch(p *corev1.Pod) ([]byte, error) {
	off, err := strconv.Atoi(p.Annotations[AnnotationRankOffset])
	if err != nil {
		return nil, err
	}
	idx, err := strconv.Atoi(p.Annotations[batchv1.JobCompletionIndexAnnotation])
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{
		"metadata": map[string]any{"annotations": map[string]string{AnnotationRank: strconv.Itoa(off + idx)}},
		"spec":     map[string]any{"schedulingGates": []map[string]string{{"$patch": "delete", "name": RankGate}}},
	})
}

// gatedPods are berth's pods that wait at RankGate.
func (o *objects) gatedPods() []*corev1.Pod {
	var out []*corev1.Pod
	for _, obj := range o.pods.GetStore().List() {
		if p := obj.(*corev1.Pod); rankGated(p) {
			out = append(out, p)
		}
	}
	return out
}

func rankGated(p *corev1.Pod) bool {
	return slices.ContainsFunc(p.Spec.SchedulingGates, func(g corev1.PodSchedulingGate) bool { return g.Name == RankGate })
}

// releaseRanks gives gated pods their rank as they appear (the pod
// informer signals it), and every second besides (a failed patch, or a
// cache replaced after an outage), while this replica leads. Apply does it
// too, but Apply runs only when a reconcile changes something, and a gang
// must not wait for that.
func (c *Cluster) releaseRanks(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.objs().gated:
		case <-tick.C:
		}
		if c.Leading() && !c.sick.Load() {
			for _, err := range c.assignRanks(ctx) {
				c.opts.Logger.Warn("giving a pod its rank failed", "cluster", c.opts.Name, "err", err)
			}
		}
	}
}
