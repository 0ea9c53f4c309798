package cue_test

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/cue"
	"github.com/berth-gpu/berth/fixtures"
	"github.com/berth-gpu/berth/fixtures/gen"
)

// repoBuilder builds a small repository in memory:
// newRepo().platform().team("vision").file("w/v.cue", src).fs().
type repoBuilder struct{ m fstest.MapFS }

func newRepo() *repoBuilder {
	return (&repoBuilder{m: fstest.MapFS{}}).file("cue.mod/module.cue",
		"module: \"example.com/test@v0\"\nlanguage: version: \"v0.14.0\"\n")
}

func (b *repoBuilder) file(p, src string) *repoBuilder {
	b.m[p] = &fstest.MapFile{Data: []byte(src), Mode: 0o444}
	return b
}

// platform adds one local cluster, an h100 and a cpu flavor.
func (b *repoBuilder) platform() *repoBuilder {
	return b.file("platform/platform.cue", `package platform

clusters: box: {}
flavors: {
	h100: {gpuModel: "H100", nodeLabels: {}}
	cpu: nodeLabels: {}
}
`)
}

// team adds a team with h100 and cpu quota, in its own package.
func (b *repoBuilder) team(name string) *repoBuilder {
	return b.file("teams/"+name+"/team.cue", "package "+strings.ReplaceAll(name, "-", "_")+`

teams: "`+name+`": {
	owners: ["@`+name+`-lead"]
	quota: [{flavor: "h100", gpu: nominal: 8}, {flavor: "cpu", cpu: nominal: 16}]
}
`)
}

func (b *repoBuilder) fs() fstest.MapFS { return b.m }

// quantityEqual compares quantities by value and text (Quantity has
// unexported fields).
var quantityEqual = cmp.Comparer(func(a, b berth.Quantity) bool {
	return a.Milli() == b.Milli() && a.String() == b.String()
})

// allPositions is every position of cfg, in one map.
func allPositions(cfg *berth.Config) map[string]berth.Pos {
	out := map[string]berth.Pos{}
	for p, pos := range cfg.AllPositions() {
		out[p] = pos
	}
	return out
}

func mustLoad(t testing.TB, fsys fs.FS, opts cue.Options) *berth.Config {
	t.Helper()
	cfg, err := cue.Load(fsys, opts)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return cfg
}

func loadErrors(t testing.TB, fsys fs.FS, opts cue.Options) cue.Errors {
	t.Helper()
	_, err := cue.Load(fsys, opts)
	var errs cue.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Load returned %v, want cue.Errors", err)
	}
	return errs
}

func TestLoadDemo(t *testing.T) {
	cfg := mustLoad(t, fixtures.Demo(), cue.Options{})
	if got, want := len(cfg.Workloads), 8; got != want {
		t.Errorf("workloads: got %d, want %d", got, want)
	}
	// Every kind, a pipeline, a periodic job, a fraction and a MIG slice.
	kinds := map[berth.Kind]int{}
	var deps, cron, frac, mig int
	for _, w := range cfg.Workloads {
		kinds[w.Kind]++
		deps += len(w.DependsOn)
		if w.Schedule != "" {
			cron++
		}
		if w.Resources.GPUFraction > 0 {
			frac++
		}
		if w.Resources.MIG != "" {
			mig++
		}
	}
	for _, k := range berth.Kinds {
		if kinds[k] == 0 {
			t.Errorf("the demo has no %s workload", k)
		}
	}
	if deps == 0 || cron == 0 || frac == 0 || mig == 0 {
		t.Errorf("the demo lacks a pipeline (%d), a periodic job (%d), a fraction (%d) or a MIG workload (%d)", deps, cron, frac, mig)
	}
	// Defaults come from the schema and templates, positions from the files.
	ft := cfg.Workloads["nlp/finetune"]
	if ft.Image != "ghcr.io/acme/pytorch:2.4" || ft.Checkpoint == nil || ft.Checkpoint.Dir != "/checkpoints" || !ft.Checkpoint.Resume {
		t.Errorf("nlp/finetune: template defaults not applied: %+v", ft)
	}
	if got, want := ft.Pos, (berth.Pos{File: "workloads/nlp/pipeline.cue", Line: 13, Col: 17}); got != want {
		t.Errorf("nlp/finetune position: got %v, want %v", got, want)
	}
	if got := cfg.Pos("workloads.nlp.finetune.dependsOn.0"); got.File != "workloads/nlp/pipeline.cue" || got.Line != 14 {
		t.Errorf("position of nlp/finetune's dependsOn: got %v", got)
	}
}

