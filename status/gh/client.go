// Package gh is berth's GitHub integration: it posts commit statuses and
// sticky pull-request comments with go-github, reads pull requests, their
// files and reviews, plans pull requests (PullRequests), and follows merged
// ones on the clusters (SyncReporter, a reconcile.Reporter).
//
// Writes are idempotent and bounded: statuses are listed before they are
// posted and an unchanged status is never posted again; a cluster's comment
// is found by its hidden marker and edited in place only when its text
// changed; 5xx answers and rate limits are retried with backoff (honouring
// the reset time), and a write that still fails waits in a small outbox to
// be retried later instead of being lost. Tokens never appear in logs,
// comments or errors.
//
// Gitea serves the same REST paths with a few differences (see Forge); the
// client adapts to them. Rendering is status/'s job; receiving webhooks is
// sources/webhook's.
package gh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/bradleyfalzon/ghinstallation/v2"
	"github.com/google/go-github/v60/github"
	lru "github.com/hashicorp/golang-lru/v2"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/berth-gpu/berth/status"
)

// Forge is the kind of server the client talks to.
type Forge string

const (
	// GitHub is github.com or GitHub Enterprise Server.
	GitHub Forge = "github"
	// Gitea is Gitea (or Forgejo): same REST paths for what berth uses, but
	// a status's state comes back in a field named "status", pagination
	// takes "limit" instead of "per_page", team membership and the pull
	// request of a commit have other paths, and reviews say "dismissed" and
	// "stale" in fields of their own.
	Gitea Forge = "gitea"
)

// Options configure a Client. Repo is required, and one of Token or App.
type Options struct {
	// Repo is "owner/name".
	Repo string
	// BaseURL is the REST API's base URL, ending in a slash (default
	// https://api.github.com/; GitHub Enterprise: https://HOST/api/v3/;
	// Gitea: http://HOST:PORT/api/v1/).
	BaseURL string
	Forge   Forge
	// Token is a personal access token (or an installation token).
	Token string
	// App authenticates as a GitHub App installation instead of Token.
	App *AppAuth
	// BotLogin is the login berth comments as; only comments by it are
	// taken as berth's own (default: asked from the API once; empty when
	// that fails, and then any comment with a marker counts).
	BotLogin string
	// HTTPClient carries the requests (default: a client with a 30 s
	// timeout); its transport is wrapped with authentication.
	HTTPClient *http.Client
	Logger     *slog.Logger
	Retry      RetryOptions
	// OutboxFile, when set, keeps writes that could not be made across
	// restarts.
	OutboxFile string
}

// AppAuth is a GitHub App installation's credentials.
type AppAuth struct {
	AppID          int64
	InstallationID int64
	PrivateKey     []byte // PEM
}

