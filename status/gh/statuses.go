package gh

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/google/go-github/v60/github"

	"github.com/berth-gpu/berth/status"
)

// maxStatusCommits is how many commits' statuses a Client remembers: each
// commit's latest status of each context as the server has it, listed once
// and then kept current by what berth posts (under Client.mu). The least
// recently used commit is forgotten first, and listed again if it comes
// back.
const maxStatusCommits = 512

// SetStatuses makes the commit's statuses what is given: the commit's
// statuses are listed (once per commit), and only a status whose state,
// description or target URL differs from the latest of its context is
// posted. A status that cannot be posted goes to the outbox (Flush retries
// it) and the error says so.
func (c *Client) SetStatuses(ctx context.Context, sha string, sts []status.CommitStatus) error {
	known, err := c.knownStatuses(ctx, sha)
	if err != nil {
		// Without the list berth cannot tell what is there: keep the
		// statuses for later rather than risk posting duplicates.
		for _, st := range sts {
			c.outbox.addStatus(sha, st)
		}
		c.outbox.save(c.log)
		return err
	}
	var errs []error
	for _, st := range sts {
		if have, ok := known[st.Context]; ok && have == st {
			c.outbox.dropStatus(sha, st.Context)
			continue
		}
		if err := c.createStatus(ctx, sha, st); err != nil {
			var ae *APIError
			if errors.As(err, &ae) && ae.Retryable {
				c.outbox.addStatus(sha, st)
			}
			errs = append(errs, err)
			continue
		}
		c.outbox.dropStatus(sha, st.Context)
	}
	c.outbox.save(c.log)
	return errors.Join(errs...)
}

func (c *Client) createStatus(ctx context.Context, sha string, st status.CommitStatus) error {
	rs := &github.RepoStatus{State: github.String(string(st.State)), Description: github.String(st.Description),
		Context: github.String(st.Context)}
	if st.TargetURL != "" {
		rs.TargetURL = github.String(st.TargetURL)
	}
	op := fmt.Sprintf("create status %s on %s", st.Context, short(sha))
	err := c.call(ctx, op, func() (*github.Response, error) {
		_, resp, err := c.gh.Repositories.CreateStatus(ctx, c.owner, c.repo, sha, rs)
		return resp, err
	})
	if err != nil {
		return err
	}
	c.mu.Lock()
	if m, ok := c.statuses.Get(sha); ok {
		m[st.Context] = st
	}
	c.mu.Unlock()
	c.log.Info("posted status", "sha", short(sha), "context", st.Context, "state", st.State, "description", st.Description)
	return nil
}

// knownStatuses lists a commit's statuses once: the newest of each context.
func (c *Client) knownStatuses(ctx context.Context, sha string) (map[string]status.CommitStatus, error) {
	c.mu.Lock()
	m, ok := c.statuses.Get(sha)
	c.mu.Unlock()
	if ok {
		return m, nil
	}
	m = map[string]status.CommitStatus{}
	opts := &github.ListOptions{PerPage: 100}
	for page := 1; page <= 10; page++ {
		opts.Page = page
		var list []repoStatus
		var next int
		err := c.call(ctx, "list statuses of "+short(sha), func() (*github.Response, error) {
			var resp *github.Response
			var err error
			list, resp, err = c.listStatuses(ctx, sha, opts)
			if resp != nil {
				next = resp.NextPage
			}
			return resp, err
		})
		if err != nil {
			return nil, err
		}
		// Newest first: the first of a context is its current status.
		for _, s := range list {
			if _, seen := m[s.Context]; !seen {
				m[s.Context] = status.CommitStatus{Context: s.Context, State: status.State(s.state()),
					Description: s.Description, TargetURL: s.TargetURL}
			}
		}
		if next == 0 || len(list) == 0 {
			break
		}
	}
	c.mu.Lock()
	c.statuses.Add(sha, m)
	c.mu.Unlock()
	return m, nil
}

// repoStatus is a status as either forge returns it: GitHub names the
// state "state", Gitea "status".
type repoStatus struct {
	Context     string `json:"context"`
	State       string `json:"state"`
	Status      string `json:"status"`
	Description string `json:"description"`
	TargetURL   string `json:"target_url"`
}

func (s repoStatus) state() string {
	if s.State != "" {
		return s.State
	}
	return s.Status
}

// listStatuses is go-github's ListStatuses, decoded into repoStatus so
// Gitea's field name is read too.
func (c *Client) listStatuses(ctx context.Context, sha string, opts *github.ListOptions) ([]repoStatus, *github.Response, error) {
	u := fmt.Sprintf("repos/%s/%s/commits/%s/statuses?per_page=%d&page=%d", c.owner, c.repo, sha, opts.PerPage, opts.Page)
	req, err := c.gh.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, err
	}
	var out []repoStatus
	resp, err := c.gh.Do(ctx, req, &out)
	return out, resp, err
}

// CommitStatuses returns the current status of each context of a commit,
// as the server has it (listed afresh).
func (c *Client) CommitStatuses(ctx context.Context, sha string) (map[string]status.CommitStatus, error) {
	c.mu.Lock()
	c.statuses.Remove(sha)
	c.mu.Unlock()
	return c.knownStatuses(ctx, sha)
}

func short(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}

// pendingStatus is a status waiting in the outbox.
type pendingStatus struct {
	SHA    string              `json:"sha"`
	Status status.CommitStatus `json:"status"`
}
