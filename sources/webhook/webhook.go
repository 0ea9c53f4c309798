// Package webhook receives GitHub (and Gitea) webhooks for berth: it
// verifies each delivery's HMAC SHA-256 signature before reading anything
// else, ignores events berth has no use for and repositories it does not
// track, answers a redelivery without acting on it twice, and turns the
// rest into work: a push to the tracked branch (the engine should look
// now) or a pull request to plan or re-review, coalesced per pull request
// so a burst of events becomes one plan.
//
// It owns no GitHub API calls and no planning: a Handler does the work
// (status/gh's Planner, wired in cmd/berth). Payloads are decoded into the
// few fields berth reads, so GitHub's and Gitea's shapes both fit
// (Gitea says "synchronized" where GitHub says "synchronize", and sends
// reviews as pull_request_approved / pull_request_rejected).
package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Handler does the work the events ask for.
type Handler interface {
	// PullRequest plans or re-reviews one pull request. An error means
	// berth failed; the receiver retries with backoff.
	PullRequest(ctx context.Context, ev Event) error
	// Push says the tracked branch moved (Notifier.Trigger). It must not
	// block.
	Push(ev Push)
}

// Event is the work for one pull request, merged over a burst of
// deliveries.
type Event struct {
	Number int
	// Plan: the head or base moved, it was (re)opened, or someone asked
	// with "/berth plan".
	Plan bool
	// Review: a review was submitted or dismissed: check policy again.
	Review bool
	// Closed, and Merged with its merge commit.
	Closed   bool
	Merged   bool
	MergeSHA string
	// Deliveries are the delivery IDs merged into this event.
	Deliveries []string
	// Attempt counts tries of this event (1 the first time).
	Attempt int
}

func (e *Event) merge(o Event) {
	e.Plan = e.Plan || o.Plan
	e.Review = e.Review || o.Review
	e.Closed = e.Closed || o.Closed
	e.Merged = e.Merged || o.Merged
	if o.MergeSHA != "" {
		e.MergeSHA = o.MergeSHA
	}
	e.Deliveries = append(e.Deliveries, o.Deliveries...)
	if o.Closed && !o.Merged && !o.Plan {
		// A pull request closed without merging: nothing more to plan.
		e.Plan, e.Review = false, false
	}
	if o.Plan && !o.Closed {
		e.Closed, e.Merged = false, false // reopened
	}
}

// Push is a push to the tracked branch.
type Push struct {
	Ref      string
	After    string
	Delivery string
}

// Options configure a Receiver. Secret, Repo and Handler are required.
type Options struct {
	// Secret is the webhook secret deliveries are signed with.
	Secret []byte
	// Repo is "owner/name"; events of other repositories are ignored.
	Repo string
	// Branch is the tracked branch (default "main").
	Branch  string
	Handler Handler
	Logger  *slog.Logger
	// Delay is how long a pull request's first event waits for the rest
	// of its burst (default 100 ms; negative: none).
	Delay time.Duration
	// Workers plan pull requests at once (default 2); one pull request is
	// never planned twice at the same time.
	Workers int
	// MaxBody bounds a delivery (default 25 MiB, GitHub's limit).
	MaxBody int64
	// Retries after a failed plan (default 4), waiting Backoff (default
	// 2 s), doubling each time.
	Retries int
	Backoff time.Duration
	// Remember is how many delivery IDs are remembered to recognise
	// redeliveries (default 10,000).
	Remember int
}

// Receiver is the http.Handler of POST /webhook.
type Receiver struct {
	opts Options
	log  *slog.Logger
	q    *queue

	mu     sync.Mutex
	seen   map[string]bool
	seenQ  []string
	counts map[string]int
}

// New returns a receiver. Start its workers with Run.
func New(opts Options) (*Receiver, error) {
	if len(opts.Secret) == 0 {
		return nil, errors.New("webhook: no secret: every delivery must be signed")
	}
	if opts.Handler == nil || opts.Repo == "" {
		return nil, errors.New("webhook: a handler and a repository are required")
	}
	if opts.Branch == "" {
		opts.Branch = "main"
	}
	if opts.Delay == 0 {
		opts.Delay = 100 * time.Millisecond
	}
	if opts.Delay < 0 {
		opts.Delay = 0
	}
	if opts.Workers <= 0 {
		opts.Workers = 2
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = 25 << 20
	}
	if opts.Retries < 0 {
		opts.Retries = 0
	} else if opts.Retries == 0 {
		opts.Retries = 4
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 2 * time.Second
	}
	if opts.Remember <= 0 {
		opts.Remember = 10000
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Receiver{opts: opts, log: log, seen: map[string]bool{}, counts: map[string]int{}}
	r.q = newQueue(opts, log)
	return r, nil
}

// Run works the queue until ctx is done.
func (r *Receiver) Run(ctx context.Context) { r.q.run(ctx) }

// Enqueue adds work for a pull request as if a webhook had asked (the
// polling fallback uses it).
func (r *Receiver) Enqueue(ev Event) { r.q.add(ev) }

// Counts reports how many deliveries had each outcome ("accepted",
// "ignored", "duplicate", "unauthorized", ...), for tests and metrics.
func (r *Receiver) Counts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.counts))
	for k, v := range r.counts {
		out[k] = v
	}
	return out
}

func (r *Receiver) count(outcome string) {
	r.mu.Lock()
	r.counts[outcome]++
	r.mu.Unlock()
}

