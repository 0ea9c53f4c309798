package traffic

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestMeasureWithHey is the measurement in the closing note of #12, not a
// check: with BERTH_MEASURE=1 and hey (Debian's package) on PATH, it
// sends load with hey straight to one replica and through the proxy, then
// through the proxy during a rollout and during a replica crash, and logs
// hey's latency distribution and status codes. Run it with
//
//	BERTH_MEASURE=1 go test ./reconcile/local/traffic -run TestMeasureWithHey -v
func TestMeasureWithHey(t *testing.T) {
	if os.Getenv("BERTH_MEASURE") != "1" {
		t.Skip("set BERTH_MEASURE=1 to measure with hey")
	}
	hey, err := exec.LookPath("hey")
	if err != nil {
		t.Skip("hey is not installed (apt-get install hey)")
	}
	svc, procs, url := startService(t, service("1", 0))
	direct := "http://" + addrOf(procs.live()[0].Target(service("1", 0).Ports[0])) + "/"
	run := func(name, target string, during func()) {
		cmd := exec.Command(hey, "-z", "4s", "-c", "16", target)
		var out strings.Builder
		cmd.Stdout = &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if during != nil {
			time.Sleep(time.Second)
			during()
		}
		if err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s:\n%s", name, summary(out.String()))
	}
	run("direct to one replica", direct, nil)
	run("through the proxy", url+"/", nil)
	run("through the proxy, rollout to v2", url+"/", func() {
		if err := svc.Roll(context.Background(), service("2", 300*time.Millisecond)); err != nil {
			t.Error(err)
		}
	})
	run("through the proxy, a replica killed", url+"/", func() { procs.live()[0].kill() })
}

var heyLines = regexp.MustCompile(`(?m)^\s*(Requests/sec:.*|Total:.*|\s*50% in .*|\s*99% in .*|\s*\[\d+\]\s+\d+ responses|Error distribution:|\s*\[\d+\]\s+Get .*)$`)

func summary(out string) string {
	var s string
	for _, m := range heyLines.FindAllString(out, -1) {
		s += "  " + m + "\n"
	}
	return s
}
