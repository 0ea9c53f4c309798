package traffic

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/berth-gpu/berth"
)

// Endpoint is one replica of a service as the local backend runs it: a
// pod on this machine with its own ports.
type Endpoint struct {
	// ID is the pod, unique across the service's attempts ("attempt-2/pod-0").
	ID string
	// Ports are the pod's ports, one per port of the workload, in order.
	Ports []int
	// Env and Dir are the pod's, for command probes.
	Env []string
	Dir string
}

// Router keeps, for every service the local backend runs, a Pool of its
// pods that pass readiness and, where the service is exposed on a host
// port, berth's proxy listening there. The backend tells it which pods run
// (Sync) and, during a rollout, waits on it (Shift).
type Router struct {
	log       *slog.Logger
	unhealthy func(w berth.WorkloadID, pod, why string)
	// Listen opens the proxy's listener for a host port (default: TCP on
	// all interfaces).
	listen func(port int) (net.Listener, error)

	mu       sync.Mutex
	services map[berth.WorkloadID]*routed
}

type routed struct {
	w     berth.Workload
	pool  *Pool
	srv   *http.Server
	port  int // the host port srv listens on
	pods  map[string]*watched
	order []string // pod ids as added
}

type watched struct {
	Endpoint
	cancel context.CancelFunc
	ready  chan struct{}
	once   sync.Once
}

// RouterOptions configure a Router.
type RouterOptions struct {
	Log *slog.Logger
	// Unhealthy is called, once, for a pod whose liveness probe failed
	// failureThreshold times in a row: the backend restarts it.
	Unhealthy func(w berth.WorkloadID, pod, why string)
	// ListenHost is the address the proxies listen on (default: all
	// interfaces, as a host port is for people to reach).
	ListenHost string
}

// NewRouter is a Router with no services.
func NewRouter(o RouterOptions) *Router {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Router{
		log:       o.Log,
		unhealthy: o.Unhealthy,
		services:  map[berth.WorkloadID]*routed{},
		listen: func(port int) (net.Listener, error) {
			return net.Listen("tcp", net.JoinHostPort(o.ListenHost, strconv.Itoa(port)))
		},
	}
}

// Routed reports whether w has anything for a Router: ports.
func Routed(w berth.Workload) bool { return len(w.Ports) > 0 }

// Sync makes the pods of service w exactly eps: new pods are probed and
// join the pool once ready; pods no longer there are drained in the
// background. It opens w's proxy where w is exposed on a host port.
func (r *Router) Sync(w berth.Workload, eps []Endpoint) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, err := r.service(w)
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, ep := range eps {
		keep[ep.ID] = true
		if _, ok := s.pods[ep.ID]; !ok {
			r.add(s, ep)
		}
	}
	for _, id := range s.order {
		if !keep[id] {
			r.drop(s, id, nil)
		}
	}
	return nil
}

// Shift moves a service's traffic from the pods from to the pods to: it
// adds the new pods, waits until every one passes readiness (or ctx ends:
// an error, and the old pods keep serving), then drains the old ones: when
// it returns, no request is in flight to them and none will be sent, so
// they can be stopped.
func (r *Router) Shift(ctx context.Context, w berth.Workload, from, to []Endpoint) error {
	r.mu.Lock()
	s, err := r.service(w)
	if err != nil {
		r.mu.Unlock()
		return err
	}
	var waits []*watched
	for _, ep := range to {
		p, ok := s.pods[ep.ID]
		if !ok {
			p = r.add(s, ep)
		}
		waits = append(waits, p)
	}
	r.mu.Unlock()
	for _, p := range waits {
		select {
		case <-p.ready:
		case <-ctx.Done():
			return fmt.Errorf("service %s: new replica %s not ready: %w", w.ID(), p.ID, ctx.Err())
		}
	}
	var drained []chan error
	r.mu.Lock()
	for _, ep := range from {
		ch := make(chan error, 1)
		r.drop(s, ep.ID, ch)
		drained = append(drained, ch)
	}
	r.mu.Unlock()
	var errs []error
	for _, ch := range drained {
		errs = append(errs, <-ch)
	}
	return errors.Join(errs...)
}

// Remove forgets a service: its pods leave the pool and its proxy closes.
func (r *Router) Remove(id berth.WorkloadID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.services[id]
	if !ok {
		return
	}
	for _, pid := range s.order {
		r.drop(s, pid, nil)
	}
	if s.srv != nil {
		s.srv.Close()
	}
	delete(r.services, id)
}

// Services lists the services the Router routes, sorted.
func (r *Router) Services() []berth.WorkloadID {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Sorted(maps.Keys(r.services))
}

// Ready lists the pods of a service that pass readiness.
func (r *Router) Ready(id berth.WorkloadID) []string {
	r.mu.Lock()
	s, ok := r.services[id]
	r.mu.Unlock()
	if !ok {
		return nil
	}
	return s.pool.Ready()
}

// Requests is how many requests the proxy of service id has sent to its
// replicas so far; ok is false for a service it does not route.
func (r *Router) Requests(id berth.WorkloadID) (n uint64, ok bool) {
	r.mu.Lock()
	s, ok := r.services[id]
	r.mu.Unlock()
	if !ok {
		return 0, false
	}
	return s.pool.Requests(), true
}

// Close removes every service.
func (r *Router) Close() {
	for _, id := range r.Services() {
		r.Remove(id)
	}
}

