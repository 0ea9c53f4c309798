package local

import (
	"strconv"
	"strings"
	"testing"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
)

// gangVars prints berth.GangEnv, in its order, as a pod sees it.
func gangVars() string {
	var b strings.Builder
	for _, name := range berth.GangEnv {
		b.WriteString(name + `=${` + name + `-unset} `)
	}
	return strings.TrimSpace(b.String())
}

// TestGangGetsPyTorchEnvironment: every worker of a gang, plain or with
// roles, gets PyTorch's names with the values the Kubernetes backend gives
// (RANK and BERTH_WORKER_INDEX the global rank, LOCAL_RANK 0: a pod sees
// only its own GPUs), and MASTER_ADDR:MASTER_PORT is BERTH_MASTER_ADDR's.
// A batch that is no gang gets none of them.
func TestGangGetsPyTorchEnvironment(t *testing.T) {
	c := newCluster(t, t.TempDir())
	script := `echo "` + gangVars() + ` $BERTH_MASTER_PORT"`
	gang := batch("train", script).Kind(berth.KindTraining).Workers(2).Resources(berth.Resources{GPU: 1}).Obj()
	roles := mpiWorkload(`echo "`+gangVars()+` $BERTH_MASTER_PORT"`, `echo "`+gangVars()+` $BERTH_MASTER_PORT"`)
	plain := batch("etl", script).Obj()
	apply(t, c, change(reconcile.OpStart, gang, gpus(0), gpus(1)))
	waitPhase(t, c, gang.ID(), "1", reconcile.PhaseSucceeded)
	apply(t, c, rolesChange(roles))
	waitPhase(t, c, roles.ID(), "1", reconcile.PhaseSucceeded)
	apply(t, c, change(reconcile.OpStart, plain, cpuOnly()))
	waitPhase(t, c, plain.ID(), "1", reconcile.PhaseSucceeded)

	for _, tc := range []struct {
		w    berth.Workload
		size int
	}{{gang, 2}, {roles, 3}} {
		for i := range tc.size {
			f := strings.Fields(stdout(t, c, tc.w.ID(), "1", i))
			if len(f) != 7 {
				t.Fatalf("%s pod %d printed %q", tc.w.ID(), i, f)
			}
			port := f[6]
			want := []string{
				"RANK=" + strconv.Itoa(i), "WORLD_SIZE=" + strconv.Itoa(tc.size), "LOCAL_RANK=0", "MASTER_ADDR=127.0.0.1",
				"MASTER_PORT=" + port, "BERTH_WORKER_INDEX=" + strconv.Itoa(i), port,
			}
			if strings.Join(f, " ") != strings.Join(want, " ") {
				t.Errorf("%s pod %d: %q, want %q", tc.w.ID(), i, f, want)
			}
		}
	}
	got := strings.TrimSpace(stdout(t, c, plain.ID(), "1", 0))
	if !strings.HasPrefix(got, "RANK=unset WORLD_SIZE=unset LOCAL_RANK=unset MASTER_ADDR=unset MASTER_PORT=unset BERTH_WORKER_INDEX=unset") {
		t.Errorf("a batch that is no gang: %q, want every gang name unset", got)
	}
}
