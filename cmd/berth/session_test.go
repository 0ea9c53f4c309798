package main

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/cue"
	"github.com/berth-gpu/berth/fixtures/fake"
	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/redact"
)

// A browser off loopback signs in once with the token and then reads the
// pages with the session cookie it got; a forged, expired or other
// token's cookie does not open them, and /api/ and /metrics still want
// the bearer token.
func TestBrowserSignIn(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	c := fake.NewCluster("box", berth.Node{Name: "box", Ready: true, GPUs: 4, GPUModel: "H100"})
	e := reconcile.New(reconcile.Options{Clusters: []reconcile.Cluster{c}, Loader: cue.NewLoader(cue.Options{}), Redact: &redact.Live{}})
	s := &server{engine: e, token: "s3cret-token", sessions: newSessions("s3cret-token")}
	s.sessions.now = func() time.Time { return now }
	h := s.handler(prometheus.NewRegistry())
	do := func(method, path string, form url.Values, cookie *http.Cookie, header ...string) *httptest.ResponseRecorder {
		var req *http.Request
		if form != nil {
			req = httptest.NewRequest(method, path, strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		} else {
			req = httptest.NewRequest(method, path, nil)
		}
		req.Header.Set("Accept", "text/html,application/xhtml+xml")
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		if cookie != nil {
			req.AddCookie(cookie)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}

	// A browser with nothing is sent to sign in, and back after.
	w := do("GET", "/teams?x=1", nil, nil)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/login?next=%2Fteams%3Fx%3D1" {
		t.Fatalf("GET /teams without a session: %d to %q", w.Code, w.Header().Get("Location"))
	}
	if w := do("GET", "/login?next=/teams", nil, nil); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `name="next" value="/teams"`) {
		t.Fatalf("GET /login: %d\n%s", w.Code, w.Body)
	}

	// The wrong token: no cookie.
	w = do("POST", "/login", url.Values{"token": {"guess"}, "next": {"/teams"}}, nil)
	if w.Code != http.StatusUnauthorized || len(w.Result().Cookies()) != 0 {
		t.Fatalf("sign in with a wrong token: %d, cookies %v", w.Code, w.Result().Cookies())
	}

	// A form another site posts is refused, whatever it carries: signing
	// its reader in (as someone else) or out.
	for _, path := range []string{"/login", "/logout"} {
		w := do("POST", path, url.Values{"token": {"s3cret-token"}}, nil, "Sec-Fetch-Site", "cross-site")
		if w.Code != http.StatusForbidden || len(w.Result().Cookies()) != 0 {
			t.Errorf("POST %s from another site: %d, cookies %v; want 403 and none", path, w.Code, w.Result().Cookies())
		}
	}
	if w := do("POST", "/logout", nil, nil, "Sec-Fetch-Site", "same-origin"); w.Code != http.StatusSeeOther {
		t.Errorf("POST /logout from the dashboard: %d, want a redirect to sign in", w.Code)
	}

	// The token: a cookie, and back where it was going (never another site).
	w = do("POST", "/login", url.Values{"token": {"s3cret-token"}, "next": {"//evil.example/x"}}, nil, "X-Forwarded-Proto", "https")
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/" {
		t.Fatalf("sign in: %d to %q", w.Code, w.Header().Get("Location"))
	}
	var session *http.Cookie
	for _, c := range w.Result().Cookies() {
		if c.Name == sessionCookie {
			session = c
		}
	}
	if session == nil || !session.HttpOnly || !session.Secure || session.SameSite != http.SameSiteLaxMode {
		t.Fatalf("session cookie %+v: want HttpOnly, Secure behind TLS, SameSite=Lax", session)
	}
	for _, p := range []string{"/", "/queues", "/gpus", "/teams", "/audit"} {
		if w := do("GET", p, nil, session); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "<main>") {
			t.Errorf("GET %s with the session: %d, want the page", p, w.Code)
		}
	}

	// The cookie opens the pages only.
	for _, p := range []string{"/api/status", "/metrics"} {
		if w := do("GET", p, nil, session); w.Code != http.StatusUnauthorized {
			t.Errorf("GET %s with only the session: %d, want 401", p, w.Code)
		}
	}

	// Forged, expired, or signed for another token: sent to sign in.
	forged := *session
	forged.Value = session.Value[:len(session.Value)-2] + "AA"
	other := newSessions("another-token")
	for name, c := range map[string]*http.Cookie{
		"forged":        &forged,
		"expired":       {Name: sessionCookie, Value: s.sessions.value(now.Add(-time.Second), "")},
		"another token": {Name: sessionCookie, Value: other.value(now.Add(time.Hour), "")},
		"garbage":       {Name: sessionCookie, Value: "not-a-session"},
	} {
		if w := do("GET", "/gpus", nil, c); w.Code != http.StatusSeeOther {
			t.Errorf("GET /gpus with a %s cookie: %d, want a redirect to sign in", name, w.Code)
		}
	}
	now = now.Add(sessionTTL)
	if w := do("GET", "/gpus", nil, session); w.Code != http.StatusSeeOther {
		t.Errorf("GET /gpus with a session %v old: %d, want a redirect to sign in", sessionTTL, w.Code)
	}
}
