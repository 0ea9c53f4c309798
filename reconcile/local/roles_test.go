package local

import (
	"strings"
	"testing"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
)

// rolesChange starts w with a launcher on the CPU and workers on GPUs 0
// and 1, as the scheduler admits a workload with roles.
func rolesChange(w berth.Workload) reconcile.Change {
	ch := change(reconcile.OpStart, w, cpuOnly(), gpus(0), gpus(1))
	ch.Decision.Flavor = "cpu"
	ch.Decision.Roles = []berth.RolePlacement{
		{Role: "launcher", Flavor: "cpu", Resources: w.Roles["launcher"].Resources, Placements: []berth.Placement{cpuOnly()}, PodsAsked: 1},
		{Role: "worker", Flavor: "h100", Resources: w.Roles["worker"].Resources, Placements: []berth.Placement{gpus(0), gpus(1)}, PodsAsked: 2},
	}
	return ch
}

func mpiWorkload(script, launcher string) berth.Workload {
	w := batch("mpi", script).Kind(berth.KindTraining).Env("GREETING", "hi").Obj()
	w.Roles = map[string]berth.Role{
		"launcher": {Name: "launcher", Count: 1, Command: []string{"sh", "-c", launcher}, Env: berth.EnvOf(map[string]string{"GREETING": "launch"})},
		"worker":   {Name: "worker", Count: 2, Resources: berth.Resources{GPU: 1}},
	}
	return w
}

// TestRolesRunAsProcesses starts a workload of two roles as real
// processes: one per pod, in role order, each with its role's command,
// env, devices and ranks; the run succeeds when every pod has.
func TestRolesRunAsProcesses(t *testing.T) {
	c := newCluster(t, t.TempDir())
	vars := `$BERTH_ROLE $BERTH_ROLE_RANK/$BERTH_ROLE_SIZE $BERTH_RANK/$BERTH_WORLD_SIZE +$BERTH_RANK_OFFSET $BERTH_ROLES $GREETING [$CUDA_VISIBLE_DEVICES]`
	w := mpiWorkload(`echo "worker `+vars+`"`, `echo "launcher `+vars+`"`)
	apply(t, c, rolesChange(w))
	waitPhase(t, c, w.ID(), "1", reconcile.PhaseSucceeded)
	want := []string{
		"launcher launcher 0/1 0/3 +0 launcher=1,worker=2 launch []",
		"worker worker 0/2 1/3 +1 launcher=1,worker=2 hi [" + SimulatedUUID(0) + "]",
		"worker worker 1/2 2/3 +1 launcher=1,worker=2 hi [" + SimulatedUUID(1) + "]",
	}
	for i, line := range want {
		if got := strings.TrimSpace(stdout(t, c, w.ID(), "1", i)); got != line {
			t.Errorf("pod %d printed %q, want %q", i, got, line)
		}
	}
}

// TestRolesObserved: a running run of a workload with roles is observed
// with its roles, so the scheduler charges each role to its flavor.
func TestRolesObserved(t *testing.T) {
	c := newCluster(t, t.TempDir())
	w := mpiWorkload("sleep 30", "sleep 30")
	apply(t, c, rolesChange(w))
	waitPhase(t, c, w.ID(), "1", reconcile.PhaseRunning)
	obs := observe(t, c)
	if len(obs.Snapshot.Running) != 1 {
		t.Fatalf("running: %+v", obs.Snapshot.Running)
	}
	run := obs.Snapshot.Running[0]
	if len(run.Roles) != 2 || run.Roles[0].Role != "launcher" || run.Roles[1].Flavor != "h100" ||
		len(run.Roles[1].Placements) != 2 || len(run.Placements) != 0 || run.Roles[0].PodsAsked != 0 {
		t.Errorf("observed run: %+v", run)
	}
	apply(t, c, stopChange(w, reconcile.PhaseStopped, "test over"))
}
