package cue

import (
	"cmp"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"
)

// The mutation tests hold the fast path to CUE instance by instance: for
// a team instance changed in one place, either the fast path gives it to
// CUE, or CUE evaluates it to exactly what the fast path answered (no
// error, the same objects, values and positions).

const mutModule = `module: "example.com/m@v0"
language: version: "v0.14.0"
`

// mutTemplates are the shapes the fixture repositories' templates have:
// open definitions with defaults, one built on another.
const mutTemplates = `package templates

#Job: {
	kind:        *"batch" | "training"
	image:       *"ghcr.io/x/pytorch:2.4" | string
	maxDuration: *"1h" | string
	env: {PYTHONUNBUFFERED: "1", ...}
	...
}

#Training: #Job & {
	kind: "training"
	checkpoint: {dir: *"/checkpoints" | string, ...}
	...
}

#Batch: #Job & {
	kind: "batch"
	...
}

#Service: {
	kind:  *"service" | "inference"
	image: string
	ports: [{name: "http", port: *8080 | int, ...}, ...{...}]
	health: {readiness: {path: *"/healthz" | string, startupGrace: *"10s" | string, ...}, ...}
	...
}

#Closed: {
	kind: "batch"
	command: [...string]
}
`

const mutTeam = `package vision

teams: vision: {
	owners: ["@acme/vision"]
	cohort: "research"
	weight: 2
	quota: [
		{flavor: "h100", gpu: {nominal: 16, borrowingLimit: 8}, cpu: nominal: 128, memory: nominal: "1Ti"},
		{flavor: "cpu", cpu: nominal: "500m"},
	]
	gpuHoursPerMonth: 5000
	preemption: withinTeam: "lowerOrNewerEqualPriority"
}
`

const mutWorkloads = `package vision

import "example.com/m/templates"

workloads: vision: "train": templates.#Training & {
	command: ["python", "train.py"]
	workers: 2
	minWorkers: 1
	resources: {gpu: 8, cpu: 64, memory: "512Gi", flavor: "h100"}
	maxDuration: "72h"
	retries: 1
	schedule: "0 3 * * 0"
	catchUp: "latest"
	concurrency: "forbid"
}

workloads: vision: "prep": templates.#Batch & {
	command: ["python", "-m", "prep"]
	parallelism: 2
	completions: 4
	resources: {mig: "1g.10gb", cpu: 2, memory: "8Gi"}
	dependsOn: ["train"]
	priority: "low"
	runId: "2"
}

workloads: vision: "job": templates.#Job & {
	command: ["sh"]
	resources: {gpu: 1, gpuModel: "A100-SXM4-40GB"}
}

workloads: vision: "api": templates.#Service & {
	kind: "inference"
	image: "ghcr.io/x/api:1"
	command: ["/bin/server"]
	env: {PORT: "8080"}
	replicas: 2
	resources: {gpuFraction: 0.5, cpu: 2, memory: "16Gi"}
	health: liveness: {port: "http", failureThreshold: 5}
	rollout: maxSurge: 2
}

workloads: vision: "nb": {
	kind:  "notebook"
	image: "jupyter/base-notebook:2024-10"
	command: ["start-notebook.sh"]
	resources: {mig: "1g.10gb", cpu: 2, memory: "8Gi"}
	ports: [{name: "http", port: 8888}, {port: 9000, protocol: "UDP"}]
}

workloads: vision: "plain": {
	kind: "batch"
	command: []
	args: ["--x"]
	checkpoint: {dir: "/c", resume: false}
}
`

// mutFiles is the repository the mutations start from.
func mutFiles(workloads, team, templates string) map[string][]byte {
	return map[string][]byte{
		"cue.mod/module.cue":         []byte(mutModule),
		"templates/templates.cue":    []byte(templates),
		"teams/vision/team.cue":      []byte(team),
		"teams/vision/workloads.cue": []byte(workloads),
	}
}

// fastAgrees evaluates teams/vision both ways. When the fast path
// answers, CUE must answer the same; it reports whether the fast path
// answered.
func fastAgrees(t testing.TB, files map[string][]byte) bool {
	t.Helper()
	tr := newTree(files)
	got, err := newFastEval(tr).instance("teams/vision")
	if err != nil {
		return false
	}
	ev, err := newEvaluator(tr)
	if err != nil {
		t.Fatal(err)
	}
	want := ev.evaluateDirs([]string{"teams/vision"}, &running{})[0]
	if len(want.errs) > 0 || len(want.invalid) > 0 || want.failed {
		t.Errorf("the fast path accepted what CUE refuses: %v\n%s", want.errs, files["teams/vision/workloads.cue"])
		return true
	}
	byKey := func(a, b object) int { return cmp.Compare(a.key, b.key) }
	slices.SortFunc(got.objects, byKey)
	slices.SortFunc(want.objects, byKey)
	opt := gocmp.Exporter(func(reflect.Type) bool { return true })
	if d := gocmp.Diff(want.objects, got.objects, opt); d != "" {
		t.Errorf("objects (-CUE +fast):\n%s\n%s", d, files["teams/vision/workloads.cue"])
	}
	if d := gocmp.Diff(want.deps, got.deps); d != "" || want.key != got.key {
		t.Errorf("deps (-CUE +fast):\n%s", d)
	}
	return true
}

