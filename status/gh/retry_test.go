package gh_test

import (
	"io/fs"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/cue"
	"github.com/berth-gpu/berth/reconcile"
)

// retryingLoader answers *cue.Retrying for the trees that hold slow until
// done is closed, as serve's loader does while a tree is evaluated again
// with its full CPU budget.
type retryingLoader struct {
	reconcile.Loader
	slow string
	done chan struct{}
}

func (l *retryingLoader) Load(fsys fs.FS) (*berth.Config, error) {
	if _, err := fs.Stat(fsys, l.slow); err == nil {
		select {
		case <-l.done:
		default:
			return nil, &cue.Retrying{First: time.Second, Full: time.Minute, Done: l.done}
		}
	}
	return l.Loader.Load(fsys)
}

// TestPlanWaitsForRetry: a pull request whose head needs more than the
// first try's CPU budget gets a pending berth/validate that says so, and
// its plan (statuses and comment) once the retry ended, through the
// webhook queue, with no planner waiting in between.
func TestPlanWaitsForRetry(t *testing.T) {
	l := &retryingLoader{Loader: cue.NewLoader(cue.Options{}), slow: "workloads/vision/llama.cue", done: make(chan struct{})}
	e := newEnvWith(t, l)
	if code := e.deliverFile(t, "pull_request", "00-opened.json"); code != http.StatusAccepted {
		t.Fatalf("delivery: %d", code)
	}
	validate := func() []string {
		var out []string
		for _, s := range e.fake.Statuses(headSHA) {
			if s.Context == "berth/validate" {
				out = append(out, s.State+": "+s.Description)
			}
		}
		return out
	}
	waitUntil(t, "the pending berth/validate", func() bool { return len(validate()) == 1 })
	const pending = "pending: evaluation needs more than the first-try budget (at most 1s of CPU time); retrying with the full budget (1m0s)"
	if got := validate()[0]; got != pending {
		t.Errorf("berth/validate while the retry runs:\n got %q\nwant %q", got, pending)
	}
	if n := len(e.fake.Comments(2)); n != 0 {
		t.Errorf("%d comments before the retry ended", n)
	}
	close(l.done)
	waitUntil(t, "the plan after the retry", func() bool { return len(e.fake.Comments(2)) == 1 && len(validate()) == 2 })
	if got := validate()[0]; !strings.HasPrefix(got, "success") { // newest first
		t.Errorf("berth/validate after the retry: %q", got)
	}
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}
