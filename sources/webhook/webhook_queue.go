package webhook

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"k8s.io/client-go/util/workqueue"
)

// queue coalesces work per pull request on client-go's workqueue, the one
// Kubernetes controllers use: a pull request number is queued at most once
// (a burst of events while it waits merges into its pending event), one
// that is re-added while it is being handled is handled once more
// afterwards (so a burst of N events costs at most two plans, and one pull
// request is never handled by two workers at once), a first event waits
// Options.Delay for the rest of its burst (AddAfter keeps the earliest
// time), and a failed plan is retried after the workqueue's per-item
// exponential backoff (Backoff, doubling; a fresh event forgets it).
//
// The workqueue holds only the numbers; what to do for each sits in
// pending until a worker takes it.
type queue struct {
	opts Options
	log  *slog.Logger
	wq   workqueue.TypedRateLimitingInterface[int]

	mu      sync.Mutex
	pending map[int]*Event
}

func newQueue(opts Options, log *slog.Logger) *queue {
	// The longest wait is the last retry's (the shift is bounded so that
	// a large Retries cannot overflow it).
	limiter := workqueue.NewTypedItemExponentialFailureRateLimiter[int](opts.Backoff, opts.Backoff<<min(opts.Retries, 16))
	return &queue{opts: opts, log: log, pending: map[int]*Event{},
		wq: workqueue.NewTypedRateLimitingQueueWithConfig(limiter, workqueue.TypedRateLimitingQueueConfig[int]{Name: "webhook"})}
}

// add merges ev into the pull request's pending event and queues it after
// Delay. A fresh event resets the pull request's retries and does not wait
// for a retry's backoff: AddAfter keeps the sooner of two times.
func (q *queue) add(ev Event) {
	q.hold(ev)
	q.wq.Forget(ev.Number)
	q.wq.AddAfter(ev.Number, q.opts.Delay)
}

// requeue merges ev into the pull request's pending event and queues it at
// once (a plan that waited for its tree's retry, now ready).
func (q *queue) requeue(ev Event) {
	q.hold(ev)
	q.wq.Add(ev.Number)
}

// hold merges ev into the pull request's pending event, or makes it the
// pending one.
func (q *queue) hold(ev Event) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if p, ok := q.pending[ev.Number]; ok {
		p.merge(ev)
		return
	}
	e := ev
	q.pending[ev.Number] = &e
}

// run works the queue with opts.Workers goroutines until ctx is done; work
// still pending then is dropped (the polling fallback finds it again).
func (q *queue) run(ctx context.Context) {
	go func() {
		<-ctx.Done()
		q.wq.ShutDown()
	}()
	var wg sync.WaitGroup
	for range q.opts.Workers {
		wg.Go(func() {
			for q.work(ctx) {
			}
		})
	}
	wg.Wait()
}

// work takes one pull request from the queue and handles its pending
// event; false once the queue is shut down.
func (q *queue) work(ctx context.Context) bool {
	n, shutdown := q.wq.Get()
	if shutdown {
		return false
	}
	defer q.wq.Done(n)
	if ctx.Err() != nil {
		return false
	}
	q.mu.Lock()
	p := q.pending[n]
	delete(q.pending, n)
	q.mu.Unlock()
	if p == nil {
		return true // merged into a run that already took it
	}
	ev := *p
	ev.Attempt = q.wq.NumRequeues(n) + 1
	q.handle(ctx, ev)
	return true
}

// handle plans one pull request and, when that fails, queues it again
// after its backoff, up to Retries times.
func (q *queue) handle(ctx context.Context, ev Event) {
	err := q.opts.Handler.PullRequest(ctx, ev)
	if err == nil || ctx.Err() != nil {
		q.wq.Forget(ev.Number)
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
				q.requeue(again)
			case <-ctx.Done():
			}
		}()
		return
	}
	if ev.Attempt > q.opts.Retries {
		q.wq.Forget(ev.Number)
		q.log.Error("pull request could not be handled; giving up until its next event", "pr", ev.Number,
			"attempts", ev.Attempt, "err", err)
		return
	}
	retry := ev
	retry.Deliveries = nil
	q.mu.Lock()
	if p, ok := q.pending[ev.Number]; ok {
		// A fresh event came while this one ran: it runs next, at once,
		// with what this one asked for too (merged in order, so that the
		// fresh event's close or reopen wins).
		retry.merge(*p)
		*p = retry
		q.mu.Unlock()
		return
	}
	q.pending[ev.Number] = &retry
	q.mu.Unlock()
	q.log.Warn("pull request could not be handled; retrying", "pr", ev.Number, "attempt", ev.Attempt, "err", err)
	q.wq.AddRateLimited(ev.Number)
}
