package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDashboardNeedsTheToken(t *testing.T) {
	srv := (&server{token: "s3cret-token"}).handler(nil)
	for _, tt := range []struct {
		path, auth string
		code       int
	}{
		{"/", "", http.StatusUnauthorized},
		{"/?team=vision", "Bearer wrong", http.StatusUnauthorized},
		{"/queues", "", http.StatusUnauthorized},
		{"/workloads/vision/train", "", http.StatusUnauthorized},
		{"/assets/style.css", "", http.StatusUnauthorized},
		{"/assets/style.css", "Bearer s3cret-token", http.StatusOK},
		{"/no-such-page", "Bearer s3cret-token", http.StatusNotFound},
	} {
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
