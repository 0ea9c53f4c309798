package local

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
)

// TestReplicasGetPortsOfTheirOwn starts two replicas of a service with two
// named ports: each is told its own ports through PORT and
// BERTH_PORT_<NAME>, so both can listen on one machine.
func TestReplicasGetPortsOfTheirOwn(t *testing.T) {
	c := newCluster(t, t.TempDir())
	w := batch("api", `echo "$PORT $BERTH_PORT_HTTP $BERTH_PORT_METRICS"; sleep 60`).Kind(berth.KindService).Obj()
	w.Replicas = 2
	w.Env = map[string]string{"PORT": "8080"} // berth's own wins
	w.Ports = []berth.Port{{Name: "http", Port: 8080, Protocol: "TCP"}, {Name: "metrics", Port: 9090, Protocol: "TCP"}}
	apply(t, c, change(reconcile.OpStart, w, cpuOnly(), cpuOnly()))
	t.Cleanup(func() { apply(t, c, stopChange(w, reconcile.PhaseStopped, "test over")) })
	seen := map[string]bool{}
	for pod := range 2 {
		f := strings.Fields(waitFile(t, filepath.Join(c.StateDir(), podDir(w.ID(), "1", 1, pod), fileStdout), "\n"))
		if len(f) != 3 || f[0] != f[1] || f[1] == f[2] {
			t.Fatalf("pod %d: PORT BERTH_PORT_HTTP BERTH_PORT_METRICS = %q, want PORT = BERTH_PORT_HTTP != BERTH_PORT_METRICS", pod, f)
		}
		for _, p := range f[1:] {
			if n, err := strconv.Atoi(p); err != nil || n == 8080 || n == 9090 {
				t.Errorf("pod %d: port %q, want a free port of berth's, not the declared one", pod, p)
			}
			if seen[p] {
				t.Errorf("pod %d: port %s given twice", pod, p)
			}
			seen[p] = true
		}
	}
}
