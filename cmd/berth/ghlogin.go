package main

// The dashboard's GitHub login: OAuth2's web flow (golang.org/x/oauth2)
// against github.com, a GitHub Enterprise Server or a Gitea (its OAuth2
// provider has GitHub's endpoints: /login/oauth/authorize,
// /login/oauth/access_token, and the REST API's /user). Who may read the
// dashboard is serve's configuration (users, organizations, teams); a
// person who passes gets the same signed session cookie as the token's
// sign-in (session.go), with their login in it. The token is used once,
// to ask who signed in, and kept nowhere.

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/go-github/v60/github"
	"github.com/spf13/pflag"
	"golang.org/x/oauth2"
)

// githubLoginOptions are serve's --github-login-* flags.
type githubLoginOptions struct {
	clientID, secretFile string
	webURL, apiURL       string
	redirectURL          string
	users, orgs, teams   []string
	scopes               []string
}

func (o *githubLoginOptions) register(f *pflag.FlagSet) {
	f.StringVar(&o.clientID, "github-login-client-id", "", "the dashboard's GitHub login: the OAuth app's client ID (with --github-login-client-secret-file and at least one --github-login-allow-*)")
	f.StringVar(&o.secretFile, "github-login-client-secret-file", "", "file holding the OAuth app's client secret")
	f.StringVar(&o.webURL, "github-login-url", "https://github.com", "the forge's web address: GitHub, a GitHub Enterprise Server, or a Gitea")
	f.StringVar(&o.apiURL, "github-login-api-url", "", "its REST API (default https://api.github.com/ for github.com, else URL/api/v3/; Gitea: URL/api/v1/)")
	f.StringVar(&o.redirectURL, "github-login-redirect-url", "", "the callback registered with the OAuth app (default: this serve's address as the browser reached it + /login/github/callback)")
	f.StringArrayVar(&o.users, "github-login-allow-user", nil, "a login that may read the dashboard (repeat)")
	f.StringArrayVar(&o.orgs, "github-login-allow-org", nil, "an organization whose members may read the dashboard (repeat)")
	f.StringArrayVar(&o.teams, "github-login-allow-team", nil, "an ORG/TEAM (the team's slug) whose members may read the dashboard (repeat)")
	f.StringArrayVar(&o.scopes, "github-login-scope", nil, "the OAuth scopes to ask (default: read:org with an org or team to check, else none)")
}

// githubLogin is a configured GitHub login.
type githubLogin struct {
	conf        oauth2.Config
	api         *url.URL // the REST API's base, ending in "/"
	fixedRedir  bool
	allow       loginRules
	secretValue string
	// client makes the token exchange and the API's requests.
	client *http.Client
	log    *slog.Logger
}

// newGitHubLogin checks the flags and reads the secret; nil without
// --github-login-client-id.
func newGitHubLogin(o githubLoginOptions, log *slog.Logger) (*githubLogin, error) {
	if o.clientID == "" {
		if o.secretFile != "" || len(o.users)+len(o.orgs)+len(o.teams) > 0 {
			return nil, usageError{errors.New("--github-login-* flags need --github-login-client-id")}
		}
		return nil, nil
	}
	if o.secretFile == "" {
		return nil, usageError{errors.New("--github-login-client-id needs --github-login-client-secret-file")}
	}
	b, err := os.ReadFile(o.secretFile)
	if err != nil {
		return nil, usageError{fmt.Errorf("--github-login-client-secret-file: %w", err)}
	}
	secret := strings.TrimSpace(string(b))
	if secret == "" {
		return nil, usageError{fmt.Errorf("--github-login-client-secret-file %s is empty", o.secretFile)}
	}
	rules, err := newLoginRules(o.users, o.orgs, o.teams)
	if err != nil {
		return nil, usageError{err}
	}
	web, err := url.Parse(strings.TrimSuffix(o.webURL, "/"))
	if err != nil || (web.Scheme != "https" && web.Scheme != "http") || web.Host == "" {
		return nil, usageError{fmt.Errorf("--github-login-url %q is not an http(s) address", o.webURL)}
	}
	api := o.apiURL
	switch {
	case api != "":
	case web.Host == "github.com":
		api = "https://api.github.com/"
	default:
		api = web.String() + "/api/v3/"
	}
	if !strings.HasSuffix(api, "/") {
		api += "/"
	}
	apiURL, err := url.Parse(api)
	if err != nil || (apiURL.Scheme != "https" && apiURL.Scheme != "http") || apiURL.Host == "" {
		return nil, usageError{fmt.Errorf("--github-login-api-url %q is not an http(s) address", api)}
	}
	scopes := o.scopes
	if scopes == nil && len(rules.orgs)+len(rules.teams) > 0 {
		scopes = []string{"read:org"}
	}
	return &githubLogin{
		conf: oauth2.Config{ClientID: o.clientID, ClientSecret: secret, Scopes: scopes, RedirectURL: o.redirectURL,
			Endpoint: oauth2.Endpoint{AuthURL: web.String() + "/login/oauth/authorize", TokenURL: web.String() + "/login/oauth/access_token"}},
		api: apiURL, fixedRedir: o.redirectURL != "", allow: rules, secretValue: secret,
		client: &http.Client{Timeout: 15 * time.Second}, log: log,
	}, nil
}

