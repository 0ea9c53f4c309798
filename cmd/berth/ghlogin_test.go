package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/cue"
	"github.com/berth-gpu/berth/fixtures/fake"
	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/redact"
)

// fakeGitHub is an OAuth2 provider and REST API in GitHub's shape: its
// authorize page signs in `login` at once and sends the browser back with
// a code; the code is exchanged for a token once, with the PKCE verifier
// whose challenge came with it.
type fakeGitHub struct {
	*httptest.Server
	login string
	orgs  []string
	teams []string // "org/slug"
	codes map[string]string
	pages map[string]int // how many pages of each list were served
}

func newFakeGitHub(t *testing.T, login string, orgs, teams []string) *fakeGitHub {
	f := &fakeGitHub{login: login, orgs: orgs, teams: teams, codes: map[string]string{}, pages: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login/oauth/authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("client_id") != "berth-client" || q.Get("code_challenge_method") != "S256" {
			http.Error(w, "bad authorize request: "+r.URL.RawQuery, http.StatusBadRequest)
			return
		}
		f.codes["code-1"] = q.Get("code_challenge")
		http.Redirect(w, r, q.Get("redirect_uri")+"?code=code-1&state="+url.QueryEscape(q.Get("state")), http.StatusFound)
	})
	mux.HandleFunc("POST /login/oauth/access_token", func(w http.ResponseWriter, r *http.Request) {
		id, secret, ok := r.BasicAuth()
		if !ok {
			id, secret = r.FormValue("client_id"), r.FormValue("client_secret")
		}
		challenge, known := f.codes[r.FormValue("code")]
		delete(f.codes, r.FormValue("code"))
		if id != "berth-client" || secret != "client-secret" || !known || challenge == "" || r.FormValue("code_verifier") == "" {
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]string{"error": "bad_verification_code"})
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"access_token": "gho_user", "token_type": "bearer"})
	})
	api := func(path string, v func() any) {
		mux.HandleFunc("GET /api/v3/"+path, func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer gho_user" {
				http.Error(w, "Bad credentials", http.StatusUnauthorized)
				return
			}
			json.NewEncoder(w).Encode(v())
		})
	}
	// list serves items as GitHub pages a list: per_page (at most 100,
	// 30 if not given) from page, and a Link header to the next page.
	list := func(path string, items func() []any) {
		mux.HandleFunc("GET /api/v3/"+path, func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer gho_user" {
				http.Error(w, "Bad credentials", http.StatusUnauthorized)
				return
			}
			all := items()
			per, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
			if per <= 0 || per > 100 {
				per = 30
			}
			page, _ := strconv.Atoi(r.URL.Query().Get("page"))
			page = max(page, 1)
			from, to := min((page-1)*per, len(all)), min(page*per, len(all))
			if to < len(all) {
				w.Header().Set("Link", fmt.Sprintf(`<http://%s/api/v3/%s?per_page=%d&page=%d>; rel="next"`, r.Host, path, per, page+1))
			}
			f.pages[path]++
			json.NewEncoder(w).Encode(append([]any{}, all[from:to]...))
		})
	}
	api("user", func() any { return map[string]string{"login": f.login} })
	list("user/orgs", func() []any {
		var out []any
		for _, o := range f.orgs {
			out = append(out, map[string]string{"login": o})
		}
		return out
	})
	list("user/teams", func() []any {
		var out []any
		for _, t := range f.teams {
			org, slug, _ := strings.Cut(t, "/")
			out = append(out, map[string]any{"slug": slug, "name": "Team " + slug, "organization": map[string]string{"login": org}})
		}
		return out
	})
	f.Server = httptest.NewServer(mux)
	t.Cleanup(f.Close)
	return f
}

// loginServe is a serve's handler with the GitHub login of opts, on a
// loopback test server.
func loginServe(t *testing.T, opts githubLoginOptions) *httptest.Server {
	t.Helper()
	return loginServeLog(t, opts, slog.New(slog.DiscardHandler))
}

