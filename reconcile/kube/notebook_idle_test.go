package kube

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/berth-gpu/berth"
)

// TestJupyterActivityThroughTheServiceProxy: a notebook's last activity is
// its Jupyter server's /api/status, asked through the API server's service
// proxy with the token of the notebook's Secret as Jupyter's token query
// parameter (the Authorization header is berth's own, for the API server).
// An API server stands in here: the test control plane runs no containers.
func TestJupyterActivityThroughTheServiceProxy(t *testing.T) {
	var proxied *http.Request
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/api/v1/namespaces/berth-ml/secrets/explore-token":
			w.Write([]byte(`{"kind":"Secret","apiVersion":"v1","metadata":{"name":"explore-token"},"data":{"token":"c2VjcmV0"}}`))
		case "/api/v1/namespaces/berth-ml/services/http:explore:http/proxy/api/status":
			proxied = r
			w.Write([]byte(`{"started":"2026-11-21T09:00:00Z","last_activity":"2026-11-21T09:40:00.123Z","kernels":1,"connections":0}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer api.Close()
	c, err := New(Options{Name: "gpu", Config: &rest.Config{Host: api.URL, BearerToken: "berth"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	nb := NotebookTarget{Workload: berth.MakeWorkloadID("ml", "explore"), Namespace: "berth-ml", Service: "explore", Port: "http"}
	last, ok, err := c.JupyterActivity(context.Background(), nb)
	if err != nil || !ok {
		t.Fatalf("activity: %v %v", ok, err)
	}
	if want := time.Date(2026, 11, 21, 9, 40, 0, 123e6, time.UTC); !last.Equal(want) {
		t.Errorf("last activity %v, want %v", last, want)
	}
	if proxied == nil {
		t.Fatal("/api/status was not asked through the service proxy")
	}
	if tok := proxied.URL.Query().Get("token"); tok != "secret" {
		t.Errorf("token %q, want the Secret's", tok)
	}
	if a := proxied.Header.Get("Authorization"); a != "Bearer berth" {
		t.Errorf("Authorization %q, want berth's own for the API server", a)
	}

	nb.Service = "gone"
	if _, ok, err := c.JupyterActivity(context.Background(), nb); ok || err == nil {
		t.Errorf("a notebook whose server does not answer: %v %v, want an error", ok, err)
	}
}
