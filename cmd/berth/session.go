package main

// Browser sign-in for the dashboard off loopback: a browser cannot send a
// bearer token by itself, so /login takes the token once, in a form, and
// answers a signed session cookie that the pages accept in its place.
//
// The cookie holds its expiry and an HMAC-SHA256 of it under a key derived
// from the API token: nothing is stored, every replica with the same token
// accepts it, and a new token ends every session. It is HttpOnly,
// SameSite=Lax and, where the request came over TLS (or a proxy says so),
// Secure. Only the pages accept it: /api/ and /metrics keep asking for the
// bearer token, so a page another site loads cannot reach them.

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"
)

const (
	sessionCookie = "berth_session"
	sessionTTL    = 12 * time.Hour
)

// sessions signs and checks session cookies with a key derived from the
// API token.
type sessions struct {
	key []byte
	now func() time.Time
}

func newSessions(token string) *sessions {
	k := sha256.Sum256([]byte("berth dashboard session\x00" + token))
	return &sessions{key: k[:], now: time.Now}
}

// value is a cookie value that is valid until exp.
func (s *sessions) value(exp time.Time) string {
	b := binary.BigEndian.AppendUint64(nil, uint64(exp.Unix()))
	m := hmac.New(sha256.New, s.key)
	m.Write(b)
	return base64.RawURLEncoding.EncodeToString(append(b, m.Sum(nil)...))
}

// valid reports whether a cookie value was signed with this key and has
// not expired.
func (s *sessions) valid(v string) bool {
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || len(b) != 8+sha256.Size {
		return false
	}
	m := hmac.New(sha256.New, s.key)
	m.Write(b[:8])
	if !hmac.Equal(m.Sum(nil), b[8:]) {
		return false
	}
	return s.now().Unix() < int64(binary.BigEndian.Uint64(b[:8]))
}

// guardPages lets through requests with the bearer token or a valid
// session cookie. A browser without either is sent to /login.
func guardPages(token string, s *sessions, h http.Handler) http.Handler {
	if token == "" {
		return h
	}
	bearer := requireToken(token, h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, err := r.Cookie(sessionCookie); err == nil && s.valid(c.Value) {
			h.ServeHTTP(w, r)
			return
		}
		if r.Header.Get("Authorization") == "" && strings.Contains(r.Header.Get("Accept"), "text/html") {
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		bearer.ServeHTTP(w, r)
	})
}

var loginPage = template.Must(template.New("login").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · berth</title><link rel="stylesheet" href="/assets/style.css"></head>
<body><main>
<h1>berth</h1>
{{with .Error}}<p class="error" role="alert">{{.}}</p>{{end}}
<form method="post" action="/login" class="filters">
<input type="hidden" name="next" value="{{.Next}}">
<label>API token (the serve's --api-token-file)<input type="password" name="token" id="token" autocomplete="current-password" size="40" autofocus></label>
<button type="submit" id="sign-in">Sign in</button>
</form>
<p class="meta">The token is checked once; the browser then keeps a signed session for 12 hours.</p>
</main></body></html>
`))

type loginView struct{ Next, Error string }

// mountLogin adds /login and /logout.
func (s *server) mountLogin(mux *http.ServeMux) {
	if s.token == "" {
		return // nothing to sign in to: the pages are open (loopback or --insecure-api)
	}
	want := sha256.Sum256([]byte(s.token))
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		writeLogin(w, http.StatusOK, loginView{Next: safeNext(r.URL.Query().Get("next"))})
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
		next := safeNext(r.FormValue("next"))
		got := sha256.Sum256([]byte(strings.TrimSpace(r.FormValue("token"))))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			writeLogin(w, http.StatusUnauthorized, loginView{Next: next, Error: "That is not this serve's token."})
			return
		}
		exp := s.sessions.now().Add(sessionTTL)
		http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: s.sessions.value(exp), Path: "/", Expires: exp,
			MaxAge: int(sessionTTL.Seconds()), HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: overTLS(r)})
		http.Redirect(w, r, next, http.StatusSeeOther)
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: overTLS(r)})
		http.Redirect(w, r, "/login", http.StatusSeeOther)
	})
}

func writeLogin(w http.ResponseWriter, code int, v loginView) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	loginPage.Execute(w, v)
}

// safeNext is where to go after signing in: a path of this site, never
// another (an open redirect).
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	return next
}

// overTLS reports whether the browser's connection is HTTPS: served with
// TLS, or behind a proxy that says so.
func overTLS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}