// loginServeLog is loginServe with serve's log going to log.
func loginServeLog(t *testing.T, opts githubLoginOptions, log *slog.Logger) *httptest.Server {
	t.Helper()
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("client-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	opts.clientID, opts.secretFile = "berth-client", secret
	gh, err := newGitHubLogin(opts, log)
	if err != nil {
		t.Fatal(err)
	}
	c := fake.NewCluster("box", berth.Node{Name: "box", Ready: true, GPUs: 4, GPUModel: "H100"})
	e := reconcile.New(reconcile.Options{Clusters: []reconcile.Cluster{c}, Loader: cue.NewLoader(cue.Options{}), Redact: &redact.Live{}})
	s := &server{engine: e, github: gh}
	srv := httptest.NewServer(s.handler(prometheus.NewRegistry()))
	t.Cleanup(srv.Close)
	return srv
}

// browse is a browser: it keeps cookies and follows redirects.
func browse(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar}
}

func getPage(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	req.Header.Set("Accept", "text/html")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// A person the rules allow (here, by team) signs in with GitHub from the
// sign-in page and lands on the page they asked for; one they do not
// allow is told which rules they miss and gets no session.
func TestGitHubLogin(t *testing.T) {
	for _, tc := range []struct {
		name                string
		login, orgs, teams  string
		allowOrgs, allowTms []string
		allowUsers          []string
		code                int
		says                string
	}{
		{name: "team member", login: "ana", teams: "acme/vision,acme/infra", allowTms: []string{"Acme/Vision"}, code: 200, says: `signed in as <b id="signed-in-as">ana</b>`},
		{name: "org member", login: "bo", orgs: "acme", allowOrgs: []string{"acme"}, code: 200, says: `signed in as <b id="signed-in-as">bo</b>`},
		{name: "user", login: "Cy", allowUsers: []string{"@cy"}, code: 200, says: `signed in as <b id="signed-in-as">Cy</b>`},
		{name: "outsider", login: "mallory", orgs: "evil", teams: "acme/interns", allowOrgs: []string{"acme"}, allowTms: []string{"acme/vision"}, code: 403,
			says: "mallory may not read this dashboard: not a member of an organization allowed (acme); not in a team allowed (acme/vision)."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			split := func(s string) []string {
				if s == "" {
					return nil
				}
				return strings.Split(s, ",")
			}
			gh := newFakeGitHub(t, tc.login, split(tc.orgs), split(tc.teams))
			srv := loginServe(t, githubLoginOptions{webURL: gh.URL, users: tc.allowUsers, orgs: tc.allowOrgs, teams: tc.allowTms})
			b := browse(t)
			resp, body := getPage(t, b, srv.URL+"/teams")
			if !strings.Contains(body, `id="github-sign-in" href="/login/github?next=%2Fteams"`) || strings.Contains(body, `id="token"`) {
				t.Fatalf("GET /teams without a session: %s, want the sign-in page with GitHub's link and no token form:\n%s", resp.Request.URL, body)
			}
			resp, body = getPage(t, b, srv.URL+"/login/github?next=%2Fteams")
			if resp.StatusCode != tc.code || !strings.Contains(body, tc.says) || (tc.code == 200 && !strings.Contains(body, "<h1>Teams</h1>")) {
				t.Fatalf("after GitHub: %d at %s, want %d and %q:\n%s", resp.StatusCode, resp.Request.URL, tc.code, tc.says, body)
			}
			var session bool
			for _, c := range b.Jar.Cookies(resp.Request.URL) {
				session = session || c.Name == sessionCookie
			}
			if session != (tc.code == 200) {
				t.Errorf("session cookie: %v", session)
			}
		})
	}
}

// The pages are kept between reconciles and shared by their readers, but
// each reader's header names them, never whoever asked for the page first.
func TestGitHubLoginKeptPagesNameTheirReader(t *testing.T) {
	gh := newFakeGitHub(t, "ana", nil, nil)
	srv := loginServe(t, githubLoginOptions{webURL: gh.URL, users: []string{"ana", "bo"}})
	ana, bo := browse(t), browse(t)
	for _, tc := range []struct {
		who     string
		browser *http.Client
	}{{"ana", ana}, {"bo", bo}, {"ana", ana}} {
		gh.login = tc.who
		_, body := getPage(t, tc.browser, srv.URL+"/login/github?next=%2Fqueues")
		if !strings.Contains(body, `signed in as <b id="signed-in-as">`+tc.who+`</b>`) || strings.Count(body, "signed in as") != 1 {
			t.Errorf("%s reads /queues, which says:\n%s", tc.who, body)
		}
	}
}

