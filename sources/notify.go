package sources

import (
	"context"
	"log/slog"
	"strings"
	"time"
)

// Reason says why a Signal was sent. Reasons coalesce: a Signal carries
// every reason that arrived since the receiver took the last one.
type Reason uint8

const (
	ReasonStart   Reason = 1 << iota // the notifier started: check once at once
	ReasonPoll                       // the poll interval passed with no other check
	ReasonWatch                      // a watcher reported a change
	ReasonTrigger                    // Trigger was called (a webhook)
)

func (r Reason) String() string {
	var parts []string
	for _, x := range []struct {
		r    Reason
		name string
	}{{ReasonStart, "start"}, {ReasonPoll, "poll"}, {ReasonWatch, "watch"}, {ReasonTrigger, "trigger"}} {
		if r&x.r != 0 {
			parts = append(parts, x.name)
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "+")
}

// Signal says: check the source now.
type Signal struct {
	Reason Reason
	// Paths are the changed paths the watchers reported, when the reason
	// includes ReasonWatch (at most maxChangePaths; More counts the rest).
	Paths []string
	More  int
}

// NotifierOptions configure a Notifier.
type NotifierOptions struct {
	// Interval is how long after the last Signal the notifier polls (sends
	// ReasonPoll) when nothing else happened (default 1 minute). A negative
	// Interval turns polling off.
	Interval time.Duration
	// Changes are watchers' channels to merge (Watcher.Changes).
	Changes []<-chan Change
	// Logger receives what the notifier does (default: discarded).
	Logger *slog.Logger
}

// Notifier merges watchers, a polling timer and explicit triggers into one
// stream of Signals. Signals coalesce: while the receiver is busy checking,
// any number of events become one pending Signal, so checks never queue up
// behind each other and none is lost.
type Notifier struct {
	opts    NotifierOptions
	log     *slog.Logger
	out     chan Signal
	trigger chan struct{}
	changes chan Change
}

// NewNotifier starts a notifier that runs until ctx is done, then closes
// C. Its first Signal (ReasonStart) is ready at once.
func NewNotifier(ctx context.Context, opts NotifierOptions) *Notifier {
	if opts.Interval == 0 {
		opts.Interval = time.Minute
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Notifier{
		opts:    opts,
		log:     log,
		out:     make(chan Signal),
		trigger: make(chan struct{}, 1),
		changes: make(chan Change),
	}
	for _, ch := range opts.Changes {
		go n.forward(ctx, ch)
	}
	go n.run(ctx)
	return n
}

// C delivers the Signals.
func (n *Notifier) C() <-chan Signal { return n.out }

// Trigger asks for a check now. It never blocks: a trigger while one is
// already pending is merged into it.
func (n *Notifier) Trigger() {
	select {
	case n.trigger <- struct{}{}:
	default:
	}
}

func (n *Notifier) forward(ctx context.Context, ch <-chan Change) {
	for {
		select {
		case <-ctx.Done():
			return
		case c, ok := <-ch:
			if !ok {
				return
			}
			select {
			case n.changes <- c:
			case <-ctx.Done():
				return
			}
		}
	}
}

func (n *Notifier) run(ctx context.Context) {
	defer close(n.out)
	poll := time.NewTimer(time.Hour)
	poll.Stop()
	resetPoll := func() {
		if n.opts.Interval > 0 {
			poll.Reset(n.opts.Interval)
		}
	}
	pending := ReasonStart
	paths := map[string]bool{}
	more := 0
	for {
		var out chan<- Signal
		var sig Signal
		if pending != 0 {
			out = n.out
			sig = Signal{Reason: pending, Paths: makeChange(paths, false).Paths, More: more}
		}
		select {
		case <-ctx.Done():
			poll.Stop()
			return
		case <-poll.C:
			pending |= ReasonPoll
		case <-n.trigger:
			pending |= ReasonTrigger
		case c := <-n.changes:
			pending |= ReasonWatch
			more += c.More
			for _, p := range c.Paths {
				if len(paths) < maxChangePaths || paths[p] {
					paths[p] = true
				} else {
					more++
				}
			}
		case out <- sig:
			n.log.Debug("check", "reason", sig.Reason.String())
			pending, more = 0, 0
			clear(paths)
			// Polling is the fallback: it waits a full interval after
			// the last check of any kind.
			resetPoll()
		}
	}
}
