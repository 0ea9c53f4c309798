package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berth-gpu/berth/sources/webhook"
)

var secret = []byte("It's a Secret to Everybody")

// recorder is a Handler that records what it is asked to do.
type recorder struct {
	mu     sync.Mutex
	events []webhook.Event
	pushes []webhook.Push
	block  chan struct{} // when set, the first PullRequest waits on it
	fail   int           // fail this many calls
	calls  chan struct{}
}

func newRecorder() *recorder { return &recorder{calls: make(chan struct{}, 100)} }

func (r *recorder) PullRequest(ctx context.Context, ev webhook.Event) error {
	r.mu.Lock()
	block := r.block
	r.block = nil
	r.mu.Unlock()
	if block != nil {
		<-block
	}
	r.mu.Lock()
	r.events = append(r.events, ev)
	fail := r.fail > 0
	r.fail--
	r.mu.Unlock()
	r.calls <- struct{}{}
	if fail {
		return errors.New("berth failed")
	}
	return nil
}

func (r *recorder) Push(p webhook.Push) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pushes = append(r.pushes, p)
}

func (r *recorder) snapshot() ([]webhook.Event, []webhook.Push) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]webhook.Event(nil), r.events...), append([]webhook.Push(nil), r.pushes...)
}

func start(t *testing.T, h webhook.Handler, branch string, delay time.Duration) *webhook.Receiver {
	t.Helper()
	return startWith(t, webhook.Options{Secret: secret, Repo: "Codertocat/Hello-World", Branch: branch, Handler: h,
		Delay: delay, Backoff: 10 * time.Millisecond})
}

func startWith(t *testing.T, opts webhook.Options) *webhook.Receiver {
	t.Helper()
	r, err := webhook.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

func payload(t *testing.T, event, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "github", event, file))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func deliver(r http.Handler, event, delivery string, body []byte, sig string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/webhook", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", delivery)
	if sig != "" {
		req.Header.Set("X-Hub-Signature-256", sig)
	}
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	return w
}

// withHead is a pull_request payload with another head commit, as a push
// to the pull request makes it.
func withHead(t *testing.T, body []byte, sha string) []byte {
	t.Helper()
	var p map[string]any
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	p["pull_request"].(map[string]any)["head"].(map[string]any)["sha"] = sha
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitCalls waits for n handler calls.
func waitCalls(t *testing.T, rec *recorder, n int) {
	t.Helper()
	for range n {
		select {
		case <-rec.calls:
		case <-time.After(5 * time.Second):
			t.Fatalf("the handler was not called %d times", n)
		}
	}
}

// TestRealPayloads feeds every stored GitHub payload of the events berth
// reads, signed as GitHub signs them, and checks what each asks for.
func TestRealPayloads(t *testing.T) {
	type want struct {
		status  int
		outcome string
	}
	actions := map[string]want{
		"opened": {202, "accepted"}, "reopened": {202, "accepted"}, "synchronize": {202, "accepted"},
		"ready_for_review": {202, "accepted"}, "closed": {202, "accepted"},
		"submitted": {202, "accepted"}, "dismissed": {202, "accepted"},
	}
	for _, event := range []string{"pull_request", "pull_request_review", "issue_comment", "push", "ping", "check_run", "status"} {
		files, err := os.ReadDir(filepath.Join("testdata", "github", event))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			t.Run(event+"/"+f.Name(), func(t *testing.T) {
				rec := newRecorder()
				r := start(t, rec, "master", -1)
				body := payload(t, event, f.Name())
				w := deliver(r, event, "d-"+f.Name(), body, webhook.Sign(secret, body))
				action := strings.TrimSuffix(f.Name()[3:], ".json")
				exp := want{200, "ignored"}
				switch event {
				case "pull_request", "pull_request_review":
					if a, ok := actions[action]; ok {
						exp = a
					}
				case "ping":
					exp = want{200, "pong"}
				case "push":
					var p struct{ Ref string }
					json.Unmarshal(body, &p)
					if p.Ref == "refs/heads/master" {
						exp = want{202, "accepted"}
					}
				}
				if w.Code != exp.status || strings.TrimSpace(w.Body.String()) != exp.outcome {
					t.Fatalf("got %d %q, want %d %q", w.Code, strings.TrimSpace(w.Body.String()), exp.status, exp.outcome)
				}
				if exp.outcome != "accepted" || event == "push" {
					return
				}
				waitCalls(t, rec, 1)
				evs, _ := rec.snapshot()
				got := evs[0]
				if got.Number != 2 || got.Attempt != 1 {
					t.Errorf("event %+v", got)
				}
				switch {
				case event == "pull_request_review":
					if !got.Review || got.Plan {
						t.Errorf("a review should re-check policy: %+v", got)
					}
				case action == "closed":
					if !got.Closed || got.Plan {
						t.Errorf("closed: %+v", got)
					}
				default:
					if !got.Plan {
						t.Errorf("%s should plan: %+v", action, got)
					}
				}
			})
		}
	}
}

