package webhook_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-gpu/berth/sources/webhook"
)

// countingReader counts what the receiver read of a body.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func newReceiver(t *testing.T, h webhook.Handler, opts webhook.Options) *webhook.Receiver {
	t.Helper()
	opts.Secret, opts.Repo, opts.Branch, opts.Handler, opts.Delay = secret, "Codertocat/Hello-World", "master", h, -1
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

func request(body io.Reader, length int64, event, delivery, sig string) *http.Request {
	req := httptest.NewRequest(http.MethodPost, "/webhook", body)
	req.ContentLength = length
	req.Header.Set("X-GitHub-Event", event)
	if delivery != "" {
		req.Header.Set("X-GitHub-Delivery", delivery)
	}
	if sig != "" {
		req.Header.Set("X-Hub-Signature-256", sig)
	}
	return req
}

// TestBodyBounds: a body over MaxBody is refused with 413, without reading
// it when its length says so and after at most MaxBody+1 bytes when it
// does not; an unsigned one is refused before a byte is read.
func TestBodyBounds(t *testing.T) {
	rec := newRecorder()
	r := newReceiver(t, rec, webhook.Options{MaxBody: 1 << 10})
	big := bytes.Repeat([]byte("x"), 25<<20)
	sig := webhook.Sign([]byte("guess"), big)
	for _, tt := range []struct {
		name   string
		length int64
		sig    string
		code   int
		read   int64 // most bytes read
	}{
		{"declared length", int64(len(big)), sig, http.StatusRequestEntityTooLarge, 0},
		{"chunked", -1, sig, http.StatusRequestEntityTooLarge, 1<<10 + 1},
		{"unsigned", int64(len(big)), "", http.StatusUnauthorized, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body := &countingReader{r: bytes.NewReader(big)}
			w := httptest.NewRecorder()
			r.ServeHTTP(w, request(body, tt.length, "pull_request", "d-"+tt.name, tt.sig))
			if w.Code != tt.code {
				t.Errorf("got %d, want %d", w.Code, tt.code)
			}
			if got := body.n.Load(); got > tt.read {
				t.Errorf("read %d bytes of the body, want at most %d", got, tt.read)
			}
		})
	}
	if evs, _ := rec.snapshot(); len(evs) != 0 {
		t.Fatalf("a refused delivery was handled: %v", evs)
	}
	// Within the bound, a real payload goes through.
	r2 := newReceiver(t, rec, webhook.Options{})
	body := payload(t, "pull_request", "00-opened.json")
	if w := deliver(r2, "pull_request", "ok", body, webhook.Sign(secret, body)); w.Code != http.StatusAccepted {
		t.Fatalf("a real payload under the default bound: %d", w.Code)
	}
}

// TestBusy: with MaxInFlight bodies being read, the next delivery is
// answered 503 with Retry-After before its body is read.
func TestBusy(t *testing.T) {
	r := newReceiver(t, newRecorder(), webhook.Options{MaxInFlight: 1})
	pr, pw := io.Pipe()
	done := make(chan int)
	go func() {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, request(pr, -1, "pull_request", "slow", webhook.Sign(secret, []byte("{}"))))
		done <- w.Code
	}()
	pw.Write([]byte("{")) // the slow delivery is being read
	body := &countingReader{r: strings.NewReader("{}")}
	w := httptest.NewRecorder()
	r.ServeHTTP(w, request(body, 2, "pull_request", "next", webhook.Sign(secret, []byte("{}"))))
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" || body.n.Load() != 0 {
		t.Errorf("while full: %d, Retry-After %q, %d bytes read", w.Code, w.Header().Get("Retry-After"), body.n.Load())
	}
	pw.Write([]byte("}"))
	pw.Close()
	if code := <-done; code != http.StatusOK {
		t.Errorf("the slow delivery: %d", code)
	}
	// The slot is free again.
	w = httptest.NewRecorder()
	r.ServeHTTP(w, request(strings.NewReader("{}"), 2, "ping", "after", webhook.Sign(secret, []byte("{}"))))
	if w.Code != http.StatusOK {
		t.Errorf("after the slow delivery: %d", w.Code)
	}
}

