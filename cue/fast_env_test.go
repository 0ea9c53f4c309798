package cue

import (
	"reflect"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/berth-gpu/berth"
)

// TestFastPathEnvSecrets: a workload whose env holds secret references
// and a value that looks like a credential is answered by the fast path
// (not sent to CUE), with the same configuration and positions as CUE
// gives (the credential warning's position among them); a malformed
// reference is left to CUE, which says what is wrong.
func TestFastPathEnvSecrets(t *testing.T) {
	files := map[string]string{
		"cue.mod/module.cue": "module: \"example.com/x@v0\"\nlanguage: version: \"v0.14.0\"\n",
		"platform/p.cue":     "package platform\n\nclusters: box: {}\nflavors: cpu: {}\n",
		"teams/t.cue":        "package teams\n\nteams: vision: {owners: [\"@a\"], quota: [{flavor: \"cpu\", cpu: nominal: 8}]}\n",
		"workloads/vision/j.cue": `package vision

workloads: vision: j: {
	kind: "batch"
	command: ["true"]
	resources: flavor: "cpu"
	env: {
		PLAIN: "v"
		GH:    "ghp_R8sKq2LmX7vN4pTz9WbY3cJh6dFg1AeU5oQi"
		HF:    secret: {name: "huggingface", key: "token.v1"}
	}
}
`,
	}
	fsys := fstest.MapFS{}
	for p, c := range files {
		fsys[p] = &fstest.MapFile{Data: []byte(c)}
	}
	tr, errs, _ := readTree(fsys, Options{}.withDefaults())
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if _, err := newFastEval(tr).instance("workloads/vision"); err != nil {
		t.Fatalf("the fast path refused it: %v", err)
	}
	load := func() (*berth.Config, error) { return Load(fsys, Options{}) }
	slow, slowErr := loadWith(t, false, load)
	fast, fastErr := loadWith(t, true, load)
	if slowErr != "" || fastErr != "" {
		t.Fatalf("errors: CUE %q, fast %q", slowErr, fastErr)
	}
	if d := cmp.Diff(slow, fast, cmp.Exporter(func(reflect.Type) bool { return true })); d != "" {
		t.Errorf("configuration (-CUE +fast):\n%s", d)
	}
	if want := berth.SecretEnv("huggingface", "token.v1"); !fast.Workloads["vision/j"].Env["HF"].Equal(want) {
		t.Errorf("HF: %+v", fast.Workloads["vision/j"].Env["HF"])
	}
	if got := fast.Pos("workloads.vision.j.env.GH"); got.Line != 9 {
		t.Errorf("GH's position: %v, want line 9", got)
	}

	fsys["workloads/vision/j.cue"] = &fstest.MapFile{Data: []byte(`package vision

workloads: vision: j: {kind: "batch", command: ["true"], resources: flavor: "cpu", env: HF: secret: {name: "hf", key: "a/b"}}
`)}
	tr, _, _ = readTree(fsys, Options{}.withDefaults())
	if _, err := newFastEval(tr).instance("workloads/vision"); err == nil {
		t.Error("the fast path took a key with a '/'")
	}
}
