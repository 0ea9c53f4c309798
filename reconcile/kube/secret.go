package kube

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
)

// checkSecrets is what berth does before it starts a run whose env refers
// to Secrets: each must exist in the team's namespace and hold the key,
// or the run is not started (a pod would only sit in
// CreateContainerConfigError, holding its GPUs). It returns a
// *reconcile.SecretError naming the first missing one, in variable order,
// and where the reference is written in Git.
//
// It gets each Secret (the one read berth's role allows on Secrets, and
// no list or watch) and looks only at its keys: a value is never logged,
// written into an object or kept.
func (c *Cluster) checkSecrets(ctx context.Context, cfg *berth.Config, ns string, w berth.Workload) error {
	err := c.secretsThere(ctx, ns, w)
	var se *reconcile.SecretError
	if errors.As(err, &se) {
		se.Locate(cfg, w)
	}
	return err
}

// secretsThere is checkSecrets's look at the cluster.
func (c *Cluster) secretsThere(ctx context.Context, ns string, w berth.Workload) error {
	refs := w.SecretRefs()
	if len(refs) == 0 {
		return nil
	}
	keys := map[string][]string{} // the Secrets read so far: their keys, nil when absent
	for _, v := range slices.Sorted(maps.Keys(refs)) {
		ref := refs[v]
		have, seen := keys[ref.Name]
		if !seen {
			s, err := c.client.CoreV1().Secrets(ns).Get(ctx, ref.Name, metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err):
			case apierrors.IsForbidden(err):
				return &reconcile.SecretError{Workload: w.ID(), Var: v, Secret: ref, Where: "namespace " + ns,
					Problem: "berth may not read Secrets there (its role needs get on secrets)"}
			case err != nil:
				return fmt.Errorf("env %s: secret %s: %w", v, ref.Name, err)
			default:
				have = slices.Sorted(maps.Keys(s.Data))
				if have == nil {
					have = []string{}
				}
			}
			keys[ref.Name] = have
		}
		switch {
		case have == nil:
			return &reconcile.SecretError{Workload: w.ID(), Var: v, Secret: ref, Where: "namespace " + ns,
				Problem: fmt.Sprintf("no Secret %s; create it (kubectl create secret generic %s -n %s --from-literal=%s=...)", ref.Name, ref.Name, ns, ref.Key)}
		case !slices.Contains(have, ref.Key):
			return &reconcile.SecretError{Workload: w.ID(), Var: v, Secret: ref, Where: "namespace " + ns,
				Problem: fmt.Sprintf("Secret %s has no key %s (its keys: %s)", ref.Name, ref.Key, keyList(have))}
		}
	}
	return nil
}

func keyList(keys []string) string {
	if len(keys) == 0 {
		return "none"
	}
	return strings.Join(keys, ", ")
}
