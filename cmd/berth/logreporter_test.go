package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/berth-gpu/berth/reconcile"
)

// A state that lasts (an invalid tracked branch, a standby replica) is
// logged when it starts and when it changes, not at every resync.
func TestLogReporterSaysALastingStateOnce(t *testing.T) {
	var buf bytes.Buffer
	l := &logReporter{log: slog.New(slog.NewTextHandler(&buf, nil))}
	bad := reconcile.Report{Revision: reconcile.Revision{Name: "main@sha1:b"}, Invalid: errors.New("x.cue:1:1: bad"),
		Clusters: []reconcile.ClusterReport{{Name: "gpu", Err: errors.New("not the leader")}}}
	for range 5 {
		l.Report(context.Background(), bad)
	}
	if n := strings.Count(buf.String(), "revision is invalid"); n != 1 {
		t.Errorf("an invalid revision resynced 5 times was logged %d times, want 1", n)
	}
	if n := strings.Count(buf.String(), "cluster failed"); n != 1 {
		t.Errorf("a lasting cluster error was logged %d times, want 1", n)
	}
	// Fixed, then broken again: said again.
	l.Report(context.Background(), reconcile.Report{Clusters: []reconcile.ClusterReport{{Name: "gpu"}}})
	l.Report(context.Background(), bad)
	if n := strings.Count(buf.String(), "revision is invalid"); n != 2 {
		t.Errorf("invalid, valid, invalid: logged %d times, want 2", n)
	}
	if n := strings.Count(buf.String(), "cluster failed"); n != 2 {
		t.Errorf("failing, fine, failing: logged %d times, want 2", n)
	}
}
