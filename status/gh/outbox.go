package gh

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/berth-gpu/berth/status"
)

// Outbox bounds: past them the oldest entries are dropped (and logged):
// a newer write of the same status or comment replaces an older one, so
// these are many commits' worth.
const (
	maxOutboxStatuses = 1000
	maxOutboxComments = 200
)

// outbox keeps the writes that could not be made (5xx, rate limits past
// the longest wait, the network down) until Flush makes them. Only the
// latest write of each status context per commit, and of each comment,
// is kept: an older one would be overwritten anyway.
type outbox struct {
	file string

	mu       sync.Mutex
	seq      int
	statuses map[string]outboxStatus  // sha + "\x00" + context
	comments map[string]outboxComment // pr + "\x00" + cluster
}

type outboxStatus struct {
	Seq int `json:"seq"`
	pendingStatus
}

type outboxComment struct {
	Seq     int            `json:"seq"`
	PR      int            `json:"pr"`
	Comment status.Comment `json:"comment"`
}

type outboxFile struct {
	Statuses []outboxStatus  `json:"statuses"`
	Comments []outboxComment `json:"comments"`
}

func loadOutbox(file string) (*outbox, error) {
	o := &outbox{file: file, statuses: map[string]outboxStatus{}, comments: map[string]outboxComment{}}
	if file == "" {
		return o, nil
	}
	data, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return o, nil
	}
	if err != nil {
		return nil, fmt.Errorf("github outbox %s: %w", file, err)
	}
	var f outboxFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("github outbox %s: %w", file, err)
	}
	for _, s := range f.Statuses {
		o.statuses[s.SHA+"\x00"+s.Status.Context] = s
		o.seq = max(o.seq, s.Seq)
	}
	for _, c := range f.Comments {
		o.comments[fmt.Sprint(c.PR)+"\x00"+c.Comment.Cluster] = c
		o.seq = max(o.seq, c.Seq)
	}
	return o, nil
}

func (o *outbox) addStatus(sha string, st status.CommitStatus) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seq++
	o.statuses[sha+"\x00"+st.Context] = outboxStatus{Seq: o.seq, pendingStatus: pendingStatus{SHA: sha, Status: st}}
	for len(o.statuses) > maxOutboxStatuses {
		delete(o.statuses, oldest(o.statuses, func(s outboxStatus) int { return s.Seq }))
	}
}

func (o *outbox) dropStatus(sha, context string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.statuses, sha+"\x00"+context)
}

func (o *outbox) addComment(pr int, c status.Comment) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seq++
	o.comments[fmt.Sprint(pr)+"\x00"+c.Cluster] = outboxComment{Seq: o.seq, PR: pr, Comment: c}
	for len(o.comments) > maxOutboxComments {
		delete(o.comments, oldest(o.comments, func(c outboxComment) int { return c.Seq }))
	}
}

func (o *outbox) dropComment(pr int, cluster string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.comments, fmt.Sprint(pr)+"\x00"+cluster)
}

func oldest[V any](m map[string]V, seq func(V) int) string {
	key, low := "", -1
	for k, v := range m {
		if low < 0 || seq(v) < low {
			key, low = k, seq(v)
		}
	}
	return key
}

// snapshot lists the outbox in the order the writes were made.
func (o *outbox) snapshot() ([]outboxStatus, []outboxComment) {
	o.mu.Lock()
	defer o.mu.Unlock()
	ss := make([]outboxStatus, 0, len(o.statuses))
	for _, s := range o.statuses {
		ss = append(ss, s)
	}
	cs := make([]outboxComment, 0, len(o.comments))
	for _, c := range o.comments {
		cs = append(cs, c)
	}
	slices.SortFunc(ss, func(a, b outboxStatus) int {
		return cmp.Compare(a.Seq, b.Seq)
	})
	slices.SortFunc(cs, func(a, b outboxComment) int {
		return cmp.Compare(a.Seq, b.Seq)
	})
	return ss, cs
}

// save writes the outbox file, when there is one.
func (o *outbox) save(log *slog.Logger) {
	if o.file == "" {
		return
	}
	ss, cs := o.snapshot()
	data, err := json.MarshalIndent(outboxFile{Statuses: ss, Comments: cs}, "", "  ")
	if err == nil {
		if err = os.MkdirAll(filepath.Dir(o.file), 0o755); err == nil {
			tmp := o.file + ".tmp"
			if err = os.WriteFile(tmp, data, 0o600); err == nil {
				err = os.Rename(tmp, o.file)
			}
		}
	}
	if err != nil {
		log.Warn("cannot save the outbox; pending writes are kept in memory only", "file", o.file, "err", err)
	}
}

// Pending counts the writes waiting in the outbox.
func (c *Client) Pending() (statuses, comments int) {
	ss, cs := c.outbox.snapshot()
	return len(ss), len(cs)
}

// Flush retries the writes waiting in the outbox, oldest first. What
// still fails stays for the next Flush.
func (c *Client) Flush(ctx context.Context) error {
	ss, cs := c.outbox.snapshot()
	if len(ss)+len(cs) == 0 {
		return nil
	}
	var errs []error
	bySHA := map[string][]status.CommitStatus{}
	var order []string
	for _, s := range ss {
		if _, ok := bySHA[s.SHA]; !ok {
			order = append(order, s.SHA)
		}
		bySHA[s.SHA] = append(bySHA[s.SHA], s.Status)
	}
	for _, sha := range order {
		if err := c.SetStatuses(ctx, sha, bySHA[sha]); err != nil {
			errs = append(errs, err)
		}
	}
	for _, cm := range cs {
		if err := c.UpsertComment(ctx, cm.PR, cm.Comment); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
