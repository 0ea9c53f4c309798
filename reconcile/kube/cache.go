package kube

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Object kinds berth reads and writes.
const (
	kindJob           = "Job"
	kindDeployment    = "Deployment"
	kindService       = "Service"
	kindConfigMap     = "ConfigMap"
	kindNamespace     = "Namespace"
	kindResourceQuota = "ResourceQuota"
	kindClaim         = "PersistentVolumeClaim"
	kindIngress       = "Ingress"
	kindHTTPRoute     = "HTTPRoute"
	kindHPA           = "HorizontalPodAutoscaler"
)

// objects is the informers' view of the cluster: every node, and the
// objects berth labelled as its own (and their pods, which inherit the
// label). Observe reads only from here, so a reconcile that changes
// nothing sends the API server nothing but one health check.
type objects struct {
	factory, nodeFactory informers.SharedInformerFactory
	informers            map[string]cache.SharedIndexInformer
	nodes                cache.SharedIndexInformer
	pods                 cache.SharedIndexInformer

	// gated is signalled when a pod waiting at RankGate appears.
	gated chan struct{}

	mu sync.Mutex
	// decoded caches each ledger's entries by resourceVersion.
	decoded map[string]decodedLedger
	cancel  context.CancelFunc
}

type decodedLedger struct {
	rv      string
	team    string
	entries []ledgerEntry
	errs    []error
}

const (
	indexWorkload = "workload"
	indexRun      = "run"
)

// runIndexKey is a run's key in the Jobs' run index: only the Jobs of a
// workload with roles (several per run) are indexed. client-go indexes by
// string, and the key holds the namespace, not the team: the index sees
// the Jobs of every berth sharing the cluster, before ours filters them.
func runIndexKey(ns, workload, runID string) string { return ns + "/" + workload + "@" + runID }

func newObjects(client kubernetes.Interface) *objects {
	owned := informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.LabelSelector = LabelManagedBy + "=" + ManagedByValue
	})
	f := informers.NewSharedInformerFactoryWithOptions(client, 0, owned, informers.WithTransform(stripObject))
	nf := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTransform(stripObject))
	o := &objects{
		factory: f, nodeFactory: nf,
		informers: map[string]cache.SharedIndexInformer{
			kindJob:           f.Batch().V1().Jobs().Informer(),
			kindDeployment:    f.Apps().V1().Deployments().Informer(),
			kindService:       f.Core().V1().Services().Informer(),
			kindConfigMap:     f.Core().V1().ConfigMaps().Informer(),
			kindNamespace:     f.Core().V1().Namespaces().Informer(),
			kindResourceQuota: f.Core().V1().ResourceQuotas().Informer(),
			kindClaim:         f.Core().V1().PersistentVolumeClaims().Informer(),
			kindIngress:       f.Networking().V1().Ingresses().Informer(),
			kindHPA:           f.Autoscaling().V2().HorizontalPodAutoscalers().Informer(),
		},
		nodes:   nf.Core().V1().Nodes().Informer(),
		pods:    f.Core().V1().Pods().Informer(),
		decoded: map[string]decodedLedger{},
		gated:   make(chan struct{}, 1),
	}
	signal := func(obj any) {
		if p, ok := obj.(*corev1.Pod); ok && rankGated(p) {
			select {
			case o.gated <- struct{}{}:
			default:
			}
		}
	}
	o.pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    signal,
		UpdateFunc: func(_, obj any) { signal(obj) },
	})
	o.pods.AddIndexers(cache.Indexers{indexWorkload: func(obj any) ([]string, error) {
		p := obj.(*corev1.Pod)
		return []string{p.Namespace + "/" + p.Labels[LabelWorkload]}, nil
	}})
	o.informers[kindJob].AddIndexers(cache.Indexers{indexRun: func(obj any) ([]string, error) {
		j := obj.(*batchv1.Job)
		if j.Labels[LabelRole] == "" {
			return nil, nil
		}
		return []string{runIndexKey(j.Namespace, j.Labels[LabelWorkload], j.Annotations[AnnotationRunID])}, nil
	}})
	return o
}

