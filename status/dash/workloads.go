package dash

import (
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/reconcile/history"
	"github.com/berth-gpu/berth/status"
)

// PageSize is how many runs one workloads page lists unless the query
// says (per); MaxPageSize is the most it may ask.
const (
	PageSize    = 50
	MaxPageSize = 500
)

// Query is what the workloads page shows: runs matching every filter that
// is set (an empty one matches all), and which page of them (1-based).
type Query struct {
	Team    string
	Kind    string
	State   string
	Cluster string
	Page    int
	// PerPage is how many runs a page lists (PageSize when zero).
	PerPage int
}

// ParseQuery reads a query from URL parameters team, kind, state, cluster,
// page and per; a page that is not a positive number is the first, and
// per is kept between 1 and MaxPageSize.
func ParseQuery(v url.Values) Query {
	q := Query{Team: v.Get("team"), Kind: v.Get("kind"), State: v.Get("state"), Cluster: v.Get("cluster"), Page: 1}
	if n, err := strconv.Atoi(v.Get("page")); err == nil && n > 0 {
		q.Page = n
	}
	if n, err := strconv.Atoi(v.Get("per")); err == nil && n > 0 {
		q.PerPage = min(n, MaxPageSize)
	}
	return q
}

func (q Query) perPage() int {
	if q.PerPage <= 0 {
		return PageSize
	}
	return min(q.PerPage, MaxPageSize)
}

// href is the workloads page's address for the query at page.
func (q Query) href(page int) string {
	v := url.Values{}
	for _, kv := range [][2]string{{"team", q.Team}, {"kind", q.Kind}, {"state", q.State}, {"cluster", q.Cluster}} {
		if kv[1] != "" {
			v.Set(kv[0], kv[1])
		}
	}
	if q.PerPage > 0 && q.PerPage != PageSize {
		v.Set("per", strconv.Itoa(q.perPage()))
	}
	if page > 1 {
		v.Set("page", strconv.Itoa(page))
	}
	if len(v) == 0 {
		return "/"
	}
	return "/?" + v.Encode()
}

func (q Query) matches(c string, ws *status.WorkloadStatus) bool {
	return (q.Team == "" || ws.Team == q.Team) && (q.Kind == "" || string(ws.Kind) == q.Kind) &&
		(q.State == "" || ws.State == q.State) && (q.Cluster == "" || c == q.Cluster)
}

// row is one run in the workloads table.
type row struct {
	Cluster  string
	Workload string
	Href     string
	RunID    string
	Team     string
	Kind     string
	State    string
	GPUs     string
	Queue    string // queue position or reason
	Runtime  string
	Source   link
	Commit   link
	PR       link
}

type link struct{ Text, URL string }

type option struct {
	Value    string
	Selected bool
}

type filter struct {
	Name, Label string
	Options     []option
}

type workloadsView struct {
	page
	Filters            []filter
	Rows               []row
	Total, Matched     int
	First, Last        int
	Page, Pages        int
	PrevHref, NextHref string
	Filtered           bool
	ClearHref          string
	// Per is the page size the query asked for (0: the default), kept
	// by the filter form.
	Per int
}

// Workloads writes the workloads page: every run of every kind on every
// cluster, filtered and paginated by q, in the API's order (cluster, then
// workload, then run).
func Workloads(w io.Writer, d Data, q Query) error {
	v := workloadsView{page: newPage(d, "workloads", "Workloads")}
	teams, kinds, states, clusters := map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}
	type hit struct {
		c  *Cluster
		ws *status.WorkloadStatus
	}
	var hits []hit
	cs := sortedClusters(d.Clusters)
	q.Page = max(q.Page, 1)
	per := q.perPage()
	first := (q.Page - 1) * per
	for i := range cs {
		c := &cs[i]
		clusters[c.Name] = true
		for j := range c.Workloads {
			ws := &c.Workloads[j]
			teams[ws.Team], kinds[string(ws.Kind)], states[ws.State] = true, true, true
			v.Total++
			if !q.matches(c.Name, ws) {
				continue
			}
			if v.Matched >= first && v.Matched < first+per {
				hits = append(hits, hit{c, ws})
			}
			v.Matched++
		}
	}
	v.Filters = []filter{
		newFilter("team", "Team", teams, q.Team),
		newFilter("kind", "Kind", kinds, q.Kind),
		newFilter("state", "State", states, q.State),
		newFilter("cluster", "Cluster", clusters, q.Cluster),
	}
	v.Filtered = q.Team != "" || q.Kind != "" || q.State != "" || q.Cluster != ""
	v.ClearHref = Query{PerPage: q.PerPage}.href(1)
	if q.PerPage > 0 && q.PerPage != PageSize {
		v.Per = per
	}
	v.Pages = max(1, (v.Matched+per-1)/per)
	v.Page = q.Page
	if len(hits) > 0 {
		v.First, v.Last = first+1, first+len(hits)
	}
	if q.Page > 1 {
		v.PrevHref = q.href(min(q.Page-1, v.Pages))
	}
	if q.Page < v.Pages {
		v.NextHref = q.href(q.Page + 1)
	}
	// Runs are looked up only for the rows shown, one index per cluster.
	runs := map[string]map[berth.RunKey]*reconcile.RunState{}
	for _, h := range hits {
		idx, ok := runs[h.c.Name]
		if !ok {
			idx = indexRuns(h.c.Runs)
			runs[h.c.Name] = idx
		}
		v.Rows = append(v.Rows, d.row(h.c.Name, h.ws, idx[h.ws.Key()]))
	}
	return render(w, "workloads", v)
}