// ServeHTTP verifies and dispatches one delivery.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	// 1. The signature, before anything else is looked at: only the
	// signature header and the raw body, bounded.
	sig := req.Header.Get("X-Hub-Signature-256")
	if sig == "" {
		r.count("unauthorized")
		http.Error(w, "missing X-Hub-Signature-256", http.StatusUnauthorized)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, r.opts.MaxBody))
	if err != nil {
		r.count("too-large")
		http.Error(w, "cannot read the body", http.StatusRequestEntityTooLarge)
		return
	}
	if !Verify(r.opts.Secret, body, sig) {
		r.count("unauthorized")
		r.log.Warn("webhook with a bad signature rejected", "remote", req.RemoteAddr)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}

	// 2. Redeliveries are answered, not acted on twice.
	event := req.Header.Get("X-GitHub-Event")
	delivery := req.Header.Get("X-GitHub-Delivery")
	if delivery != "" && r.remember(delivery) {
		r.count("duplicate")
		w.WriteHeader(http.StatusOK)
		fmt.Fprintln(w, "duplicate delivery: already handled")
		return
	}

	// 3. What it asks for.
	outcome, err := r.dispatch(event, delivery, body)
	if err != nil {
		r.count("bad-payload")
		r.log.Warn("webhook payload does not parse", "event", event, "delivery", delivery, "err", err)
		http.Error(w, "bad payload: "+err.Error(), http.StatusBadRequest)
		return
	}
	r.count(outcome)
	r.log.Debug("webhook", "event", event, "delivery", delivery, "outcome", outcome)
	if outcome == "accepted" {
		w.WriteHeader(http.StatusAccepted)
	} else {
		w.WriteHeader(http.StatusOK)
	}
	fmt.Fprintln(w, outcome)
}

// Verify checks a X-Hub-Signature-256 value ("sha256=" and the hex HMAC of
// the body) in constant time.
func Verify(secret, body []byte, header string) bool {
	hexSig, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil || len(got) != sha256.Size {
		return false
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

// Sign is the X-Hub-Signature-256 value GitHub sends for body.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// remember records a delivery ID and reports whether it was seen before.
func (r *Receiver) remember(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen[id] {
		return true
	}
	r.seen[id] = true
	r.seenQ = append(r.seenQ, id)
	for len(r.seenQ) > r.opts.Remember {
		delete(r.seen, r.seenQ[0])
		r.seenQ = r.seenQ[1:]
	}
	return false
}

// payload holds the fields berth reads, from any event.
type payload struct {
	Action     string `json:"action"`
	Number     int    `json:"number"`
	Ref        string `json:"ref"`
	After      string `json:"after"`
	Repository struct {
		FullName string `json:"full_name"`
	} `json:"repository"`
	PullRequest *struct {
		Number         int    `json:"number"`
		Merged         bool   `json:"merged"`
		MergeCommitSHA string `json:"merge_commit_sha"`
	} `json:"pull_request"`
	Issue *struct {
		Number      int              `json:"number"`
		PullRequest *json.RawMessage `json:"pull_request"`
	} `json:"issue"`
	IsPull  bool `json:"is_pull"` // Gitea's issue_comment
	Comment *struct {
		Body string `json:"body"`
	} `json:"comment"`
	Changes *struct {
		Base *json.RawMessage `json:"base"`
	} `json:"changes"`
}

func (r *Receiver) dispatch(event, delivery string, body []byte) (string, error) {
	switch event {
	case "ping":
		return "pong", nil
	case "pull_request", "pull_request_review", "issue_comment", "push",
		"pull_request_approved", "pull_request_rejected": // Gitea's review events
	default:
		return "ignored", nil
	}
	var p payload
	if err := json.Unmarshal(body, &p); err != nil {
		return "", err
	}
	if !strings.EqualFold(p.Repository.FullName, r.opts.Repo) {
		return "ignored", nil
	}
	number := p.Number
	if number == 0 && p.PullRequest != nil {
		number = p.PullRequest.Number
	}
	ev := Event{Number: number, Deliveries: []string{delivery}}
	switch event {
	case "push":
		if p.Ref != "refs/heads/"+r.opts.Branch {
			return "ignored", nil
		}
		r.opts.Handler.Push(Push{Ref: p.Ref, After: p.After, Delivery: delivery})
		return "accepted", nil
	case "pull_request":
		switch p.Action {
		case "opened", "reopened", "synchronize", "synchronized", "ready_for_review":
			ev.Plan = true
		case "edited":
			if p.Changes == nil || p.Changes.Base == nil {
				return "ignored", nil // a title or body edit
			}
			ev.Plan = true
		case "closed":
			ev.Closed = true
			if p.PullRequest != nil && p.PullRequest.Merged {
				ev.Merged, ev.MergeSHA = true, p.PullRequest.MergeCommitSHA
			}
		default:
			return "ignored", nil
		}
	case "pull_request_review", "pull_request_approved", "pull_request_rejected":
		switch p.Action {
		case "submitted", "dismissed", "edited", "reviewed", "approved", "rejected", "":
			ev.Review = true
		default:
			return "ignored", nil
		}
	case "issue_comment":
		if p.Issue == nil || (p.Issue.PullRequest == nil && !p.IsPull) || p.Comment == nil ||
			(p.Action != "created" && p.Action != "edited") || !isPlanCommand(p.Comment.Body) {
			return "ignored", nil
		}
		ev.Number = p.Issue.Number
		ev.Plan = true
	}
	if ev.Number <= 0 {
		return "", errors.New("no pull request number")
	}
	r.q.add(ev)
	return "accepted", nil
}

// isPlanCommand reports whether a comment asks berth to plan: a line that
// is "/berth plan".
func isPlanCommand(body string) bool {
	for _, line := range strings.Split(body, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "/berth" && f[1] == "plan" {
			return true
		}
	}
	return false
}