// secret is what the session key is derived from ("" without a login).
func (g *githubLogin) secret() string {
	if g == nil {
		return ""
	}
	return g.secretValue
}

// The state cookie holds the flow's state, PKCE verifier and where to go
// after, for the ten minutes a person may take at the forge.
const (
	oauthCookie = "berth_oauth"
	oauthTTL    = 10 * time.Minute
	callback    = "/login/github/callback"
)

// mount adds /login/github (off to the forge) and its callback; fail
// writes the sign-in page with a message.
func (g *githubLogin) mount(mux *http.ServeMux, s *sessions, fail func(w http.ResponseWriter, code int, next, msg string)) {
	mux.HandleFunc("GET /login/github", func(w http.ResponseWriter, r *http.Request) {
		next := safeNext(r.URL.Query().Get("next"))
		state, verifier := randomToken(), oauth2.GenerateVerifier()
		http.SetCookie(w, &http.Cookie{Name: oauthCookie, Value: state + "." + verifier + "." + base64.RawURLEncoding.EncodeToString([]byte(next)),
			Path: "/login/github", MaxAge: int(oauthTTL.Seconds()), HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: overTLS(r)})
		conf := g.config(r)
		http.Redirect(w, r, conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)), http.StatusFound)
	})
	mux.HandleFunc("GET "+callback, func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: oauthCookie, Value: "", Path: "/login/github", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: overTLS(r)})
		q := r.URL.Query()
		state, verifier, next, ok := readOAuthCookie(r)
		switch {
		case q.Get("error") != "":
			fail(w, http.StatusUnauthorized, next, "GitHub did not sign you in: "+q.Get("error")+" "+q.Get("error_description"))
			return
		case !ok || subtle.ConstantTimeCompare([]byte(state), []byte(q.Get("state"))) != 1:
			fail(w, http.StatusBadRequest, next, "This sign-in expired or was started in another browser: sign in again.")
			return
		}
		ctx, cancel := context.WithTimeout(context.WithValue(r.Context(), oauth2.HTTPClient, g.client), 30*time.Second)
		defer cancel()
		id, err := g.identify(ctx, g.config(r), q.Get("code"), verifier)
		if err != nil {
			fail(w, http.StatusBadGateway, next, "GitHub sign-in failed: "+err.Error())
			return
		}
		if ok, why := g.allow.decide(id); !ok {
			fail(w, http.StatusForbidden, next, why)
			return
		}
		s.setSession(w, r, id.login)
		http.Redirect(w, r, next, http.StatusSeeOther)
	})
}

// config is the OAuth configuration for a request: its callback is this
// serve's address as the browser reached it, unless one is configured.
func (g *githubLogin) config(r *http.Request) *oauth2.Config {
	c := g.conf
	if !g.fixedRedir {
		scheme := "http"
		if overTLS(r) {
			scheme = "https"
		}
		c.RedirectURL = scheme + "://" + r.Host + callback
	}
	return &c
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// readOAuthCookie reads the flow's state cookie.
func readOAuthCookie(r *http.Request) (state, verifier, next string, ok bool) {
	next = "/"
	c, err := r.Cookie(oauthCookie)
	if err != nil {
		return "", "", next, false
	}
	parts := strings.Split(c.Value, ".")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return "", "", next, false
	}
	if n, err := base64.RawURLEncoding.DecodeString(parts[2]); err == nil {
		next = safeNext(string(n))
	}
	return parts[0], parts[1], next, true
}

