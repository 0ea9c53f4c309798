// Package webhook receives GitHub (and Gitea) webhooks for berth: it
// bounds what an unauthenticated sender can make it hold (a few bodies at
// once, each at most MaxBody, refused from its headers when possible),
// verifies each delivery's HMAC SHA-256 signature (go-github's
// ValidateSignature, over the bounded body) before anything in it is looked
// at, ignores events berth has no use for and repositories it does not
// track, answers a redelivery or a replay of the same event under a new
// delivery ID without acting on it twice (Store remembers them across
// restarts), and turns the rest into work: a push to the tracked branch
// (the engine should look now) or a pull request to plan or re-review,
// coalesced per pull request (client-go's workqueue) so a burst of events
// becomes one plan.
//
// It owns no GitHub API calls and no planning: a Handler does the work
// (status/gh's Planner, wired in cmd/berth). Payloads are decoded into the
// few fields berth reads, so GitHub's and Gitea's shapes both fit
// (Gitea says "synchronized" where GitHub says "synchronize", and sends
// reviews as pull_request_approved / pull_request_rejected).
package webhook

import (
	"bytes"
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

	"github.com/google/go-github/v60/github"
)

// Handler does the work the events ask for.
type Handler interface {
	// PullRequest plans or re-reviews one pull request. An error means
	// berth failed; the receiver retries with backoff. A *Later is not a
	// failure: the event is queued again when Later.Ready is closed.
	PullRequest(ctx context.Context, ev Event) error
	// Push says the tracked branch moved (Notifier.Trigger). It must not
	// block.
	Push(ev Push)
}

// Later is what a Handler returns when it cannot finish a pull request's
// event before something it started is ready (an evaluation retried with
// its full CPU budget): the worker goes on to the next pull request
// instead of waiting, and the event is queued again, behind those already
// waiting, when Ready is closed. It is not counted as a failed attempt.
type Later struct {
	Reason string
	Ready  <-chan struct{}
}

func (l *Later) Error() string { return "waits: " + l.Reason }

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
	// MaxBody bounds a delivery (default DefaultMaxBody). A longer body is
	// refused with 413 as soon as it is known to be longer, without
	// reading the rest.
	MaxBody int64
	// MaxInFlight bounds the bodies read at once (default 8); a delivery
	// beyond it is answered 503 with Retry-After before its body is read.
	// With MaxBody it bounds the memory deliveries can take.
	MaxInFlight int
	// Retries after a failed plan (default 4), waiting Backoff (default
	// 2 s), doubling each time.
	Retries int
	Backoff time.Duration
	// Seen records delivery IDs and the work they asked for, so that a
	// redelivery or a replay is answered without acting twice; a Store
	// keeps them across restarts. Default: the last Remember in memory.
	Seen Seen
	// Remember is how many keys the in-memory default remembers (default
	// 10,000).
	Remember int
}

// DefaultMaxBody is the default bound of a delivery's body: 2 MiB, far
// above the events berth reads (GitHub's pull_request and push payloads
// are tens of kilobytes; a push lists at most 20 commits) and far below
// GitHub's own limit of 25 MB, so an unauthenticated sender cannot make
// berth hold 25 MB per connection.
const DefaultMaxBody = 2 << 20

// Seen records keys and reports whether a key was recorded before. Store
// is one; so is the in-memory default.
type Seen interface {
	Seen(key string) (bool, error)
}