// RetryOptions bound retries. The zero value is the defaults.
type RetryOptions struct {
	// Attempts is how many times a request is tried (default 4).
	Attempts int
	// Backoff is the first wait after a 5xx or network error, doubling
	// each attempt (default 1 s).
	Backoff time.Duration
	// MaxWait is the longest berth waits for a rate limit to reset before
	// leaving the write in the outbox (default 60 s).
	MaxWait time.Duration
	// Sleep waits (default: a timer that honours ctx); tests replace it.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (r RetryOptions) withDefaults() RetryOptions {
	if r.Attempts <= 0 {
		r.Attempts = 4
	}
	if r.Backoff <= 0 {
		r.Backoff = time.Second
	}
	if r.MaxWait <= 0 {
		r.MaxWait = time.Minute
	}
	if r.Sleep == nil {
		r.Sleep = func(ctx context.Context, d time.Duration) error {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	return r
}

// Client talks to one repository's API.
type Client struct {
	gh     *github.Client
	forge  Forge
	owner  string
	repo   string
	log    *slog.Logger
	retry  RetryOptions
	secret []string // what errors must never show
	app    *ghinstallation.Transport

	botOnce  sync.Once
	botLogin string

	mu       sync.Mutex
	statuses *lru.Cache[string, map[string]status.CommitStatus] // by commit
	comments map[commentKey]*commentState
	outbox   *outbox
}

// New returns a client. It does not touch the network.
func New(opts Options) (*Client, error) {
	owner, repo, ok := strings.Cut(opts.Repo, "/")
	if !ok || owner == "" || repo == "" || strings.Contains(repo, "/") {
		return nil, fmt.Errorf("github: repository %q is not owner/name", opts.Repo)
	}
	if opts.Forge == "" {
		opts.Forge = GitHub
	}
	if opts.Forge != GitHub && opts.Forge != Gitea {
		return nil, fmt.Errorf("github: forge %q: want github or gitea", opts.Forge)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	base := http.DefaultTransport
	hc := &http.Client{Timeout: 30 * time.Second}
	if opts.HTTPClient != nil {
		c := *opts.HTTPClient
		hc = &c
		if c.Transport != nil {
			base = c.Transport
		}
	}
	statuses, _ := lru.New[string, map[string]status.CommitStatus](maxStatusCommits) // errs only for a size under 1
	c := &Client{forge: opts.Forge, owner: owner, repo: repo, log: log.With("repo", opts.Repo),
		retry: opts.Retry.withDefaults(), botLogin: opts.BotLogin,
		statuses: statuses, comments: map[commentKey]*commentState{}}
	var tr http.RoundTripper = base
	if opts.Forge == Gitea {
		tr = giteaPaging{base: tr}
	}
	switch {
	case opts.App != nil:
		it, err := ghinstallation.New(tr, opts.App.AppID, opts.App.InstallationID, opts.App.PrivateKey)
		if err != nil {
			return nil, fmt.Errorf("github app %d: %w", opts.App.AppID, err)
		}
		if opts.BaseURL != "" {
			it.BaseURL = strings.TrimRight(opts.BaseURL, "/")
		}
		c.app = it
		tr = it
	case opts.Token != "":
		scheme := "Bearer"
		if opts.Forge == Gitea {
			scheme = "token"
		}
		tr = tokenTransport{base: tr, header: scheme + " " + opts.Token}
		c.secret = append(c.secret, opts.Token)
	default:
		return nil, errors.New("github: no credentials: give a token or a GitHub App installation")
	}
	hc.Transport = tr
	c.gh = github.NewClient(hc)
	if opts.BaseURL != "" {
		u, err := url.Parse(opts.BaseURL)
		if err != nil {
			return nil, fmt.Errorf("github: API URL: %w", err)
		}
		if !strings.HasSuffix(u.Path, "/") {
			u.Path += "/"
		}
		c.gh.BaseURL = u
	}
	c.gh.UserAgent = "berth"
	ob, err := loadOutbox(opts.OutboxFile)
	if err != nil {
		return nil, err
	}
	c.outbox = ob
	return c, nil
}

// Repo is "owner/name".
func (c *Client) Repo() string { return c.owner + "/" + c.repo }

// Forge is the kind of server.
func (c *Client) Forge() Forge { return c.forge }

// Token returns a token for git over https: the personal token, or a
// fresh installation token. It is for sources.GitAuth.TokenFunc only.
func (c *Client) Token(ctx context.Context) (string, error) {
	if c.app != nil {
		t, err := c.app.Token(ctx)
		if err != nil {
			return "", c.redact(fmt.Errorf("github app installation token: %w", err))
		}
		return t, nil
	}
	if len(c.secret) > 0 {
		return c.secret[0], nil
	}
	return "", errors.New("github: no token")
}

// tokenTransport adds the Authorization header. The token lives only here
// and in Client.secret (for redaction).
type tokenTransport struct {
	base   http.RoundTripper
	header string
}

func (t tokenTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", t.header)
	return t.base.RoundTrip(req)
}

// giteaPaging turns go-github's per_page into Gitea's limit.
type giteaPaging struct{ base http.RoundTripper }

func (t giteaPaging) RoundTrip(req *http.Request) (*http.Response, error) {
	q := req.URL.Query()
	if pp := q.Get("per_page"); pp != "" {
		req = req.Clone(req.Context())
		q.Del("per_page")
		q.Set("limit", pp)
		req.URL.RawQuery = q.Encode()
	}
	return t.base.RoundTrip(req)
}

// redact removes credentials from an error's text, keeping it for
// errors.As.
func (c *Client) redact(err error) error {
	if err == nil {
		return nil
	}
	for _, s := range c.secret {
		if s != "" && strings.Contains(err.Error(), s) {
			return &redactedError{err: err, secrets: c.secret}
		}
	}
	return err
}

type redactedError struct {
	err     error
	secrets []string
}

func (e *redactedError) Error() string {
	s := e.err.Error()
	for _, x := range e.secrets {
		if x != "" {
			s = strings.ReplaceAll(s, x, "<redacted>")
		}
	}
	return s
}
func (e *redactedError) Unwrap() error { return e.err }

// APIError is a request the API refused or could not serve after retries.
type APIError struct {
	Op     string // "create status berth/plan: box on 1a2b3c4"
	Repo   string
	Status int // HTTP status, 0 when there was no answer
	// Retryable is true for 5xx, rate limits and network errors: the
	// write went to the outbox.
	Retryable bool
	Err       error
}

func (e *APIError) Error() string {
	return fmt.Sprintf("github %s: %s: %v", e.Repo, e.Op, e.Err)
}
func (e *APIError) Unwrap() error { return e.Err }

// call runs one API request with retries: 5xx and network errors back off
// (1 s, 2 s, 4 s by default), rate limits wait for their reset when it
// comes within MaxWait. Other errors are returned at once.
func (c *Client) call(ctx context.Context, op string, f func() (*github.Response, error)) error {
	r := c.retry
	backoff := wait.Backoff{Duration: r.Backoff, Factor: 2, Steps: r.Attempts}.DelayFunc()
	var last error
	var lastStatus int
	for attempt := 1; attempt <= r.Attempts; attempt++ {
		resp, err := f()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return &APIError{Op: op, Repo: c.Repo(), Err: ctx.Err(), Retryable: true}
		}
		last, lastStatus = err, 0
		if resp != nil && resp.Response != nil {
			lastStatus = resp.StatusCode
		}
		d, retry := c.retryAfter(err, resp, backoff())
		if !retry {
			return &APIError{Op: op, Repo: c.Repo(), Status: lastStatus, Err: c.redact(err)}
		}
		if d > r.MaxWait {
			c.log.Warn("rate limited past the longest wait; keeping the write for later", "op", op, "wait", d.String())
			break
		}
		if attempt == r.Attempts {
			break
		}
		c.log.Debug("retrying", "op", op, "attempt", attempt, "wait", d.String(), "err", c.redact(err))
		if err := r.Sleep(ctx, d); err != nil {
			return &APIError{Op: op, Repo: c.Repo(), Err: err, Retryable: true}
		}
	}
	return &APIError{Op: op, Repo: c.Repo(), Status: lastStatus, Err: c.redact(last), Retryable: true}
}

// retryAfter says whether an error is worth retrying and after how long.
func (c *Client) retryAfter(err error, resp *github.Response, backoff time.Duration) (time.Duration, bool) {
	var rl *github.RateLimitError
	var abuse *github.AbuseRateLimitError
	var er *github.ErrorResponse
	var ne net.Error
	switch {
	case errors.As(err, &rl):
		d := rl.Rate.Reset.Time.Sub(c.retry.Now()) + time.Second
		return max(d, time.Second), true
	case errors.As(err, &abuse):
		if abuse.RetryAfter != nil {
			return max(*abuse.RetryAfter, time.Second), true
		}
		return time.Minute, true
	case errors.As(err, &er) && er.Response != nil:
		code := er.Response.StatusCode
		if code == http.StatusTooManyRequests {
			if s := er.Response.Header.Get("Retry-After"); s != "" {
				var secs int
				if _, err := fmt.Sscanf(s, "%d", &secs); err == nil {
					return time.Duration(secs) * time.Second, true
				}
			}
			return backoff, true
		}
		return backoff, code >= 500
	case errors.As(err, &ne), errors.Is(err, net.ErrClosed):
		return backoff, true
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return backoff, true
	}
	if resp != nil && resp.Response != nil && resp.StatusCode >= 500 {
		return backoff, true
	}
	return 0, false
}

// isNotFound reports whether the API answered 404.
func isNotFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound
}

// BotLogin is the login berth's comments are written by, asked once.
func (c *Client) BotLogin(ctx context.Context) string {
	c.botOnce.Do(func() {
		if c.botLogin != "" || c.app != nil {
			return
		}
		var u *github.User
		err := c.call(ctx, "get the authenticated user", func() (*github.Response, error) {
			var resp *github.Response
			var err error
			u, resp, err = c.gh.Users.Get(ctx, "")
			return resp, err
		})
		if err != nil {
			c.log.Warn("cannot tell which user berth comments as; any comment with a berth marker counts as berth's", "err", err)
			return
		}
		c.botLogin = u.GetLogin()
	})
	return c.botLogin
}