// TestPolicyDefaults pins the schema's default priority tiers: each one is
// a #PriorityTier with its own defaults (a default written as A | *B
// once left them all unable to preempt or be preempted).
func TestPolicyDefaults(t *testing.T) {
	want := map[string]berth.PriorityTier{
		"production": {Value: 1000, CanPreempt: true, Preemptible: false},
		"normal":     {Value: 100, CanPreempt: true, Preemptible: true},
		"low":        {Value: 10, CanPreempt: false, Preemptible: true},
	}
	for _, tc := range []struct {
		name string
		repo fs.FS
		want map[string]berth.PriorityTier
	}{
		{"no policy", newRepo().platform().fs(), want},
		{"the default tiers written out", fixtures.Demo(), want},
		{"tiers of its own", newRepo().platform().file("platform/policy.cue", `package platform

policy: {
	priorities: {urgent: value: 500, batch: {value: 1, preemptible: true}}
	defaultPriority: "batch"
}
`).fs(), map[string]berth.PriorityTier{
			"urgent": {Value: 500, CanPreempt: true, Preemptible: true},
			"batch":  {Value: 1, CanPreempt: true, Preemptible: true},
		}},
		{"a default tier changed", newRepo().platform().file("platform/policy.cue", `package platform

policy: {
	priorities: production: value: 2000
	defaultPriority: "production"
}
`).fs(), map[string]berth.PriorityTier{"production": {Value: 2000, CanPreempt: true, Preemptible: true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := mustLoad(t, tc.repo, cue.Options{})
			if d := cmp.Diff(tc.want, cfg.Policy.Priorities); d != "" {
				t.Errorf("priorities (-want +got):\n%s", d)
			}
		})
	}
}

// TestWorkloadDefaults checks the schema's defaults per kind on workloads
// that set nothing they need not.
func TestWorkloadDefaults(t *testing.T) {
	repo := newRepo().platform().team("vision").file("teams/vision/w.cue", `package vision

workloads: vision: {
	train: {kind: "training", image: "t", command: ["c"]}
	prep: {kind: "batch", image: "b", command: ["c"]}
	web: {kind: "service", image: "s", command: ["c"], resources: flavor: "cpu"}
}
`).fs()
	cfg := mustLoad(t, repo, cue.Options{})
	res := berth.Resources{CPU: berth.MustQuantity("1"), Memory: berth.MustQuantity("1Gi")}
	base := berth.Workload{Team: "vision", Command: []string{"c"}, Args: []string{}, Env: map[string]string{},
		DependsOn: []string{}, RunID: "1", Ports: []berth.Port{}, Resources: res}
	want := map[berth.WorkloadID]berth.Workload{}
	for _, w := range []struct {
		name, image string
		kind        berth.Kind
		set         func(*berth.Workload)
	}{
		{"train", "t", berth.KindTraining, func(w *berth.Workload) { w.Workers = 1 }},
		{"prep", "b", berth.KindBatch, func(w *berth.Workload) { w.Parallelism, w.Completions = 1, 1 }},
		{"web", "s", berth.KindService, func(w *berth.Workload) {
			w.Replicas, w.Rollout = 1, &berth.Rollout{MaxSurge: 1} // surge one, never below the ready count
			w.Resources.Flavor = "cpu"
		}},
	} {
		x := base
		x.Name, x.Image, x.Kind = w.name, w.image, w.kind
		w.set(&x)
		want[x.ID()] = x
	}
	if d := cmp.Diff(want, cfg.Workloads, quantityEqual, cmp.FilterPath(func(p cmp.Path) bool {
		return p.Last().String() == ".Pos"
	}, cmp.Ignore())); d != "" {
		t.Errorf("workloads (-want +got):\n%s", d)
	}
}

// renamed returns a copy of fsys with every file renamed by rename, and
// the inverse mapping.
func renamed(t testing.TB, fsys fs.FS, rename func(string) string) (fstest.MapFS, map[string]string) {
	t.Helper()
	out := fstest.MapFS{}
	back := map[string]string{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		np := rename(p)
		out[np] = &fstest.MapFile{Data: b}
		back[np] = p
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out, back
}

// reverseName renames a.cue to zz-a.cue in the same directory, so the
// files of a directory are listed in another order.
func reverseName(p string) string {
	if strings.HasPrefix(p, "cue.mod/") || !strings.HasSuffix(p, ".cue") {
		return p
	}
	dir, base := path.Split(p)
	return dir + "zz-" + strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' {
			return 'z' - (r - 'a')
		}
		return r
	}, strings.TrimSuffix(base, ".cue")) + ".cue"
}

