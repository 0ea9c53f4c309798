package dash

import (
	"io"
	"maps"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/berth-gpu/berth/reconcile/history"
)

// AuditQuery is the audit page's filter, as its form sends it.
type AuditQuery struct {
	Team, Cluster, Workload, Type, Match string
}

// Values are the query's URL parameters (for the export links).
func (q AuditQuery) Values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"team": q.Team, "cluster": q.Cluster, "workload": q.Workload, "type": q.Type, "q": q.Match} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

// ParseAuditQuery reads the audit page's filter from its URL.
func ParseAuditQuery(v url.Values) AuditQuery {
	return AuditQuery{Team: v.Get("team"), Cluster: v.Get("cluster"), Workload: v.Get("workload"), Type: v.Get("type"), Match: v.Get("q")}
}

// History is the query for the history store.
func (q AuditQuery) History(limit int) history.Query {
	h := history.Query{Team: q.Team, Cluster: q.Cluster, Workload: q.Workload, Match: q.Match, Limit: limit}
	if q.Type != "" {
		h.Types = []history.EventType{history.EventType(q.Type)}
	}
	return h
}

// MaxAudit is how many events the audit page shows, the newest; the
// exports give up to 10,000.
const MaxAudit = 500

type auditRow struct {
	Time, Type, Cluster, Team, What, Reason, GPUs string
	Run                                           link
	Revision, PR                                  link
	MergedBy                                      string
}

type auditView struct {
	page
	Query             AuditQuery
	Filters           []filter
	Rows              []auditRow
	Count             string
	JSONHref, CSVHref string
}

// Audit writes the audit page: the events the caller read from the
// history for q (oldest first, at most MaxAudit), newest first, each with
// its time, the revision, pull request and merger it came from, and links
// to the JSON and CSV exports of the same filter.
func Audit(w io.Writer, d Data, q AuditQuery, events []history.Event) error {
	v := auditView{page: newPage(d, "audit", "Audit"), Query: q}
	teams, clusters := map[string]bool{}, map[string]bool{}
	for _, c := range d.Clusters {
		clusters[c.Name] = true
	}
	if d.Config != nil {
		for t := range d.Config.Teams {
			teams[t] = true
		}
	}
	v.Filters = []filter{
		options("team", "Team", teams, q.Team),
		options("cluster", "Cluster", clusters, q.Cluster),
		options("type", "Type", map[string]bool{string(history.EventLifecycle): true, string(history.EventDecision): true, string(history.EventChange): true}, q.Type),
	}
	for i := len(events) - 1; i >= 0; i-- {
		e := events[i]
		name, _, _ := strings.Cut(e.MergedBy, " <") // the author's name, not their address
		r := auditRow{Time: e.Time.UTC().Format("2006-01-02 15:04:05 UTC"), Type: string(e.Type), Cluster: e.Cluster, Team: e.Team, What: e.What, Reason: e.Reason,
			Run: link{Text: string(e.Workload), URL: "/workloads/" + string(e.Workload)}, MergedBy: name}
		if e.RunID != "" {
			r.Run.Text += "@" + e.RunID
			r.Run.URL += "?cluster=" + url.QueryEscape(e.Cluster) + "&run=" + url.QueryEscape(e.RunID)
		}
		if e.GPUs > 0 {
			r.GPUs = strconv.FormatFloat(math.Round(e.GPUs*100)/100, 'f', -1, 64)
		}
		r.Revision = link{Text: shortHash(e.Commit)}
		if r.Revision.Text == "" {
			r.Revision.Text = e.Revision
		} else if d.RepoURL != "" {
			r.Revision.URL = d.RepoURL + "/commit/" + e.Commit
		}
		if e.PR > 0 {
			r.PR = link{Text: "#" + strconv.Itoa(e.PR)}
			if d.RepoURL != "" {
				r.PR.URL = d.RepoURL + "/pull/" + strconv.Itoa(e.PR)
			}
		}
		v.Rows = append(v.Rows, r)
	}
	v.Count = strconv.Itoa(len(v.Rows)) + " events"
	if len(v.Rows) == MaxAudit {
		v.Count = "the newest " + v.Count + " (the exports give up to 10,000)"
	}
	qs := q.Values()
	qs.Set("format", "json")
	v.JSONHref = "/audit/export?" + qs.Encode()
	qs.Set("format", "csv")
	v.CSVHref = "/audit/export?" + qs.Encode()
	return render(w, "audit", v)
}

// options is a select's options: every value seen, sorted, with the
// chosen one selected (kept though no longer seen).
func options(name, label string, seen map[string]bool, chosen string) filter {
	f := filter{Name: name, Label: label}
	if chosen != "" {
		seen[chosen] = true
	}
	for _, v := range slices.Sorted(maps.Keys(seen)) {
		f.Options = append(f.Options, option{Value: v, Selected: v == chosen})
	}
	return f
}
