package main

import (
	"os"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"

	"github.com/berth-gpu/berth"
)

// TestDeployMemoryLimit: deploy/'s memory limit is what berth serve needs
// by its own defaults: serve's own memory and, at once, as many evaluation
// children as the Pool runs, each of --eval-memory (the manifest's value,
// or the default). Changing a default without the manifest fails here.
func TestDeployMemoryLimit(t *testing.T) {
	data, err := os.ReadFile("../../deploy/deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var d appsv1.Deployment
	if err := yaml.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ct := range d.Spec.Template.Spec.Containers {
		if ct.Name != "berth" {
			continue
		}
		found = true
		perChild := evalBounds.memory
		for _, a := range ct.Args {
			if v, ok := strings.CutPrefix(a, "--eval-memory="); ok {
				q, err := berth.ParseQuantity(v)
				if err != nil {
					t.Fatalf("--eval-memory=%s: %v", v, err)
				}
				perChild = q.Value()
			}
		}
		limit, ok := ct.Resources.Limits["memory"]
		if !ok {
			t.Fatal("the berth container has no memory limit")
		}
		children := int64(evalPool().Children())
		want := serveOwnMemory + children*perChild
		if limit.Value() != want {
			t.Errorf("deploy/deployment.yaml: memory limit %s (%d MiB), want %d MiB: serve's own %d MiB + %d children x %d MiB (--eval-memory)",
				limit.String(), limit.Value()>>20, want>>20, serveOwnMemory>>20, children, perChild>>20)
		}
	}
	if !found {
		t.Fatal("deploy/deployment.yaml has no container named berth")
	}
}
