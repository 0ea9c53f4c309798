package kube

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/berth-gpu/berth/reconcile"
)

// LedgerCheck is what CheckLedger found in one team's ledger.
type LedgerCheck struct {
	Namespace string
	Runs      int
	// Problems are the entries that do not decode.
	Problems []string
}

// CheckLedger decodes every team's ledger ConfigMap and reports, per
// namespace, the entries that do not decode (a hand edit, a bad merge).
// Observe skips such entries: a run whose Job is gone and whose entry is
// damaged would be started again.
func (c *Cluster) CheckLedger(ctx context.Context) ([]LedgerCheck, error) {
	if err := c.Start(ctx); err != nil {
		return nil, err
	}
	var out []LedgerCheck
	for _, cm := range c.ledgerMaps() {
		entries, errs := decodeLedger(cm)
		lc := LedgerCheck{Namespace: cm.Namespace, Runs: len(entries)}
		for _, err := range errs {
			lc.Problems = append(lc.Problems, err.Error())
		}
		out = append(out, lc)
	}
	return out, nil
}

// LedgerRebuilt is what RebuildLedger did in one team's namespace.
type LedgerRebuilt struct {
	Namespace string
	// Derived counts the runs re-derived from their Jobs and Deployments;
	// Kept, the decodable entries of runs that have no object any more.
	Derived, Kept int
	// Lost are the damaged entries of runs with no object: nothing in the
	// cluster says what they were (their key, or the damaged text).
	Lost []string
	// Copy is the ConfigMap the damaged ledger was copied to, if it had
	// damaged entries.
	Copy string
}

// RebuildLedger re-derives each team's ledger from berth's objects in the
// cluster: every Job and Deployment berth owns carries its run in its
// labels and annotations (run id, attempts, digest, times) and its state in
// its status, so each gets the entry Apply would write for it. Entries of
// runs that have no object are kept when they decode; those that do not are
// lost, and named. A ledger with damaged entries is first copied to
// berth-ledger-damaged-<time>. Run it with no berth serve applying to the
// cluster.
func (c *Cluster) RebuildLedger(ctx context.Context, now time.Time) ([]LedgerRebuilt, error) {
	if err := c.Start(ctx); err != nil {
		return nil, err
	}
	derived, teams := c.deriveLedgers(now)
	old := map[string]*corev1.ConfigMap{}
	for _, cm := range c.ledgerMaps() {
		old[cm.Namespace] = cm
		if _, ok := teams[cm.Namespace]; !ok {
			teams[cm.Namespace] = cm.Labels[LabelTeam]
		}
	}
	namespaces := make([]string, 0, len(teams))
	for ns := range teams {
		namespaces = append(namespaces, ns)
	}
	slices.Sort(namespaces)
	var out []LedgerRebuilt
	for _, ns := range namespaces {
		res, err := c.rebuildNamespace(ctx, ns, teams[ns], old[ns], derived[ns], now)
		if err != nil {
			return out, err
		}
		out = append(out, res)
	}
	return out, nil
}

// deriveLedgers are the ledger records the objects in the cluster say
// (by namespace, then key), and the team of each namespace.
func (c *Cluster) deriveLedgers(now time.Time) (derived map[string]map[string]*ledgerRecord, teams map[string]string) {
	derived = map[string]map[string]*ledgerRecord{}
	teams = map[string]string{}
	add := func(ns string, r reconcile.RunState, retries int) {
		if derived[ns] == nil {
			derived[ns] = map[string]*ledgerRecord{}
		}
		teams[ns] = r.Workload.Team()
		rec := &ledgerRecord{Kind: r.Kind, Phase: r.Phase, Reason: r.Reason, Digest: r.Digest, Attempts: r.Attempts,
			Retries: retries, QueuedSince: r.QueuedSince, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt}
		if r.Phase.Final() {
			rec.FinishedAt = sinceOrNow(r.FinishedAt, now)
		}
		derived[ns][LedgerKey(r.Workload.Name(), r.RunID)] = rec
	}
	single, groups := roleGroups(c.objs().jobs())
	for _, job := range single {
		if r, ok := c.jobRun(job); ok {
			w, _ := specOf(job.Annotations)
			add(job.Namespace, r, w.Retries)
		}
	}
	for _, jobs := range groups {
		// The Jobs of a workload with roles are one run, one entry.
		if r, ok := c.rolesRun(jobs); ok {
			w, _ := specOf(jobs[0].Annotations)
			add(jobs[0].Namespace, r, w.Retries)
		}
	}
	for _, d := range c.objs().deployments() {
		if r, ok := c.deploymentRun(d); ok {
			w, _ := specOf(d.Annotations)
			add(d.Namespace, r, w.Retries)
		}
	}
	return derived, teams
}

