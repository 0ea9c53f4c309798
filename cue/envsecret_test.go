package cue_test

import (
	"strings"
	"testing"

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
			"workloads.vision.j.env.PIN: not a string (not shown: env values may be secret); an env value is a string: quote it",
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
