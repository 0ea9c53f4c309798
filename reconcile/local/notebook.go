package local

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/reconcile/notebook"
)

// ErrNoJupyter: a notebook without a command was to start, and no Jupyter
// server was found for it (Options.NotebookCommand).
var ErrNoJupyter = errors.New("no Jupyter server on this machine to run a notebook without a command: install one (pip install jupyterlab) or set the notebook's command")

// notebookPodSpec is what a notebook's pod gets on top of any pod's.
type notebookPodSpec struct {
	argv []string
	env  []string
	dir  string
}

func (c *Cluster) notebookStore() notebook.Store { return notebook.Store{Root: c.opts.StateDir} }

// notebookPod gives a notebook's pod its directory (kept across restarts
// and runs), its token (through JUPYTER_TOKEN_FILE) and, where the
// notebook has no command of its own, the Jupyter server listening on
// port.
func (c *Cluster) notebookPod(id berth.WorkloadID, argv []string, port int) (notebookPodSpec, error) {
	st := c.notebookStore()
	dir, err := st.Dir(id)
	if err != nil {
		return notebookPodSpec{}, err
	}
	if _, err := st.Token(id); err != nil {
		return notebookPodSpec{}, err
	}
	env := []string{notebook.EnvTokenFile + "=" + st.TokenFile(id), notebook.EnvDir + "=" + dir, notebook.EnvBaseURL + "=" + notebook.BaseURL}
	if len(argv) == 0 {
		c.findJupyter.Do(func() {
			if len(c.opts.NotebookCommand) == 0 && c.opts.FindNotebookCommand != nil {
				c.opts.NotebookCommand = c.opts.FindNotebookCommand()
				c.log.Info("Jupyter for notebooks without a command", "command", c.opts.NotebookCommand)
			}
		})
		if len(c.opts.NotebookCommand) == 0 {
			return notebookPodSpec{}, ErrNoJupyter
		}
		argv = notebook.Args(c.opts.NotebookCommand, port, notebook.BaseURL, dir)
	}
	return notebookPodSpec{argv: argv, env: env, dir: dir}, nil
}

// URL is where people reach a run of a service or notebook now, without
// any token: its proxy's host port where it is exposed on one, else a
// notebook's one replica's port. "" for anything else.
func (c *Cluster) url(r *record) string {
	s := r.Service
	if s == nil || r.Attempt == nil {
		return ""
	}
	host := c.opts.ExposeHost
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	switch {
	case s.Expose != nil && s.Expose.HostPort != 0:
		return notebook.URL(host, s.Expose.HostPort, "/", "")
	case r.Kind == berth.KindNotebook && len(r.Attempt.Pods) > 0 && len(r.Attempt.Pods[0].Ports) > 0:
		return notebook.URL("127.0.0.1", r.Attempt.Pods[0].Ports[0], notebook.BaseURL, "")
	}
	return ""
}

// idleLimit is a notebook's idle limit: the configuration's, where
// Observe was given one, else the one it was started with.
func (c *Cluster) idleLimit(r *record) time.Duration {
	if d, ok := c.idleLimits[r.Workload]; ok {
		return d
	}
	return r.Idle.D()
}

// noteIdleLimits keeps the notebooks' idle limits of cfg: a change of the
// limit alone restarts nothing, so it is read here.
func (c *Cluster) noteIdleLimits(cfg *berth.Config) {
	if cfg == nil || cfg == c.idleFrom {
		return // a revision's limits are read once, not every cycle
	}
	c.idleLimits, c.idleFrom = cfg.NotebookIdleLimits(), cfg
}

// watchIdle checks the notebooks every Options.IdleCheckEvery until ctx
// ends.
func (c *Cluster) watchIdle(ctx context.Context) {
	t := time.NewTicker(c.opts.IdleCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.checkIdle(ctx)
		}
	}
}

// idleCandidate is a live notebook with an idle limit.
type idleCandidate struct {
	key     berth.RunKey
	attempt int
	port    int
	since   time.Time
	limit   time.Duration
}

// checkIdle asks every live notebook with an idle limit for its last
// activity (its server's /api/status, which is not itself activity) and
// stops the ones idle for their limit, as JupyterHub's idle culler does.
// A server that does not answer is measured from its last answer, or
// from its start: one that never comes up does not hold its GPUs for
// good either. The requests are made without the lock.
func (c *Cluster) checkIdle(ctx context.Context) {
	c.idleMu.Lock()
	defer c.idleMu.Unlock()
	c.mu.Lock()
	var cands []idleCandidate
	for k, r := range c.ledger.runs {
		if r.Kind != berth.KindNotebook || r.Attempt == nil || r.Attempt.Starting || r.Stop != nil ||
			len(r.Attempt.Pods) == 0 || len(r.Attempt.Pods[0].Ports) == 0 {
			continue
		}
		limit := c.idleLimit(r)
		if limit <= 0 || !c.view(r).live {
			continue
		}
		cands = append(cands, idleCandidate{key: k, attempt: r.Attempt.N, port: r.Attempt.Pods[0].Ports[0],
			since: r.Attempt.StartedAt, limit: limit})
	}
	c.mu.Unlock()
	store := c.notebookStore()
	for _, cand := range cands {
		seenKey := cand.key.String() + "#" + strconv.Itoa(cand.attempt)
		if tok, err := store.ReadToken(cand.key.Workload); err == nil {
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			st, err := notebook.ReadStatus(rctx, c.idleClient, notebook.URL("127.0.0.1", cand.port, notebook.BaseURL, ""), tok)
			cancel()
			if err == nil {
				c.lastActivity[seenKey] = st.LastActivity
			}
		}
		idle, stop := notebook.Idle(c.lastActivity[seenKey], cand.since, c.opts.Now(), cand.limit)
		if stop {
			c.stopIdle(cand, notebook.IdleReason(idle, cand.limit))
			delete(c.lastActivity, seenKey)
		}
	}
}

// stopIdle stops a notebook found idle, unless it changed since (another
// attempt, or a stop already asked).
func (c *Cluster) stopIdle(cand idleCandidate, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.ledger.get(cand.key)
	if !ok || r.Attempt == nil || r.Attempt.N != cand.attempt || r.Stop != nil {
		return
	}
	r.Stop = &stopRequest{Phase: reconcile.PhaseStopped, Reason: reason, At: c.opts.Now(), Idle: true}
	if err := c.ledger.put(r); err != nil {
		c.log.Warn("cannot record an idle notebook's stop", "workload", r.Workload, "err", err)
		r.Stop = nil
		return
	}
	c.log.Info("stopping an idle notebook", "workload", r.Workload, "run", r.RunID, "reason", reason)
	c.signalPods(r, map[int]bool{})
}

// newIdleClient is the client of the idle checks: loopback only, no
// proxy from the environment.
func newIdleClient() *http.Client {
	return &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 10 * time.Second}
}