func TestPushToTrackedBranch(t *testing.T) {
	rec := newRecorder()
	r := start(t, rec, "master", -1)
	body := payload(t, "push", "04-event.json")
	if w := deliver(r, "push", "p1", body, webhook.Sign(secret, body)); w.Code != 202 {
		t.Fatalf("got %d", w.Code)
	}
	_, pushes := rec.snapshot()
	if len(pushes) != 1 || pushes[0].Ref != "refs/heads/master" || pushes[0].Delivery != "p1" {
		t.Fatalf("pushes %+v", pushes)
	}
	// Another branch is not berth's business.
	r2 := start(t, rec, "main", -1)
	if w := deliver(r2, "push", "p2", body, webhook.Sign(secret, body)); w.Code != 200 {
		t.Fatalf("got %d", w.Code)
	}
	if _, pushes := rec.snapshot(); len(pushes) != 1 {
		t.Fatal("a push to another branch triggered")
	}
}

// TestForgedAndUnsigned: a delivery without a valid signature is refused
// and changes nothing, whatever it says.
func sha1Sign(secret, body []byte) string {
	mac := hmac.New(sha1.New, secret)
	mac.Write(body)
	return "sha1=" + hex.EncodeToString(mac.Sum(nil))
}

func TestForgedAndUnsigned(t *testing.T) {
	rec := newRecorder()
	r := start(t, rec, "master", -1)
	body := payload(t, "pull_request", "00-opened.json")
	good := webhook.Sign(secret, body)
	tampered := []byte(strings.Replace(string(body), `"number": 2`, `"number": 3`, 1))
	cases := map[string]struct {
		body []byte
		sig  string
	}{
		"unsigned":          {body, ""},
		"wrong secret":      {body, webhook.Sign([]byte("guess"), body)},
		"tampered body":     {tampered, good},
		"sha1 only":         {body, "sha1=" + strings.TrimPrefix(good, "sha256=")[:40]},
		"not hex":           {body, "sha256=zz" + strings.TrimPrefix(good, "sha256=")[2:]},
		"truncated":         {body, good[:len(good)-2]},
		"empty signature":   {body, "sha256="},
		"signature of null": {body, webhook.Sign(secret, nil)},
		// GitHub's older header, which go-github's ValidateSignature
		// would accept: berth takes SHA-256 only.
		"real sha1 HMAC": {body, sha1Sign(secret, body)},
	}
	for name, c := range cases {
		w := deliver(r, "pull_request", "forged-"+name, c.body, c.sig)
		if w.Code != http.StatusUnauthorized {
			t.Errorf("%s: got %d, want 401", name, w.Code)
		}
	}
	push := payload(t, "push", "04-event.json")
	if w := deliver(r, "push", "forged-push", push, webhook.Sign([]byte("guess"), push)); w.Code != 401 {
		t.Errorf("forged push: %d", w.Code)
	}
	time.Sleep(50 * time.Millisecond)
	evs, pushes := rec.snapshot()
	if len(evs) != 0 || len(pushes) != 0 {
		t.Fatalf("a forged delivery did something: %v %v", evs, pushes)
	}
	if got := r.Counts()["unauthorized"]; got != len(cases)+1 {
		t.Errorf("unauthorized count %d", got)
	}
	// A forged delivery does not spend its delivery ID: the real one with
	// the same ID still counts.
	if w := deliver(r, "pull_request", "forged-unsigned", body, good); w.Code != 202 {
		t.Errorf("the genuine delivery after a forged one with its ID: %d", w.Code)
	}
	// The same event under another delivery ID is a replay: answered, not
	// planned again.
	if w := deliver(r, "pull_request", "x", body, good); w.Code != 200 || !strings.Contains(w.Body.String(), "duplicate event") {
		t.Errorf("a replay under a new ID: %d %s", w.Code, w.Body.String())
	}
	req := httptest.NewRequest(http.MethodGet, "/webhook", nil)
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", w.Code)
	}
}

