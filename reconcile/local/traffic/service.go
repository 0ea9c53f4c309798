package traffic

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/berth-gpu/berth"
)

// Replica is one started replica, as its Starter reports it.
type Replica interface {
	// ID names the replica uniquely among a service's replicas, old and new.
	ID() string
	// Target is where probes and requests reach it: Target(port) for the
	// workload's port p.
	Target(p berth.Port) Target
	// Exited is closed when the replica's process has ended.
	Exited() <-chan struct{}
}

// Starter starts and stops replicas: the local backend's pods, or a
// test's processes.
type Starter interface {
	Start(ctx context.Context, w berth.Workload) (Replica, error)
	// Stop ends the replica and returns once its process has ended.
	Stop(ctx context.Context, r Replica) error
}

// ServiceOptions configure a Service.
type ServiceOptions struct {
	Starter Starter
	Pool    *Pool
	// Now is the clock of the probe trackers (default time.Now).
	Now func() time.Time
	Log *slog.Logger
	// ReadyTimeout bounds how long a rollout waits for a new replica to
	// become ready before it gives up and stops it (default 2m).
	ReadyTimeout time.Duration
}

// Service keeps a service's replicas running behind its pool.
type Service struct {
	opts   ServiceOptions
	client *http.Client

	mu       sync.Mutex
	w        berth.Workload
	replicas map[string]*running
	// restarts counts replicas replaced after a failed liveness probe or
	// an exit.
	restarts int
}

// running is one replica and its probe loop.
type running struct {
	Replica
	cancel context.CancelFunc
	ready  chan struct{} // closed the first time readiness passes
	once   sync.Once
	done   chan struct{} // closed when the probe loop ended
}

// NewService is a service with no replicas yet; Scale starts them.
func NewService(w berth.Workload, opts ServiceOptions) *Service {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 2 * time.Minute
	}
	return &Service{opts: opts, w: w, replicas: map[string]*running{}, client: &http.Client{}}
}

// Replicas lists the current replicas' ids.
func (s *Service) Replicas() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for id := range s.replicas {
		out = append(out, id)
	}
	return out
}

// Restarts is how many replicas were replaced after a failure.
func (s *Service) Restarts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.restarts
}

