package reconcile_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestReportErrorsScrubbed: an error that quotes an env value (a cluster's
// error echoing a workload's spec) leaves the engine without it, in the
// report and the reporter's copy; the cause is
// still found by errors.Is.
func TestReportErrorsScrubbed(t *testing.T) {
	s := newScenario(t)
	over := map[string]string{"workloads/nlp/env.cue": `package nlp
workloads: nlp: "prepare-data": env: {API_KEY: "xyz", TOKEN: "sk-long-value"}
`}
	cause := errors.New("connection refused")
	s.cluster.FailObserve = fmt.Errorf("apiserver said: env API_KEY=xyz TOKEN=sk-long-value is invalid: %w", cause)
	rep := s.reconcile(over)
	err := rep.Clusters[0].Err
	if err == nil {
		t.Fatal("the cluster's failure was not reported")
	}
	if !errors.Is(err, cause) {
		t.Error("the scrubbed error lost its cause")
	}
	texts := []string{err.Error()}
	for _, c := range s.reporter.Last().Clusters {
		if c.Err != nil {
			texts = append(texts, c.Err.Error())
		}
	}
	for _, text := range texts {
		if strings.Contains(text, "sk-long-value") || strings.Contains(text, "=xyz") {
			t.Errorf("an env value left the engine: %s", text)
		}
	}
	if !strings.Contains(err.Error(), "API_KEY=<redacted>") {
		t.Errorf("scrubbed error: %s", err)
	}
}
