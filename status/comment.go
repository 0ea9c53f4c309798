package status

import (
	"embed"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"text/template"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/cue"
	"github.com/berth-gpu/berth/policy"
	"github.com/berth-gpu/berth/redact"
)

// Pull-request comments come from the templates in templates/, one per
// outcome (plan, invalid, sync), embedded and parsed when the package is
// initialised: a template that does not parse stops berth at start-up
// instead of failing on the first pull request. Execution errors are
// returned, never swallowed.

//go:embed templates/*.md.tmpl
var templateFS embed.FS

var templates = template.Must(template.New("comments").Funcs(templateFuncs).ParseFS(templateFS, "templates/*.md.tmpl"))

// MaxComment is GitHub's limit on a comment's body. Comments are split
// below it, at CommentLimit.
const MaxComment = 65536

// CommentLimit is the size berth splits comments at: below MaxComment,
// leaving room for the continuation header.
const CommentLimit = MaxComment - 1024

// MarkerPrefix starts every comment berth owns.
const MarkerPrefix = "<!-- berth:plan cluster="

// Marker is the hidden first line that identifies a cluster's sticky
// comment (part 1) and its continuations (part 2, 3, ...).
func Marker(cluster string, part int) string {
	if part <= 1 {
		return MarkerPrefix + cluster + " -->"
	}
	return fmt.Sprintf("%s%s part=%d -->", MarkerPrefix, cluster, part)
}

var markerRE = regexp.MustCompile(`^<!-- berth:plan cluster=([^ ]+)(?: part=([0-9]+))? -->`)

// ParseMarker reads the marker a comment body starts with.
func ParseMarker(body string) (cluster string, part int, ok bool) {
	m := markerRE.FindStringSubmatch(body)
	if m == nil {
		return "", 0, false
	}
	part = 1
	if m[2] != "" {
		part, _ = strconv.Atoi(m[2])
	}
	return m[1], part, true
}

// Comment is one cluster's sticky comment: its parts, in order, each
// starting with its marker.
type Comment struct {
	Cluster string
	Parts   []string
}

// CommentOptions tune rendering. The zero value is GitHub's limits.
type CommentOptions struct {
	// Limit is the most bytes one part may have (default CommentLimit).
	Limit int
	// Redact replaces the env values of the configurations shown
	// (redact.FromConfigs of the base and the head) wherever they appear.
	Redact *redact.Scrubber
}

type planData struct {
	View     PlanView
	Review   *policy.Review
	Status   CommitStatus
	Headline string
	ErrText  string
}

// PlanComment renders one cluster's plan for a pull request, with the
// policy review (nil: not shown).
func PlanComment(v PlanView, review *policy.Review, opts CommentOptions) (Comment, error) {
	st := PlanStatus(v)
	d := planData{View: v, Review: review, Status: st, Headline: planHeadline(v, st)}
	if v.Err != nil {
		d.ErrText = v.Err.Error()
	}
	return render("plan", v.Cluster, d, opts)
}

// planHeadline is the status description without GitHub's length limit.
func planHeadline(v PlanView, st CommitStatus) string {
	if v.Err != nil {
		return "could not plan"
	}
	return strings.TrimSuffix(st.Description, "...")
}

type invalidData struct {
	View   PlanView
	Review *policy.Review
	Count  int
	Errors []errorRow
	More   int
}

type errorRow struct{ Where, Path, Message string }

// maxErrorRows bounds the errors an invalid comment lists.
const maxErrorRows = 50

// InvalidComment renders a cluster's comment for a head that does not
// validate: the errors with their positions (env values never shown).
func InvalidComment(pr PullRequest, cluster string, err error, review *policy.Review, opts CommentOptions) (Comment, error) {
	d := invalidData{View: PlanView{PR: pr, Cluster: cluster}, Review: review}
	var errs cue.Errors
	if !errors.As(err, &errs) {
		errs = cue.Errors{{Message: err.Error()}}
	}
	d.Count = len(errs)
	for i, e := range errs {
		if i == maxErrorRows {
			d.More = len(errs) - i
			break
		}
		var where []string
		for _, p := range e.Positions {
			if p.File != cue.SchemaPosFile {
				where = append(where, "`"+p.String()+"`")
			}
		}
		msg := e.Message
		if isEnvPath(e.Path) {
			msg = "invalid env value (not shown: env values may be secret)"
		}
		d.Errors = append(d.Errors, errorRow{Where: strings.Join(policy.Abbrev(where, 3), "<br>"), Path: e.Path, Message: msg})
	}
	return render("invalid", cluster, d, opts)
}

type syncData struct {
	View    SyncView
	Status  CommitStatus
	ErrText string
}

// SyncComment renders a merged pull request's workloads on one cluster.
func SyncComment(v SyncView, opts CommentOptions) (Comment, error) {
	d := syncData{View: v, Status: SyncStatus(v)}
	if v.Err != nil {
		d.ErrText = v.Err.Error()
	}
	return render("sync", v.Cluster, d, opts)
}

func render(name, cluster string, data any, opts CommentOptions) (Comment, error) {
	var b strings.Builder
	if err := templates.ExecuteTemplate(&b, name, data); err != nil {
		return Comment{}, fmt.Errorf("render %s comment for cluster %s: %w", name, cluster, err)
	}
	body := opts.Redact.String(b.String())
	limit := opts.Limit
	if limit <= 0 {
		limit = CommentLimit
	}
	return Comment{Cluster: cluster, Parts: Split(body, cluster, limit)}, nil
}

