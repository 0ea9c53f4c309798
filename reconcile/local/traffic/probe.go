package traffic

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"time"

	"github.com/berth-gpu/berth"
)

// Target is where a probe checks one replica.
type Target struct {
	// Host is the replica's address, without port ("127.0.0.1").
	Host string
	// Port is the replica's port of the probe's port reference.
	Port int
	// Env and Dir are the replica's, for a command probe.
	Env []string
	Dir string
}

// Check runs probe p once against t, within p's timeout (one second where
// unset). nil means it passed; an error says why not.
func Check(ctx context.Context, client *http.Client, p berth.Probe, t Target) error {
	timeout := p.Timeout.D()
	if timeout <= 0 {
		timeout = time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	addr := net.JoinHostPort(t.Host, fmt.Sprint(t.Port))
	switch p.Kind() {
	case berth.ProbeCommand:
		cmd := exec.CommandContext(ctx, p.Command[0], p.Command[1:]...)
		cmd.Env, cmd.Dir = t.Env, t.Dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("command %s: %w: %.200s", p.Command[0], err, out)
		}
		return nil
	case berth.ProbeHTTP:
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+p.Path, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("GET %s: %s", p.Path, resp.Status)
		}
		return nil
	default:
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

// ErrNoResult is a Tracker's reason before its first result.
var ErrNoResult = errors.New("not checked yet")

// Tracker turns a probe's results into passing or failing: a pass resets
// the count of failures, failureThreshold failures in a row fail it, and a
// failure within the start-up grace does not count. It is pure: the time
// comes in with each result.
type Tracker struct {
	Threshold int
	Grace     time.Duration
	Started   time.Time
	// Passing is the verdict so far; a Tracker starts as its owner says
	// (not ready; alive).
	Passing  bool
	failures int
	// Last is the last failure's reason (nil after a pass).
	Last error
}

// NewTracker tracks probe p of a replica started at started, beginning at
// passing.
func NewTracker(p berth.Probe, started time.Time, passing bool) *Tracker {
	return &Tracker{Threshold: max(p.FailureThreshold, 1), Grace: p.StartupGrace.D(), Started: started, Passing: passing}
}

// Observe records one result at now and reports whether the verdict
// changed.
func (t *Tracker) Observe(err error, now time.Time) (changed bool) {
	was := t.Passing
	t.Last = err
	switch {
	case err == nil:
		t.failures, t.Passing = 0, true
	case now.Sub(t.Started) < t.Grace:
		// still starting: failures do not count yet.
	default:
		t.failures++
		if t.failures >= t.Threshold {
			t.Passing = false
		}
	}
	return t.Passing != was
}