func TestRedelivery(t *testing.T) {
	rec := newRecorder()
	r := start(t, rec, "master", -1)
	body := payload(t, "pull_request", "22-synchronize.json")
	sig := webhook.Sign(secret, body)
	if w := deliver(r, "pull_request", "same-id", body, sig); w.Code != 202 {
		t.Fatal(w.Code)
	}
	waitCalls(t, rec, 1)
	if w := deliver(r, "pull_request", "same-id", body, sig); w.Code != 200 || !strings.Contains(w.Body.String(), "duplicate") {
		t.Fatalf("redelivery: %d %s", w.Code, w.Body.String())
	}
	time.Sleep(50 * time.Millisecond)
	if evs, _ := rec.snapshot(); len(evs) != 1 {
		t.Fatalf("a redelivery was handled again: %d calls", len(evs))
	}
}

func TestOtherRepositoryIgnored(t *testing.T) {
	rec := newRecorder()
	r, err := webhook.New(webhook.Options{Secret: secret, Repo: "acme/other", Handler: rec})
	if err != nil {
		t.Fatal(err)
	}
	body := payload(t, "pull_request", "00-opened.json")
	if w := deliver(r, "pull_request", "o", body, webhook.Sign(secret, body)); w.Code != 200 || strings.TrimSpace(w.Body.String()) != "ignored" {
		t.Fatalf("%d %s", w.Code, w.Body.String())
	}
}

// TestPlanCommand derives a "/berth plan" comment on a pull request from
// GitHub's issue_comment payload (whose comment is on an issue and says
// something else): the body and issue.pull_request are changed in memory.
func TestPlanCommand(t *testing.T) {
	var p map[string]any
	if err := json.Unmarshal(payload(t, "issue_comment", "00-created.json"), &p); err != nil {
		t.Fatal(err)
	}
	issue := p["issue"].(map[string]any)
	issue["pull_request"] = map[string]any{"url": "https://api.github.com/repos/Codertocat/Hello-World/pulls/1"}
	for _, tt := range []struct {
		body string
		plan bool
	}{
		{"/berth plan", true},
		{"Looks good.\n/berth plan please\n", true},
		{"please /berth plan", false},
		{"/berth", false},
	} {
		p["comment"].(map[string]any)["body"] = tt.body
		body, _ := json.Marshal(p)
		rec := newRecorder()
		r := start(t, rec, "master", -1)
		w := deliver(r, "issue_comment", "c", body, webhook.Sign(secret, body))
		if tt.plan != (w.Code == 202) {
			t.Errorf("%q: got %d %s", tt.body, w.Code, w.Body.String())
		}
		if tt.plan {
			waitCalls(t, rec, 1)
			if evs, _ := rec.snapshot(); evs[0].Number != 1 || !evs[0].Plan {
				t.Errorf("%q: %+v", tt.body, evs[0])
			}
		}
	}
	// The same comment on an issue (GitHub's payload as it is) is ignored.
	rec := newRecorder()
	r := start(t, rec, "master", -1)
	body := payload(t, "issue_comment", "00-created.json")
	if w := deliver(r, "issue_comment", "c", body, webhook.Sign(secret, body)); w.Code != 200 {
		t.Errorf("issue comment: %d", w.Code)
	}
}

// TestGiteaShapes: Gitea says "synchronized" and sends reviews as
// pull_request_approved.
func TestGiteaShapes(t *testing.T) {
	rec := newRecorder()
	r := start(t, rec, "master", -1)
	for i, c := range []struct{ event, body string }{
		{"pull_request", `{"action":"synchronized","number":7,"repository":{"full_name":"Codertocat/Hello-World"},"pull_request":{"number":7}}`},
		{"pull_request_approved", `{"action":"reviewed","number":8,"repository":{"full_name":"Codertocat/Hello-World"},"pull_request":{"number":8}}`},
		{"issue_comment", `{"action":"created","is_pull":true,"issue":{"number":9},"comment":{"body":"/berth plan"},"repository":{"full_name":"Codertocat/Hello-World"}}`},
	} {
		body := []byte(c.body)
		if w := deliver(r, c.event, fmt.Sprint("g", i), body, webhook.Sign(secret, body)); w.Code != 202 {
			t.Fatalf("%s: %d %s", c.event, w.Code, w.Body.String())
		}
	}
	waitCalls(t, rec, 3)
	evs, _ := rec.snapshot()
	slices.SortFunc(evs, func(a, b webhook.Event) int { return a.Number - b.Number })
	got := []string{}
	for _, e := range evs {
		got = append(got, fmt.Sprintf("%d plan=%v review=%v", e.Number, e.Plan, e.Review))
	}
	want := []string{"7 plan=true review=false", "8 plan=false review=true", "9 plan=true review=false"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Error(diff)
	}
}