func mapPositions(errs cue.Errors, back map[string]string) cue.Errors {
	out := make(cue.Errors, len(errs))
	for i, e := range errs {
		e.Positions = append([]berth.Pos(nil), e.Positions...)
		for j, p := range e.Positions {
			if orig, ok := back[p.File]; ok {
				e.Positions[j].File = orig
			}
		}
		out[i] = e
	}
	return out
}

// TestDeterministic loads repositories again with their files renamed
// (so listed in another order) and with other parallelism, and expects
// the same result: for a valid one the same Config, for an invalid one the
// same errors in the same (sorted) order.
func TestDeterministic(t *testing.T) {
	multi := newRepo().platform().team("vision").team("nlp").
		file("teams/vision/a.cue", "package vision\n\nworkloads: vision: a: {kind: \"batch\", image: \"x\", resources: flavor: \"h200\"}\n").
		file("teams/vision/b.cue", "package vision\n\nworkloads: vision: b: {kind: \"service\", image: \"x\", workers: 2}\n").
		file("teams/nlp/c.cue", "package nlp\n\nworkloads: nlp: c: {kind: \"batch\", image: \"x\", dependsOn: [\"vision/zz\"], priority: \"urgnt\"}\n").
		file("teams/nlp/d.cue", "package nlp\n\nteams: vision: {owners: [\"@x\"]}\n").fs()

	t.Run("valid", func(t *testing.T) {
		for _, repo := range []fs.FS{fixtures.Demo(), gen.Generate(gen.Options{Teams: 4, Workloads: 80, Seed: 3}).FS()} {
			want := mustLoad(t, repo, cue.Options{Parallelism: 1})
			ren, back := renamed(t, repo, reverseName)
			got := mustLoad(t, ren, cue.Options{Parallelism: 4})
			gotPos := allPositions(got)
			for k, p := range gotPos {
				p.File = back[p.File]
				gotPos[k] = p
			}
			if d := cmp.Diff(allPositions(want), gotPos); d != "" {
				t.Errorf("renamed files give other positions (-want +got):\n%s", d)
			}
			got.Fields, want.Fields = nil, nil
			for id, w := range got.Workloads {
				w.Pos.File = back[w.Pos.File]
				got.Workloads[id] = w
			}
			// Package digests hash the files' names too.
			if len(got.Packages) != len(want.Packages) {
				t.Errorf("%d packages, want %d", len(got.Packages), len(want.Packages))
			}
			got.Packages, want.Packages = nil, nil
			if d := cmp.Diff(want, got, quantityEqual); d != "" {
				t.Errorf("renamed files give another Config (-want +got):\n%s", d)
			}
		}
	})
	t.Run("invalid", func(t *testing.T) {
		want := loadErrors(t, multi, cue.Options{Parallelism: 1})
		if len(want) < 5 {
			t.Fatalf("want several errors, got %v", want)
		}
		for i := 1; i < len(want); i++ {
			if want[i].Pos().Compare(want[i-1].Pos()) < 0 {
				t.Errorf("errors not sorted by position: %v before %v", want[i-1].Pos(), want[i].Pos())
			}
		}
		for range 3 {
			ren, back := renamed(t, multi, reverseName)
			got := mapPositions(loadErrors(t, ren, cue.Options{Parallelism: 4}), back)
			// Renaming changes the order of files, so sort the same way.
			if d := cmp.Diff(sortedText(want), sortedText(got)); d != "" {
				t.Errorf("renamed files give other errors (-want +got):\n%s", d)
			}
			if d := cmp.Diff(want, loadErrors(t, multi, cue.Options{Parallelism: 3})); d != "" {
				t.Errorf("another parallelism gives other errors (-want +got):\n%s", d)
			}
		}
	})
}