// Scale starts replicas until there are n of the current spec and waits
// until they are ready.
func (s *Service) Scale(ctx context.Context, n int) error {
	s.mu.Lock()
	missing, w := n-len(s.replicas), s.w
	s.mu.Unlock()
	var started []*running
	for range missing {
		r, err := s.startOne(ctx, w)
		if err != nil {
			return err
		}
		started = append(started, r)
	}
	for _, r := range started {
		if err := s.waitReady(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

// Close stops every replica.
func (s *Service) Close(ctx context.Context) error {
	s.mu.Lock()
	all := make([]*running, 0, len(s.replicas))
	for _, r := range s.replicas {
		all = append(all, r)
	}
	s.mu.Unlock()
	var first error
	for _, r := range all {
		if err := s.stopOne(ctx, r); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Roll replaces every replica with one of spec w without dropping below
// the ready count: it starts up to maxSurge new replicas, waits until they
// are ready (so the proxy sends them requests), then drains and stops as
// many old ones; with maxSurge 0 it stops up to maxUnavailable old ones
// first. A new replica that does not become ready stops the rollout and
// leaves the old ones serving.
func (s *Service) Roll(ctx context.Context, w berth.Workload) error {
	s.mu.Lock()
	old := make([]*running, 0, len(s.replicas))
	for _, r := range s.replicas {
		old = append(old, r)
	}
	s.w = w
	s.mu.Unlock()
	ro := w.RolloutOrDefault()
	step := ro.MaxSurge
	if step == 0 {
		step = max(ro.MaxUnavailable, 1)
	}
	for len(old) > 0 {
		n := min(step, len(old))
		batch := old[:n]
		old = old[n:]
		if ro.MaxSurge == 0 {
			for _, r := range batch {
				if err := s.stopOne(ctx, r); err != nil {
					return err
				}
			}
		}
		var fresh []*running
		for range n {
			r, err := s.startOne(ctx, w)
			if err != nil {
				return fmt.Errorf("rollout: %w", err)
			}
			fresh = append(fresh, r)
		}
		for _, r := range fresh {
			if err := s.waitReady(ctx, r); err != nil {
				for _, f := range fresh {
					s.stopOne(ctx, f)
				}
				return fmt.Errorf("rollout: %w", err)
			}
		}
		if ro.MaxSurge > 0 {
			for _, r := range batch {
				if err := s.stopOne(ctx, r); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (s *Service) startOne(ctx context.Context, w berth.Workload) (*running, error) {
	rep, err := s.opts.Starter.Start(ctx, w)
	if err != nil {
		return nil, fmt.Errorf("service %s: start replica: %w", w.ID(), err)
	}
	port, _ := w.Port(exposedPort(w))
	s.opts.Pool.Add(rep.ID(), addrOf(rep.Target(port)))
	pctx, cancel := context.WithCancel(context.Background())
	r := &running{Replica: rep, cancel: cancel, ready: make(chan struct{}), done: make(chan struct{})}
	s.mu.Lock()
	s.replicas[rep.ID()] = r
	s.mu.Unlock()
	go s.watch(pctx, w, r)
	return r, nil
}

// stopOne drains a replica from the pool, then stops it.
func (s *Service) stopOne(ctx context.Context, r *running) error {
	s.mu.Lock()
	delete(s.replicas, r.ID())
	s.mu.Unlock()
	r.cancel()
	<-r.done
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	derr := s.opts.Pool.Drain(dctx, r.ID())
	cancel()
	if derr != nil {
		s.opts.Log.Warn("stopping a replica with requests in flight", "replica", r.ID(), "err", derr)
	}
	return s.opts.Starter.Stop(ctx, r.Replica)
}

func (s *Service) waitReady(ctx context.Context, r *running) error {
	t := time.NewTimer(s.opts.ReadyTimeout)
	defer t.Stop()
	select {
	case <-r.ready:
		return nil
	case <-r.Exited():
		return fmt.Errorf("replica %s exited before it was ready", r.ID())
	case <-t.C:
		return fmt.Errorf("replica %s not ready after %s", r.ID(), s.opts.ReadyTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// watch runs a replica's readiness and liveness probes until ctx ends,
// sets its readiness in the pool, and replaces it when its liveness fails
// or its process exits.
func (s *Service) watch(ctx context.Context, w berth.Workload, r *running) {
	defer close(r.done)
	started := s.opts.Now()
	var readiness, liveness *berth.Probe
	if w.Health != nil {
		readiness, liveness = w.Health.Readiness, w.Health.Liveness
	}
	if readiness == nil {
		s.markReady(r, true)
	}
	ready := tracker(readiness, started, false)
	alive := tracker(liveness, started, true)
	tick := time.NewTicker(probeTick(readiness, liveness))
	defer tick.Stop()
	var nextReady, nextLive time.Time
	for {
		now := s.opts.Now()
		if readiness != nil && !now.Before(nextReady) {
			nextReady = now.Add(readiness.Period.D())
			err := Check(ctx, s.client, *readiness, s.target(w, r, *readiness))
			if ctx.Err() != nil {
				return
			}
			ready.Observe(err, s.opts.Now())
			s.markReady(r, ready.Passing)
		}
		if liveness != nil && !now.Before(nextLive) {
			nextLive = now.Add(liveness.Period.D())
			err := Check(ctx, s.client, *liveness, s.target(w, r, *liveness))
			if ctx.Err() != nil {
				return
			}
			if alive.Observe(err, s.opts.Now()) && !alive.Passing {
				go s.replace(r, fmt.Sprintf("liveness failed %d times: %v", alive.Threshold, err))
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-r.Exited():
			s.opts.Pool.SetReady(r.ID(), false)
			go s.replace(r, "exited")
			return
		case <-tick.C:
		}
	}
}

func (s *Service) markReady(r *running, ready bool) {
	s.opts.Pool.SetReady(r.ID(), ready)
	if ready {
		r.once.Do(func() { close(r.ready) })
	}
}

// replace stops a failed replica and starts one of the current spec in
// its place, unless it was already taken out (a rollout or Close).
func (s *Service) replace(r *running, why string) {
	s.mu.Lock()
	_, ours := s.replicas[r.ID()]
	w := s.w
	if ours {
		s.restarts++
	}
	s.mu.Unlock()
	if !ours {
		return
	}
	s.opts.Log.Warn("restarting a replica", "service", w.ID(), "replica", r.ID(), "reason", why)
	ctx := context.Background()
	if err := s.stopOne(ctx, r); err != nil {
		s.opts.Log.Warn("stopping a failed replica", "replica", r.ID(), "err", err)
	}
	if _, err := s.startOne(ctx, w); err != nil {
		s.opts.Log.Error("restarting a replica", "service", w.ID(), "err", err)
	}
}

func (s *Service) target(w berth.Workload, r *running, p berth.Probe) Target {
	port, _ := w.Port(p.Port)
	return r.Target(port)
}

func tracker(p *berth.Probe, started time.Time, passing bool) *Tracker {
	if p == nil {
		return &Tracker{Passing: passing}
	}
	return NewTracker(*p, started, passing)
}

// probeTick is how often the probe loop wakes: often enough for the
// shorter period, and to notice an exit soon.
func probeTick(ps ...*berth.Probe) time.Duration {
	d := 250 * time.Millisecond
	for _, p := range ps {
		if p != nil && p.Period.D() > 0 {
			d = min(d, p.Period.D())
		}
	}
	return d
}

func exposedPort(w berth.Workload) berth.PortRef {
	if w.Expose != nil {
		return w.Expose.Port
	}
	return berth.PortRef{}
}

func addrOf(t Target) string { return fmt.Sprintf("%s:%d", t.Host, t.Port) }