// Receiver is the http.Handler of POST /webhook.
type Receiver struct {
	opts  Options
	log   *slog.Logger
	q     *queue
	slots chan struct{}

	mu     sync.Mutex
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
		opts.MaxBody = DefaultMaxBody
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 8
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
	if opts.Seen == nil {
		opts.Seen = newMemorySeen(opts.Remember)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Receiver{opts: opts, log: log, counts: map[string]int{}, slots: make(chan struct{}, opts.MaxInFlight)}
	r.q = newQueue(opts, log)
	return r, nil
}

// Run works the queue until ctx is done.
func (r *Receiver) Run(ctx context.Context) { r.q.run(ctx) }

// Enqueue adds work for a pull request as if a webhook had asked (the
// polling fallback uses it).
func (r *Receiver) Enqueue(ev Event) { r.q.add(ev) }

// Counts reports how many deliveries had each outcome ("accepted",
// "ignored", "duplicate", "replayed", "unauthorized", "too-large",
// "busy", ...), for tests and metrics.
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

// refuse answers a delivery that is not read further; the connection is
// closed so that the rest of its body is not read either.
func (r *Receiver) refuse(w http.ResponseWriter, outcome string, code int, msg string) {
	r.count(outcome)
	w.Header().Set("Connection", "close")
	http.Error(w, msg, code)
}

// ServeHTTP verifies and dispatches one delivery. Everything that can be
// decided from the headers is decided before the body is read; the body
// is read once, into a buffer of at most MaxBody bytes, and its signature
// checked before anything in it is looked at.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	// 1. The headers: a signature of the right shape, a delivery ID, a
	// length within bounds.
	sig, delivery, ok := r.checkHeaders(w, req)
	if !ok {
		return
	}
	// 2. A slot to read a body in, or come back later.
	select {
	case r.slots <- struct{}{}:
		defer func() { <-r.slots }()
	default:
		w.Header().Set("Retry-After", "1")
		r.refuse(w, "busy", http.StatusServiceUnavailable, "too many deliveries at once; retry")
		return
	}
	// 3. The body, read into a bounded buffer, and its signature.
	body, ok := r.readSigned(w, req, sig)
	if !ok {
		return
	}
	// 4. A redelivery is answered, not acted on twice; so is a replay of
	// the same event under another delivery ID (in dispatch).
	if !r.firstTime(w, "delivery/"+delivery, seenBefore{"duplicate", "duplicate delivery: already handled", ""}, "delivery", delivery) {
		return
	}
	// 5. What it asks for.
	r.dispatch(w, req.Header.Get("X-GitHub-Event"), delivery, body)
}