// service is w's entry, made or updated to w's spec; its proxy listens on
// w's host port.
func (r *Router) service(w berth.Workload) (*routed, error) {
	s, ok := r.services[w.ID()]
	if !ok {
		s = &routed{w: w, pool: NewPool(string(w.ID())), pods: map[string]*watched{}}
		r.services[w.ID()] = s
	}
	s.w = w
	want := 0
	if w.Expose != nil {
		want = w.Expose.HostPort
	}
	if s.port == want {
		return s, nil
	}
	if s.srv != nil {
		s.srv.Close()
		s.srv, s.port = nil, 0
	}
	if want == 0 {
		return s, nil
	}
	l, err := r.listen(want)
	if err != nil {
		return s, fmt.Errorf("service %s: expose.hostPort %d: %w", w.ID(), want, err)
	}
	s.srv = &http.Server{Handler: s.pool.Proxy(r.log), ReadHeaderTimeout: 10 * time.Second}
	s.port = want
	go s.srv.Serve(l)
	r.log.Info("proxy listening", "service", w.ID(), "hostPort", want)
	return s, nil
}

// add starts probing a pod; it joins the pool unready.
func (r *Router) add(s *routed, ep Endpoint) *watched {
	ctx, cancel := context.WithCancel(context.Background())
	p := &watched{Endpoint: ep, cancel: cancel, ready: make(chan struct{})}
	s.pods[ep.ID] = p
	s.order = append(s.order, ep.ID)
	if idx := portIndex(s.w, exposedPort(s.w)); idx >= 0 && idx < len(ep.Ports) {
		s.pool.Add(ep.ID, net.JoinHostPort("127.0.0.1", strconv.Itoa(ep.Ports[idx])))
	}
	go r.probe(ctx, s, p)
	if s.w.Health != nil && s.w.Health.Liveness != nil && r.unhealthy != nil {
		go r.live(ctx, s.w, *s.w.Health.Liveness, p)
	}
	return p
}

// drop takes a pod out: it stops its probes and drains it from the pool,
// in the background; done, if not nil, receives the drain's result.
func (r *Router) drop(s *routed, id string, done chan error) {
	p, ok := s.pods[id]
	if !ok {
		if done != nil {
			done <- nil
		}
		return
	}
	delete(s.pods, id)
	for i, x := range s.order {
		if x == id {
			s.order = append(s.order[:i:i], s.order[i+1:]...)
			break
		}
	}
	p.cancel()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := s.pool.Drain(ctx, id)
		if done != nil {
			done <- err
		}
	}()
}

// probe runs a pod's readiness probe until ctx ends and sets its
// readiness in the pool. Without a readiness probe, a pod is ready once
// its port accepts a connection.
func (r *Router) probe(ctx context.Context, s *routed, p *watched) {
	r.mu.Lock()
	w := s.w
	r.mu.Unlock()
	readiness := berth.Probe{Period: berth.Duration(time.Second), Timeout: berth.Duration(time.Second), FailureThreshold: 1}
	if w.Health != nil && w.Health.Readiness != nil {
		readiness = *w.Health.Readiness
	}
	period := max(readiness.Period.D(), 50*time.Millisecond)
	// Until it is first ready, a pod is checked often: a rollout waits on it.
	fast := min(period, 100*time.Millisecond)
	tr := NewTracker(readiness, time.Now(), false)
	client := &http.Client{}
	target := Target{Host: "127.0.0.1", Env: p.Env, Dir: p.Dir}
	if i := portIndex(w, readiness.Port); i >= 0 && i < len(p.Ports) {
		target.Port = p.Ports[i]
	}
	for {
		err := Check(ctx, client, readiness, target)
		if ctx.Err() != nil {
			return
		}
		if tr.Observe(err, time.Now()) {
			r.log.Info("replica readiness", "service", w.ID(), "pod", p.ID, "ready", tr.Passing, "err", err)
		}
		s.pool.SetReady(p.ID, tr.Passing)
		next := period
		if tr.Passing {
			p.once.Do(func() { close(p.ready) })
		} else {
			next = fast
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(next):
		}
	}
}

// live runs a pod's liveness probe until ctx ends or the probe fails
// failureThreshold times in a row past the start-up grace; then the pod
// leaves the pool and the backend is told to restart it.
func (r *Router) live(ctx context.Context, w berth.Workload, liveness berth.Probe, p *watched) {
	tr := NewTracker(liveness, time.Now(), true)
	client := &http.Client{}
	target := Target{Host: "127.0.0.1", Env: p.Env, Dir: p.Dir}
	if i := portIndex(w, liveness.Port); i >= 0 && i < len(p.Ports) {
		target.Port = p.Ports[i]
	}
	period := max(liveness.Period.D(), 50*time.Millisecond)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(period):
		}
		err := Check(ctx, client, liveness, target)
		if ctx.Err() != nil {
			return
		}
		if tr.Observe(err, time.Now()) && !tr.Passing {
			why := fmt.Sprintf("liveness failed %d times in a row: %v", tr.Threshold, err)
			r.log.Warn("restarting a replica", "service", w.ID(), "pod", p.ID, "reason", why)
			r.mu.Lock()
			if s, ok := r.services[w.ID()]; ok {
				s.pool.SetReady(p.ID, false)
			}
			r.mu.Unlock()
			r.unhealthy(w.ID(), p.ID, why)
			return
		}
	}
}

// portIndex is the index in w.Ports of the port ref names, or -1.
func portIndex(w berth.Workload, ref berth.PortRef) int {
	want, ok := w.Port(ref)
	if !ok {
		return -1
	}
	for i, p := range w.Ports {
		if p == want {
			return i
		}
	}
	return -1
}
