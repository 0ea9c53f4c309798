package cue

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestRetryLaneOrder: while the retry lane is busy, the retries that wait
// for it are served the tracked branch's first, then in the order they
// came, whatever order the goroutines happen to run in.
func TestRetryLaneOrder(t *testing.T) {
	p := NewPool(1)
	p.acquire(true, false) // the lane is busy
	served := make(chan string)
	arrive := func(name string, tracked bool) {
		n := p.waitingRetries()
		go func() {
			p.acquire(true, tracked)
			served <- name
		}()
		for p.waitingRetries() == n { // until it waits
			time.Sleep(time.Millisecond)
		}
	}
	arrive("pr-1", false)
	arrive("pr-2", false)
	arrive("main", true)
	arrive("pr-3", false)

	var got []string
	for range 4 {
		p.release(true)
		got = append(got, <-served)
	}
	p.release(true)
	if d := cmp.Diff([]string{"main", "pr-1", "pr-2", "pr-3"}, got); d != "" {
		t.Errorf("retries served in another order (-want +got):\n%s", d)
	}
	if p.waitingRetries() != 0 || p.retries.busy {
		t.Errorf("the lane is not free after the last release")
	}
	if n := p.Children(); n != 2 {
		t.Errorf("Children() = %d, want 2: one slot and the retry lane", n)
	}
}