// checkHeaders refuses a delivery whose headers already say no: a
// missing or malformed signature, no delivery ID, a declared length over
// MaxBody.
func (r *Receiver) checkHeaders(w http.ResponseWriter, req *http.Request) (sig, delivery string, ok bool) {
	sig = req.Header.Get("X-Hub-Signature-256")
	if !sha256Signature(sig) {
		r.refuse(w, "unauthorized", http.StatusUnauthorized, "missing or malformed X-Hub-Signature-256")
		return "", "", false
	}
	delivery = req.Header.Get("X-GitHub-Delivery")
	if delivery == "" || len(delivery) > 200 {
		r.refuse(w, "no-delivery", http.StatusBadRequest, "missing X-GitHub-Delivery")
		return "", "", false
	}
	if req.ContentLength > r.opts.MaxBody {
		r.refuse(w, "too-large", http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", r.opts.MaxBody))
		return "", "", false
	}
	return sig, delivery, true
}

// readSigned reads the body and answers when it is too large, unreadable
// or not what the signature signed.
func (r *Receiver) readSigned(w http.ResponseWriter, req *http.Request, sig string) ([]byte, bool) {
	body, status := r.read(req, sig)
	switch status {
	case http.StatusRequestEntityTooLarge:
		r.refuse(w, "too-large", status, fmt.Sprintf("body over %d bytes", r.opts.MaxBody))
		return nil, false
	case http.StatusUnauthorized:
		r.log.Warn("webhook with a bad signature rejected", "remote", req.RemoteAddr)
		r.refuse(w, "unauthorized", status, "bad signature")
		return nil, false
	case http.StatusBadRequest:
		r.refuse(w, "bad-body", status, "cannot read the body")
		return nil, false
	}
	return body, true
}

// seenBefore names what a delivery asks that was seen before: the
// outcome counted, the answer, and what is logged (nothing when empty).
type seenBefore struct{ outcome, answer, log string }

// firstTime records key and reports whether it is new; when it is not,
// or cannot be recorded, the delivery is answered here (logArgs name it
// in the log).
func (r *Receiver) firstTime(w http.ResponseWriter, key string, before seenBefore, logArgs ...any) bool {
	seen, err := r.opts.Seen.Seen(key)
	if err != nil {
		r.log.Error("cannot record a webhook delivery", append(logArgs, "key", key, "err", err)...)
		http.Error(w, "cannot record the delivery; redeliver it later", http.StatusInternalServerError)
		return false
	}
	if seen {
		r.count(before.outcome)
		if before.log != "" {
			r.log.Info(before.log, logArgs...)
		}
		fmt.Fprintln(w, before.answer)
		return false
	}
	return true
}

// dispatch parses what a verified delivery asks for and hands it on: a
// push to the Handler, a pull request's event to the queue.
func (r *Receiver) dispatch(w http.ResponseWriter, event, delivery string, body []byte) {
	work, err := Parse(event, body, r.opts.Repo, r.opts.Branch)
	if err != nil {
		r.count("bad-payload")
		r.log.Warn("webhook payload does not parse", "event", event, "delivery", delivery, "err", err)
		http.Error(w, "bad payload: "+err.Error(), http.StatusBadRequest)
		return
	}
	if work.Key != "" && !r.firstTime(w, "work/"+work.Key,
		seenBefore{"replayed", "duplicate event: already handled", "webhook asks for work already done; ignored"},
		"event", event, "delivery", delivery, "work", work.Key) {
		return
	}
	switch {
	case work.Push != nil:
		p := *work.Push
		p.Delivery = delivery
		r.opts.Handler.Push(p)
	case work.Event != nil:
		ev := *work.Event
		ev.Deliveries = []string{delivery}
		r.q.add(ev)
	}
	r.count(work.Outcome)
	r.log.Debug("webhook", "event", event, "delivery", delivery, "outcome", work.Outcome)
	if work.Outcome == "accepted" {
		w.WriteHeader(http.StatusAccepted)
	}
	fmt.Fprintln(w, work.Outcome)
}

// read reads the body, at most MaxBody bytes, and checks its signature
// with go-github's ValidateSignature: 0 when it holds, else the HTTP status
// to answer. sig has the shape sha256Signature accepts ("sha256=" and 64 hex
// digits: ValidateSignature alone would take a "sha1=" one too).
//
// The body is read into the bounded buffer first and checked after, not
// with github.ValidatePayloadFromBody, which reads its reader with
// io.ReadAll and no bound of its own and cannot tell a body cut at the
// bound (413) from a forged one (401). Nothing in the body is looked at
// before the signature holds.
func (r *Receiver) read(req *http.Request, sig string) ([]byte, int) {
	var buf bytes.Buffer
	if req.ContentLength > 0 {
		buf.Grow(int(req.ContentLength)) // at most MaxBody: checked before
	}
	n, err := io.Copy(&buf, io.LimitReader(req.Body, r.opts.MaxBody+1))
	switch {
	case n > r.opts.MaxBody:
		return nil, http.StatusRequestEntityTooLarge
	case err != nil:
		return nil, http.StatusBadRequest
	case github.ValidateSignature(sig, buf.Bytes(), r.opts.Secret) != nil:
		return nil, http.StatusUnauthorized
	}
	return buf.Bytes(), 0
}

// sha256Signature reports whether a X-Hub-Signature-256 value has its
// shape: "sha256=" and the hex HMAC.
func sha256Signature(header string) bool {
	hexSig, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSig)
	return err == nil && len(got) == sha256.Size
}

// Verify checks a X-Hub-Signature-256 value ("sha256=" and the hex HMAC of
// the body) in constant time.
func Verify(secret, body []byte, header string) bool {
	if !sha256Signature(header) {
		return false
	}
	return github.ValidateSignature(header, body, secret) == nil
}

// Sign is the X-Hub-Signature-256 value GitHub sends for body.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Work is what one delivery asks for.
type Work struct {
	// Outcome is "accepted" (Event or Push is set), "ignored" or "pong".
	Outcome string
	// Key names the work so that a replay of the same event under a new
	// delivery ID is recognised (empty: only the delivery ID is). A pull
	// request's is its number, head, base and action: the same head and
	// base are not planned twice for the same action, while a push to it
	// (a new head) is planned. A push's is its ref and the commit it moved
	// to; a review's, its ID and action; a comment's, its ID, action and
	// time.
	Key   string
	Event *Event
	Push  *Push
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
		Head           struct {
			SHA string `json:"sha"`
		} `json:"head"`
		Base struct {
			SHA string `json:"sha"`
		} `json:"base"`
	} `json:"pull_request"`
	Review *struct {
		ID int64 `json:"id"`
	} `json:"review"`
	Issue *struct {
		Number      int              `json:"number"`
		PullRequest *json.RawMessage `json:"pull_request"`
	} `json:"issue"`
	IsPull  bool `json:"is_pull"` // Gitea's issue_comment
	Comment *struct {
		ID        int64  `json:"id"`
		Body      string `json:"body"`
		UpdatedAt string `json:"updated_at"`
	} `json:"comment"`
	Changes *struct {
		Base *json.RawMessage `json:"base"`
	} `json:"changes"`
}

