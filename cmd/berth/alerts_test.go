package main

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth-gpu/berth/fixtures/testenv"
	"github.com/berth-gpu/berth/reconcile"
)

// promtoolPath is Debian's promtool ($BERTH_PROMTOOL overrides).
func promtoolPath() (string, error) {
	if p := os.Getenv("BERTH_PROMTOOL"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("promtool"); err == nil {
		return p, nil
	}
	return "", &testenv.MissingError{Component: "promtool (apt-get install prometheus)", Looked: "$BERTH_PROMTOOL and $PATH"}
}

// deploy/alerts.yaml is valid to Prometheus, each alert fires on the
// series of deploy/alerts_test.yaml that should fire it and not on their
// near misses, and every metric it reads is one berth serve exports.
func TestAlertRules(t *testing.T) {
	promtool, err := promtoolPath()
	testenv.SkipOrFail(t, err)
	for _, args := range [][]string{{"check", "rules", "alerts.yaml"}, {"test", "rules", "alerts_test.yaml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "../../deploy"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}

	rules, err := os.ReadFile("../../deploy/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	exported := serveMetricNames(t)
	for _, name := range slices.Compact(slices.Sorted(slices.Values(regexp.MustCompile(`\bberth_[a-z_]+`).FindAllString(string(rules), -1)))) {
		if !slices.Contains(exported, name) {
			t.Errorf("deploy/alerts.yaml reads %s, which berth serve does not export (it exports %v)", name, exported)
		}
	}
}

// serveMetricNames are the names of the metrics berth serve registers,
// from their descriptions (so a vector with no series yet counts).
func serveMetricNames(t *testing.T) []string {
	var rec registered
	reconcile.NewMetrics(&rec)
	newServeMetrics(&rec)
	rec.MustRegister(reconcile.NewPlanCollector(reconcile.PlanCollectorOptions{Last: func() map[string]reconcile.ClusterReport { return nil }}))
	descs := make(chan *prometheus.Desc)
	go func() {
		for _, c := range rec {
			c.Describe(descs)
		}
		close(descs)
	}()
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	var names []string
	for d := range descs {
		if m := fq.FindStringSubmatch(d.String()); m != nil {
			names = append(names, m[1])
		}
	}
	if len(names) < 20 {
		t.Fatalf("serve registers only %v", names)
	}
	return names
}

// registered is a prometheus.Registerer that keeps what is registered.
type registered []prometheus.Collector

func (r *registered) Register(c prometheus.Collector) error   { *r = append(*r, c); return nil }
func (r *registered) MustRegister(cs ...prometheus.Collector) { *r = append(*r, cs...) }
func (r *registered) Unregister(prometheus.Collector) bool    { return false }
