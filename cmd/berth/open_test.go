package main

import (
	"testing"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/status"
)

// TestFindURL: berth open finds the run reached at a URL by team/name or
// a name unique across teams, and every "no" says why.
func TestFindURL(t *testing.T) {
	ws := func(id string, kind berth.Kind, state, url, reason string) status.WorkloadStatus {
		return status.WorkloadStatus{Cluster: "box", Workload: berth.WorkloadID(id), RunID: "1", Kind: kind, State: state, URL: url, Reason: reason}
	}
	clusters := []clusterStatus{{Name: "box", Workloads: []status.WorkloadStatus{
		ws("serving/chat-api", berth.KindService, "running", "http://127.0.0.1:8480/", ""),
		ws("serving/internal", berth.KindService, "running", "", ""),
		ws("vision/explore", berth.KindNotebook, "running", "http://127.0.0.1:41234/", ""),
		ws("vision/label", berth.KindNotebook, "stopped", "", "idle for 2h0m0s (limit 2h): stopped and its GPUs freed"),
		ws("nlp/label", berth.KindNotebook, "queued", "", ""),
		ws("vision/train", berth.KindTraining, "running", "", ""),
	}}}
	for _, tc := range []struct{ arg, url, err string }{
		{"vision/explore", "http://127.0.0.1:41234/", ""},
		{"explore", "http://127.0.0.1:41234/", ""},
		{"chat-api", "http://127.0.0.1:8480/", ""},
		{"label", "", "label names nlp/label and vision/label: say which, as team/name"},
		{"vision/label", "", "vision/label has no URL: it is stopped (idle for 2h0m0s (limit 2h): stopped and its GPUs freed)"},
		{"nlp/label", "", "nlp/label has no URL: it is queued"},
		{"train", "", "vision/train is a training: only services, inference servers and notebooks are reached at a URL"},
		{"internal", "", "serving/internal has no URL: it is not exposed (set expose.hostPort on one machine, expose.host on Kubernetes) and declares no notebook port"},
		{"vision/nothing", "", "no workload vision/nothing runs on the clusters of this serve"},
	} {
		got, err := findURL(clusters, tc.arg)
		switch {
		case tc.err != "" && (err == nil || err.Error() != tc.err):
			t.Errorf("%s: error %v, want %q", tc.arg, err, tc.err)
		case tc.err == "" && (err != nil || got.URL != tc.url):
			t.Errorf("%s: %q, %v; want %s", tc.arg, got.URL, err, tc.url)
		}
	}
}