// identify exchanges the code for a token and asks the API who it
// belongs to and, where the rules need them, their organizations and
// teams.
func (g *githubLogin) identify(ctx context.Context, conf *oauth2.Config, code, verifier string) (identity, error) {
	tok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		return identity{}, fmt.Errorf("token exchange: %w", err)
	}
	client := github.NewClient(conf.Client(ctx, tok))
	client.BaseURL = g.api
	user, _, err := client.Users.Get(ctx, "")
	if err != nil {
		return identity{}, fmt.Errorf("GET /user: %w", err)
	}
	if user.GetLogin() == "" {
		return identity{}, errors.New("GET /user: no login in the answer")
	}
	id := identity{login: user.GetLogin()}
	if len(g.allow.orgs) > 0 {
		orgs, err := listPages(ctx, g.log, id.login, "user/orgs", func(ctx context.Context, o *github.ListOptions) ([]*github.Organization, *github.Response, error) {
			return client.Organizations.List(ctx, "", o)
		})
		if err != nil {
			return identity{}, err
		}
		for _, o := range orgs {
			id.orgs = append(id.orgs, orgName(o))
		}
	}
	if len(g.allow.teams) > 0 {
		teams, err := listPages(ctx, g.log, id.login, "user/teams", client.Teams.ListUserTeams)
		if err != nil {
			return identity{}, err
		}
		for _, t := range teams {
			slug := t.GetSlug()
			if slug == "" {
				slug = t.GetName() // Gitea's teams have no slug: their name is one
			}
			id.teams = append(id.teams, orgName(t.GetOrganization())+"/"+slug)
		}
	}
	return id, nil
}

// maxListPages bounds the pages of a person's organizations or teams read
// at one sign-in: 10 pages of 100 on GitHub (Gitea's pages are its own
// size). A person in more is judged on the first pages, and serve logs it.
const maxListPages = 10

// listPages reads every page of one of the API's lists, following each
// answer's next page (its Link header), up to maxListPages.
func listPages[T any](ctx context.Context, log *slog.Logger, login, what string,
	list func(context.Context, *github.ListOptions) ([]T, *github.Response, error)) ([]T, error) {
	var all []T
	opts := &github.ListOptions{PerPage: 100}
	for page := 1; ; page++ {
		items, resp, err := list(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("GET /%s (page %d): %w", what, page, err)
		}
		all = append(all, items...)
		if resp.NextPage == 0 {
			return all, nil
		}
		if page == maxListPages {
			log.Warn("github login: read only the first pages of a list; a membership on a later page is not seen",
				"login", login, "list", what, "pages", page, "items", len(all))
			return all, nil
		}
		opts.Page = resp.NextPage
	}
}

// orgName is an organization's name as GitHub ("login") or Gitea
// ("name"; its "login" is absent) lists it.
func orgName(o *github.Organization) string {
	if o.GetLogin() != "" {
		return o.GetLogin()
	}
	return o.GetName()
}

// identity is who signed in: their login, and the organizations and
// teams ("org/team") the API listed.
type identity struct {
	login       string
	orgs, teams []string
}

// loginRules are who may read the dashboard, lower-cased (GitHub's names
// are case-insensitive).
type loginRules struct{ users, orgs, teams []string }

func newLoginRules(users, orgs, teams []string) (loginRules, error) {
	if len(users)+len(orgs)+len(teams) == 0 {
		return loginRules{}, errors.New("--github-login-client-id needs at least one --github-login-allow-user, -org or -team: " +
			"otherwise anyone with an account on the forge could read the dashboard")
	}
	r := loginRules{}
	for _, u := range users {
		r.users = append(r.users, strings.ToLower(strings.TrimPrefix(u, "@")))
	}
	for _, o := range orgs {
		r.orgs = append(r.orgs, strings.ToLower(strings.TrimPrefix(o, "@")))
	}
	for _, t := range teams {
		t = strings.ToLower(strings.TrimPrefix(t, "@"))
		if org, team, ok := strings.Cut(t, "/"); !ok || org == "" || team == "" {
			return loginRules{}, fmt.Errorf("--github-login-allow-team %q is not ORG/TEAM", t)
		}
		r.teams = append(r.teams, t)
	}
	return r, nil
}

// decide says whether id may read the dashboard, and if not why, naming
// each rule it does not meet.
func (r loginRules) decide(id identity) (bool, string) {
	lower := func(ss []string) []string {
		out := make([]string, len(ss))
		for i, s := range ss {
			out[i] = strings.ToLower(s)
		}
		return out
	}
	if slices.Contains(r.users, strings.ToLower(id.login)) {
		return true, ""
	}
	orgs, teams := lower(id.orgs), lower(id.teams)
	for _, o := range r.orgs {
		if slices.Contains(orgs, o) {
			return true, ""
		}
	}
	for _, t := range r.teams {
		if slices.Contains(teams, t) {
			return true, ""
		}
	}
	var not []string
	if len(r.users) > 0 {
		not = append(not, "not one of the users allowed ("+strings.Join(r.users, ", ")+")")
	}
	if len(r.orgs) > 0 {
		not = append(not, "not a member of an organization allowed ("+strings.Join(r.orgs, ", ")+")")
	}
	if len(r.teams) > 0 {
		not = append(not, "not in a team allowed ("+strings.Join(r.teams, ", ")+")")
	}
	return false, fmt.Sprintf("%s may not read this dashboard: %s.", id.login, strings.Join(not, "; "))
}
