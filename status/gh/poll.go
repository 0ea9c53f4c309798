package gh

import (
	"context"
	"log/slog"
	"time"
)

// Poller is the fallback when no webhook is configured: every Interval it
// lists the open pull requests, plans those whose head moved, re-checks
// the policy of the others (reviews may have come), and retries the
// outbox.
type Poller struct {
	Client   *Client
	Planner  *Planner
	Interval time.Duration
	Logger   *slog.Logger

	heads map[int]string
}

// Run polls until ctx is done.
func (p *Poller) Run(ctx context.Context) {
	if p.Interval <= 0 {
		p.Interval = time.Minute
	}
	t := time.NewTicker(p.Interval)
	defer t.Stop()
	for {
		p.Poll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Poll does one round.
func (p *Poller) Poll(ctx context.Context) {
	log := p.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if p.heads == nil {
		p.heads = map[int]string{}
	}
	if err := p.Client.Flush(ctx); err != nil {
		log.Warn("outbox: some writes still fail; retried next round", "err", err)
	}
	prs, err := p.Client.OpenPullRequests(ctx)
	if err != nil {
		log.Warn("cannot list open pull requests", "err", err)
		return
	}
	open := map[int]bool{}
	for _, pr := range prs {
		open[pr.Number] = true
		var res *Result
		var err error
		if p.heads[pr.Number] != pr.HeadSHA+pr.BaseSHA {
			res, err = p.Planner.Plan(ctx, pr.Number)
		} else {
			res, err = p.Planner.Review(ctx, pr.Number)
		}
		if err != nil {
			log.Warn("pull request plan failed; retried next round", "pr", pr.Number, "err", err)
			continue
		}
		if res != nil && res.Waiting != nil {
			continue // its evaluation is retried: planned next round
		}
		p.heads[pr.Number] = pr.HeadSHA + pr.BaseSHA
	}
	for n := range p.heads {
		if !open[n] {
			delete(p.heads, n)
		}
	}
}
