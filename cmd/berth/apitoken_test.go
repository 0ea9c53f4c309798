package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAPIListenNeedsToken: off loopback, the status listener needs a token
// file or --insecure-api; the token is then required of /api/ and
// /metrics, not of the probes.
func TestAPIListenNeedsToken(t *testing.T) {
	file := filepath.Join(t.TempDir(), "token")
	os.WriteFile(file, []byte("s3cret-token\n"), 0o600)
	for _, tt := range []struct {
		listen, file string
		insecure     bool
		err          string
	}{
		{"127.0.0.1:7420", "", false, ""},
		{"[::1]:7420", "", false, ""},
		{"localhost:7420", "", false, ""},
		{"0.0.0.0:7420", "", false, "--listen 0.0.0.0:7420 is not a loopback address"},
		{":7420", "", false, "is not a loopback address"},
		{"0.0.0.0:7420", "", true, ""},
		{"0.0.0.0:7420", file, false, ""},
		{"0.0.0.0:7420", filepath.Join(t.TempDir(), "missing"), false, "--api-token-file"},
	} {
		_, err := apiToken(serveOptions{listen: tt.listen, apiTokenFile: tt.file, insecureAPI: tt.insecure})
		if (err == nil) != (tt.err == "") || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("--listen %s --api-token-file %q --insecure-api=%v: %v, want %q", tt.listen, tt.file, tt.insecure, err, tt.err)
		}
	}

	checkTokenGate(t, []gateCase{
		{"/api/status", "", http.StatusUnauthorized},
		{"/api/status", "Bearer wrong", http.StatusUnauthorized},
		{"/api/explain?workload=x", "Bearer s3cret-tok", http.StatusUnauthorized},
		{"/metrics", "", http.StatusUnauthorized},
		{"/healthz", "", http.StatusOK},
		{"/readyz", "", http.StatusServiceUnavailable},
	})
}

// gateCase is a GET of path with an Authorization header (none when
// empty) and the status it must answer.
type gateCase struct {
	path, auth string
	code       int
}

// checkTokenGate sends each case to the status listener's handler of a
// serve whose API token is "s3cret-token".
func checkTokenGate(t *testing.T, cases []gateCase) {
	t.Helper()
	srv := (&server{token: "s3cret-token"}).handler(nil)
	for _, tt := range cases {
		req := httptest.NewRequest(http.MethodGet, tt.path, nil)
		if tt.auth != "" {
			req.Header.Set("Authorization", tt.auth)
		}
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, req)
		if w.Code != tt.code {
			t.Errorf("GET %s with %q: %d, want %d", tt.path, tt.auth, w.Code, tt.code)
		}
	}
}
