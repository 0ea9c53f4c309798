package kube

import (
	"encoding/json"
	"testing"

	"github.com/berth-gpu/berth"
)

// TestHPAMetrics: the autoscaler reads the metric the cluster's
// autoscaleMetrics names for the workload's one target: by default the
// per-pod metrics prometheus-adapter and dcgm-exporter serve; an External
// metric is selected by the service's pod labels and averaged over its
// replicas.
func TestHPAMetrics(t *testing.T) {
	external := berth.DefaultAutoscaleMetrics
	external.GPUUtilization = berth.MetricSource{Name: "dcgm_gpu_utilization", Type: berth.MetricExternal}
	for _, tc := range []struct {
		name    string
		metrics berth.AutoscaleMetrics
		a       berth.Autoscale
		want    string
	}{
		{"requests per second", berth.AutoscaleMetrics{}, berth.Autoscale{Min: 1, Max: 4, TargetRPS: 2.5},
			`[{"type":"Pods","pods":{"metric":{"name":"http_requests_per_second"},"target":{"type":"AverageValue","averageValue":"2500m"}}}]`},
		{"GPU utilisation, the default", berth.AutoscaleMetrics{}, berth.Autoscale{Min: 1, Max: 4, TargetGPUUtilization: 70},
			`[{"type":"Pods","pods":{"metric":{"name":"DCGM_FI_DEV_GPU_UTIL"},"target":{"type":"AverageValue","averageValue":"70"}}}]`},
		{"GPU utilisation, an External metric", external, berth.Autoscale{Min: 1, Max: 4, TargetGPUUtilization: 70},
			`[{"type":"External","external":{"metric":{"name":"dcgm_gpu_utilization","selector":{"matchLabels":{"app.kubernetes.io/managed-by":"berth","berth.dev/team":"serving","berth.dev/workload":"llm"}}},"target":{"type":"AverageValue","averageValue":"70"}}}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := renderOpts
			o.Metrics = tc.metrics
			o = o.withDefaults()
			a := tc.a
			r := Run{Workload: berth.Workload{Name: "llm", Team: "serving", Kind: berth.KindInference, Autoscale: &a}, RunID: "1"}
			h := renderHPA(o, r)
			b, err := json.Marshal(h.Spec.Metrics)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.want {
				t.Errorf("metrics\n got %s\nwant %s", b, tc.want)
			}
		})
	}
}