// TestReplays: a signed delivery replayed with the same ID, a new ID or
// none is not planned again; a push to the pull request (a new head) is.
func TestReplays(t *testing.T) {
	rec := newRecorder()
	r := newReceiver(t, rec, webhook.Options{})
	body := payload(t, "pull_request", "22-synchronize.json")
	sig := webhook.Sign(secret, body)
	if w := deliver(r, "pull_request", "d1", body, sig); w.Code != http.StatusAccepted {
		t.Fatalf("first delivery: %d", w.Code)
	}
	waitCalls(t, rec, 1)
	for _, tt := range []struct {
		delivery string
		code     int
		says     string
	}{
		{"d1", 200, "duplicate delivery"},
		{"d2", 200, "duplicate event"},
		{"", 400, "missing X-GitHub-Delivery"},
	} {
		if w := deliver(r, "pull_request", tt.delivery, body, sig); w.Code != tt.code || !strings.Contains(w.Body.String(), tt.says) {
			t.Errorf("replay with ID %q: %d %q, want %d %q", tt.delivery, w.Code, w.Body.String(), tt.code, tt.says)
		}
	}
	pushed := withHead(t, body, strings.Repeat("a", 40))
	if w := deliver(r, "pull_request", "d3", pushed, webhook.Sign(secret, pushed)); w.Code != http.StatusAccepted {
		t.Fatalf("a new head: %d", w.Code)
	}
	waitCalls(t, rec, 1)
	push := payload(t, "push", "04-event.json")
	deliver(r, "push", "p1", push, webhook.Sign(secret, push))
	deliver(r, "push", "p2", push, webhook.Sign(secret, push))
	time.Sleep(50 * time.Millisecond)
	evs, pushes := rec.snapshot()
	if len(evs) != 2 || len(pushes) != 1 {
		t.Fatalf("%d plans and %d pushes, want 2 and 1: %+v %+v", len(evs), len(pushes), evs, pushes)
	}
	if c := r.Counts(); c["duplicate"] != 1 || c["replayed"] != 2 || c["no-delivery"] != 1 {
		t.Errorf("counts %v", c)
	}
}

// TestStoreAcrossRestart: deliveries and work recorded by one receiver are
// recognised by the next one over the same file.
func TestStoreAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "webhook.db")
	body := payload(t, "pull_request", "00-opened.json")
	sig := webhook.Sign(secret, body)
	st, err := webhook.OpenStore(path, webhook.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	if w := deliver(newReceiver(t, rec, webhook.Options{Seen: st}), "pull_request", "d1", body, sig); w.Code != http.StatusAccepted {
		t.Fatalf("first: %d", w.Code)
	}
	waitCalls(t, rec, 1)
	st.Close()

	st, err = webhook.OpenStore(path, webhook.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rec2 := newRecorder()
	r := newReceiver(t, rec2, webhook.Options{Seen: st})
	for _, id := range []string{"d1", "d2"} {
		if w := deliver(r, "pull_request", id, body, sig); w.Code != http.StatusOK {
			t.Errorf("after a restart, delivery %s: %d %s", id, w.Code, w.Body.String())
		}
	}
	time.Sleep(50 * time.Millisecond)
	if evs, _ := rec2.snapshot(); len(evs) != 0 {
		t.Fatalf("planned again after a restart: %+v", evs)
	}
}

// TestStoreBounds: keys are forgotten after the retention, and the oldest
// beyond Max.
func TestStoreBounds(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	path := filepath.Join(t.TempDir(), "webhook.db")
	st, err := webhook.OpenStore(path, webhook.StoreOptions{Retention: time.Hour, Max: 3, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	seen := func(k string) bool {
		t.Helper()
		ok, err := st.Seen(k)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	for _, k := range []string{"a", "b", "c"} {
		if seen(k) {
			t.Fatalf("%s seen before it was recorded", k)
		}
		now = now.Add(time.Minute)
	}
	if !seen("a") || !seen("c") {
		t.Fatal("a recorded key was forgotten")
	}
	seen("d") // the fourth: a, the oldest, goes
	if seen("a") {
		t.Error("the oldest key was kept beyond Max")
	}
	now = now.Add(2 * time.Hour)
	if seen("c") {
		t.Error("a key was kept beyond the retention")
	}
}
