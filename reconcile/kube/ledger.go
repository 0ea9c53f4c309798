package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
)

// ledgerRecord is one run in a team's ledger: the ConfigMap berth-ledger
// of the team's namespace, one data key per run ("name.runId"), the value
// this record as JSON. A ConfigMap holds 1 MiB: a few thousand runs per
// team.
type ledgerRecord struct {
	Kind        berth.Kind      `json:"kind"`
	Phase       reconcile.Phase `json:"phase"`
	Reason      string          `json:"reason,omitempty"`
	Digest      string          `json:"digest,omitempty"`
	Attempts    int             `json:"attempts,omitempty"`
	Retries     int             `json:"retries,omitempty"`
	QueuedSince time.Time       `json:"queuedSince,omitzero"`
	StartedAt   time.Time       `json:"startedAt,omitzero"`
	FinishedAt  time.Time       `json:"finishedAt,omitzero"`
	// Over: a notebook stopped for being idle, over until its runId
	// changes (reconcile.RunState.Over).
	Over bool `json:"over,omitempty"`
}

func (r ledgerRecord) encode() string {
	b, err := json.Marshal(r)
	if err != nil {
		panic(err) // plain data always marshals
	}
	return string(b)
}

// ledgerEntry is a decoded record and its run.
type ledgerEntry struct {
	Name, RunID string
	ledgerRecord
}

// decodeLedger reads a ledger ConfigMap; entries that do not decode are
// skipped (and reported, so a hand edit is not silently lost).
func decodeLedger(cm *corev1.ConfigMap) ([]ledgerEntry, []error) {
	keys := make([]string, 0, len(cm.Data))
	for k := range cm.Data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out []ledgerEntry
	var errs []error
	for _, k := range keys {
		name, runID, ok := strings.Cut(k, ".")
		if !ok {
			errs = append(errs, fmt.Errorf("ledger %s/%s: key %q is not name.runId", cm.Namespace, cm.Name, k))
			continue
		}
		var r ledgerRecord
		if err := json.Unmarshal([]byte(cm.Data[k]), &r); err != nil {
			errs = append(errs, fmt.Errorf("ledger %s/%s: %s: %w", cm.Namespace, cm.Name, k, err))
			continue
		}
		out = append(out, ledgerEntry{Name: name, RunID: runID, ledgerRecord: r})
	}
	return out, errs
}

// ledgerUpdate is what one Apply changes in one team's ledger: a record to
// write, or nil to drop the key.
type ledgerUpdate map[string]*ledgerRecord

// writeLedger writes a team's updates in one request: a JSON merge patch of
// the keys (so concurrent writers of other keys never conflict), or a
// create when the namespace has no ledger yet.
func (c *Cluster) writeLedger(ctx context.Context, team string, up ledgerUpdate) error {
	if len(up) == 0 {
		return nil
	}
	ns := Namespace(c.opts.Render.NamespacePrefix, team)
	data := map[string]*string{}
	for k, r := range up {
		if r == nil {
			data[k] = nil
			continue
		}
		v := r.encode()
		data[k] = &v
	}
	if _, exists := c.objs().ledger(ns); !exists {
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: LedgerName, Namespace: ns,
				Labels: map[string]string{LabelManagedBy: ManagedByValue, LabelTeam: team}},
			Data: map[string]string{},
		}
		for k, v := range data {
			if v != nil {
				cm.Data[k] = *v
			}
		}
		created, err := c.client.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{FieldManager: FieldManager})
		if err == nil {
			c.written.add(kindConfigMap, ns, LedgerName, created.ResourceVersion)
			return nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("team %s: ledger: %w", team, err)
		}
	}
	patch, err := json.Marshal(map[string]any{"data": data})
	if err != nil {
		return err
	}
	got, err := c.client.CoreV1().ConfigMaps(ns).Patch(ctx, LedgerName, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: FieldManager})
	if err != nil {
		return fmt.Errorf("team %s: ledger: %w", team, err)
	}
	c.written.add(kindConfigMap, ns, LedgerName, got.ResourceVersion)
	return nil
}
