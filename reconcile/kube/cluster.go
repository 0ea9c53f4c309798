package kube

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fluxcd/pkg/ssa"
	"github.com/go-logr/logr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
)

// Cluster is a Kubernetes cluster berth runs workloads on. Its informers
// start with the first Observe or Apply (or Start) and stop with Close.
type Cluster struct {
	opts   Options
	client kubernetes.Interface
	crc    client.Client
	// ssa applies, checks drift and diffs (fluxcd/pkg/ssa, ssa.go).
	ssa *ssa.ResourceManager
	// cache is the informers' view; replaced by a fresh one when the API
	// server comes back after an outage (see healthy).
	cache atomic.Pointer[objects]
	sick  atomic.Bool

	written written
	drift   driftCache
	// scaleMu orders the writes of autoscaled services' admitted replicas
	// (apply_scale.go).
	scaleMu sync.Mutex
	// applyMu keeps an idle notebook's stop (notebook_idle.go) from
	// running beside an Apply.
	applyMu sync.Mutex
	idle    idleState
	elector *elector

	startMu  sync.Mutex
	started  bool
	ctx      context.Context
	cancel   context.CancelFunc
	stopOnce sync.Once
}

var _ reconcile.Cluster = (*Cluster)(nil)

var setCtrlLogger sync.Once

// New returns a Cluster. It does not contact the API server.
func New(opts Options) (*Cluster, error) {
	if opts.Name == "" || opts.Config == nil {
		return nil, errors.New("kube: a cluster needs a Name and a Config")
	}
	opts = opts.withDefaults()
	cfg := rest.CopyConfig(opts.Config)
	// client-go's default of 5 requests per second would make a
	// thousand-object apply take minutes; the API server's priority and
	// fairness is what protects it.
	cfg.QPS = max(cfg.QPS, 1000)
	cfg.Burst = max(cfg.Burst, 2000)
	if cfg.UserAgent == "" {
		cfg.UserAgent = "berth/" + berth.Version
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", opts.Name, err)
	}
	cs, err := kubernetes.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", opts.Name, err)
	}
	mapper, err := apiutil.NewDynamicRESTMapper(cfg, hc)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", opts.Name, err)
	}
	// controller-runtime's client logs through its package logger, and
	// prints a stack trace if none was ever set: the first cluster's
	// logger is it.
	setCtrlLogger.Do(func() { ctrllog.SetLogger(logr.FromSlogHandler(opts.Logger.Handler())) })
	crc, err := client.New(cfg, client.Options{HTTPClient: hc, Mapper: mapper})
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", opts.Name, err)
	}
	c := &Cluster{opts: opts, client: cs, crc: crc}
	c.ssa = newResourceManager(c)
	if c.opts.NotebookActivity == nil {
		c.opts.NotebookActivity = c.JupyterActivity
	}
	c.cache.Store(newObjects(cs))
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if opts.LeaderElection != nil {
		c.elector = newElector(cs, *opts.LeaderElection, opts.Logger)
	}
	return c, nil
}

// Name is the cluster's name in the repository.
func (c *Cluster) Name() string { return c.opts.Name }

// Client is the clientset the cluster uses (for tools and tests).
func (c *Cluster) Client() kubernetes.Interface { return c.client }

// Start starts the informers (and leader election) and waits for their
// first list. Observe and Apply call it; calling it again does nothing.
func (c *Cluster) Start(ctx context.Context) error {
	c.startMu.Lock()
	defer c.startMu.Unlock()
	if c.started {
		return nil
	}
	if c.ctx.Err() != nil {
		return fmt.Errorf("cluster %s: closed", c.opts.Name)
	}
	if err := c.objs().start(c.ctx, c.opts.SyncTimeout); err != nil {
		c.objs().stop()
		return fmt.Errorf("cluster %s: %w", c.opts.Name, err)
	}
	if c.elector != nil {
		go c.elector.run(c.ctx)
		// A free Lease is taken within a retry period: wait that long, so
		// the first reconcile of a sole or first replica applies.
		deadline := time.Now().Add(2 * c.elector.cfg.RetryPeriod)
		for !c.elector.leading() && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
		}
	}
	go c.releaseRanks(c.ctx)
	if c.opts.IdleCheckEvery > 0 {
		go c.watchIdle(c.ctx)
	}
	c.started = true
	return nil
}

// Close stops the informers and gives up the Lease.
func (c *Cluster) Close() {
	c.stopOnce.Do(func() {
		c.cancel()
		if c.elector != nil {
			c.elector.wait()
		}
	})
}

// Leading reports whether this replica may apply: it holds the Lease, or
// leader election is off.
func (c *Cluster) Leading() bool { return c.elector == nil || c.elector.leading() }

// NotLeaderError is Apply's error on a replica that does not hold the
// Lease: another replica acts; this one only observes.
type NotLeaderError struct {
	Cluster, Lease, Holder string
}

func (e *NotLeaderError) Error() string {
	h := e.Holder
	if h == "" {
		h = "no one yet"
	}
	return fmt.Sprintf("cluster %s: not the leader (Lease %s is held by %s): changes are left to the leader", e.Cluster, e.Lease, h)
}

// flavorLabels are the node labels of a flavor in cfg (nil: none known).
func flavorLabels(cfg *berth.Config, flavor string) map[string]string {
	if cfg == nil {
		return nil
	}
	// A run that takes from several resource groups ("h100+cpu-nodes")
	// runs on nodes that carry every one of its flavors' labels.
	if f, ok := cfg.FlavorNamed(flavor); ok {
		return f.NodeLabels
	}
	return nil
}

func (c *Cluster) objs() *objects { return c.cache.Load() }

// healthy asks the API server's /readyz: a reconcile against an API server
// that cannot be reached fails (and is retried) rather than deciding from
// what the informers last saw. When it answers again after failing, the
// informers are replaced by fresh ones that list everything at once:
// client-go's own reconnection backs off for up to 30 s, and deciding
// from a cache that missed the outage's end would only waste a reconcile.
func (c *Cluster) healthy(ctx context.Context) error {
	var code int
	res := c.client.Discovery().RESTClient().Get().AbsPath("/readyz").Timeout(5 * time.Second).Do(ctx).StatusCode(&code)
	err := res.Error()
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("HTTP %d", code)
	}
	if err != nil {
		c.sick.Store(true)
		return fmt.Errorf("cluster %s: API server not ready: %w", c.opts.Name, err)
	}
	if c.sick.Load() {
		fresh := newObjects(c.client)
		if err := fresh.start(c.ctx, c.opts.SyncTimeout); err != nil {
			fresh.stop()
			return fmt.Errorf("cluster %s: relisting after the API server came back: %w", c.opts.Name, err)
		}
		c.cache.Swap(fresh).stop()
		c.sick.Store(false)
		c.opts.Logger.Info("API server is back: informers relisted", "cluster", c.opts.Name)
	}
	return nil
}
