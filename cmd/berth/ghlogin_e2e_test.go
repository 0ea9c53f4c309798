package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/berth-gpu/berth/fixtures/testenv"
)

// The GitHub login end to end: a real browser, a real berth serve off the
// token, and the testenv's Gitea as the OAuth2 provider (it has GitHub's
// endpoints). A member of the allowed team signs in at Gitea, grants
// berth access, and lands on the page they asked for; with only another
// team allowed, Gitea signs them in but berth says which rule they miss.
func TestDashboardGitHubLoginInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Gitea, berth serve and a browser")
	}
	g := testenv.Gitea(t)
	bg := context.Background()

	// acme/vision has the admin user in it; acme/infra is empty.
	if err := g.Do(bg, "POST", "orgs", map[string]any{"username": "acme"}, nil); err != nil {
		t.Fatal(err)
	}
	for _, team := range []string{"vision", "infra"} {
		var created struct{ ID int64 }
		if err := g.Do(bg, "POST", "orgs/acme/teams", map[string]any{"name": team, "permission": "read", "units": []string{"repo.code"}}, &created); err != nil {
			t.Fatal(err)
		}
		if team == "vision" {
			if err := g.Do(bg, "PUT", fmt.Sprintf("teams/%d/members/%s", created.ID, g.User), nil, nil); err != nil {
				t.Fatal(err)
			}
		}
	}

	for _, tc := range []struct {
		allow string
		ok    bool
	}{{"acme/vision", true}, {"acme/infra", false}} {
		t.Run(tc.allow, func(t *testing.T) {
			// The serve's address is fixed first: the OAuth app's callback
			// must name it exactly.
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			ln.Close()
			var app struct {
				ClientID     string `json:"client_id"`
				ClientSecret string `json:"client_secret"`
			}
			if err := g.Do(bg, "POST", "user/applications/oauth2", map[string]any{"name": "berth " + tc.allow,
				"redirect_uris": []string{"http://" + addr + callback}, "confidential_client": true}, &app); err != nil {
				t.Fatal(err)
			}
			secret := filepath.Join(t.TempDir(), "secret")
			if err := os.WriteFile(secret, []byte(app.ClientSecret), 0o600); err != nil {
				t.Fatal(err)
			}
			e := newE2E(t)
			e.write("jobs/a.cue", "package jobs\n"+e.job("a", 1))
			e.commit("a")
			e.args = []string{"--listen", addr, "--github-login-client-id", app.ClientID, "--github-login-client-secret-file", secret,
				"--github-login-url", g.URL, "--github-login-api-url", g.APIURL(), "--github-login-allow-team", tc.allow,
				// Gitea's names for the scopes /user and /user/teams need.
				"--github-login-scope", "read:user", "--github-login-scope", "read:organization"}
			e.start()

			// Gitea's own sign-in is per browser: a fresh one for each case.
			tab := newBrowser(t)
			var loc, body string
			for _, st := range []struct {
				name    string
				actions []chromedp.Action
			}{
				{"berth's sign-in page", []chromedp.Action{chromedp.Navigate(e.addr + "/teams"), chromedp.Click("#github-sign-in", chromedp.ByQuery)}},
				{"Gitea's sign-in form", []chromedp.Action{chromedp.WaitVisible("#user_name", chromedp.ByQuery),
					chromedp.SendKeys("#user_name", g.User, chromedp.ByQuery),
					chromedp.SendKeys("#password", g.Password, chromedp.ByQuery),
					chromedp.Submit("#password", chromedp.ByQuery)}},
				// Gitea asks its user to grant berth access.
				{"Gitea's authorize page", []chromedp.Action{chromedp.WaitVisible("#authorize-app", chromedp.ByQuery), chromedp.Click("#authorize-app", chromedp.ByQuery)}},
				// Back at berth: the page asked for, or the sign-in page's refusal.
				{"berth's answer", []chromedp.Action{chromedp.WaitVisible(`#team-t, p.error[role="alert"]`, chromedp.ByQuery),
					chromedp.Location(&loc), chromedp.Text("main", &body, chromedp.ByQuery)}},
			} {
				browserStep(t, tab, st.name, st.actions, func() string { return "serve log:\n" + e.logs() + "\nGitea log:\n" + g.Log() })
			}
			more := func() string { return "serve log:\n" + e.logs() + "\nGitea log:\n" + g.Log() }
			if !tc.ok {
				want := g.User + " may not read this dashboard: not in a team allowed (acme/infra)."
				if !strings.Contains(body, want) {
					t.Errorf("signed in as %s, not in acme/infra: at %s, the page says\n%s\nwant %q", g.User, loc, body, want)
				}
				// And no session came of it: the dashboard still asks to sign in.
				browserStep(t, tab, "the dashboard after a refusal", []chromedp.Action{chromedp.Navigate(e.addr + "/teams"),
					chromedp.WaitVisible("#github-sign-in", chromedp.ByQuery), chromedp.Location(&loc)}, more)
				if u, _ := url.Parse(loc); u == nil || u.Path != "/login" {
					t.Errorf("refused, then /teams: at %s, want the sign-in page", loc)
				}
				return
			}
			if !strings.HasSuffix(loc, "/teams") || !strings.Contains(body, "Teams") {
				t.Errorf("signed in as %s, a member of acme/vision: at %s\n%s", g.User, loc, body)
			}
			// Every page is readable, and each names who signed in.
			for _, p := range []struct{ path, h1 string }{{"/", "Workloads"}, {"/queues", "Queues"}, {"/gpus", "GPUs"}, {"/teams", "Teams"}, {"/audit", "Audit"}} {
				var who, h1 string
				browserStep(t, tab, p.path, []chromedp.Action{chromedp.Navigate(e.addr + p.path), chromedp.Location(&loc),
					chromedp.Text("#signed-in-as", &who, chromedp.ByQuery), chromedp.Text("main h1", &h1, chromedp.ByQuery)}, more)
				if who != g.User || !strings.HasPrefix(h1, p.h1) || !strings.HasSuffix(loc, p.path) {
					t.Errorf("%s: at %s, headed %q, signed in as %q; want %q signed in as %q", p.path, loc, h1, who, p.h1, g.User)
				}
			}
		})
	}
}

// browserStep runs one step of a flow through pages with a minute for it;
// a step that fails or times out ends the test with where the browser was
// and the text of the page it was on, and what more says.
func browserStep(t *testing.T, tab context.Context, name string, actions []chromedp.Action, more func() string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, time.Minute)
	defer cancel()
	err := chromedp.Run(ctx, actions...)
	if err == nil {
		return
	}
	var loc, text string
	ctx, cancel = context.WithTimeout(tab, 10*time.Second)
	defer cancel()
	chromedp.Run(ctx, chromedp.Location(&loc), chromedp.Text("body", &text, chromedp.ByQuery))
	t.Fatalf("%s: %v\nthe browser is at %s, which says:\n%s\n%s", name, err, loc, text, more())
}
