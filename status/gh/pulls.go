package gh

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/google/go-github/v60/github"

	"github.com/berth-gpu/berth/policy"
	"github.com/berth-gpu/berth/status"
)

// PR is what berth needs of a pull request.
type PR struct {
	status.PullRequest
	State    string // "open" or "closed"
	Merged   bool
	MergeSHA string
	MergedAt time.Time
	// HeadRepo is the head's repository ("owner/name"); CloneURL the base
	// repository's clone URL.
	HeadRepo string
	CloneURL string
}

// PullRequest reads a pull request.
func (c *Client) PullRequest(ctx context.Context, number int) (PR, error) {
	var p *github.PullRequest
	err := c.call(ctx, fmt.Sprintf("get pull request #%d", number), func() (*github.Response, error) {
		var resp *github.Response
		var err error
		p, resp, err = c.gh.PullRequests.Get(ctx, c.owner, c.repo, number)
		return resp, err
	})
	if err != nil {
		return PR{}, err
	}
	return c.toPR(p), nil
}

func (c *Client) toPR(p *github.PullRequest) PR {
	out := PR{
		PullRequest: status.PullRequest{
			Repo:    c.Repo(),
			Number:  p.GetNumber(),
			Author:  p.GetUser().GetLogin(),
			HeadSHA: p.GetHead().GetSHA(),
			BaseSHA: p.GetBase().GetSHA(),
			BaseRef: p.GetBase().GetRef(),
		},
		State:    p.GetState(),
		Merged:   p.GetMerged(),
		MergeSHA: p.GetMergeCommitSHA(),
		HeadRepo: p.GetHead().GetRepo().GetFullName(),
		CloneURL: p.GetBase().GetRepo().GetCloneURL(),
	}
	if p.MergedAt != nil {
		out.MergedAt = p.MergedAt.Time
		out.Merged = true
	}
	out.Fork = out.HeadRepo != "" && !strings.EqualFold(out.HeadRepo, c.Repo())
	return out
}

// OpenPullRequests lists the open pull requests (for polling, when no
// webhook is configured), newest first.
func (c *Client) OpenPullRequests(ctx context.Context) ([]PR, error) {
	var out []PR
	opts := &github.PullRequestListOptions{State: "open", ListOptions: github.ListOptions{PerPage: 100}}
	for page := 1; page <= 10; page++ {
		opts.Page = page
		var list []*github.PullRequest
		var next int
		err := c.call(ctx, "list open pull requests", func() (*github.Response, error) {
			var resp *github.Response
			var err error
			list, resp, err = c.gh.PullRequests.List(ctx, c.owner, c.repo, opts)
			if resp != nil {
				next = resp.NextPage
			}
			return resp, err
		})
		if err != nil {
			return nil, err
		}
		for _, p := range list {
			out = append(out, c.toPR(p))
		}
		if next == 0 || len(list) == 0 {
			break
		}
	}
	return out, nil
}

// ChangedFiles lists the paths a pull request changes; a rename lists
// both its old and new path.
func (c *Client) ChangedFiles(ctx context.Context, number int) ([]string, error) {
	var out []string
	opts := &github.ListOptions{PerPage: 100}
	for page := 1; page <= 30; page++ { // GitHub lists at most 3,000 files
		opts.Page = page
		var list []*github.CommitFile
		var next int
		err := c.call(ctx, fmt.Sprintf("list files of #%d", number), func() (*github.Response, error) {
			var resp *github.Response
			var err error
			list, resp, err = c.gh.PullRequests.ListFiles(ctx, c.owner, c.repo, number, opts)
			if resp != nil {
				next = resp.NextPage
			}
			return resp, err
		})
		if err != nil {
			return nil, err
		}
		for _, f := range list {
			out = append(out, f.GetFilename())
			if p := f.GetPreviousFilename(); p != "" {
				out = append(out, p)
			}
		}
		if next == 0 || len(list) == 0 {
			break
		}
	}
	slices.Sort(out)
	return out, nil
}

// review is a review as either forge returns it (Gitea adds dismissed and
// stale).
type review struct {
	ID        int64  `json:"id"`
	State     string `json:"state"`
	Dismissed bool   `json:"dismissed"`
	User      struct {
		Login string `json:"login"`
	} `json:"user"`
}

