package schedule_test

import (
	"strings"
	"testing"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/fixtures/build"
)

// roleCase is a table case of a workload with roles: what it decides, and
// for each role the flavor and the pods it gets.
type roleCase struct {
	name  string
	cfg   *build.ConfigBuilder
	snap  *build.SnapshotBuilder
	id    string
	want  got
	roles map[string]roleGot // role -> flavor and pods placed
	msg   string             // a substring of the reason
	// nodes: role -> the only node its pods may be on
	nodes map[string]string
}

type roleGot struct {
	Flavor string
	Pods   int
}

// mpi is a launcher of 2 cpu on the cpu flavor and n workers of one GPU.
func mpi(name string, workers int) *build.WorkloadBuilder {
	return build.Workload("vision", name).Roles(
		build.Role("launcher", 1).CPU("2"),
		build.Role("worker", workers).GPUs(1))
}

func rolesConfig(gpus string) *build.ConfigBuilder {
	return build.Config().GPUFlavor("h100", "H100").CPUFlavor("cpu").
		Team(build.Team("vision").Quota("h100", build.GPU(gpus).Borrow("0")).Quota("cpu", build.CPU("16")))
}

func TestRoles(t *testing.T) {
	zoned := build.Snapshot().
		Node(build.Node("gpu-a").GPUs(8, "NVIDIA-H100-80GB-HBM3").Label("zone", "a")).
		Node(build.Node("gpu-b").GPUs(8, "NVIDIA-H100-80GB-HBM3").Label("zone", "b"))
	tests := []roleCase{{
		name:  "launcher on the cpu flavor, workers on h100, admitted together",
		cfg:   rolesConfig("8").Workload(mpi("mpi", 8)),
		snap:  h100Nodes(1),
		id:    "vision/mpi",
		want:  got{Action: berth.ActionAdmit, Flavor: "cpu"},
		roles: map[string]roleGot{"launcher": {"cpu", 1}, "worker": {"h100", 8}},
	}, {
		name: "a role beyond the team's quota rejects the workload, naming the role",
		cfg:  rolesConfig("8").Workload(mpi("mpi", 12)),
		snap: h100Nodes(2),
		id:   "vision/mpi",
		want: got{Action: berth.ActionReject, Code: berth.ReasonExceedsQuota},
		msg:  "role worker: asks for 12 GPUs of h100",
	}, {
		name: "all or nothing: workers that do not fit keep the launcher from starting",
		cfg:  rolesConfig("16").Workload(mpi("mpi", 12), build.Workload("vision", "other").GPUs(6)),
		snap: h100Nodes(2).Running(build.Running(build.Workload("vision", "other").GPUs(6), "h100", 100).On("gpu-a", 0, 1, 2, 3, 4, 5)),
		id:   "vision/mpi",
		want: got{Action: berth.ActionQueue, Code: berth.ReasonQuota},
		msg:  "role worker: insufficient unused h100 quota in team vision: it asks 12 GPUs; the team uses 6 of nominal 16 and has no cohort to borrow from, so it is short by 2 GPUs",
	}, {
		name: "roles on one flavor add up: launcher and workers together exceed what is free",
		cfg: rolesConfig("8").Workload(build.Workload("vision", "ps").Roles(
			build.Role("ps", 1).GPUs(1), build.Role("worker", 8).GPUs(1))),
		snap: h100Nodes(2),
		id:   "vision/ps",
		want: got{Action: berth.ActionQueue, Code: berth.ReasonQuota},
		msg:  "role worker: insufficient unused h100 quota in team vision: it asks 8 GPUs; the team uses 1 of nominal 8 and has no cohort to borrow from, so it is short by 1 GPU",
	}, {
		name:  "partial admission shrinks the role with a minimum only",
		cfg:   rolesConfig("6").Workload(build.Workload("vision", "mpi").Roles(build.Role("launcher", 1).CPU("2"), build.Role("worker", 8).GPUs(1).Min(4))),
		snap:  h100Nodes(1),
		id:    "vision/mpi",
		want:  got{Action: berth.ActionAdmit, Flavor: "cpu"},
		roles: map[string]roleGot{"launcher": {"cpu", 1}, "worker": {"h100", 6}},
	}, {
		name: "a node selector narrows a role's nodes",
		cfg: rolesConfig("16").Workload(build.Workload("vision", "mpi").Roles(
			build.Role("launcher", 1).Select("zone", "a"), build.Role("worker", 8).GPUs(1).Select("zone", "b"))),
		snap:  zoned,
		id:    "vision/mpi",
		want:  got{Action: berth.ActionAdmit, Flavor: "cpu"},
		roles: map[string]roleGot{"launcher": {"cpu", 1}, "worker": {"h100", 8}},
		nodes: map[string]string{"launcher": "gpu-a", "worker": "gpu-b"},
	}, {
		name: "a node selector no node matches: the gang waits for nodes",
		cfg: rolesConfig("16").Workload(build.Workload("vision", "mpi").Roles(
			build.Role("launcher", 1), build.Role("worker", 2).GPUs(1).Select("zone", "c"))),
		snap: zoned,
		id:   "vision/mpi",
		want: got{Action: berth.ActionReject, Code: berth.ReasonNoMatchingNodes},
		msg:  "role worker:",
	}, {
		name: "a selector that contradicts every flavor's labels leaves the role no flavor",
		cfg: build.Config().Flavor(berth.Flavor{Name: "h100", GPUModel: "H100", NodeLabels: map[string]string{"pool": "gpu"}}).CPUFlavor("cpu").
			Team(build.Team("vision").Quota("h100", build.GPU("8")).Quota("cpu", build.CPU("16"))).
			Workload(build.Workload("vision", "mpi").Roles(build.Role("launcher", 1), build.Role("worker", 2).GPUs(1).Select("pool", "cpu"))),
		snap: zoned,
		id:   "vision/mpi",
		want: got{Action: berth.ActionReject, Code: berth.ReasonNoQuota},
		msg:  "role worker: team vision has no quota",
	}, {
		name: "a higher priority gang preempts a lower one for its workers",
		cfg: rolesConfig("8").Tier("high", 1000).Tier("low", 10).
			Workload(mpi("mpi", 8).Priority("high"), build.Workload("vision", "low").GPUs(8).Priority("low")),
		snap:  h100Nodes(1).Running(build.Running(build.Workload("vision", "low").GPUs(8), "h100", 10).On("gpu-a", 0, 1, 2, 3, 4, 5, 6, 7)),
		id:    "vision/mpi",
		want:  got{Action: berth.ActionPreempt, Flavor: "cpu"},
		roles: map[string]roleGot{"launcher": {"cpu", 1}, "worker": {"h100", 8}},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := plan(t, tc.cfg, tc.snap)
			d := decision(t, p, tc.id)
			reason := ""
			if d.Reason != nil {
				reason = d.Reason.Message
			}
			if g := summary(d); g != tc.want {
				t.Fatalf("got %+v (%s), want %+v", g, reason, tc.want)
			}
			if tc.msg != "" && !strings.Contains(reason, tc.msg) {
				t.Errorf("reason %q does not contain %q", reason, tc.msg)
			}
			if tc.roles != nil {
				have := map[string]roleGot{}
				for _, r := range d.Roles {
					have[r.Role] = roleGot{r.Flavor, len(r.Placements)}
					if n := tc.nodes[r.Role]; n != "" {
						for _, pl := range r.Placements {
							if pl.Node != n {
								t.Errorf("role %s has a pod on %s, want only %s", r.Role, pl.Node, n)
							}
						}
					}
				}
				for role, w := range tc.roles {
					if have[role] != w {
						t.Errorf("role %s: got %+v, want %+v", role, have[role], w)
					}
				}
				pods := 0
				for _, r := range tc.roles {
					pods += r.Pods
				}
				if len(d.Placements) != pods {
					t.Errorf("%d placements in all, want %d", len(d.Placements), pods)
				}
			}
		})
	}
}