// badValues replace a field's value in the mutations: wrong types, out of
// range, not concrete, references, and valid values of other shapes.
var badValues = []string{
	`0`, `1`, `-1`, `3`, `0.5`, `1.0`, `1e3`, `70000`, `""`, `"x"`, `"UPPER"`, `"-a"`, `"a/b"`, `"2h"`, `"10x"`,
	`"500m"`, `"@a"`, `true`, `null`, `[]`, `["a"]`, `[1]`, `{}`, `{a: 1}`, `int`, `string`, `*1 | int`,
	`*"a" | string`, `"a" | "b"`, `_`, `=~"^a"`, `>0`, `"\(1)"`, `'b'`, `1_000`, `0x10`, `"1g.10gb"`,
	`"service"`, `"0 3 * * *"`, `[{port: 1}]`, `{readiness: {path: "/x"}}`, `{maxSurge: 0}`,
}

var fieldLine = regexp.MustCompile(`(?m)^(\t+)([A-Za-z"][A-Za-z0-9"-]*):( +)(.+)$`)

// mutations lists the base files with one value, one field or one
// template changed.
func mutations() []map[string][]byte {
	var out []map[string][]byte
	add := func(w, team, tmpl string) { out = append(out, mutFiles(w, team, tmpl)) }
	add(mutWorkloads, mutTeam, mutTemplates)
	for _, base := range []struct {
		text  string
		apply func(string) map[string][]byte
	}{
		{mutWorkloads, func(s string) map[string][]byte { return mutFiles(s, mutTeam, mutTemplates) }},
		{mutTeam, func(s string) map[string][]byte { return mutFiles(mutWorkloads, s, mutTemplates) }},
		{mutTemplates, func(s string) map[string][]byte { return mutFiles(mutWorkloads, mutTeam, s) }},
	} {
		locs := fieldLine.FindAllStringSubmatchIndex(base.text, -1)
		for _, l := range locs {
			valStart, valEnd := l[8], l[9]
			for _, bad := range badValues {
				out = append(out, base.apply(base.text[:valStart]+bad+base.text[valEnd:]))
			}
			// The field dropped.
			out = append(out, base.apply(base.text[:l[0]]+base.text[l[1]:]))
		}
	}
	// Fields added where they may or may not belong.
	for _, f := range []string{"workers: 2", "replicas: 3", "parallelism: 2", "completions: 2", "minWorkers: 1",
		"schedule: \"@daily\"", "health: {}", "rollout: {}", "ports: []", "roles: {}", "expose: {}", "autoscale: {max: 2}",
		"name: \"other\"", "team: \"nlp\"", "name: \"train\"", "team: \"vision\"", "unknown: 1", "kind: \"batch\"",
		"kind: \"training\"", "image: \"\"", "image: \"i\"", "env: {\"1x\": \"a\"}", "env: {A: 1}", "maxDuration: \"1h\"",
		"retries: 0", "runId: \"1\"", "resources: gpu: 2", "resources: mig: \"1g.10gb\"", "checkpoint: {}",
		"ports: [{name: \"http\", port: 8080}]", "command: [\"a\"]", "#x: 1", "_h: 1", "let y = 1",
		"priority: \"low\"", "dependsOn: [\"x/y\", \"Z\"]", "catchUpLimit: 1001", "idle: \"2h\"", "idle: \"x\""} {
		for _, name := range []string{`"train": `, `"prep": `, `"job": `, `"api": `, `"nb": `, `"plain": `} {
			i := strings.Index(mutWorkloads, name)
			j := i + strings.Index(mutWorkloads[i:], "{\n") + 2
			add(mutWorkloads[:j]+"\t"+f+"\n"+mutWorkloads[j:], mutTeam, mutTemplates)
		}
	}
	add(strings.Replace(mutWorkloads, "\"job\": templates.#Job & {", "\"job\": {kind: \"batch\"} & {", 1), mutTeam, mutTemplates)
	add(strings.Replace(mutWorkloads, `import "example.com/m/templates"`,
		"import (\n\t\"example.com/m/templates\"\n\tu \"example.com/m/templates\"\n)", 1), mutTeam, mutTemplates) // an import not used
	for _, w := range []string{
		"workloads: vision: \"job2\": templates.#Closed & {command: [\"a\"]}\n",
		"workloads: vision: \"job3\": templates.#Closed & {command: [\"a\"], image: \"i\"}\n",
		"workloads: vision: \"train\": {retries: 1}\n",
		"workloads: vision: \"job4\": templates.#Job & templates.#Batch & {}\n",
		"workloads: vision: \"job5\": templates.#Missing & {}\n",
		"workloads: vision: {\"job6\": {kind: \"batch\"}, \"job7\": {kind: \"training\", workers: 3}}\n",
		"workloads: templates: \"job8\": {kind: \"batch\"}\n",
		"teams: nlp: owners: [\"@n\"]\n",
		"teams: vision: weight: 2\n",
		"policy: defaultPriority: \"low\"\n",
	} {
		add(mutWorkloads+w, mutTeam, mutTemplates)
	}
	return out
}

func TestFastPathMutations(t *testing.T) {
	answered := 0
	ms := mutations()
	for i, files := range ms {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			if fastAgrees(t, files) {
				answered++
			}
		})
	}
	t.Logf("the fast path answered %d of %d mutations", answered, len(ms))
	if answered == 0 {
		t.Error("the fast path answered no mutation")
	}
}

// FuzzFastPath mutates the team instance at random: whenever the fast
// path answers, CUE must agree.
func FuzzFastPath(f *testing.F) {
	f.Add(mutWorkloads, mutTeam)
	f.Fuzz(func(t *testing.T, workloads, team string) {
		fastAgrees(t, mutFiles(workloads, team, mutTemplates))
	})
}
