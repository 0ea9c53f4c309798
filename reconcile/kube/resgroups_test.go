package kube_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
)

// TestResourceGroupsSelectEveryFlavor: a team whose quota has resource
// groups (cpu and memory from a pool of zone a, GPUs from h100) gets pods
// that ask for both flavors' node labels, on the real control plane: the
// run lands on the zone-a H100 node and succeeds; a second one waits for
// that node although the zone-b node is idle and the team's quota has room.
func TestResourceGroupsSelectEveryFlavor(t *testing.T) {
	zoneA, zoneB := gpuNode(), gpuNode()
	zoneA.Labels = map[string]string{"berth.dev/zone": "a"}
	zoneB.Labels = map[string]string{"berth.dev/zone": "b"}
	s := newScenario(t, "groups", zoneA, zoneB)
	s.waitReadyNodes(2)
	s.files["platform/zone.cue"] = fmt.Sprintf(`package platform
flavors: "cpu-a": nodeLabels: {"berth.dev/pool": %q, "berth.dev/zone": "a"}
`, s.name)
	s.set(map[string]string{
		"teams/teams.cue": `package teams
teams: ml: {owners: ["@ml"], resourceGroups: [
	{coveredResources: ["cpu", "memory"], flavors: [{name: "cpu-a", resources: [{name: "cpu", nominalQuota: 256}, {name: "memory", nominalQuota: "2Ti"}]}]},
	{coveredResources: ["gpu"], flavors: [{name: "h100", resources: [{name: "gpu", nominalQuota: 16}]}]},
]}
`,
		"workloads/nlp/pipeline.cue":     "",
		"workloads/serving/services.cue": "",
		"workloads/vision/train.cue":     "",
		"workloads/ml/ml.cue": `package ml
workloads: ml: first: {kind: "batch", image: "img:1", env: BERTH_SIMULATED_DURATION: "3s", resources: {gpu: 8, cpu: 8}}
workloads: ml: second: {kind: "batch", image: "img:1", env: BERTH_SIMULATED_DURATION: "2s", resources: {gpu: 8, cpu: 8}}
`,
	})
	cr := s.mustReconcile()
	first, second := decision(cr, "ml/first"), decision(cr, "ml/second")
	if first.Action != berth.ActionAdmit || first.Flavor != "cpu-a+h100" ||
		first.Flavors[berth.ResourceGPU] != "h100" || first.Flavors[berth.ResourceCPU] != "cpu-a" {
		t.Fatalf("first: %s on %q %v, want admitted on cpu-a+h100 (gpu h100, cpu cpu-a)", first.Action, first.Flavor, first.Flavors)
	}
	if second.Action != berth.ActionQueue || second.Reason == nil || second.Reason.Code != berth.ReasonCapacity {
		t.Fatalf("second: %s %+v, want queued for nodes (the zone-b node is not of cpu-a)", second.Action, second.Reason)
	}
	// The Job's pods ask for the labels of both flavors.
	aff := s.job("first-1").Spec.Template.Spec.Affinity
	want := map[string]string{"berth.dev/pool": s.name, "berth.dev/zone": "a"}
	for _, term := range aff.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		got := map[string]string{}
		for _, e := range term.MatchExpressions {
			if len(e.Values) == 1 {
				got[e.Key] = e.Values[0]
			}
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("a node selector term of first lacks %s=%s: %v", k, v, term.MatchExpressions)
			}
		}
	}
	cr = s.until("first succeeds and second runs", 2*time.Minute, func(cr reconcile.ClusterReport) bool {
		return phase(cr, "ml/first") == reconcile.PhaseSucceeded && phase(cr, "ml/second").Holds()
	})
	zoneANode := first.Placements[0].Node
	for _, p := range run(cr, "ml/second").Placements {
		if p.Node != zoneANode {
			t.Errorf("second runs on %s, want the zone-a node %s", p.Node, zoneANode)
		}
	}
	s.until("second succeeds", time.Minute, func(cr reconcile.ClusterReport) bool { return phase(cr, "ml/second") == reconcile.PhaseSucceeded })
}