// TestBurstCoalesced: a burst of deliveries for one pull request while it
// is being planned becomes one more plan, with every flag merged.
func TestBurstCoalesced(t *testing.T) {
	rec := newRecorder()
	block := make(chan struct{})
	rec.block = block
	r := start(t, rec, "master", -1)
	sync := payload(t, "pull_request", "22-synchronize.json")
	review := payload(t, "pull_request_review", "00-submitted.json")
	deliver(r, "pull_request", "b0", sync, webhook.Sign(secret, sync))
	time.Sleep(20 * time.Millisecond) // the first is being handled (blocked)
	// Ten pushes to the pull request while it is being planned.
	for i := 1; i <= 10; i++ {
		body := withHead(t, sync, fmt.Sprintf("%040d", i))
		deliver(r, "pull_request", fmt.Sprint("b", i), body, webhook.Sign(secret, body))
	}
	deliver(r, "pull_request_review", "r1", review, webhook.Sign(secret, review))
	close(block)
	waitCalls(t, rec, 2)
	time.Sleep(50 * time.Millisecond)
	evs, _ := rec.snapshot()
	if len(evs) != 2 {
		t.Fatalf("want 2 plans for the burst, got %d", len(evs))
	}
	if !evs[1].Plan || !evs[1].Review || len(evs[1].Deliveries) != 11 {
		t.Errorf("second event %+v", evs[1])
	}
}

func TestDelayMergesBurst(t *testing.T) {
	rec := newRecorder()
	// The window is wide enough for five deliveries on a loaded machine
	// (under the race detector too).
	r := start(t, rec, "master", time.Second)
	sync := payload(t, "pull_request", "22-synchronize.json")
	for i := range 5 {
		body := withHead(t, sync, fmt.Sprintf("%040d", i))
		deliver(r, "pull_request", fmt.Sprint("d", i), body, webhook.Sign(secret, body))
	}
	waitCalls(t, rec, 1)
	time.Sleep(1500 * time.Millisecond)
	if evs, _ := rec.snapshot(); len(evs) != 1 || len(evs[0].Deliveries) != 5 {
		t.Fatalf("want one plan of 5 deliveries, got %+v", evs)
	}
}

func TestRetryAfterFailure(t *testing.T) {
	rec := newRecorder()
	rec.fail = 1
	r := start(t, rec, "master", -1)
	body := payload(t, "pull_request", "00-opened.json")
	deliver(r, "pull_request", "f", body, webhook.Sign(secret, body))
	waitCalls(t, rec, 2)
	evs, _ := rec.snapshot()
	if evs[0].Attempt != 1 || evs[1].Attempt != 2 || !evs[1].Plan {
		t.Fatalf("events %+v", evs)
	}
}

func TestNewNeedsSecret(t *testing.T) {
	if _, err := webhook.New(webhook.Options{Repo: "a/b", Handler: newRecorder()}); err == nil {
		t.Fatal("a receiver without a secret was made")
	}
}

// waiter is a Handler that answers *webhook.Later for one pull request
// until its ready channel is closed, and records every call.
type waiter struct {
	*recorder
	number int
	ready  chan struct{}
}

func (w *waiter) PullRequest(ctx context.Context, ev webhook.Event) error {
	err := w.recorder.PullRequest(ctx, ev)
	select {
	case <-w.ready:
	default:
		if ev.Number == w.number {
			return &webhook.Later{Reason: "its evaluation is retried", Ready: w.ready}
		}
	}
	return err
}

