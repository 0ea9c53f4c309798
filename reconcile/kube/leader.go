package kube

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// LeaderElection names the coordination Lease replicas of berth compete
// for. Only the holder applies; the others observe (so their status pages
// stay current) and take over within LeaseDuration when it goes away.
type LeaderElection struct {
	Namespace string
	Name      string
	// Identity is this replica's name in the Lease (the pod's name).
	Identity string
	// LeaseDuration, RenewDeadline and RetryPeriod are client-go's
	// (defaults 15 s, 10 s and 2 s).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

type elector struct {
	cfg    LeaderElection
	client kubernetes.Interface
	log    *slog.Logger
	lead   atomic.Bool
	le     atomic.Pointer[leaderelection.LeaderElector]
	done   sync.WaitGroup
}

func newElector(client kubernetes.Interface, cfg LeaderElection, log *slog.Logger) *elector {
	if cfg.LeaseDuration == 0 {
		cfg.LeaseDuration = 15 * time.Second
	}
	if cfg.RenewDeadline == 0 {
		cfg.RenewDeadline = 10 * time.Second
	}
	if cfg.RetryPeriod == 0 {
		cfg.RetryPeriod = 2 * time.Second
	}
	e := &elector{cfg: cfg, client: client, log: log}
	e.done.Add(1)
	return e
}

func (e *elector) name() string { return e.cfg.Namespace + "/" + e.cfg.Name }

func (e *elector) leading() bool { return e.lead.Load() }

// holder is who holds the Lease, as this replica last saw it.
func (e *elector) holder() string {
	if le := e.le.Load(); le != nil {
		return le.GetLeader()
	}
	return ""
}

// run campaigns for the Lease until ctx ends, again after each loss, and
// releases it on the way out so a successor need not wait it out.
func (e *elector) run(ctx context.Context) {
	defer e.done.Done()
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: e.cfg.Namespace, Name: e.cfg.Name},
		Client:     e.client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: e.cfg.Identity},
	}
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   e.cfg.LeaseDuration,
			RenewDeadline:   e.cfg.RenewDeadline,
			RetryPeriod:     e.cfg.RetryPeriod,
			ReleaseOnCancel: true,
			Name:            e.name(),
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(context.Context) {
					e.log.Info("leading: this replica applies", "lease", e.name(), "identity", e.cfg.Identity)
					e.lead.Store(true)
				},
				OnStoppedLeading: func() {
					e.lead.Store(false)
					e.log.Info("not leading: this replica only observes", "lease", e.name(), "identity", e.cfg.Identity)
				},
			},
		})
		if err != nil {
			e.log.Error("leader election", "lease", e.name(), "err", err)
			return
		}
		e.le.Store(le)
		le.Run(ctx)
	}
}

func (e *elector) wait() { e.done.Wait() }