// rebuildNamespace rewrites one namespace's ledger: the entries of the
// old ledger cm that still decode, overwritten by what the objects say
// (derived). A damaged ledger is first copied aside.
func (c *Cluster) rebuildNamespace(ctx context.Context, ns, team string, cm *corev1.ConfigMap, derived map[string]*ledgerRecord, now time.Time) (LedgerRebuilt, error) {
	res := LedgerRebuilt{Namespace: ns}
	data := map[string]string{}
	if cm != nil {
		entries, errs := decodeLedger(cm)
		for _, e := range entries {
			data[LedgerKey(e.Name, e.RunID)] = e.ledgerRecord.encode()
			res.Kept++
		}
		if len(errs) > 0 {
			if err := c.copyDamaged(ctx, &res, team, cm, entries, derived, now); err != nil {
				return res, err
			}
		}
	}
	for k, rec := range derived {
		if _, kept := data[k]; kept {
			res.Kept--
		}
		data[k] = rec.encode()
		res.Derived++
	}
	if err := c.replaceLedger(ctx, ns, team, cm, data); err != nil {
		return res, err
	}
	return res, nil
}

// copyDamaged copies a damaged ledger aside and lists in res the keys
// lost: neither decoded nor derived from an object.
func (c *Cluster) copyDamaged(ctx context.Context, res *LedgerRebuilt, team string, cm *corev1.ConfigMap, entries []ledgerEntry, derived map[string]*ledgerRecord, now time.Time) error {
	ns := res.Namespace
	good := map[string]bool{}
	for _, e := range entries {
		good[LedgerKey(e.Name, e.RunID)] = true
	}
	for k := range cm.Data {
		if !good[k] && derived[k] == nil {
			res.Lost = append(res.Lost, k)
		}
	}
	slices.Sort(res.Lost)
	res.Copy = LedgerName + "-damaged-" + strings.ToLower(now.UTC().Format("20060102t150405z"))
	cp := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: res.Copy, Namespace: ns,
		Labels: map[string]string{LabelTeam: team}}, Data: cm.Data}
	if _, err := c.client.CoreV1().ConfigMaps(ns).Create(ctx, cp, metav1.CreateOptions{FieldManager: FieldManager}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("namespace %s: copy of the damaged ledger: %w", ns, err)
	}
	return nil
}

// ledgerMaps are the ledger ConfigMaps of this cluster's teams, by
// namespace.
func (c *Cluster) ledgerMaps() []*corev1.ConfigMap {
	var out []*corev1.ConfigMap
	for _, obj := range c.objs().informers[kindConfigMap].GetStore().List() {
		cm := obj.(*corev1.ConfigMap)
		if cm.Name == LedgerName && c.ours(cm.Namespace, cm.Labels[LabelTeam]) {
			out = append(out, cm)
		}
	}
	slices.SortFunc(out, func(a, b *corev1.ConfigMap) int {
		return cmp.Compare(a.Namespace, b.Namespace)
	})
	return out
}

// replaceLedger writes a team's whole ledger: an update of the ConfigMap
// read (so a concurrent writer makes it fail rather than be lost), or a
// create.
func (c *Cluster) replaceLedger(ctx context.Context, ns, team string, old *corev1.ConfigMap, data map[string]string) error {
	if old == nil {
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: LedgerName, Namespace: ns,
				Labels: map[string]string{LabelManagedBy: ManagedByValue, LabelTeam: team}},
			Data: data,
		}
		if _, err := c.client.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{FieldManager: FieldManager}); err != nil {
			return fmt.Errorf("namespace %s: ledger: %w", ns, err)
		}
		return nil
	}
	cm := old.DeepCopy()
	cm.Data = data
	if _, err := c.client.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{FieldManager: FieldManager}); err != nil {
		return fmt.Errorf("namespace %s: ledger: %w", ns, err)
	}
	return nil
}
