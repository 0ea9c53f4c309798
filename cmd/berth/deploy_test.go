package main

import (
	"os"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"

	"github.com/berth-gpu/berth/cue"
)

// TestDeployMemoryLimit: deploy/'s memory limit holds berth serve
// (serveOwnMemory) and every evaluation child it may run at once, each at
// the default --eval-memory, so the kernel stops a runaway child before
// the kubelet kills the pod.
func TestDeployMemoryLimit(t *testing.T) {
	b, err := os.ReadFile("../../deploy/deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var d appsv1.Deployment
	if err := yaml.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	c := d.Spec.Template.Spec.Containers[0]
	limit := c.Resources.Limits.Memory().Value()
	need := int64(serveOwnMemory) + int64(evalPool().Children())*cue.DefaultMaxMemory
	if limit < need {
		t.Errorf("deploy/deployment.yaml: container %s's memory limit is %d bytes; serve and %d evaluation children need %d",
			c.Name, limit, evalPool().Children(), need)
	}
}
