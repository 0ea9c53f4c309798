package reconcile_test

import (
	"testing"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/fixtures/build"
	"github.com/berth-gpu/berth/reconcile"
)

// TestSecretErrorSaysWhere: a secret reference that cannot be resolved is
// reported at its file:line:col, a role's under its role; where the
// configuration has no position for the variable, at the nearest one it
// has, and with no configuration at the workload's.
func TestSecretErrorSaysWhere(t *testing.T) {
	w := build.Workload("vision", "train").Obj()
	w.Pos = berth.Pos{File: "workloads/vision/train.cue", Line: 3, Col: 1}
	cfg := &berth.Config{Positions: map[string]berth.Pos{
		"workloads.vision.train.env.HF_TOKEN":             {File: "workloads/vision/train.cue", Line: 7, Col: 12},
		"workloads.vision.train.roles.launcher.env.WANDB": {File: "workloads/vision/train.cue", Line: 12, Col: 14},
		"workloads.vision.train":                          w.Pos,
	}}
	for _, tc := range []struct {
		cfg  *berth.Config
		v    string
		want string
	}{
		{cfg, "HF_TOKEN", "env HF_TOKEN (workloads/vision/train.cue:7:12): secret hf key token (namespace berth-vision): no Secret hf; not started"},
		{cfg, "launcher/WANDB", "env launcher/WANDB (workloads/vision/train.cue:12:14): secret hf key token (namespace berth-vision): no Secret hf; not started"},
		{cfg, "OTHER", "env OTHER (workloads/vision/train.cue:3:1): secret hf key token (namespace berth-vision): no Secret hf; not started"},
		{nil, "HF_TOKEN", "env HF_TOKEN (workloads/vision/train.cue:3:1): secret hf key token (namespace berth-vision): no Secret hf; not started"},
	} {
		e := &reconcile.SecretError{Workload: w.ID(), Var: tc.v, Secret: berth.SecretRef{Name: "hf", Key: "token"},
			Where: "namespace berth-vision", Problem: "no Secret hf"}
		e.Locate(tc.cfg, w)
		if got := e.Error(); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.v, got, tc.want)
		}
	}
}