// stripObject drops what berth never reads, to keep the caches small at
// thousands of objects: managed fields (except a Deployment's, whose
// replicas may belong to an autoscaler), node images and pod spec volumes.
func stripObject(obj any) (any, error) {
	switch x := obj.(type) {
	case *appsv1.Deployment:
	case *corev1.Node:
		x.ManagedFields = nil
		x.Status.Images = nil
	case *corev1.Pod:
		x.ManagedFields = nil
		x.Spec.Volumes = nil
		for i := range x.Spec.Containers {
			x.Spec.Containers[i].Env = nil
			x.Spec.Containers[i].VolumeMounts = nil
		}
	case metav1.Object:
		x.SetManagedFields(nil)
	}
	return obj, nil
}

// start starts the informers (they stop with ctx, or stop) and waits for
// their first list.
func (o *objects) start(ctx context.Context, timeout time.Duration) error {
	ctx, o.cancel = context.WithCancel(ctx)
	o.factory.Start(ctx.Done())
	o.nodeFactory.Start(ctx.Done())
	syncCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	synced := []cache.InformerSynced{o.nodes.HasSynced, o.pods.HasSynced}
	for _, inf := range o.informers {
		synced = append(synced, inf.HasSynced)
	}
	if !cache.WaitForCacheSync(syncCtx.Done(), synced...) {
		return fmt.Errorf("informers did not sync within %v", timeout)
	}
	return nil
}

func (o *objects) stop() {
	if o.cancel != nil {
		o.cancel()
	}
}

func (o *objects) get(kind, ns, name string) (any, bool) {
	key := name
	if ns != "" {
		key = ns + "/" + name
	}
	inf, watched := o.informers[kind]
	if !watched {
		return nil, false // a kind berth does not watch (HTTPRoute)
	}
	obj, ok, err := inf.GetStore().GetByKey(key)
	return obj, ok && err == nil
}

func (o *objects) job(ns, name string) *batchv1.Job {
	if obj, ok := o.get(kindJob, ns, name); ok {
		return obj.(*batchv1.Job)
	}
	return nil
}

func (o *objects) deployment(ns, name string) *appsv1.Deployment {
	if obj, ok := o.get(kindDeployment, ns, name); ok {
		return obj.(*appsv1.Deployment)
	}
	return nil
}

func (o *objects) ingress(ns, name string) *networkingv1.Ingress {
	if v, ok := o.get(kindIngress, ns, name); ok {
		return v.(*networkingv1.Ingress)
	}
	return nil
}

func (o *objects) hpa(ns, name string) *autoscalingv2.HorizontalPodAutoscaler {
	if v, ok := o.get(kindHPA, ns, name); ok {
		return v.(*autoscalingv2.HorizontalPodAutoscaler)
	}
	return nil
}

func (o *objects) service(ns, name string) *corev1.Service {
	if obj, ok := o.get(kindService, ns, name); ok {
		return obj.(*corev1.Service)
	}
	return nil
}

func (o *objects) jobs() []*batchv1.Job {
	var out []*batchv1.Job
	for _, obj := range o.informers[kindJob].GetStore().List() {
		out = append(out, obj.(*batchv1.Job))
	}
	return out
}

func (o *objects) deployments() []*appsv1.Deployment {
	var out []*appsv1.Deployment
	for _, obj := range o.informers[kindDeployment].GetStore().List() {
		out = append(out, obj.(*appsv1.Deployment))
	}
	return out
}

func (o *objects) nodeList() []*corev1.Node {
	var out []*corev1.Node
	for _, obj := range o.nodes.GetStore().List() {
		out = append(out, obj.(*corev1.Node))
	}
	return out
}

// workloadPods are the pods of one workload in one namespace.
func (o *objects) workloadPods(ns, workload string) []*corev1.Pod {
	objs, _ := o.pods.GetIndexer().ByIndex(indexWorkload, ns+"/"+workload)
	out := make([]*corev1.Pod, 0, len(objs))
	for _, obj := range objs {
		out = append(out, obj.(*corev1.Pod))
	}
	return out
}