// TestRolesRunningCharged: a running run of a workload with roles holds
// every role's quota and nodes, and a plan keeps it with its roles.
func TestRolesRunningCharged(t *testing.T) {
	w := mpi("mpi", 4)
	run := build.Running(w, "cpu", 100).RoleOn(w, "launcher", "cpu", "gpu-a")
	for g := range 4 {
		run.RoleOn(w, "worker", "h100", "gpu-a", g)
	}
	cfg := rolesConfig("8").Workload(w, build.Workload("vision", "next").GPUs(6))
	p := plan(t, cfg, h100Nodes(1).Running(run))
	expect(t, p, map[string]got{
		"vision/mpi":  {Action: berth.ActionKeep, Flavor: "cpu"},
		"vision/next": {Action: berth.ActionQueue, Code: berth.ReasonQuota},
	})
	d := decision(t, p, "vision/mpi")
	if len(d.Roles) != 2 || d.Roles[1].Role != "worker" || len(d.Roles[1].Placements) != 4 || d.GPUs != 4 {
		t.Errorf("kept run: roles %+v, %v GPUs; want launcher and 4 workers, 4 GPUs", d.Roles, d.GPUs)
	}
	for _, q := range p.Quota {
		if q.Team == "vision" && q.Flavor == "cpu" && q.Resource == berth.ResourceCPU && q.UsedAfter != 2000 {
			t.Errorf("cpu flavor: the launcher's 2 cpu are used, got %d millicores", q.UsedAfter)
		}
	}
}

