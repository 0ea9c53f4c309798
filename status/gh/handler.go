package gh

import (
	"context"
	"log/slog"

	"github.com/berth-gpu/berth/sources/webhook"
)

// Handler does what webhooks ask with a Planner: it is the
// webhook.Handler `berth serve --github` wires in.
type Handler struct {
	Planner *Planner
	// OnPush is called for a push to the tracked branch (the engine's
	// Notifier.Trigger); it must not block.
	OnPush func()
	Logger *slog.Logger
}

// PullRequest plans the pull request (opened, pushed to, reopened,
// "/berth plan"; a merged one is handed to the sync reporter), or checks
// its policy again after a review. A plan that waits for an evaluation's
// retry (Result.Waiting) is a *webhook.Later.
func (h Handler) PullRequest(ctx context.Context, ev webhook.Event) error {
	var res *Result
	var err error
	switch {
	case ev.Plan || ev.Closed:
		res, err = h.Planner.Plan(ctx, ev.Number)
	case ev.Review:
		res, err = h.Planner.Review(ctx, ev.Number)
	}
	if err == nil && res != nil && res.Waiting != nil {
		// No planner waits for the retry: the queue brings the pull
		// request back when it ended.
		return &webhook.Later{Reason: "its evaluation is retried with the full CPU budget", Ready: res.Waiting}
	}
	if err != nil && h.Logger != nil {
		h.Logger.Warn("pull request plan failed", "pr", ev.Number, "attempt", ev.Attempt, "err", err)
	}
	return err
}

// Push tells the engine to look at the tracked branch now.
func (h Handler) Push(webhook.Push) {
	if h.OnPush != nil {
		h.OnPush()
	}
}
