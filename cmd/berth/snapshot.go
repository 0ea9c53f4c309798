package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/cue"
	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/reconcile/kube"
)

// snapshotOptions are snapshot's flags.
type snapshotOptions struct {
	cluster string
	file    string
	output  *outputFlag
	kf      kubeFlags
	client  clientOptions
}

func newSnapshotCmd() *cobra.Command {
	var o snapshotOptions
	cmd := &cobra.Command{
		Use:   "snapshot [DIR] --cluster NAME [--file FILE] [-o json|yaml]",
		Short: "Write a live cluster's state as a snapshot file for 'berth plan --snapshot'",
		Long: `snapshot loads the repository in DIR (default: the current directory) to
find the cluster NAME, reads that cluster (its GPU nodes, what berth runs on
it and where, what waits since when, and which runs finished) and writes it
in the snapshot format (#Snapshot in schema.cue) to --file FILE, or to
standard output. Plans made from the file need no cluster access; 'berth
plan --snapshot' reads either (JSON is the default).

Clusters of backend kubernetes are reached through --kubeconfig (default:
$KUBECONFIG, then ~/.kube/config, then the pod's service account) and the
context the repository's cluster names. A cluster of backend local (one
machine) is read from the 'berth serve' that runs it: --server, or the
serve.json in --state-dir (or any cluster, with --server). snapshot only
reads.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd, dirArg(cmd, args)) },
	}
	f := cmd.Flags()
	f.StringVar(&o.cluster, "cluster", "", "the repository's cluster to read")
	f.StringVar(&o.file, "file", "", "file to write (default: standard output)")
	o.output = addOutputFlag(cmd, formatJSON, formatYAML)
	o.output.hint = "the file to write is --file FILE"
	_ = cmd.RegisterFlagCompletionFunc("cluster", completeClusters(dirArg))
	o.kf.register(f, false)
	o.client.flags(cmd)
	return cmd
}

// run loads the repository in dir, reads the cluster and writes its
// snapshot.
func (o *snapshotOptions) run(cmd *cobra.Command, dir string) error {
	if o.cluster == "" {
		return usageError{errors.New("snapshot needs --cluster NAME")}
	}
	p := newProgress(cmd)
	defer p.done()
	p.show("snapshot: reading the repository %s...", dir)
	res, err := loadDir(dir)
	p.done()
	cfg := res.Config
	if err != nil {
		return printLoadError(cmd, err)
	}
	c, ok := cfg.Clusters[o.cluster]
	if !ok {
		return usageError{fmt.Errorf("--cluster %s: the repository defines %v", o.cluster, cfg.ClusterNames())}
	}
	p.show("snapshot: reading cluster %s...", o.cluster)
	snap, err := o.observe(cmd.Context(), cfg, c, dir)
	if err != nil {
		return err
	}
	p.done()
	if o.file == "" || o.file == "-" {
		return o.output.write(cmd.OutOrStdout(), snap)
	}
	var b bytes.Buffer
	if err := o.output.write(&b, snap); err != nil {
		return err
	}
	if err := writeFileAtomic(o.file, b.Bytes()); err != nil {
		return fmt.Errorf("--file %s: %w", o.file, err)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "snapshot of %s: %d nodes, %d running, %d queued, %d finished -> %s\n",
		o.cluster, len(snap.Nodes), len(snap.Running), len(snap.Queue), len(snap.Finished), o.file)
	return nil
}

// observe reads the cluster: a kubernetes one directly, a local one (or
// any, with --server) from the berth serve that runs it.
func (o *snapshotOptions) observe(ctx context.Context, cfg *berth.Config, c berth.Cluster, dir string) (berth.Snapshot, error) {
	if c.Backend != berth.BackendKubernetes || o.client.server != "" {
		// A local cluster is this machine as the berth serve that runs
		// it observes it.
		snaps, err := serverSnapshots(&o.client, o.cluster)
		if err != nil {
			return berth.Snapshot{}, err
		}
		return snaps[0], nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	kc, err := o.kf.open(o.cluster, c, dir, slog.New(slog.DiscardHandler), false)
	if err != nil {
		return berth.Snapshot{}, err
	}
	defer kc.Close()
	obs, err := kc.Observe(ctx, cfg)
	if err != nil {
		return berth.Snapshot{}, err
	}
	// The queue and the finished runs as the engine derives them from the
	// ledger (a failed run with retries left waits).
	return reconcile.Snapshot(cfg, o.cluster, obs, time.Now().UTC()), nil
}

// serverSnapshots asks a running berth serve for its clusters' snapshots
// (one cluster's, when named), as its engine last observed them.
func serverSnapshots(c *clientOptions, cluster string) ([]berth.Snapshot, error) {
	path := "/api/snapshot"
	if cluster != "" {
		path += "?cluster=" + url.QueryEscape(cluster)
	}
	b, code, err := c.get(path)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("berth serve: %s", strings.TrimSpace(string(b)))
	}
	// Each is checked against #Snapshot as a file would be.
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("berth serve's snapshot: %w", err)
	}
	if len(raw) == 0 {
		return nil, errors.New("berth serve observes no cluster yet")
	}
	snaps := make([]berth.Snapshot, 0, len(raw))
	for i, r := range raw {
		snap, err := cue.LoadSnapshot(fmt.Sprintf("%s snapshot %d", c.server, i), r)
		if err != nil {
			return nil, fmt.Errorf("berth serve's snapshot: %w", err)
		}
		snaps = append(snaps, *snap)
	}
	return snaps, nil
}

// kubeFlags are the flags of the commands that reach clusters of backend
// kubernetes (snapshot and serve).
type kubeFlags struct {
	kubeconfig string
	// leaderNamespace turns leader election on: the namespace of the Lease
	// replicas of serve compete for.
	leaderNamespace string
	leaderName      string
	leaseDuration   time.Duration
}

func (k *kubeFlags) register(f *pflag.FlagSet, leader bool) {
	f.StringVar(&k.kubeconfig, "kubeconfig", "", "kubeconfig of the kubernetes clusters (default: $KUBECONFIG, ~/.kube/config, or in a pod its service account); each cluster uses the context its 'context' names")
	if leader {
		f.StringVar(&k.leaderNamespace, "leader-election-namespace", "", "namespace of the Lease replicas compete for (empty: no leader election; only the holder applies to kubernetes clusters)")
		f.StringVar(&k.leaderName, "leader-election-name", "berth", "name of the Lease")
		f.DurationVar(&k.leaseDuration, "leader-election-lease-duration", 15*time.Second, "how long a Lease lasts unrenewed: a standby takes over within it after the leader dies (renewal deadline 2/3 of it)")
	}
}

// open builds the kube.Cluster of a repository's cluster. The environment
// is read here, not below cmd/.
func (k kubeFlags) open(name string, c berth.Cluster, repo string, log *slog.Logger, leader bool) (*kube.Cluster, error) {
	src := kube.ConfigSource{Kubeconfig: k.kubeconfig, Context: c.Context}
	if src.Kubeconfig == "" {
		if env := os.Getenv("KUBECONFIG"); env != "" {
			src.Kubeconfig = strings.Split(env, string(os.PathListSeparator))[0]
		} else if home, err := os.UserHomeDir(); err == nil {
			if p := filepath.Join(home, ".kube", "config"); fileExists(p) {
				src.Kubeconfig = p
			}
		}
	}
	if src.Kubeconfig == "" && os.Getenv("KUBERNETES_SERVICE_HOST") != "" {
		src.InCluster = true
	}
	cfg, err := kube.RESTConfig(src)
	if err != nil {
		return nil, usageError{fmt.Errorf("cluster %s: %w", name, err)}
	}
	opts := kube.Options{Name: name, Config: cfg, Render: kube.FromCluster(c, repo), Logger: log}
	if leader && k.leaderNamespace != "" {
		id := os.Getenv("POD_NAME")
		if id == "" {
			id, _ = os.Hostname()
		}
		opts.LeaderElection = &kube.LeaderElection{Namespace: k.leaderNamespace, Name: k.leaderName + "-" + name, Identity: id}
		if d := k.leaseDuration; d > 0 && d != 15*time.Second {
			if d < time.Second {
				return nil, usageError{fmt.Errorf("--leader-election-lease-duration %v: at least 1s", d)}
			}
			opts.LeaderElection.LeaseDuration, opts.LeaderElection.RenewDeadline, opts.LeaderElection.RetryPeriod = d, d*2/3, d/8
		}
	}
	kc, err := kube.New(opts)
	if err != nil {
		return nil, err
	}
	return kc, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
