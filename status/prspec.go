package status

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/policy"
	"github.com/berth-gpu/berth/redact"
)

// Redacted is what an env value reads as wherever berth shows a workload:
// env values may be secrets, and a pull-request comment is public.
const Redacted = redact.Marker

func sameWorkload(a, b berth.Workload) bool { return sameJSON(a, b) }

func sameJSON(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}

// specChanges lists what changed in a workload's spec, the way a reviewer
// thinks of it. Env values are never shown. A priority reads as its tier
// and value, each from its own side's policy.
func specChanges(base, head *berth.Config, b, h berth.Workload) []string {
	var out []string
	add := func(field, from, to string) {
		if from != to {
			out = append(out, fmt.Sprintf("%s %s -> %s", field, orDash(from), orDash(to)))
		}
	}
	add("kind", string(b.Kind), string(h.Kind))
	bg, bh := policy.WorkloadSize(b)
	hg, hh := policy.WorkloadSize(h)
	add("gpus", policy.FormatNumber(bg), policy.FormatNumber(hg))
	unit := h.Kind.Pods(1)
	add(unit+"s", fmt.Sprint(b.Pods()), fmt.Sprint(h.Pods()))
	if b.Kind == h.Kind {
		add("minWorkers", itoaOrEmpty(b.MinWorkers), itoaOrEmpty(h.MinWorkers))
		add("completions", itoaOrEmpty(b.Completions), itoaOrEmpty(h.Completions))
	}
	br, hr := b.Resources, h.Resources
	add("gpu per "+unit, itoaOrEmpty(br.GPU), itoaOrEmpty(hr.GPU))
	add("gpuFraction", floatOrEmpty(br.GPUFraction), floatOrEmpty(hr.GPUFraction))
	add("mig", br.MIG, hr.MIG)
	add("flavor", br.Flavor, hr.Flavor)
	add("gpuModel", br.GPUModel, hr.GPUModel)
	add("cpu per "+unit, br.CPU.String(), hr.CPU.String())
	add("memory per "+unit, br.Memory.String(), hr.Memory.String())
	add("maxDuration", durOrEmpty(b.MaxDuration), durOrEmpty(h.MaxDuration))
	if bh != hh && bh > 0 && hh > 0 {
		add("GPU-hours", policy.FormatNumber(bh), policy.FormatNumber(hh))
	}
	add("priority", priorityOf(base, b), priorityOf(head, h))
	bi, bt := splitImage(b.Image)
	hi, ht := splitImage(h.Image)
	if bi == hi && bt != ht {
		add("image tag", bt, ht)
	} else {
		add("image", b.Image, h.Image)
	}
	if !sameJSON(b.Command, h.Command) {
		out = append(out, "command changed")
	}
	if !sameJSON(b.Args, h.Args) {
		out = append(out, "args changed")
	}
	out = append(out, envChanges(b.Env, h.Env)...)
	add("schedule", b.Schedule, h.Schedule)
	add("runId", b.RunID, h.RunID)
	add("retries", fmt.Sprint(b.Retries), fmt.Sprint(h.Retries))
	add("dependsOn", strings.Join(b.DependsOn, ", "), strings.Join(h.DependsOn, ", "))
	if !sameJSON(b.Checkpoint, h.Checkpoint) {
		out = append(out, "checkpoint changed")
	}
	if !sameJSON(b.Ports, h.Ports) {
		out = append(out, "ports changed")
	}
	if !sameJSON(b.Health, h.Health) {
		out = append(out, "health check changed")
	}
	if b.RunID == h.RunID && h.Kind.RunsOnce() && len(out) > 0 {
		out = append(out, "(a run already started keeps its old spec; bump runId for a new run)")
	}
	if len(out) == 0 {
		out = append(out, "reformatted (no field changed)")
	}
	return out
}

// envChanges names env variables added, changed and removed, never their
// values.
func envChanges(b, h berth.Env) []string {
	var added, changed, removed []string
	for k, v := range h {
		if old, ok := b[k]; !ok {
			added = append(added, k)
		} else if !old.Equal(v) {
			changed = append(changed, k)
		}
	}
	for k := range b {
		if _, ok := h[k]; !ok {
			removed = append(removed, k)
		}
	}
	var out []string
	for _, x := range []struct {
		verb  string
		names []string
	}{{"added", added}, {"changed", changed}, {"removed", removed}} {
		if len(x.names) > 0 {
			slices.Sort(x.names)
			out = append(out, fmt.Sprintf("env %s %s", policy.JoinAnd(x.names), x.verb))
		}
	}
	return out
}

// splitImage splits "repo:tag" (a digest counts as the tag).
func splitImage(img string) (repo, tag string) {
	if i := strings.LastIndex(img, "@"); i >= 0 {
		return img[:i], img[i+1:]
	}
	if i := strings.LastIndex(img, ":"); i > strings.LastIndex(img, "/") {
		return img[:i], img[i+1:]
	}
	return img, ""
}

// priorityOf is "production (1000)": the workload's tier (the policy's
// default where it names none) and its value.
func priorityOf(cfg *berth.Config, w berth.Workload) string {
	tier, pt := cfg.Priority(w)
	return berth.PriorityText(tier, pt.Value)
}

func orDash(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func itoaOrEmpty(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprint(n)
}

func floatOrEmpty(f float64) string {
	if f == 0 {
		return ""
	}
	return trimFloat(f)
}

func durOrEmpty(d berth.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

// RedactEnv returns a copy of w with every env value replaced by Redacted.
// A reference to a secret stays: its name and key are not the secret.
func RedactEnv(w berth.Workload) berth.Workload {
	if len(w.Env) == 0 {
		return w
	}
	env := make(berth.Env, len(w.Env))
	for k, v := range w.Env {
		if v.Secret == nil {
			v = berth.Val(Redacted)
		}
		env[k] = v
	}
	w.Env = env
	return w
}

// maxDiffLines bounds one workload's object diff.
const maxDiffLines = 400

// objectDiff is a unified line diff of the workload as berth reads it
// (JSON, defaults applied), env values redacted. A changed env value shows
// as a changed line with both sides redacted, so a reviewer sees that it
// changed and never what it is.
func objectDiff(b, h *berth.Workload) []string {
	lines := func(w *berth.Workload, other *berth.Workload) []string {
		if w == nil {
			return nil
		}
		x := RedactEnv(*w)
		if other != nil {
			for k, v := range w.Env {
				if ov, ok := other.Env[k]; ok && !ov.Equal(v) && v.Secret == nil {
					x.Env[k] = berth.Val(Redacted + " (changed)")
				}
			}
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(x); err != nil {
			return []string{"(cannot render: " + err.Error() + ")"}
		}
		return strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	}
	a, c := lines(b, h), lines(h, b)
	out := diffLines(a, c)
	if len(out) > maxDiffLines {
		n := len(out) - maxDiffLines
		out = append(out[:maxDiffLines:maxDiffLines], fmt.Sprintf("  ... %d more lines", n))
	}
	return out
}

// diffLines is a line diff by longest common subsequence: unchanged lines
// start with two spaces, removed with "- ", added with "+ ". Workloads
// render to tens of lines, so the quadratic table is small.
func diffLines(a, b []string) []string {
	n, m := len(a), len(b)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out []string
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			out = append(out, "  "+a[i])
			i++
			j++
		case j < m && (i == n || lcs[i][j+1] >= lcs[i+1][j]):
			out = append(out, "+ "+b[j])
			j++
		default:
			out = append(out, "- "+a[i])
			i++
		}
	}
	return out
}
