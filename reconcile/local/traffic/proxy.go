package traffic

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"time"
)

// Pool is the replicas of one service that the proxy may send requests
// to. Replicas are added unready; readiness makes them eligible.
type Pool struct {
	name string
	mu   sync.Mutex
	// cond is signalled when a request to a replica ends, for Drain.
	cond     *sync.Cond
	replicas []*member
	next     int
	// requests counts the requests sent to a replica.
	requests uint64
}

type member struct {
	id     string
	addr   string // host:port
	ready  bool
	active int
}

// NewPool is an empty pool for the service name ("serving/chat-api"),
// which the proxy's error responses name.
func NewPool(name string) *Pool {
	p := &Pool{name: name}
	p.cond = sync.NewCond(&p.mu)
	return p
}

// Add puts a replica in the pool, not ready.
func (p *Pool) Add(id, addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.replicas = append(p.replicas, &member{id: id, addr: addr})
}

// SetReady makes a replica eligible for requests or not.
func (p *Pool) SetReady(id string, ready bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if m := p.find(id); m != nil {
		m.ready = ready
	}
}

// Ready lists the ids of the ready replicas, in the order they were
// added.
func (p *Pool) Ready() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, m := range p.replicas {
		if m.ready {
			out = append(out, m.id)
		}
	}
	return out
}

// Drain takes a replica out of the pool: no request is sent to it from
// now on, and Drain returns once the requests in flight to it have ended,
// or ctx is done.
func (p *Pool) Drain(ctx context.Context, id string) error {
	p.mu.Lock()
	m := p.find(id)
	if m == nil {
		p.mu.Unlock()
		return nil
	}
	p.remove(m)
	stop := context.AfterFunc(ctx, func() {
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
	})
	defer stop()
	for m.active > 0 && ctx.Err() == nil {
		p.cond.Wait()
	}
	n := m.active
	p.mu.Unlock()
	if n > 0 {
		return fmt.Errorf("replica %s: %d requests still in flight: %w", id, n, ctx.Err())
	}
	return nil
}

func (p *Pool) find(id string) *member {
	for _, m := range p.replicas {
		if m.id == id {
			return m
		}
	}
	return nil
}

func (p *Pool) remove(m *member) {
	for i, x := range p.replicas {
		if x == m {
			p.replicas = append(p.replicas[:i:i], p.replicas[i+1:]...)
			return
		}
	}
}

// pick is the next ready replica, round robin, skipping those tried; it
// counts the request as in flight to it.
func (p *Pool) pick(tried map[*member]bool) *member {
	p.mu.Lock()
	defer p.mu.Unlock()
	for range len(p.replicas) {
		m := p.replicas[p.next%len(p.replicas)]
		p.next++
		if m.ready && !tried[m] {
			m.active++
			if len(tried) == 0 {
				p.requests++
			}
			return m
		}
	}
	return nil
}

func (p *Pool) done(m *member) {
	p.mu.Lock()
	m.active--
	p.cond.Broadcast()
	p.mu.Unlock()
}

// refused marks a replica that refused a connection unready at once,
// rather than after its readiness probe fails failureThreshold times: its
// process is gone or not listening. Its readiness probe makes it ready
// again if it comes back.
func (p *Pool) refused(m *member) {
	p.mu.Lock()
	m.ready = false
	p.mu.Unlock()
}

// NoReplicaError is the proxy's answer when no replica is ready.
type NoReplicaError struct{ Service string }

func (e *NoReplicaError) Error() string {
	return "service " + e.Service + ": no ready replica"
}

// Proxy is a reverse proxy to the pool's ready replicas.
func (p *Pool) Proxy(log *slog.Logger) http.Handler {
	base := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
	}
	return &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme = "http"
			r.Out.URL.Host = "replica" // the transport picks one
			r.SetXForwarded()
			r.Out.Host = r.In.Host
		},
		Transport: &transport{pool: p, base: base},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			var none *NoReplicaError
			status := http.StatusBadGateway
			if errors.As(err, &none) {
				status = http.StatusServiceUnavailable
			}
			if log != nil {
				log.Warn("proxy", "service", p.name, "err", err)
			}
			http.Error(w, err.Error(), status)
		},
	}
}

// transport sends each request to a ready replica, and one that could not
// connect to another: the request never reached the first, so sending it
// again cannot do anything twice.
type transport struct {
	pool *Pool
	base http.RoundTripper
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	tried := map[*member]bool{}
	for {
		m := t.pool.pick(tried)
		if m == nil {
			return nil, &NoReplicaError{Service: t.pool.name}
		}
		out := req.Clone(req.Context())
		out.URL.Host = m.addr
		resp, err := t.base.RoundTrip(out)
		if err != nil {
			t.pool.done(m)
			if notSent(err) && rewindable(req) {
				t.pool.refused(m)
				tried[m] = true
				if req.GetBody != nil {
					if req.Body, err = req.GetBody(); err != nil {
						return nil, err
					}
				}
				continue
			}
			return nil, fmt.Errorf("replica %s: %w", m.id, err)
		}
		resp.Body = &countedBody{ReadCloser: resp.Body, done: func() { t.pool.done(m) }}
		return resp, nil
	}
}

// notSent reports whether err happened before the request was written: the
// replica refused or could not be dialled.
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func rewindable(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

// countedBody ends the request's time in flight when its body is closed.
type countedBody struct {
	io.ReadCloser
	once sync.Once
	done func()
}

func (b *countedBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.done)
	return err
}