// A person in more organizations and teams than one page of the API
// holds is judged on all of them: the org and team that let them in are
// on the second page. Past maxListPages pages serve stops reading, says
// so in its log, and judges them on what it read.
func TestGitHubLoginPages(t *testing.T) {
	many := func(n int, f string) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf(f, i))
		}
		return out
	}
	for _, tc := range []struct {
		name       string
		orgs       []string
		teams      []string
		allowOrgs  []string
		allowTeams []string
		code       int
		pages      map[string]int
		logs       string
	}{
		{name: "org on page 2", orgs: append(many(120, "club-%d"), "acme"), allowOrgs: []string{"acme"},
			code: 200, pages: map[string]int{"user/orgs": 2}},
		{name: "team on page 2", teams: append(many(130, "acme/t%d"), "acme/vision"), allowTeams: []string{"acme/vision"},
			code: 200, pages: map[string]int{"user/teams": 2}},
		{name: "team past the last page read", teams: append(many(maxListPages*100, "acme/t%d"), "acme/vision"), allowTeams: []string{"acme/vision"},
			code: 403, pages: map[string]int{"user/teams": maxListPages},
			logs: `level=WARN msg="github login: read only the first pages of a list; a membership on a later page is not seen" login=ana list=user/teams pages=10 items=1000`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gh := newFakeGitHub(t, "ana", tc.orgs, tc.teams)
			var logs bytes.Buffer
			srv := loginServeLog(t, githubLoginOptions{webURL: gh.URL, orgs: tc.allowOrgs, teams: tc.allowTeams}, slog.New(slog.NewTextHandler(&logs, nil)))
			resp, body := getPage(t, browse(t), srv.URL+"/login/github?next=%2Fteams")
			if resp.StatusCode != tc.code {
				t.Fatalf("after GitHub: %d at %s, want %d:\n%s", resp.StatusCode, resp.Request.URL, tc.code, body)
			}
			if tc.code == 403 && !strings.Contains(body, "ana may not read this dashboard: not in a team allowed (acme/vision).") {
				t.Errorf("refused without its reason:\n%s", body)
			}
			if !maps.Equal(gh.pages, tc.pages) {
				t.Errorf("pages read: %v, want %v", gh.pages, tc.pages)
			}
			if !strings.Contains(logs.String(), tc.logs) || (tc.logs == "" && logs.Len() > 0) {
				t.Errorf("serve's log:\n%s\nwant %q", logs.String(), tc.logs)
			}
		})
	}
}

// A callback whose state is not the one this browser started with (a
// forged link, another browser) signs no one in.
func TestGitHubLoginState(t *testing.T) {
	gh := newFakeGitHub(t, "ana", nil, nil)
	srv := loginServe(t, githubLoginOptions{webURL: gh.URL, users: []string{"ana"}})
	b := browse(t)
	resp, body := getPage(t, b, srv.URL+callback+"?code=code-1&state=forged")
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "sign in again") {
		t.Errorf("a callback with no flow started: %d\n%s", resp.StatusCode, body)
	}
	if resp, _ := getPage(t, b, srv.URL+"/gpus"); resp.Request.URL.Path != "/login" {
		t.Errorf("after a forged callback, /gpus went to %s, want the sign-in page", resp.Request.URL)
	}
}

func TestGitHubLoginFlags(t *testing.T) {
	for _, tc := range []struct {
		opts githubLoginOptions
		err  string
	}{
		{githubLoginOptions{orgs: []string{"acme"}}, "--github-login-* flags need --github-login-client-id"},
		{githubLoginOptions{clientID: "x"}, "--github-login-client-id needs --github-login-client-secret-file"},
		{githubLoginOptions{clientID: "x", secretFile: "/nonexistent"}, "--github-login-client-secret-file: open /nonexistent"},
	} {
		if _, err := newGitHubLogin(tc.opts, nil); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%+v: %v, want %q", tc.opts, err, tc.err)
		}
	}
	if _, err := newLoginRules(nil, nil, nil); err == nil || !strings.Contains(err.Error(), "anyone with an account") {
		t.Errorf("no rules: %v", err)
	}
	if _, err := newLoginRules(nil, nil, []string{"acme"}); err == nil || !strings.Contains(err.Error(), `"acme" is not ORG/TEAM`) {
		t.Errorf("a team without its org: %v", err)
	}
}
