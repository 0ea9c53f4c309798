package schedule

import (
	"cmp"
	"container/heap"
	"slices"
	"strings"
)

// queue hands out requests in order: priority first; then, with fair
// sharing, the team with the lower share (dominant resource share over
// weight, as it stands after what this cycle admitted so far); then first
// seen; then name. With fair sharing, and in the second pass, the teams'
// heads sit in a heap that a decision re-sorts only for the teams whose
// share it changed.
type queue struct {
	st     *state
	sorted []*req // without the heap
	next   int
	// with the heap: each team's queue, and a heap of the teams.
	teams map[string]*teamQueue
	heap  teamHeap
}

// teamQueue is one team's requests in order, and its share.
type teamQueue struct {
	reqs  []*req
	share int64
	index int // in the heap, or -1
}

// newQueue orders rs. byTeam merges the teams' queues by their heads, as
// Kueue compares the heads of its ClusterQueues: each team's runs keep
// their order, and a head that borrows further up the cohort tree waits
// for the others' heads.
func (st *state) newQueue(rs []*req, byTeam bool) *queue {
	sorted := sortReqs(rs)
	q := &queue{st: st, sorted: sorted}
	if !st.cfg.Policy.FairSharing && !byTeam {
		return q
	}
	q.teams = map[string]*teamQueue{}
	var names []string
	for _, r := range sorted {
		tq, ok := q.teams[r.team]
		if !ok {
			tq = &teamQueue{}
			if st.cfg.Policy.FairSharing {
				tq.share = st.quotas.Share(r.team)
			}
			q.teams[r.team] = tq
			names = append(names, r.team)
		}
		tq.reqs = append(tq.reqs, r)
	}
	slices.Sort(names)
	for _, t := range names {
		tq := q.teams[t]
		tq.index = len(q.heap)
		q.heap = append(q.heap, tq)
	}
	heap.Init(&q.heap)
	return q
}

// pop returns the next request, or nil.
func (q *queue) pop() *req {
	if q.teams == nil {
		if q.next >= len(q.sorted) {
			return nil
		}
		q.next++
		return q.sorted[q.next-1]
	}
	if q.heap.Len() == 0 {
		return nil
	}
	tq := q.heap[0]
	r := tq.reqs[0]
	tq.reqs = tq.reqs[1:]
	if len(tq.reqs) == 0 {
		heap.Pop(&q.heap)
	} else {
		heap.Fix(&q.heap, 0)
	}
	return r
}

// decided refreshes the shares a decision changed.
func (q *queue) decided(r *req) {
	if q.teams == nil || !q.st.cfg.Policy.FairSharing {
		return
	}
	q.refresh(r.team)
	for _, v := range r.decision.Victims {
		q.refresh(v.Team)
	}
}

func (q *queue) refresh(team string) {
	tq, ok := q.teams[team]
	if !ok {
		return
	}
	tq.share = q.st.quotas.Share(team)
	if tq.index >= 0 {
		heap.Fix(&q.heap, tq.index)
	}
}

// teamHeap orders teams by their head request: how far up it borrows,
// priority, share, first seen, name. Ties of names cannot happen: a
// team's head is its own.
type teamHeap []*teamQueue

func (h teamHeap) Len() int { return len(h) }
func (h teamHeap) Less(i, j int) bool {
	ra, rb := h[i].reqs[0], h[j].reqs[0]
	if ra.level != rb.level {
		return ra.level < rb.level
	}
	if ra.prio != rb.prio {
		return ra.prio > rb.prio
	}
	if sa, sb := h[i].share, h[j].share; sa != sb {
		return sa < sb
	}
	return lessReq(ra, rb)
}
func (h teamHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *teamHeap) Push(x any) {
	tq := x.(*teamQueue)
	tq.index = len(*h)
	*h = append(*h, tq)
}
func (h *teamHeap) Pop() any {
	old := *h
	tq := old[len(old)-1]
	tq.index = -1
	*h = old[:len(old)-1]
	return tq
}

// sortReqs returns rs in lessReq's order. It sorts compact keys rather
// than the requests, which lie all over memory: 50,000 requests sort in a
// fraction of the time. lessReq is a total order (seq breaks the last
// ties), so an unstable sort orders as a stable one would.
func sortReqs(rs []*req) []*req {
	sorted := make([]*req, len(rs))
	if slices.IsSortedFunc(rs, cmpReq) {
		copy(sorted, rs)
		return sorted
	}
	type key struct {
		prio int
		sec  int64
		nsec int
		r    *req
	}
	keys := make([]key, len(rs))
	for i, r := range rs {
		keys[i] = key{prio: r.prio, sec: r.Since.Unix(), nsec: r.Since.Nanosecond(), r: r}
	}
	slices.SortFunc(keys, func(a, b key) int {
		if a.prio != b.prio {
			return cmp.Compare(b.prio, a.prio)
		}
		if a.sec != b.sec {
			return cmp.Compare(a.sec, b.sec)
		}
		if a.nsec != b.nsec {
			return cmp.Compare(a.nsec, b.nsec)
		}
		return cmpReq(a.r, b.r)
	})
	for i, k := range keys {
		sorted[i] = k.r
	}
	return sorted
}

// lessReq orders requests: higher priority, then first seen, then name and
// run, then the order they came in.
func lessReq(a, b *req) bool { return cmpReq(a, b) < 0 }

func cmpReq(a, b *req) int {
	if a.prio != b.prio {
		return cmp.Compare(b.prio, a.prio)
	}
	// By the wall clock, as sortReqs's keys compare.
	if c := cmp.Compare(a.Since.Unix(), b.Since.Unix()); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Since.Nanosecond(), b.Since.Nanosecond()); c != 0 {
		return c
	}
	if c := strings.Compare(string(a.id), string(b.id)); c != 0 {
		return c
	}
	if c := strings.Compare(a.RunID, b.RunID); c != 0 {
		return c
	}
	return cmp.Compare(a.seq, b.seq)
}
