package status_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/berth-gpu/berth/cue"
	"github.com/berth-gpu/berth/fixtures/build"
	"github.com/berth-gpu/berth/fixtures/gen"
	"github.com/berth-gpu/berth/status"
)

// TestChangedPriorityReadsAsTierAndValue: a reviewer sees what a priority
// change means, "normal (100) -> production (1000)", not two names.
func TestChangedPriorityReadsAsTierAndValue(t *testing.T) {
	base := baseBuilder().Obj()
	head := baseBuilder().Workload(build.Workload("nlp", "sweep").GPUs(4).Priority("production").MaxDuration("6h")).Obj()
	changes := status.ChangedWorkloads(base, head)
	if len(changes) != 1 {
		t.Fatalf("changes: %+v", changes)
	}
	want := "priority low (10) -> production (1000)"
	if !slices.Contains(changes[0].Lines, want) {
		t.Errorf("lines %q do not say %q", changes[0].Lines, want)
	}
}

// TestChangedWorkloadsByPackage: on two revisions the loader made, the
// changes a pull request comment lists (one workload changed, one added,
// a file of workloads removed) are the ones a comparison of every
// workload finds, though only the changed packages' workloads are
// compared.
func TestChangedWorkloadsByPackage(t *testing.T) {
	repo := gen.Generate(gen.Options{Teams: 4, Workloads: 40, Seed: 3})
	l := cue.NewLoader(cue.Options{})
	base, err := l.Load(repo.FS())
	if err != nil {
		t.Fatal(err)
	}
	team := gen.TeamName(1)
	file := gen.TeamDir(team) + "/workloads-00.cue"
	src := string(repo[file])
	_, rest, _ := strings.Cut(src, "workloads: ")
	_, rest, _ = strings.Cut(rest, ": \"")
	name, _, _ := strings.Cut(rest, "\"")
	head := gen.Repo{}
	maps.Copy(head, repo)
	head[file] = []byte(src + fmt.Sprintf("\nworkloads: %q: %q: runId: \"edit-1\"\n", team, name) +
		fmt.Sprintf("workloads: %q: added: {kind: \"batch\", image: \"busybox\", command: [\"true\"]}\n", team))
	var removed string
	for _, p := range repo.Paths() {
		if strings.HasPrefix(p, gen.TeamDir(gen.TeamName(2))+"/workloads-") {
			removed = p
			delete(head, p)
			break
		}
	}
	if removed == "" {
		t.Fatal("no workload file to remove")
	}
	headCfg, err := l.Load(head.FS())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := headCfg.ChangedWorkloads(base); !ok {
		t.Fatal("the loader's configurations do not say which packages changed")
	}
	got := status.ChangedWorkloads(base, headCfg)
	b, h := *base, *headCfg
	b.Packages, h.Packages = nil, nil
	want := status.ChangedWorkloads(&b, &h)
	kinds := map[string]int{}
	for _, c := range want {
		kinds[c.Change]++
	}
	if kinds["changed"] != 1 || kinds["added"] != 1 || kinds["removed"] == 0 {
		t.Fatalf("every workload compared: %v changes (%v), want one changed, one added and the removed file's", len(want), kinds)
	}
	if d := cmp.Diff(want, got, cmpopts.EquateEmpty()); d != "" {
		t.Errorf("by package (-every workload +by package):\n%s", d)
	}
}