// Approvers returns the users whose latest review approves the pull
// request, with their membership in the given teams ("org/slug"). A later
// "changes requested" or a dismissal cancels an approval; comments do not.
func (c *Client) Approvers(ctx context.Context, number int, teams []string) ([]policy.Approver, error) {
	latest := map[string]string{} // login -> state
	var order []string
	for page := 1; page <= 10; page++ {
		var list []review
		var next int
		err := c.call(ctx, fmt.Sprintf("list reviews of #%d", number), func() (*github.Response, error) {
			u := fmt.Sprintf("repos/%s/%s/pulls/%d/reviews?per_page=100&page=%d", c.owner, c.repo, number, page)
			req, err := c.gh.NewRequest(http.MethodGet, u, nil)
			if err != nil {
				return nil, err
			}
			list = nil
			resp, err := c.gh.Do(ctx, req, &list)
			if resp != nil {
				next = resp.NextPage
			}
			return resp, err
		})
		if err != nil {
			return nil, err
		}
		for _, r := range list {
			login := r.User.Login
			state := strings.ToUpper(r.State)
			if r.Dismissed {
				state = "DISMISSED"
			}
			switch state {
			case "APPROVED", "CHANGES_REQUESTED", "REQUEST_CHANGES", "DISMISSED":
				if _, ok := latest[login]; !ok {
					order = append(order, login)
				}
				latest[login] = state
			}
		}
		if next == 0 || len(list) == 0 {
			break
		}
	}
	var out []policy.Approver
	for _, login := range order {
		if latest[login] != "APPROVED" {
			continue
		}
		a := policy.Approver{Login: login}
		for _, t := range teams {
			ok, err := c.IsTeamMember(ctx, t, login)
			if err != nil {
				return nil, err
			}
			if ok {
				a.Teams = append(a.Teams, t)
			}
		}
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b policy.Approver) int {
		return cmp.Compare(a.Login, b.Login)
	})
	return out, nil
}

// IsTeamMember reports whether login is an active member of team
// ("org/slug").
func (c *Client) IsTeamMember(ctx context.Context, team, login string) (bool, error) {
	org, slug, ok := strings.Cut(team, "/")
	if !ok {
		return false, fmt.Errorf("team %q is not org/slug", team)
	}
	if c.forge == Gitea {
		return c.giteaTeamMember(ctx, org, slug, login)
	}
	var m *github.Membership
	err := c.call(ctx, fmt.Sprintf("get membership of %s in %s", login, team), func() (*github.Response, error) {
		var resp *github.Response
		var err error
		m, resp, err = c.gh.Teams.GetTeamMembershipBySlug(ctx, org, slug, login)
		return resp, err
	})
	if isNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return m.GetState() == "active", nil
}

// giteaTeamMember finds the team by name in the organisation, then asks
// whether the user is a member.
func (c *Client) giteaTeamMember(ctx context.Context, org, slug, login string) (bool, error) {
	var res struct {
		Data []struct {
			ID   int64  `json:"id"`
			Name string `json:"name"`
		} `json:"data"`
	}
	err := c.call(ctx, fmt.Sprintf("find team %s/%s", org, slug), func() (*github.Response, error) {
		u := fmt.Sprintf("orgs/%s/teams/search?q=%s", url.PathEscape(org), url.QueryEscape(slug))
		req, err := c.gh.NewRequest(http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		return c.gh.Do(ctx, req, &res)
	})
	if isNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	for _, t := range res.Data {
		if !strings.EqualFold(t.Name, slug) {
			continue
		}
		id := t.ID
		err := c.call(ctx, fmt.Sprintf("get membership of %s in %s/%s", login, org, slug), func() (*github.Response, error) {
			req, err := c.gh.NewRequest(http.MethodGet, fmt.Sprintf("teams/%d/members/%s", id, url.PathEscape(login)), nil)
			if err != nil {
				return nil, err
			}
			return c.gh.Do(ctx, req, nil)
		})
		if isNotFound(err) {
			return false, nil
		}
		return err == nil, err
	}
	return false, nil
}

// PullRequestsOfCommit lists the merged pull requests a commit on the
// tracked branch came from (the merge, squash or rebase commit).
func (c *Client) PullRequestsOfCommit(ctx context.Context, sha string) ([]PR, error) {
	if c.forge == Gitea {
		var p *github.PullRequest
		err := c.call(ctx, "get the pull request of "+short(sha), func() (*github.Response, error) {
			req, err := c.gh.NewRequest(http.MethodGet, fmt.Sprintf("repos/%s/%s/commits/%s/pull", c.owner, c.repo, sha), nil)
			if err != nil {
				return nil, err
			}
			return c.gh.Do(ctx, req, &p)
		})
		if isNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return []PR{c.toPR(p)}, nil
	}
	var list []*github.PullRequest
	err := c.call(ctx, "list pull requests of "+short(sha), func() (*github.Response, error) {
		var resp *github.Response
		var err error
		list, resp, err = c.gh.PullRequests.ListPullRequestsWithCommit(ctx, c.owner, c.repo, sha, &github.ListOptions{PerPage: 10})
		return resp, err
	})
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []PR
	for _, p := range list {
		pr := c.toPR(p)
		if pr.Merged && (pr.MergeSHA == "" || pr.MergeSHA == sha) {
			out = append(out, pr)
		}
	}
	return out, nil
}

// CommitParents lists a commit's parents (first parent first).
func (c *Client) CommitParents(ctx context.Context, sha string) ([]string, error) {
	var out struct {
		Parents []struct {
			SHA string `json:"sha"`
		} `json:"parents"`
	}
	err := c.call(ctx, "get commit "+short(sha), func() (*github.Response, error) {
		req, err := c.gh.NewRequest(http.MethodGet, fmt.Sprintf("repos/%s/%s/git/commits/%s", c.owner, c.repo, sha), nil)
		if err != nil {
			return nil, err
		}
		return c.gh.Do(ctx, req, &out)
	})
	if err != nil {
		return nil, err
	}
	var shas []string
	for _, p := range out.Parents {
		shas = append(shas, p.SHA)
	}
	return shas, nil
}
