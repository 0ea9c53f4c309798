package cue_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/cue"
)

// TestEnvErrorsHideValues: an error about an env value (two files set
// API_KEY differently, a value that is not a string) names the variable
// and the files but never the values: validate prints it, serve logs it
// and its status API serves it.
func TestEnvErrorsHideValues(t *testing.T) {
	job := `package vision
workloads: vision: j: {kind: "batch", image: "x", command: ["true"], resources: {cpu: 1, memory: "1Gi", flavor: "cpu"}}
`
	for _, tt := range []struct {
		name, second, want string
		values             []string
	}{
		{"conflict", `workloads: vision: j: env: API_KEY: "hunter2secret"`,
			"workloads.vision.j.env.API_KEY: set to two different values (not shown: env values may be secret); set it in one place",
			[]string{"hunter2secret", "abc"}},
		{"not a string", `workloads: vision: j: env: PIN: 4711`,
			"workloads.vision.j.env.PIN: not a string (not shown: env values may be secret); an env value is a string (quote it) or {secret: {name, key}}",
			[]string{"4711"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			first := `workloads: vision: j: env: API_KEY: "abc"`
			fsys := newRepo().platform().team("vision").
				file("teams/vision/j.cue", job).
				file("teams/vision/a.cue", "package vision\n"+first+"\n").
				file("teams/vision/b.cue", "package vision\n"+tt.second+"\n").fs()
			errs := loadErrors(t, fsys, cue.Options{})
			text := errs.Error()
			if !strings.Contains(text, tt.want) || !strings.Contains(text, "teams/vision/b.cue:2:") {
				t.Errorf("errors do not say %q with the file:\n%s", tt.want, text)
			}
			for _, v := range tt.values {
				if strings.Contains(text, v) {
					t.Errorf("the value %q is in the error:\n%s", v, text)
				}
			}
		})
	}
}

// TestEnvSecretReference: an env entry may name a key of a secret of the
// team instead of a value; it decodes to a reference (no value), a role's
// env may do the same, and a reference that lacks its key or names the
// secret badly is an error at its position.
func TestEnvSecretReference(t *testing.T) {
	job := `package vision
workloads: vision: j: {kind: "batch", image: "x", command: ["true"], resources: {cpu: 1, memory: "1Gi", flavor: "cpu"}
	env: {PLAIN: "v", HF_TOKEN: secret: {name: "huggingface", key: "token"}}
}
`
	fsys := newRepo().platform().team("vision").file("teams/vision/j.cue", job).fs()
	cfg := mustLoad(t, fsys, cue.Options{})
	env := cfg.Workloads["vision/j"].Env
	want := berth.Env{"PLAIN": berth.Val("v"), "HF_TOKEN": berth.SecretEnv("huggingface", "token")}
	if d := cmp.Diff(want, env); d != "" {
		t.Errorf("env (-want +got):\n%s", d)
	}

	for _, tt := range []struct{ name, entry, want, pos string }{
		{"no key", `T: secret: name: "hf"`, "workloads.vision.j.env.T.secret.key: ", "teams/vision/j.cue:3:"},
		{"bad name", `T: secret: {name: "Hugging_Face", key: "token"}`,
			"workloads.vision.j.env.T.secret.name: invalid value \"Hugging_Face\": a name is a DNS-1123 label", "teams/vision/j.cue:3:"},
		{"bad key", `T: secret: {name: "hf", key: "a/b"}`, "workloads.vision.j.env.T.secret.key: invalid value", "teams/vision/j.cue:3:"},
		{"unknown field", `T: secret: {name: "hf", key: "k", optional: true}`, `workloads.vision.j.env.T.secret.optional: field "optional" is not allowed in env.T.secret (allowed: key, name)`, "teams/vision/j.cue:3:"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := `package vision
workloads: vision: j: {kind: "batch", image: "x", command: ["true"], resources: {cpu: 1, memory: "1Gi", flavor: "cpu"}
	env: {` + tt.entry + `}
}
`
			fsys := newRepo().platform().team("vision").file("teams/vision/j.cue", src).fs()
			text := loadErrors(t, fsys, cue.Options{}).Error()
			if !strings.Contains(text, tt.want) || !strings.Contains(text, tt.pos) {
				t.Errorf("errors do not say %q at %s:\n%s", tt.want, tt.pos, text)
			}
		})
	}
}