// roleJobs are the Jobs of one run of a workload with roles, by role name.
func (o *objects) roleJobs(ns, workload, runID string) []*batchv1.Job {
	objs, _ := o.informers[kindJob].GetIndexer().ByIndex(indexRun, runIndexKey(ns, workload, runID))
	out := make([]*batchv1.Job, 0, len(objs))
	for _, obj := range objs {
		out = append(out, obj.(*batchv1.Job))
	}
	sortByRole(out)
	return out
}

// jobPods are the pods a Job created.
func (o *objects) jobPods(job *batchv1.Job) []*corev1.Pod {
	var out []*corev1.Pod
	for _, p := range o.workloadPods(job.Namespace, job.Labels[LabelWorkload]) {
		if p.Labels["job-name"] == job.Name || p.Labels[batchv1.JobNameLabel] == job.Name {
			out = append(out, p)
		}
	}
	return out
}

// ledger returns a namespace's ledger ConfigMap.
func (o *objects) ledger(ns string) (*corev1.ConfigMap, bool) {
	obj, ok := o.get(kindConfigMap, ns, LedgerName)
	if !ok {
		return nil, false
	}
	return obj.(*corev1.ConfigMap), true
}

// ledgers decodes every team's ledger, by namespace, reusing what was
// decoded at the same resourceVersion.
func (o *objects) ledgers() (map[string]decodedLedger, []error) {
	out := map[string]decodedLedger{}
	var errs []error
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, obj := range o.informers[kindConfigMap].GetStore().List() {
		cm := obj.(*corev1.ConfigMap)
		if cm.Name != LedgerName {
			continue
		}
		d, ok := o.decoded[cm.Namespace]
		if !ok || d.rv != cm.ResourceVersion {
			d.entries, d.errs = decodeLedger(cm)
			d.rv, d.team = cm.ResourceVersion, cm.Labels[LabelTeam]
			o.decoded[cm.Namespace] = d
		}
		out[cm.Namespace] = d
		errs = append(errs, d.errs...)
	}
	return out, errs
}

// written remembers what one Apply wrote, so it can wait until the
// informers have seen it: the next Observe then sees Apply's effects.
type written struct {
	mu   sync.Mutex
	objs []writtenObj
}

type writtenObj struct {
	kind, ns, name, rv string // rv "" means deleted
}

func (w *written) add(kind, ns, name, rv string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.objs = append(w.objs, writtenObj{kind, ns, name, rv})
}

func (w *written) take() []writtenObj {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.objs
	w.objs = nil
	return out
}

// caughtUp reports whether the cache holds o at its written
// resourceVersion or later (or no longer holds a deleted object).
// resourceVersions are etcd revisions: integers that only grow.
func (o *objects) caughtUp(w writtenObj) bool {
	obj, ok := o.get(w.kind, w.ns, w.name)
	if w.rv == "" {
		if !ok {
			return true
		}
		// A claim still mounted by a pod stays, marked, until the pod is
		// gone (Kubernetes' pvc-protection finalizer): its deletion is
		// seen once it is marked.
		m, err := metaOf(obj)
		return w.kind == kindClaim && err == nil && m.GetDeletionTimestamp() != nil
	}
	if !ok {
		return false
	}
	m, err := metaOf(obj)
	if err != nil {
		return true
	}
	have, err1 := strconv.ParseUint(m.GetResourceVersion(), 10, 64)
	want, err2 := strconv.ParseUint(w.rv, 10, 64)
	if err1 != nil || err2 != nil {
		return m.GetResourceVersion() == w.rv
	}
	return have >= want
}

func metaOf(obj any) (metav1.Object, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("%T is not an object", obj)
	}
	return m, nil
}

// waitCaughtUp waits (at most timeout) until the caches hold what was
// written.
func (o *objects) waitCaughtUp(ctx context.Context, ws []writtenObj, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for _, w := range ws {
		for !o.caughtUp(w) {
			if time.Now().After(deadline) || ctx.Err() != nil {
				return false
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return true
}
