package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/cue"
	"github.com/berth-gpu/berth/fixtures/fake"
	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/redact"
)

func TestDashboardNeedsTheToken(t *testing.T) {
	checkTokenGate(t, []gateCase{
		{"/", "", http.StatusUnauthorized},
		{"/?team=vision", "Bearer wrong", http.StatusUnauthorized},
		{"/queues", "", http.StatusUnauthorized},
		{"/workloads/vision/train", "", http.StatusUnauthorized},
		{"/gpus", "", http.StatusUnauthorized},
		{"/teams", "", http.StatusUnauthorized},
		{"/audit", "", http.StatusUnauthorized},
		{"/audit/export?format=csv", "", http.StatusUnauthorized},
		{"/assets/style.css", "", http.StatusOK}, // the sign-in page's; nothing of the serve's
		{"/no-such-page", "Bearer s3cret-token", http.StatusNotFound},
	})
}

func TestTailFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stdout")
	var b strings.Builder
	for i := range 300 {
		b.WriteString(strings.Repeat("x", 10) + " line " + string(rune('a'+i%26)) + "\n")
	}
	b.WriteString("no newline yet")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		maxBytes  int64
		maxLines  int
		lines     int
		truncated bool
	}{
		{1 << 20, 1000, 301, false},
		{1 << 20, 100, 100, true},
		{200, 1000, 11, true}, // 200 bytes: the cut first line is dropped
	} {
		lines, truncated, err := tailFile(path, tt.maxBytes, tt.maxLines)
		if err != nil {
			t.Fatal(err)
		}
		if len(lines) != tt.lines || truncated != tt.truncated || lines[len(lines)-1] != "no newline yet" {
			t.Errorf("tail of %d bytes, %d lines: %d lines (truncated %v), last %q; want %d lines (truncated %v) ending with the unfinished line",
				tt.maxBytes, tt.maxLines, len(lines), truncated, lines[len(lines)-1], tt.lines, tt.truncated)
		}
	}
}

// The pages are drawn from data kept between reconciles: a reconcile
// that changed what runs shows at the next request.
func TestDashboardShowsTheLatestReconcile(t *testing.T) {
	c := fake.NewCluster("box", berth.Node{Name: "box", Ready: true, CPU: berth.MustQuantity("64"), Memory: berth.MustQuantity("256Gi"), GPUs: 4, GPUModel: "H100"})
	e := reconcile.New(reconcile.Options{Clusters: []reconcile.Cluster{c}, Loader: cue.NewLoader(cue.Options{}), Redact: &redact.Live{}})
	s := &server{engine: e}
	h := s.handler(prometheus.NewRegistry())
	job := func(name string) string {
		return fmt.Sprintf(`workloads: t: %q: {kind: "batch", image: "busybox", command: ["true"], resources: {cpu: 1, memory: "1Gi", flavor: "cpu"}, maxDuration: "10m"}
`, name)
	}
	page := func() string {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
		if w.Code != http.StatusOK {
			t.Fatalf("GET /: %d %s", w.Code, w.Body)
		}
		return w.Body.String()
	}
	for i, jobs := range [][]string{{"first"}, {"first", "second"}} {
		fsys := fstest.MapFS{"platform/platform.cue": {Data: []byte(e2ePlatform)}}
		for _, j := range jobs {
			fsys["jobs/"+j+".cue"] = &fstest.MapFile{Data: []byte("package jobs\n\n" + job(j))}
		}
		s.record(e.ReconcileRevision(context.Background(), reconcile.Revision{Name: fmt.Sprintf("main@sha1:%d", i), Commit: fmt.Sprint(i), FS: fsys}))
		got := page()
		for _, j := range jobs {
			if !strings.Contains(got, ">t/"+j+"</a>") {
				t.Errorf("after reconcile %d, the workloads page does not list t/%s", i+1, j)
			}
		}
		if want := fmt.Sprintf("main@sha1:%d", i); !strings.Contains(got, want) {
			t.Errorf("after reconcile %d, the page does not name revision %s", i+1, want)
		}
	}
}