func sortedText(errs cue.Errors) []string {
	out := make([]string, len(errs))
	for i, e := range errs {
		out[i] = e.Error()
	}
	slices.Sort(out)
	return out
}

// TestIncremental re-validates with one Loader after changes and expects
// only the changed instances evaluated, and the Config of a cold load: in
// this process, and in child processes, where the cache is the parent's.
func TestIncremental(t *testing.T) {
	t.Run("in process", func(t *testing.T) { testIncremental(t, cue.Options{}) })
	t.Run("child process", func(t *testing.T) { testIncremental(t, isolated(t, cue.Options{})) })
}

func testIncremental(t *testing.T, opts cue.Options) {
	repo := gen.Generate(gen.Options{Teams: 6, Workloads: 60, Seed: 5})
	m := fstest.MapFS{}
	for p, b := range repo {
		m[p] = &fstest.MapFile{Data: b}
	}
	l := cue.NewLoader(opts)
	if _, err := l.Load(m); err != nil {
		t.Fatal(err)
	}
	instances := l.Stats().Instances
	processes := 0
	if len(opts.Child) > 0 {
		processes = 1
	}
	if got, want := l.Stats(), (cue.Stats{Instances: 6 + 2, Evaluated: 6 + 2, Processes: processes}); got != want {
		t.Fatalf("cold load stats: got %+v, want %+v", got, want)
	}
	team := gen.TeamDir(gen.TeamName(2))
	edit := func(p string, f func(string) string) {
		m[p] = &fstest.MapFile{Data: []byte(f(string(m[p].Data)))}
	}
	for _, step := range []struct {
		name      string
		change    func()
		evaluated int
	}{
		{"nothing changed", func() {}, 0},
		{"one workload file", func() {
			edit(team+"/workloads-00.cue", func(s string) string { return strings.Replace(s, "retries: ", "retries: 1 + ", 1) })
		}, 1},
		{"a comment in a team file", func() {
			edit(gen.TeamDir(gen.TeamName(4))+"/team.cue", func(s string) string { return s + "// new\n" })
		}, 1},
		{"a new directory", func() {
			m["teams/extra/x.cue"] = &fstest.MapFile{Data: []byte("package extra\n\nteams: extra: owners: [\"@x\"]\n")}
		}, 1},
		{"a directory removed", func() { delete(m, "teams/extra/x.cue") }, 0},
		{"the shared templates", func() {
			edit("templates/templates.cue", func(s string) string { return s + "\n#Unused: {}\n" })
		}, 6 + 1},
		{"cue.mod", func() { edit("cue.mod/module.cue", func(s string) string { return s + "// edited\n" }) }, instances},
	} {
		t.Run(step.name, func(t *testing.T) {
			step.change()
			got, err := l.Load(m)
			if err != nil {
				t.Fatal(err)
			}
			if s := l.Stats(); s.Evaluated != step.evaluated {
				t.Errorf("evaluated %d instances, want %d", s.Evaluated, step.evaluated)
			}
			want := mustLoad(t, m, cue.Options{})
			if d := cmp.Diff(want, got, quantityEqual); d != "" {
				t.Errorf("incremental load differs from a cold load (-cold +incremental):\n%s", d)
			}
		})
	}
}