// TestRolesAllOrNothingOnNodes: the quota holds every role but the nodes
// hold only some workers; nothing starts, and the launcher takes no quota.
func TestRolesAllOrNothingOnNodes(t *testing.T) {
	other := build.Workload("vision", "other").GPUs(6)
	cfg := rolesConfig("32").Workload(mpi("mpi", 12), other)
	p := plan(t, cfg, h100Nodes(2).Running(build.Running(other, "h100", 100).On("gpu-a", 0, 1, 2, 3, 4, 5)))
	d := decision(t, p, "vision/mpi")
	if d.Action != berth.ActionQueue || d.Reason == nil || d.Reason.Code != berth.ReasonGang {
		t.Fatalf("got %s %+v, want queued for the gang", d.Action, d.Reason)
	}
	if want := "role worker: 12 pods of 1 GPU"; !strings.Contains(d.Reason.Message, want) {
		t.Errorf("reason %q does not contain %q", d.Reason.Message, want)
	}
	for _, q := range p.Quota {
		if q.Flavor == "cpu" && q.UsedAfter != 0 {
			t.Errorf("the launcher took %d of the cpu flavor's %s", q.UsedAfter, q.Resource)
		}
	}
}

// TestRoleVictimsMinimalForTheWholeWorkload: the victims of a workload
// with roles are minimal for the whole workload, not role by role. Role a
// (1 GPU) alone would preempt the lowest-priority run s (2 GPUs); role b
// (4 GPUs) then needs the big run (6 GPUs), which alone holds both roles:
// s is put back.
func TestRoleVictimsMinimalForTheWholeWorkload(t *testing.T) {
	cfg := build.Config().GPUFlavor("h100", "H100").Tier("p-2", -2).Tier("p-1", -1).
		Team(build.Team("vision").Quota("h100", build.GPU("8").Borrow("0")))
	s := build.Workload("vision", "s").GPUs(2).Priority("p-2")
	big := build.Workload("vision", "big").GPUs(6).Priority("p-1")
	w := build.Workload("vision", "w").Roles(build.Role("a", 1).GPUs(1), build.Role("b", 1).GPUs(4))
	cfg.Workload(s, big, w)
	snap := h100Nodes(1).
		Running(build.Running(s, "h100", -2).On("gpu-a", 0, 1)).
		Running(build.Running(big, "h100", -1).On("gpu-a", 2, 3, 4, 5, 6, 7)).
		Queued("vision/w", build.T0)
	d := decision(t, plan(t, cfg, snap), "vision/w")
	var victims []string
	for _, v := range d.Victims {
		victims = append(victims, string(v.Workload))
	}
	if d.Action != berth.ActionPreempt || strings.Join(victims, ",") != "vision/big" {
		t.Errorf("got %s of %v, want preempt of vision/big alone", d.Action, victims)
	}
}

// TestBlockedRolesReserveForEveryRole: a gang whose workers wait for GPU
// nodes reserves room for its launcher as well: a long CPU job that would
// take the launcher's node past the gang's shadow time waits behind it.
func TestBlockedRolesReserveForEveryRole(t *testing.T) {
	big := build.Workload("vision", "big").GPUs(8).MaxDuration("2h")
	mpi := build.Workload("vision", "mpi").MaxDuration("4h").Roles(
		build.Role("launcher", 1).CPU("4").Flavor("cpu"), build.Role("worker", 8).GPUs(1))
	etl := build.Workload("vision", "etl").CPU("2").Flavor("cpu").MaxDuration("10h")
	cfg := build.Config().GPUFlavor("h100", "H100").
		Flavor(berth.Flavor{Name: "cpu", NodeLabels: map[string]string{"pool": "cpu"}}).
		Team(build.Team("vision").Quota("h100", build.GPU("16")).Quota("cpu", build.CPU("16"))).
		Workload(big, mpi, etl)
	snap := build.Snapshot().
		Node(build.Node("cpu-1").CPU("4").Label("pool", "cpu")).
		Node(build.Node("gpu-a").GPUs(8, "NVIDIA-H100-80GB-HBM3")).
		Running(build.Running(big, "h100", 100).Since(build.T0.Add(-time.Hour)).On("gpu-a", 0, 1, 2, 3, 4, 5, 6, 7)).
		Queued("vision/mpi", build.T0.Add(-10*time.Minute)).
		Queued("vision/etl", build.T0.Add(-5*time.Minute))
	p := plan(t, cfg, snap)
	if d := decision(t, p, "vision/mpi"); d.Action != berth.ActionQueue {
		t.Fatalf("mpi: %s, want queued for the GPU node", d.Action)
	}
	d := decision(t, p, "vision/etl")
	if d.Action != berth.ActionQueue || d.Reason == nil || d.Reason.Code != berth.ReasonBehindHead {
		t.Errorf("etl: %s %+v, want queued behind vision/mpi (it would keep the launcher's node past the gang's start)", d.Action, d.Reason)
	}
}