var templateFuncs = template.FuncMap{
	"icon":       stateIcon,
	"actionIcon": actionIcon,
	"stateIcon":  syncStateIcon,
	"text":       escapeText,
	"cell":       escapeCell,
	"join":       strings.Join,
	"short":      shortSHA,
	"time":       FormatTime,
	"num":        policy.FormatNumber,
	"pos": func(p berth.Pos) string {
		if !p.IsValid() {
			return "-"
		}
		return "`" + p.String() + "`"
	},
	"list": func(xs []string) string {
		var b strings.Builder
		for i, x := range xs {
			if i > 0 {
				b.WriteByte('\n')
			}
			b.WriteString("- " + escapeText(x))
		}
		return b.String()
	},
	"requirement": func(r policy.Requirement) string {
		// Owners in code spans: listing them must not notify them on
		// every edit.
		m := r.Message()
		for _, o := range r.Owners {
			m = strings.Replace(m, o, "`"+o+"`", 1)
		}
		return m
	},
	"fence":    fence,
	"syncText": syncText,
	"history":  historyText,
	"reached":  reached,
	"run":      RunSuffix,
}

// reached are the workloads that can be reached now (a URL), in the
// table's order, each once (a service's replicas above its minimum share
// its URL).
func reached(ws []SyncWorkload) []SyncWorkload {
	var out []SyncWorkload
	seen := map[berth.WorkloadID]bool{}
	for _, w := range ws {
		if w.URL != "" && !seen[w.ID] {
			seen[w.ID] = true
			out = append(out, w)
		}
	}
	return out
}

func stateIcon(s State) string {
	switch s {
	case StateSuccess:
		return ":white_check_mark:"
	case StatePending:
		return ":hourglass:"
	case StateFailure:
		return ":x:"
	}
	return ":warning:"
}

func actionIcon(a berth.Action) string {
	switch a {
	case berth.ActionAdmit, berth.ActionKeep:
		return ":white_check_mark:"
	case berth.ActionPreempt, berth.ActionPreempted:
		return ":warning:"
	case berth.ActionQueue, berth.ActionWait:
		return ":hourglass:"
	case berth.ActionReject:
		return ":x:"
	}
	return ":information_source:"
}

func syncStateIcon(s string) string {
	switch s {
	case SyncSucceeded:
		return ":white_check_mark:"
	case SyncRunning, SyncAdmitted:
		return ":arrow_forward:"
	case SyncQueued, SyncWaiting:
		return ":hourglass:"
	case SyncFailed, SyncRejected:
		return ":x:"
	case SyncPreempted:
		return ":warning:"
	}
	return ":information_source:"
}

func syncText(w SyncWorkload) string {
	s := w.State
	switch w.State {
	case SyncQueued:
		if w.Position > 0 {
			s += fmt.Sprintf(" at position %d", w.Position)
		}
		if w.Reason != "" {
			s += ": " + w.Reason
		}
		if w.EstimatedStart != nil {
			s += "; estimated start " + FormatTime(*w.EstimatedStart)
		}
	case SyncRunning, SyncAdmitted:
		if w.Flavor != "" {
			s += " on " + w.Flavor
		}
		if len(w.Nodes) > 0 {
			s += " (" + strings.Join(policy.Abbrev(w.Nodes, 4), ", ") + ")"
		}
	case SyncPreempted:
		switch {
		case strings.HasPrefix(w.Reason, "preempted by "):
			// The ledger's reason names who preempted it already.
			s = w.Reason
		case w.PreemptedBy != "":
			s += " by " + string(w.PreemptedBy)
			fallthrough
		default:
			if w.Reason != "" {
				s += ": " + w.Reason
			}
		}
	default:
		if w.Reason != "" {
			s += ": " + w.Reason
		}
	}
	return s
}

func historyText(h []Transition) string {
	var parts []string
	for i, t := range h {
		at := t.At.UTC().Format("15:04")
		if i == 0 || t.At.UTC().YearDay() != h[i-1].At.UTC().YearDay() {
			at = t.At.UTC().Format("Jan 2 15:04")
		}
		part := t.State + " " + at
		if t.Note != "" {
			part += " (" + Truncate(t.Note, 80) + ")"
		}
		parts = append(parts, escapeCell(part))
	}
	if len(parts) > 8 {
		parts = append(parts[:2], append([]string{"..."}, parts[len(parts)-5:]...)...)
	}
	return strings.Join(parts, " -> ")
}

func shortSHA(s string) string {
	if len(s) > 7 {
		return s[:7]
	}
	if s == "" {
		return "-"
	}
	return s
}

// escapeText makes user-controlled text inert in markdown: no raw HTML (a
// CUE message could quote "<details>" or a berth marker), no mentions.
func escapeText(s string) string {
	return strings.ReplaceAll(s, "<", "&lt;")
}

// escapeCell is escapeText for a table cell: one line, pipes escaped.
func escapeCell(s string) string {
	s = escapeText(oneLine(s))
	return strings.ReplaceAll(s, "|", `\|`)
}

// fence puts lines in a fenced diff block whose fence is longer than any
// run of backticks in them, so no line can close it early.
func fence(lines []string, title string) string {
	longest := 0
	for _, l := range append([]string{title}, lines...) {
		run := 0
		for _, c := range l {
			if c == '`' {
				run++
				longest = max(longest, run)
			} else {
				run = 0
			}
		}
	}
	f := strings.Repeat("`", max(3, longest+1))
	var b strings.Builder
	b.WriteString(f + "diff\n")
	b.WriteString(title + "\n")
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	b.WriteString(f)
	return b.String()
}
