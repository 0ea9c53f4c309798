package webhook_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/berth-gpu/berth/sources/webhook"
)

// noop is a Handler that does nothing.
type noop struct{}

func (noop) PullRequest(context.Context, webhook.Event) error { return nil }
func (noop) Push(webhook.Push)                                {}

// FuzzWebhook delivers signed bodies of any event: the receiver answers
// 200, 202 or 400, never fails or panics, and accepts only what Parse says
// asks for work on a pull request or the tracked branch. It is seeded with
// every stored GitHub payload (testdata/github, a copy of berth's shared
// webhook examples).
func FuzzWebhook(f *testing.F) {
	dirs, err := os.ReadDir(filepath.Join("testdata", "github"))
	if err != nil {
		f.Fatal(err)
	}
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		files, _ := filepath.Glob(filepath.Join("testdata", "github", d.Name(), "*.json"))
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(d.Name(), b)
		}
	}
	f.Add("pull_request", []byte(`{"action":"synchronized","number":7,"repository":{"full_name":"Codertocat/Hello-World"},"pull_request":{"number":7,"head":{"sha":"a"},"base":{"sha":"b"}}}`))
	f.Add("issue_comment", []byte(`{"action":"created","is_pull":true,"issue":{"number":9},"comment":{"id":1,"body":"/berth plan"},"repository":{"full_name":"Codertocat/Hello-World"}}`))
	r, err := webhook.New(webhook.Options{Secret: secret, Repo: "Codertocat/Hello-World", Branch: "master", Handler: noop{}, Delay: -1})
	if err != nil {
		f.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	n := 0
	f.Fuzz(func(t *testing.T, event string, body []byte) {
		work, perr := webhook.Parse(event, body, "Codertocat/Hello-World", "master")
		if perr == nil && work.Outcome == "accepted" {
			if (work.Event == nil) == (work.Push == nil) {
				t.Fatalf("accepted work without exactly one of an event and a push: %+v", work)
			}
			if work.Event != nil && work.Event.Number <= 0 {
				t.Fatalf("accepted work for pull request %d", work.Event.Number)
			}
		}
		n++
		req := httptest.NewRequest(http.MethodPost, "/webhook", bytes.NewReader(body))
		req.Header.Set("X-GitHub-Event", event)
		req.Header.Set("X-GitHub-Delivery", fmt.Sprint("fuzz-", n))
		req.Header.Set("X-Hub-Signature-256", webhook.Sign(secret, body))
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		switch {
		case len(body) > webhook.DefaultMaxBody:
			if w.Code != http.StatusRequestEntityTooLarge {
				t.Fatalf("a body over the bound: %d", w.Code)
			}
		case perr != nil:
			if w.Code != http.StatusBadRequest {
				t.Fatalf("Parse failed (%v) but the receiver answered %d", perr, w.Code)
			}
		case w.Code == http.StatusAccepted && work.Outcome != "accepted":
			t.Fatalf("accepted a delivery Parse calls %q", work.Outcome)
		case w.Code != http.StatusOK && w.Code != http.StatusAccepted:
			t.Fatalf("answered %d: %s", w.Code, w.Body.String())
		}
	})
}
