package gh

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/google/go-github/v60/github"

	"github.com/berth-gpu/berth/status"
)

type commentKey struct {
	pr      int
	cluster string
}

// commentState is what berth knows of a cluster's comment on a pull
// request: the ID and body of each part (index 0 is part 1; ID 0: none).
type commentState struct {
	ids    []int64
	bodies []string
}

// prLocks serialises the comment writes of one pull request, across every
// Client of the repository. An entry lives only while someone holds or
// waits for it, so the map does not grow with every pull request seen.
var prLocks = keyedMutex{m: map[string]*refMutex{}}

type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*refMutex
}

type refMutex struct {
	sync.Mutex
	users int
}

func (k *keyedMutex) lock(key string) func() {
	k.mu.Lock()
	e := k.m[key]
	if e == nil {
		e = &refMutex{}
		k.m[key] = e
	}
	e.users++
	k.mu.Unlock()
	e.Lock()
	return func() {
		e.Unlock()
		k.mu.Lock()
		if e.users--; e.users == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}

func (k *keyedMutex) len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.m)
}

func (c *Client) lockPR(pr int) func() {
	return prLocks.lock(fmt.Sprintf("%s#%d", c.Repo(), pr))
}

// UpsertComment makes a cluster's sticky comment on a pull request read as
// given: each part is found by its marker and edited in place when its
// text changed, created when missing, and parts left over from a longer
// comment are deleted. A comment that cannot be written goes to the
// outbox. Each part is written at most once per call.
func (c *Client) UpsertComment(ctx context.Context, pr int, cm status.Comment) error {
	unlock := c.lockPR(pr)
	defer unlock()
	st, err := c.commentState(ctx, pr, cm.Cluster)
	if err != nil {
		c.outbox.addComment(pr, cm)
		c.outbox.save(c.log)
		return err
	}
	var errs []error
	retryable := false
	for i, body := range cm.Parts {
		if i < len(st.ids) && st.ids[i] != 0 {
			if st.bodies[i] == body {
				continue
			}
			err := c.editComment(ctx, pr, st.ids[i], i+1, cm.Cluster, body)
			if isNotFound(err) {
				// Deleted by someone: write it again.
				st.ids[i] = 0
				err = c.createComment(ctx, pr, st, i, cm.Cluster, body)
			} else if err == nil {
				st.bodies[i] = body
			}
			if err != nil {
				errs = append(errs, err)
				retryable = retryable || isRetryable(err)
			}
			continue
		}
		if err := c.createComment(ctx, pr, st, i, cm.Cluster, body); err != nil {
			errs = append(errs, err)
			retryable = retryable || isRetryable(err)
		}
	}
	for i := len(cm.Parts); i < len(st.ids); i++ {
		if st.ids[i] == 0 {
			continue
		}
		id := st.ids[i]
		err := c.call(ctx, fmt.Sprintf("delete comment %d (part %d for cluster %s) on #%d", id, i+1, cm.Cluster, pr), func() (*github.Response, error) {
			return c.gh.Issues.DeleteComment(ctx, c.owner, c.repo, id)
		})
		if err != nil && !isNotFound(err) {
			errs = append(errs, err)
			retryable = retryable || isRetryable(err)
			continue
		}
		st.ids[i], st.bodies[i] = 0, ""
	}
	if retryable {
		c.outbox.addComment(pr, cm)
	} else {
		c.outbox.dropComment(pr, cm.Cluster)
	}
	c.outbox.save(c.log)
	return errors.Join(errs...)
}

func isRetryable(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Retryable
}

func (c *Client) editComment(ctx context.Context, pr int, id int64, part int, cluster, body string) error {
	op := fmt.Sprintf("edit comment %d (part %d for cluster %s) on #%d", id, part, cluster, pr)
	err := c.call(ctx, op, func() (*github.Response, error) {
		_, resp, err := c.gh.Issues.EditComment(ctx, c.owner, c.repo, id, &github.IssueComment{Body: github.String(body)})
		return resp, err
	})
	if err == nil {
		c.log.Info("edited comment", "pr", pr, "cluster", cluster, "part", part, "id", id)
	}
	return err
}