func newFilter(name, label string, values map[string]bool, selected string) filter {
	f := filter{Name: name, Label: label}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	if selected != "" && !values[selected] {
		keys = append(keys, selected) // kept, so the form says what filters
	}
	slices.Sort(keys)
	for _, k := range keys {
		f.Options = append(f.Options, option{Value: k, Selected: k == selected})
	}
	return f
}

func indexRuns(runs []reconcile.RunState) map[berth.RunKey]*reconcile.RunState {
	idx := make(map[berth.RunKey]*reconcile.RunState, len(runs))
	for i := range runs {
		idx[runs[i].Key()] = &runs[i]
	}
	return idx
}

func (d Data) row(cluster string, ws *status.WorkloadStatus, run *reconcile.RunState) row {
	r := row{Cluster: cluster, Workload: string(ws.Workload), Href: workloadHref(ws.Workload, cluster, ws.RunID),
		RunID: ws.RunID, Team: ws.Team, Kind: string(ws.Kind), State: ws.State, GPUs: gpusText(ws),
		Runtime: runtime(d.Now, ws, run), Source: d.source(ws.Workload), Commit: d.commit()}
	if o, ok := d.Origins[cluster][ws.Key()]; ok {
		r.Commit, r.PR = d.originLinks(o)
	}
	switch {
	case ws.State == "queued" && ws.Position > 0:
		r.Queue = fmt.Sprintf("#%d", ws.Position)
		if ws.Reason != "" {
			r.Queue += ": " + ws.Reason
		}
	case ws.Reason != "":
		r.Queue = ws.Reason
	case len(ws.Nodes) > 0:
		r.Queue = "on " + strings.Join(ws.Nodes, ", ")
	}
	return r
}

// workloadHref is the address of a workload's page, at one run.
func workloadHref(id berth.WorkloadID, cluster, runID string) string {
	v := url.Values{}
	if cluster != "" {
		v.Set("cluster", cluster)
	}
	if runID != "" {
		v.Set("run", runID)
	}
	h := "/workloads/" + url.PathEscape(id.Team()) + "/" + url.PathEscape(id.Name())
	if len(v) > 0 {
		h += "?" + v.Encode()
	}
	return h
}

func gpusText(ws *status.WorkloadStatus) string {
	if ws.GPUs <= 0 {
		return "-"
	}
	return status.DecisionGPUs(berth.Decision{GPUs: ws.GPUs, MIG: ws.MIG})
}

// runtime is how long the run has run (or ran), or how long it has
// waited.
func runtime(now time.Time, ws *status.WorkloadStatus, run *reconcile.RunState) string {
	if run != nil && !run.StartedAt.IsZero() {
		end := now
		if !run.FinishedAt.IsZero() {
			end = run.FinishedAt
		}
		return status.Age(end.Sub(run.StartedAt))
	}
	if ws.State == "queued" && ws.Since != nil {
		return "waiting " + status.Age(now.Sub(*ws.Since))
	}
	return "-"
}

func (d Data) source(id berth.WorkloadID) link {
	p := d.pos(id)
	if !p.IsValid() {
		return link{}
	}
	l := link{Text: p.File}
	if p.Line > 0 {
		l.Text += ":" + strconv.Itoa(p.Line)
	}
	if d.RepoURL != "" && d.Commit != "" {
		l.URL = d.RepoURL + "/blob/" + d.Commit + "/" + p.File
		if p.Line > 0 {
			l.URL += "#L" + strconv.Itoa(p.Line)
		}
	}
	return l
}

// originLinks are the commit and pull request a run came from.
func (d Data) originLinks(o history.Origin) (commit, pr link) {
	if o.Commit != "" {
		commit = link{Text: shortHash(o.Commit)}
		if d.RepoURL != "" {
			commit.URL = d.RepoURL + "/commit/" + o.Commit
		}
	}
	if o.PR > 0 {
		pr = link{Text: "#" + strconv.Itoa(o.PR)}
		if d.RepoURL != "" {
			pr.URL = d.RepoURL + "/pull/" + strconv.Itoa(o.PR)
		}
	}
	return commit, pr
}

func (d Data) commit() link {
	if d.Commit == "" {
		return link{}
	}
	l := link{Text: shortHash(d.Commit)}
	if d.RepoURL != "" {
		l.URL = d.RepoURL + "/commit/" + d.Commit
	}
	return l
}

func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
