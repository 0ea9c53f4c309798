package webhook

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// queue coalesces work per pull request: events for a pull request that is
// waiting merge into its pending event; events that arrive while it is
// being handled make it run once more afterwards. So a burst of N events
// costs at most two plans, and one pull request is never handled by two
// workers at once.
type queue struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	cond    *sync.Cond
	pending map[int]*Event // waiting (delayed or ready)
	ready   []int          // in order, each at most once
	queued  map[int]bool   // in ready
	running map[int]bool
	timers  map[int]*time.Timer
	closed  bool
}

func newQueue(opts Options, log *slog.Logger) *queue {
	q := &queue{opts: opts, log: log, pending: map[int]*Event{}, queued: map[int]bool{},
		running: map[int]bool{}, timers: map[int]*time.Timer{}}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// add merges ev into the pull request's pending event and schedules it.
func (q *queue) add(ev Event) {
	q.addAfter(ev, q.opts.Delay)
}

func (q *queue) addAfter(ev Event, delay time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	if ev.Attempt == 0 {
		ev.Attempt = 1
	}
	if p, ok := q.pending[ev.Number]; ok {
		p.merge(ev)
		p.Attempt = min(p.Attempt, ev.Attempt)
		// A fresh event does not wait for a retry's backoff.
		if t := q.timers[ev.Number]; t != nil && ev.Attempt == 1 && t.Stop() {
			delete(q.timers, ev.Number)
			q.schedule(ev.Number, delay)
		}
		return // already scheduled, or runs again after the current run
	}
	e := ev
	q.pending[ev.Number] = &e
	if q.running[ev.Number] {
		return // picked up when the current run ends
	}
	q.schedule(ev.Number, delay)
}

// schedule makes n ready after delay. q.mu is held.
func (q *queue) schedule(n int, delay time.Duration) {
	if q.queued[n] || q.timers[n] != nil {
		return
	}
	if delay <= 0 {
		q.queued[n] = true
		q.ready = append(q.ready, n)
		q.cond.Signal()
		return
	}
	q.timers[n] = time.AfterFunc(delay, func() {
		q.mu.Lock()
		defer q.mu.Unlock()
		delete(q.timers, n)
		if q.closed || q.queued[n] || q.running[n] {
			return
		}
		q.queued[n] = true
		q.ready = append(q.ready, n)
		q.cond.Signal()
	})
}

// run works the queue with opts.Workers goroutines until ctx is done.
func (q *queue) run(ctx context.Context) {
	go func() {
		<-ctx.Done()
		q.mu.Lock()
		q.closed = true
		for _, t := range q.timers {
			t.Stop()
		}
		q.cond.Broadcast()
		q.mu.Unlock()
	}()
	var wg sync.WaitGroup
	for range q.opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				ev, ok := q.next()
				if !ok {
					return
				}
				q.handle(ctx, ev)
			}
		}()
	}
	wg.Wait()
}

// next takes the next ready pull request's event, marking it running.
func (q *queue) next() (Event, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.ready) == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return Event{}, false
	}
	n := q.ready[0]
	q.ready = q.ready[1:]
	delete(q.queued, n)
	ev := *q.pending[n]
	delete(q.pending, n)
	q.running[n] = true
	return ev, true
}

func (q *queue) handle(ctx context.Context, ev Event) {
	err := q.opts.Handler.PullRequest(ctx, ev)
	q.mu.Lock()
	delete(q.running, ev.Number)
	_, again := q.pending[ev.Number]
	if again {
		q.schedule(ev.Number, 0)
	}
	q.mu.Unlock()
	if err == nil || ctx.Err() != nil {
		return
	}
	var later *Later
	if errors.As(err, &later) {
		// The worker is free; the event comes back when it can finish.
		q.log.Info("pull request waits; planned again when it can finish", "pr", ev.Number, "reason", later.Reason)
		again := ev
		again.Deliveries = nil
		go func() {
			select {
			case <-later.Ready:
				q.addAfter(again, 0)
			case <-ctx.Done():
			}
		}()
		return
	}
	if ev.Attempt > q.opts.Retries {
		q.log.Error("pull request could not be handled; giving up until its next event", "pr", ev.Number,
			"attempts", ev.Attempt, "err", err)
		return
	}
	wait := q.opts.Backoff << (ev.Attempt - 1)
	q.log.Warn("pull request could not be handled; retrying", "pr", ev.Number, "attempt", ev.Attempt, "in", wait.String(), "err", err)
	retry := ev
	retry.Attempt++
	retry.Deliveries = nil
	q.addAfter(retry, wait)
}