// Parse says what a delivery of event with body asks of berth for
// repository repo (owner/name) tracking branch. It reads only the fields
// berth needs; an error means the payload of an event berth reads is not
// JSON or names no pull request.
func Parse(event string, body []byte, repo, branch string) (Work, error) {
	switch event {
	case "ping":
		return Work{Outcome: "pong"}, nil
	case "pull_request", "pull_request_review", "issue_comment", "push",
		"pull_request_approved", "pull_request_rejected": // Gitea's review events
	default:
		return Work{Outcome: "ignored"}, nil
	}
	ignored := Work{Outcome: "ignored"}
	var p payload
	if err := json.Unmarshal(body, &p); err != nil {
		return Work{}, err
	}
	if !strings.EqualFold(p.Repository.FullName, repo) {
		return ignored, nil
	}
	number := p.Number
	if number == 0 && p.PullRequest != nil {
		number = p.PullRequest.Number
	}
	ev := Event{Number: number}
	var key string
	switch event {
	case "push":
		if p.Ref != "refs/heads/"+branch {
			return ignored, nil
		}
		if p.After != "" {
			key = "push/" + p.Ref + "@" + p.After
		}
		return Work{Outcome: "accepted", Key: key, Push: &Push{Ref: p.Ref, After: p.After}}, nil
	case "pull_request":
		var ok bool
		if key, ok = pullRequestEvent(p, &ev); !ok {
			return ignored, nil
		}
	case "pull_request_review", "pull_request_approved", "pull_request_rejected":
		switch p.Action {
		case "submitted", "dismissed", "edited", "reviewed", "approved", "rejected", "":
			ev.Review = true
		default:
			return ignored, nil
		}
		if p.Review != nil && p.Review.ID != 0 {
			key = fmt.Sprintf("review/%d/%d/%s", number, p.Review.ID, p.Action)
		}
	case "issue_comment":
		if p.Issue == nil || (p.Issue.PullRequest == nil && !p.IsPull) || p.Comment == nil ||
			(p.Action != "created" && p.Action != "edited") || !isPlanCommand(p.Comment.Body) {
			return ignored, nil
		}
		ev.Number = p.Issue.Number
		ev.Plan = true
		if p.Comment.ID != 0 {
			key = fmt.Sprintf("comment/%d/%s/%s", p.Comment.ID, p.Action, p.Comment.UpdatedAt)
		}
	}
	if ev.Number <= 0 {
		return Work{}, errors.New("no pull request number")
	}
	return Work{Outcome: "accepted", Key: key, Event: &ev}, nil
}

// pullRequestEvent fills ev from a pull_request event and returns its
// work key; false when the action asks nothing of berth (a title or body
// edit, a label, an assignment).
func pullRequestEvent(p payload, ev *Event) (key string, ok bool) {
	action := p.Action
	switch action {
	case "opened", "reopened", "synchronize", "synchronized", "ready_for_review":
		ev.Plan = true
		if action == "synchronized" { // Gitea's word
			action = "synchronize"
		}
	case "edited":
		if p.Changes == nil || p.Changes.Base == nil {
			return "", false // a title or body edit
		}
		ev.Plan = true
	case "closed":
		ev.Closed = true
		if p.PullRequest != nil && p.PullRequest.Merged {
			ev.Merged, ev.MergeSHA = true, p.PullRequest.MergeCommitSHA
		}
	default:
		return "", false
	}
	if pr := p.PullRequest; pr != nil && pr.Head.SHA != "" && pr.Base.SHA != "" {
		key = fmt.Sprintf("pr/%d/%s/%s/%s", ev.Number, pr.Head.SHA, pr.Base.SHA, action)
	}
	return key, true
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