func (c *Client) createComment(ctx context.Context, pr int, st *commentState, i int, cluster, body string) error {
	op := fmt.Sprintf("create comment (part %d for cluster %s) on #%d", i+1, cluster, pr)
	var created *github.IssueComment
	err := c.call(ctx, op, func() (*github.Response, error) {
		var resp *github.Response
		var err error
		created, resp, err = c.gh.Issues.CreateComment(ctx, c.owner, c.repo, pr, &github.IssueComment{Body: github.String(body)})
		return resp, err
	})
	if err != nil {
		return err
	}
	for len(st.ids) <= i {
		st.ids = append(st.ids, 0)
		st.bodies = append(st.bodies, "")
	}
	st.ids[i], st.bodies[i] = created.GetID(), body
	c.log.Info("created comment", "pr", pr, "cluster", cluster, "part", i+1, "id", created.GetID())
	return nil
}

// commentState returns what berth knows of a cluster's comment, listing
// the pull request's comments the first time (all clusters at once).
func (c *Client) commentState(ctx context.Context, pr int, cluster string) (*commentState, error) {
	key := commentKey{pr, cluster}
	c.mu.Lock()
	st, ok := c.comments[key]
	listed := c.comments[commentKey{pr, ""}] != nil
	c.mu.Unlock()
	if ok {
		return st, nil
	}
	if listed {
		st = &commentState{}
		c.mu.Lock()
		c.comments[key] = st
		c.mu.Unlock()
		return st, nil
	}
	bot := c.BotLogin(ctx)
	found := map[string]*commentState{}
	opts := &github.IssueListCommentsOptions{ListOptions: github.ListOptions{PerPage: 100}}
	for page := 1; page <= 50; page++ {
		opts.Page = page
		var list []*github.IssueComment
		var next int
		err := c.call(ctx, fmt.Sprintf("list comments of #%d", pr), func() (*github.Response, error) {
			var resp *github.Response
			var err error
			list, resp, err = c.gh.Issues.ListComments(ctx, c.owner, c.repo, pr, opts)
			if resp != nil {
				next = resp.NextPage
			}
			return resp, err
		})
		if err != nil {
			return nil, err
		}
		for _, cm := range list {
			if bot != "" && !strings.EqualFold(cm.GetUser().GetLogin(), bot) {
				continue
			}
			cl, part, ok := status.ParseMarker(cm.GetBody())
			if !ok || part < 1 || part > 1000 {
				continue
			}
			s := found[cl]
			if s == nil {
				s = &commentState{}
				found[cl] = s
			}
			for len(s.ids) < part {
				s.ids = append(s.ids, 0)
				s.bodies = append(s.bodies, "")
			}
			if s.ids[part-1] == 0 { // the first (oldest) of a part is the sticky one
				s.ids[part-1], s.bodies[part-1] = cm.GetID(), cm.GetBody()
			}
		}
		if next == 0 || len(list) == 0 {
			break
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.comments[commentKey{pr, ""}] = &commentState{} // listed
	for cl, s := range found {
		c.comments[commentKey{pr, cl}] = s
	}
	if st, ok = c.comments[key]; !ok {
		st = &commentState{}
		c.comments[key] = st
	}
	return st, nil
}

// Comments returns the bodies of a cluster's comment parts as the server
// has them now (listed afresh), for tests and `berth plan --github-pr`'s
// report.
func (c *Client) Comments(ctx context.Context, pr int, cluster string) ([]string, error) {
	c.mu.Lock()
	for k := range c.comments {
		if k.pr == pr {
			delete(c.comments, k)
		}
	}
	c.mu.Unlock()
	st, err := c.commentState(ctx, pr, cluster)
	if err != nil {
		return nil, err
	}
	var out []string
	for i, id := range st.ids {
		if id != 0 {
			out = append(out, st.bodies[i])
		}
	}
	return out, nil
}