// TestIncrementalErrors: an instance that turns invalid and back is
// reported and then forgotten, with the other instances reused.
func TestIncrementalErrors(t *testing.T) {
	m := newRepo().platform().team("vision").fs()
	l := cue.NewLoader(cue.Options{})
	load := func() error { _, err := l.Load(m); return err }
	if err := load(); err != nil {
		t.Fatal(err)
	}
	m["teams/vision/w.cue"] = &fstest.MapFile{Data: []byte("package vision\n\nworkloads: vision: w: {kind: \"batch\", command: [\"true\"], retries: -1}\n")}
	var errs cue.Errors
	if err := load(); !errors.As(err, &errs) || len(errs) != 1 || errs[0].Path != "workloads.vision.w.retries" {
		t.Fatalf("got %v, want one error at workloads.vision.w.retries", err)
	}
	if s := l.Stats(); s.Evaluated != 1 {
		t.Errorf("evaluated %d, want 1", s.Evaluated)
	}
	// The same invalid tree again: its errors are remembered, nothing is
	// evaluated.
	if err := load(); !errors.As(err, &errs) || len(errs) != 1 || errs[0].Path != "workloads.vision.w.retries" {
		t.Fatalf("again: got %v, want one error at workloads.vision.w.retries", err)
	}
	if s := l.Stats(); s.Evaluated != 0 {
		t.Errorf("the remembered invalid tree evaluated %d instances, want 0", s.Evaluated)
	}
	m["teams/vision/w.cue"] = &fstest.MapFile{Data: []byte("package vision\n\nworkloads: vision: w: {kind: \"batch\", image: \"x\", command: [\"true\"]}\n")}
	if err := load(); err != nil {
		t.Fatal(err)
	}
}

// TestReadOnly loads a repository on disk and checks nothing in it
// changed: no file added or removed, no modification time touched.
func TestReadOnly(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, fixtures.Demo()); err != nil {
		t.Fatal(err)
	}
	snapshot := func() map[string]time.Time {
		out := map[string]time.Time{}
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			out[p] = fi.ModTime()
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	// Make the tree read-only too (root ignores the bits; the snapshot
	// comparison does not).
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			os.Chmod(p, 0o444)
		}
		return nil
	})
	before := snapshot()
	time.Sleep(10 * time.Millisecond) // a write now would get a later mtime
	l := cue.NewLoader(cue.Options{})
	for range 2 {
		if _, err := l.Load(os.DirFS(dir)); err != nil {
			t.Fatal(err)
		}
	}
	if d := cmp.Diff(before, snapshot()); d != "" {
		t.Errorf("loading changed the tree (-before +after):\n%s", d)
	}
}

// TestLimits covers the bounds that are options: file size, total size,
// evaluation time (the broken fixtures cover them with fixed numbers).
func TestLimits(t *testing.T) {
	big := newRepo().platform().file("platform/big.cue", "package platform\n\n// "+strings.Repeat("x", 2000)+"\n").fs()
	for _, tc := range []struct {
		name string
		repo fs.FS
		opts cue.Options
		want string
	}{
		{"file size", big, cue.Options{MaxFileSize: 1000}, "file is larger than 1000 bytes"},
		{"total size", big, cue.Options{MaxTotalSize: 1500}, "the repository has more than 1500 bytes of CUE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := loadErrors(t, tc.repo, tc.opts)
			if len(errs) != 1 || !strings.Contains(errs[0].Message, tc.want) || errs[0].Pos().File == "" {
				t.Errorf("got %v, want one error with a file, containing %q", errs, tc.want)
			}
		})
	}
	mustLoad(t, big, cue.Options{})
}

// TestWorkloadRoles loads a workload of two roles: each role has its own
// count, resources (with their defaults) and node selector, and the
// workload has no shape of its own.
func TestWorkloadRoles(t *testing.T) {
	repo := newRepo().platform().team("vision").file("teams/vision/w.cue", `package vision

workloads: vision: mpi: {
	kind:  "training"
	image: "mpi", command: ["python", "worker.py"]
	roles: {
		launcher: {resources: flavor: "cpu", command: ["mpirun"]}
		worker: {count: 4, minCount: 2, resources: gpu: 1, nodeSelector: zone: "a", env: RANK_FROM: "worker"}
	}
}
`).fs()
	cfg := mustLoad(t, repo, cue.Options{})
	w := cfg.Workloads["vision/mpi"]
	res := func(gpu int, flavor string) berth.Resources {
		return berth.Resources{CPU: berth.MustQuantity("1"), Memory: berth.MustQuantity("1Gi"), GPU: gpu, Flavor: flavor}
	}
	want := map[string]berth.Role{
		"launcher": {Name: "launcher", Count: 1, Resources: res(0, "cpu"), NodeSelector: map[string]string{},
			Command: []string{"mpirun"}, Env: map[string]string{}},
		"worker": {Name: "worker", Count: 4, MinCount: 2, Resources: res(1, ""), NodeSelector: map[string]string{"zone": "a"},
			Env: map[string]string{"RANK_FROM": "worker"}},
	}
	if d := cmp.Diff(want, w.Roles, quantityEqual); d != "" {
		t.Errorf("roles (-want +got):\n%s", d)
	}
	if w.Workers != 0 || w.Pods() != 5 || w.MinPods() != 3 {
		t.Errorf("workers %d, pods %d, min %d; want 0, 5, 3", w.Workers, w.Pods(), w.MinPods())
	}
	if got := cfg.Pos("workloads.vision.mpi.roles.worker.minCount"); got.Line != 8 {
		t.Errorf("position of the worker's minCount: %v, want line 8", got)
	}
}