// TestLaterFreesTheWorker: a pull request whose handler answers Later does
// not hold the one worker: the next pull request is handled meanwhile, and
// the first comes back once, when it is ready, as the same attempt.
func TestLaterFreesTheWorker(t *testing.T) {
	w := &waiter{recorder: newRecorder(), ready: make(chan struct{})}
	r := startWith(t, webhook.Options{Secret: secret, Repo: "Codertocat/Hello-World", Branch: "master", Handler: w,
		Delay: -1, Workers: 1})
	opened := payload(t, "pull_request", "00-opened.json")
	var first struct {
		Number int `json:"number"`
	}
	if err := json.Unmarshal(opened, &first); err != nil {
		t.Fatal(err)
	}
	w.number = first.Number
	other := withNumber(t, opened, first.Number+1)
	deliver(r, "pull_request", "l1", opened, webhook.Sign(secret, opened))
	waitCalls(t, w.recorder, 1)
	deliver(r, "pull_request", "l2", other, webhook.Sign(secret, other))
	waitCalls(t, w.recorder, 1) // handled while the first waits
	close(w.ready)
	waitCalls(t, w.recorder, 1)
	time.Sleep(50 * time.Millisecond) // no further call
	evs, _ := w.snapshot()
	var got []int
	for _, ev := range evs {
		got = append(got, ev.Number)
		if ev.Attempt != 1 {
			t.Errorf("pull request %d handled as attempt %d, want 1: waiting is not failing", ev.Number, ev.Attempt)
		}
	}
	if d := cmp.Diff([]int{first.Number, first.Number + 1, first.Number}, got); d != "" {
		t.Errorf("pull requests handled (-want +got):\n%s", d)
	}
}

// withNumber is a pull_request payload of another pull request.
func withNumber(t *testing.T, body []byte, n int) []byte {
	t.Helper()
	var p map[string]any
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	p["number"] = n
	p["pull_request"].(map[string]any)["number"] = n
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRetriesGiveUp: a pull request that keeps failing is tried 1+Retries
// times, waiting longer each time, and then left until its next event.
func TestRetriesGiveUp(t *testing.T) {
	rec := newRecorder()
	rec.fail = 100
	r, err := webhook.New(webhook.Options{Secret: secret, Repo: "Codertocat/Hello-World", Handler: rec,
		Delay: -1, Backoff: time.Millisecond, Retries: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	r.Enqueue(webhook.Event{Number: 7, Plan: true})
	waitCalls(t, rec, 3)
	time.Sleep(100 * time.Millisecond) // a fourth try would come within 4 ms
	evs, _ := rec.snapshot()
	var attempts []int
	for _, ev := range evs {
		attempts = append(attempts, ev.Attempt)
	}
	if diff := cmp.Diff([]int{1, 2, 3}, attempts); diff != "" {
		t.Fatalf("attempts (-want +got):\n%s", diff)
	}
	// A fresh event starts over.
	r.Enqueue(webhook.Event{Number: 7, Plan: true})
	waitCalls(t, rec, 1)
	if evs, _ := rec.snapshot(); evs[3].Attempt != 1 {
		t.Errorf("a fresh event after giving up is attempt %d, want 1", evs[3].Attempt)
	}
}

// overlap is a Handler that records whether one pull request was ever
// handled by two workers at once.
type overlap struct {
	mu      sync.Mutex
	running map[int]bool
	twice   []int
	calls   chan struct{}
}

func (o *overlap) PullRequest(ctx context.Context, ev webhook.Event) error {
	o.mu.Lock()
	if o.running[ev.Number] {
		o.twice = append(o.twice, ev.Number)
	}
	o.running[ev.Number] = true
	o.mu.Unlock()
	time.Sleep(time.Millisecond)
	o.mu.Lock()
	delete(o.running, ev.Number)
	o.mu.Unlock()
	o.calls <- struct{}{}
	return nil
}

func (o *overlap) Push(webhook.Push) {}

// TestOnePullRequestOneWorker: with many workers and events for a few pull
// requests arriving all the time, no pull request is handled twice at once.
func TestOnePullRequestOneWorker(t *testing.T) {
	o := &overlap{running: map[int]bool{}, calls: make(chan struct{}, 1000)}
	r, err := webhook.New(webhook.Options{Secret: secret, Repo: "a/b", Handler: o, Delay: -1, Workers: 8})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	for i := range 300 {
		r.Enqueue(webhook.Event{Number: 1 + i%3, Plan: true})
		if i%30 == 0 {
			<-o.calls
		}
	}
	cancel()
	<-done
	if len(o.twice) > 0 {
		t.Fatalf("pull requests handled by two workers at once: %v", o.twice)
	}
}
