package main

// Browser sign-in for the dashboard off loopback: a browser cannot send a
// bearer token by itself, so /login takes the token once, in a form, and
// answers a signed session cookie that the pages accept in its place.
//
// The cookie holds its expiry, who signed in (a GitHub login, or nothing
// for the token) and an HMAC-SHA256 of both under a key derived from the
// API token and the GitHub login's client secret: nothing is stored, every
// replica with the same secrets accepts it, and a new token or secret ends
// every session. It is HttpOnly,
// SameSite=Lax and, where the request came over TLS (or a proxy says so),
// Secure. Only the pages accept it: /api/ and /metrics keep asking for the
// bearer token, so a page another site loads cannot reach them.

import (
	"context"
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
// serve's secrets.
type sessions struct {
	key []byte
	now func() time.Time
}

// newSessions derives the key from the secrets a browser may sign in with
// (the API token, the GitHub login's client secret; either may be empty).
func newSessions(secrets ...string) *sessions {
	k := sha256.Sum256([]byte("berth dashboard session\x00" + strings.Join(secrets, "\x00")))
	return &sessions{key: k[:], now: time.Now}
}

// maxLogin bounds the login a cookie carries (GitHub's are at most 39
// characters).
const maxLogin = 100

// value is a cookie value that is valid until exp, for login ("" for the
// token).
func (s *sessions) value(exp time.Time, login string) string {
	b := binary.BigEndian.AppendUint64(nil, uint64(exp.Unix()))
	b = append(b, login...)
	m := hmac.New(sha256.New, s.key)
	m.Write(b)
	return base64.RawURLEncoding.EncodeToString(append(b, m.Sum(nil)...))
}

// valid reports whether a cookie value was signed with this key and has
// not expired, and for whom.
func (s *sessions) valid(v string) (login string, ok bool) {
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || len(b) < 8+sha256.Size || len(b) > 8+maxLogin+sha256.Size {
		return "", false
	}
	payload, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	m := hmac.New(sha256.New, s.key)
	m.Write(payload)
	if !hmac.Equal(m.Sum(nil), sum) {
		return "", false
	}
	if s.now().Unix() >= int64(binary.BigEndian.Uint64(payload[:8])) {
		return "", false
	}
	return string(payload[8:]), true
}

// setSession answers a cookie that signs login in for sessionTTL.
func (s *sessions) setSession(w http.ResponseWriter, r *http.Request, login string) {
	exp := s.now().Add(sessionTTL)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: s.value(exp, login), Path: "/", Expires: exp,
		MaxAge: int(sessionTTL.Seconds()), HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: overTLS(r)})
}

// guardPages lets through requests with the bearer token or a valid
// session cookie. A browser without either is sent to /login. With no
// token and no GitHub login the pages are open (loopback, or
// --insecure-api).
func guardPages(token string, gh *githubLogin, s *sessions, h http.Handler) http.Handler {
	if token == "" && gh == nil {
		return h
	}
	bearer := requireToken(token, h)
	if token == "" {
		bearer = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "sign in at /login to read the dashboard", http.StatusUnauthorized)
		})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, err := r.Cookie(sessionCookie); err == nil {
			if login, ok := s.valid(c.Value); ok {
				h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), signedInKey{}, login)))
				return
			}
		}
		if r.Header.Get("Authorization") == "" && strings.Contains(r.Header.Get("Accept"), "text/html") {
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		bearer.ServeHTTP(w, r)
	})
}

// signedInKey holds, in a page request's context, the login its session
// cookie carries ("" for a session the API token opened).
type signedInKey struct{}

// signedIn is who signed in to read r's page with the forge, if anyone.
func signedIn(r *http.Request) string {
	login, _ := r.Context().Value(signedInKey{}).(string)
	return login
}

var loginPage = template.Must(template.New("login").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · berth</title><link rel="stylesheet" href="/assets/style.css"></head>
<body><main>
<h1>berth</h1>
{{with .Error}}<p class="error" role="alert">{{.}}</p>{{end}}
{{with .GitHub}}<p><a class="button" id="github-sign-in" href="{{.}}">Sign in with GitHub</a></p>{{end}}
{{if .Token}}<form method="post" action="/login" class="filters">
<input type="hidden" name="next" value="{{.Next}}">
<label>API token (the serve's --api-token-file)<input type="password" name="token" id="token" autocomplete="current-password" size="40" autofocus></label>
<button type="submit" id="sign-in">Sign in</button>
</form>{{end}}
<p class="meta">{{if .Token}}The token is checked once; the{{else}}The{{end}} browser then keeps a signed session for 12 hours.</p>
</main></body></html>
`))

// loginView is the sign-in page: the token form where a token is set,
// the GitHub link (with next in it) where the GitHub login is.
type loginView struct {
	Next, Error string
	Token       bool
	GitHub      string
}

// mountLogin adds /login and /logout, and the GitHub login's pages.
func (s *server) mountLogin(mux *http.ServeMux) {
	if s.token == "" && s.github == nil {
		return // nothing to sign in to: the pages are open (loopback or --insecure-api)
	}
	view := func(next, msg string) loginView {
		v := loginView{Next: next, Error: msg, Token: s.token != ""}
		if s.github != nil {
			v.GitHub = "/login/github?next=" + url.QueryEscape(next)
		}
		return v
	}
	want := sha256.Sum256([]byte(s.token))
	// A form posted from another site (a page signing its reader out, or
	// in as someone else) is refused: the browser says where a request
	// comes from (Sec-Fetch-Site, Origin), and net/http checks it.
	sameOrigin := http.NewCrossOriginProtection()
	post := func(pattern string, h http.HandlerFunc) { mux.Handle(pattern, sameOrigin.Handler(h)) }
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		writeLogin(w, http.StatusOK, view(safeNext(r.URL.Query().Get("next")), ""))
	})
	post("POST /login", func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
		next := safeNext(r.FormValue("next"))
		got := sha256.Sum256([]byte(strings.TrimSpace(r.FormValue("token"))))
		if s.token == "" || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			writeLogin(w, http.StatusUnauthorized, view(next, "That is not this serve's token."))
			return
		}
		s.sessions.setSession(w, r, "")
		http.Redirect(w, r, next, http.StatusSeeOther)
	})
	if s.github != nil {
		s.github.mount(mux, s.sessions, func(w http.ResponseWriter, code int, next, msg string) { writeLogin(w, code, view(next, msg)) })
	}
	post("POST /logout", func(w http.ResponseWriter, r *http.Request) {
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
