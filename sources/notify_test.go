package sources

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

// The notifier tests run in a synctest bubble: time is fake and advances
// only when every goroutine is blocked, so the poll interval is exact and
// nothing depends on the machine's speed.

func TestNotifierStartAndPoll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		n := NewNotifier(ctx, NotifierOptions{Interval: time.Minute})
		start := time.Now()
		if s := <-n.C(); s.Reason != ReasonStart {
			t.Errorf("first signal %v, want start", s.Reason)
		}
		s := <-n.C()
		if s.Reason != ReasonPoll || time.Since(start) != time.Minute {
			t.Errorf("second signal %v after %v, want poll after 1m", s.Reason, time.Since(start))
		}
		// A trigger restarts the poll interval: polling is the fallback.
		time.Sleep(30 * time.Second)
		n.Trigger()
		if s := <-n.C(); s.Reason != ReasonTrigger {
			t.Errorf("signal %v, want trigger", s.Reason)
		}
		at := time.Now()
		if s := <-n.C(); s.Reason != ReasonPoll || time.Since(at) != time.Minute {
			t.Errorf("signal %v %v after the trigger, want poll after 1m", s.Reason, time.Since(at))
		}
		cancel()
		if _, ok := <-n.C(); ok {
			t.Error("C still open after the context ended")
		}
	})
}

func TestNotifierCoalesces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		changes := make(chan Change)
		n := NewNotifier(t.Context(), NotifierOptions{Interval: -1, Changes: []<-chan Change{changes}})
		// While the receiver is busy, triggers and changes pile into one
		// pending signal, merged with the start signal not yet taken.
		for range 5 {
			n.Trigger()
		}
		changes <- Change{Paths: []string{"b.cue", "a.cue"}}
		changes <- Change{Paths: []string{"a.cue", "c.cue"}, More: 2}
		synctest.Wait()
		s := <-n.C()
		if want := ReasonStart | ReasonTrigger | ReasonWatch; s.Reason != want {
			t.Errorf("reason %v, want %v", s.Reason, want)
		}
		if !slices.Equal(s.Paths, []string{"a.cue", "b.cue", "c.cue"}) || s.More != 2 {
			t.Errorf("paths %v more %d", s.Paths, s.More)
		}
		if s.Reason.String() != "start+watch+trigger" {
			t.Errorf("String() = %q", s.Reason.String())
		}
		// Nothing else is pending, and with polling off nothing comes.
		synctest.Wait()
		select {
		case s := <-n.C():
			t.Errorf("unexpected signal %v", s.Reason)
		default:
		}
	})
}

// TestNotifierWithWatcher runs a real watcher into a notifier.
func TestNotifierWithWatcher(t *testing.T) {
	dir := t.TempDir()
	w := watchDir(t, dir, WatchOptions{})
	n := NewNotifier(t.Context(), NotifierOptions{Changes: []<-chan Change{w.Changes()}})
	if s := recv(t, n.C(), "start"); s.Reason != ReasonStart {
		t.Fatalf("first signal %v", s.Reason)
	}
	write(t, dir, map[string]string{"a.cue": "a: 1\n"})
	s := recv(t, n.C(), "watch")
	if s.Reason != ReasonWatch || !slices.Equal(s.Paths, []string{"a.cue"}) {
		t.Errorf("signal %v %v, want watch of a.cue", s.Reason, s.Paths)
	}
}
