package kube

import (
	"context"
	"strings"

	"github.com/fluxcd/pkg/ssa"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/berth-gpu/berth/reconcile"
)

// newResourceManager is fluxcd/pkg/ssa's ResourceManager for c: apply,
// drift and diff under berth's field manager, through ssaClient.
func newResourceManager(c *Cluster) *ssa.ResourceManager {
	// No status poller: berth does not wait for readiness in Apply (its
	// Observe reads readiness with kstatus), so WaitForSet is not used.
	return ssa.NewResourceManager(ssaClient{Client: c.crc, c: c}, nil, ssa.Owner{Field: FieldManager, Group: "berth.dev"})
}

// ssaClient is the controller-runtime client fluxcd/pkg/ssa works through.
// It differs from crc twice:
//   - Get of an object of a kind berth's informers watch, which their cache
//     does not hold, is NotFound without a request: ssa reads an object
//     before each dry run, and creating one is then a dry run and an apply.
//     An object the cache holds is read from the API server, so that ssa
//     compares the dry run with the object in the server's own JSON (the
//     informers' typed objects, converted back, differ in empty fields such
//     as a pod template's creationTimestamp, and every object would look
//     drifted). A cache behind the server can only make ssa apply an
//     object it would have found unchanged.
//   - Every apply that is not a dry run is noted in written, so Apply's
//     last stage waits until the informers have seen it.
type ssaClient struct {
	client.Client
	c *Cluster
}

// cachedKinds are the kinds the informers watch, with the group and
// version they are watched at.
var cachedKinds = map[string]schema.GroupVersion{
	kindJob:           {Group: "batch", Version: "v1"},
	kindDeployment:    {Group: "apps", Version: "v1"},
	kindService:       {Version: "v1"},
	kindConfigMap:     {Version: "v1"},
	kindNamespace:     {Version: "v1"},
	kindResourceQuota: {Version: "v1"},
	kindIngress:       {Group: "networking.k8s.io", Version: "v1"},
	kindHPA:           {Group: "autoscaling", Version: "v2"},
}

func (s ssaClient) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	gvk := obj.GetObjectKind().GroupVersionKind()
	if gv, ok := cachedKinds[gvk.Kind]; ok && gv == gvk.GroupVersion() {
		if _, found := s.c.objs().get(gvk.Kind, key.Namespace, key.Name); !found {
			return apierrors.NewNotFound(schema.GroupResource{Group: gvk.Group, Resource: strings.ToLower(gvk.Kind) + "s"}, key.Name)
		}
	}
	return s.Client.Get(ctx, key, obj, opts...)
}

func (s ssaClient) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	if err := s.Client.Patch(ctx, obj, patch, opts...); err != nil {
		return err
	}
	if po := (&client.PatchOptions{}).ApplyOptions(opts); len(po.DryRun) == 0 {
		s.c.written.add(obj.GetObjectKind().GroupVersionKind().Kind, obj.GetNamespace(), obj.GetName(), obj.GetResourceVersion())
	}
	return nil
}

// outcomeOf is the outcome of ssa's action on an object.
func outcomeOf(a ssa.Action) reconcile.Outcome {
	switch a {
	case ssa.CreatedAction:
		return reconcile.OutcomeCreated
	case ssa.ConfiguredAction:
		return reconcile.OutcomeConfigured
	}
	return reconcile.OutcomeUnchanged
}