// TestMisspelledListField: a misspelled field whose value is a list is
// named as the field, with the likely meant one (CUE reports it at the
// list's first element; reading that element's name as a field's once
// panicked: found by FuzzLoad, its input kept in testdata/fuzz).
func TestMisspelledListField(t *testing.T) {
	repo := newRepo().platform().file("teams/vision/team.cue", `package vision

teams: vision: {
	ewners: ["@ana"]
	quota: [{flavor: "h100", gpu: nominal: 8}]
}
`).fs()
	errs := loadErrors(t, repo, cue.Options{})
	if len(errs) != 1 || errs[0].Path != "teams.vision.ewners" || !strings.Contains(errs[0].Message, `field "ewners" is not allowed in a team; did you mean "owners"?`) {
		t.Errorf("got %v, want one error: field \"ewners\" is not allowed, did you mean \"owners\"", errs)
	}
}

// TestRenamedPlacement: a repository written for an older berth, with the
// placement "bestFit", is told the value's new name and why.
func TestRenamedPlacement(t *testing.T) {
	repo := newRepo().platform().file("platform/policy.cue", `package platform

policy: placement: "bestFit"
`).fs()
	errs := loadErrors(t, repo, cue.Options{})
	want := `invalid value "bestFit": want one of "berth", "firstFit", "tightestFit"; "bestFit" was renamed "tightestFit"`
	if len(errs) != 1 || errs[0].Path != "policy.placement" || !strings.Contains(errs[0].Message, want) {
		t.Errorf("got %v, want one error at policy.placement: %s", errs, want)
	}
	if len(errs) == 1 && (len(errs[0].Positions) == 0 || errs[0].Positions[0].Line != 3) {
		t.Errorf("positions %v, want platform/policy.cue:3", errs[0].Positions)
	}
}

// TestNotAllowedInDashedName: a misspelled field of a workload whose name
// CUE quotes in paths ("resnet-train") still names the field meant.
func TestNotAllowedInDashedName(t *testing.T) {
	repo := newRepo().platform().file("teams/vision/team.cue", `package vision

teams: vision: {owners: ["@ana"], quota: [{flavor: "h100", gpu: nominal: 8}]}
workloads: vision: "resnet-train": {kind: "training", image: "img", command: ["train"], workers: 2, replicaz: 1, resources: gpu: 1}
`).fs()
	errs := loadErrors(t, repo, cue.Options{})
	want := `field "replicaz" is not allowed in a workload; did you mean "replicas"?`
	if len(errs) != 1 || !strings.Contains(errs[0].Message, want) {
		t.Errorf("got %v, want one error: %s", errs, want)
	}
}

// TestHealthOfEarlierReleases: health written as one check, as berth took
// it before readiness and liveness probes, says what it is now.
func TestHealthOfEarlierReleases(t *testing.T) {
	repo := newRepo().platform().file("teams/serving/team.cue", `package serving

teams: serving: {owners: ["@ana"], quota: [{flavor: "h100", gpu: nominal: 8}]}
workloads: serving: api: {kind: "service", image: "img", command: ["serve"], ports: [{name: "http", port: 8080}], health: {path: "/healthz", port: 8080}}
`).fs()
	errs := loadErrors(t, repo, cue.Options{})
	if len(errs) != 2 {
		t.Fatalf("got %v, want two errors (path and port)", errs)
	}
	for _, e := range errs {
		if !strings.Contains(e.Message, "health holds a readiness and a liveness probe now") || len(e.Positions) == 0 || e.Positions[0].Line != 4 {
			t.Errorf("%s: %s at %v, want the probes named, at line 4", e.Path, e.Message, e.Positions)
		}
	}
}
