package cue

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	cuelang "cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/cuecontext"
	"cuelang.org/go/cue/format"
	"cuelang.org/go/cue/parser"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/fixtures/gen"
)

// loadWith loads dir (or fsys) with the fast path on or off and returns
// what a user sees: the configuration or the errors.
func loadWith(t *testing.T, fast bool, load func() (*berth.Config, error)) (*berth.Config, string) {
	t.Helper()
	defer func(was bool) { fastEnabled = was }(fastEnabled)
	fastEnabled = fast
	cfg, err := load()
	if err != nil {
		var errs Errors
		if !errors.As(err, &errs) {
			t.Fatalf("berth failed: %v", err)
		}
		return nil, err.Error()
	}
	return cfg, ""
}

// TestFastPathAgrees is the fast path's differential test: every fixture
// repository and generated repositories of several shapes give the same
// configuration (every workload, team and position) or the same errors
// with the fast path as with CUE alone.
func TestFastPathAgrees(t *testing.T) {
	type repo struct {
		name string
		load func() (*berth.Config, error)
	}
	var repos []repo
	for _, opts := range []gen.Options{
		{Teams: 3, Workloads: 300, Seed: 1},
		{Teams: 7, Workloads: 500, Seed: 2, FilesPerTeam: 3},
		{Teams: 4, Workloads: 200, Seed: 3, FilesPerTeam: 9, OnePackage: true},
	} {
		fsys := gen.Generate(opts).FS()
		repos = append(repos, repo{fmt.Sprintf("gen %+v", opts), func() (*berth.Config, error) { return Load(fsys, Options{}) }})
	}
	// Files cue/load leaves out of an instance: the fast path must too.
	extra := gen.Generate(gen.Options{Teams: 2, Workloads: 20, Seed: 4})
	team := gen.TeamDir(gen.TeamName(1))
	extra[team+"/more_test.cue"] = []byte("package " + strings.ReplaceAll(gen.TeamName(1), "-", "_") + "\n\nworkloads: \"" + gen.TeamName(1) + "\": t: {kind: \"batch\"}\n")
	extra[team+"/more_tool.cue"] = []byte("package " + strings.ReplaceAll(gen.TeamName(1), "-", "_") + "\n\nworkloads: \"" + gen.TeamName(1) + "\": u: {kind: \"batch\"}\n")
	repos = append(repos, repo{"gen with test and tool files", func() (*berth.Config, error) { return Load(extra.FS(), Options{}) }})
	dirs, _ := filepath.Glob("../fixtures/repos/*")
	broken, _ := filepath.Glob("../fixtures/repos/broken/*")
	dirs = append(dirs, broken...)
	for _, d := range dirs {
		if filepath.Base(d) == "broken" {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "options.json")); err == nil {
			continue // runaway and size cases: no data for the fast path
		}
		repos = append(repos, repo{d, func() (*berth.Config, error) { return Load(os.DirFS(d), Options{}) }})
	}
	for _, r := range repos {
		t.Run(r.name, func(t *testing.T) {
			slowCfg, slowErr := loadWith(t, false, r.load)
			fastCfg, fastErr := loadWith(t, true, r.load)
			if d := cmp.Diff(slowErr, fastErr); d != "" {
				t.Errorf("errors (-CUE +fast):\n%s", d)
			}
			if d := cmp.Diff(slowCfg, fastCfg, cmp.Exporter(func(reflect.Type) bool { return true }),
				cmpopts.IgnoreFields(berth.Config{}, "Fields")); d != "" {
				t.Errorf("configuration (-CUE +fast):\n%s", d)
			}
			if d := cmp.Diff(allPositions(slowCfg), allPositions(fastCfg)); d != "" {
				t.Errorf("positions (-CUE +fast):\n%s", d)
			}
		})
	}
}

// allPositions is every position a configuration holds.
func allPositions(cfg *berth.Config) map[string]berth.Pos {
	if cfg == nil {
		return nil
	}
	out := map[string]berth.Pos{}
	for k, p := range cfg.AllPositions() {
		out[k] = p
	}
	return out
}

// TestFastPathAnswers: the fast path answers for every team instance of
// a generated repository (else the differential test would prove little
// and the speed would be CUE's).
func TestFastPathAnswers(t *testing.T) {
	for _, opts := range []gen.Options{
		{Teams: 3, Workloads: 300, Seed: 1},
		{Teams: 4, Workloads: 200, Seed: 3, FilesPerTeam: 9, OnePackage: true},
	} {
		tr, errs, _ := readTree(gen.Generate(opts).FS(), Options{}.withDefaults())
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		f := newFastEval(tr)
		for _, d := range tr.dirs {
			if d == "platform" || d == "templates" {
				continue
			}
			if _, err := f.instance(d); err != nil {
				t.Errorf("%+v: %s: %v", opts, d, err)
			}
		}
	}
}

// TestFastFieldsCoverTheSchema: every field of every struct of schema.cue
// the fast path checks is either checked (fastFields) or left to CUE
// (fastRefused). A field added to the schema without either would be
// missing, or its default unfilled, in what the fast path answers.
func TestFastFieldsCoverTheSchema(t *testing.T) {
	ctx := cuecontext.New()
	schema := ctx.CompileBytes(berth.Schema)
	if err := schema.Err(); err != nil {
		t.Fatal(err)
	}
	for def, known := range fastFields {
		parts := strings.Split(def, ".")
		v := schema.LookupPath(cuelang.MakePath(cuelang.Def(parts[0])))
		for _, p := range parts[1:] {
			f := v.LookupPath(cuelang.MakePath(cuelang.Str(p)))
			if !f.Exists() { // an optional field
				f = v.LookupPath(cuelang.MakePath(cuelang.Str(p).Optional()))
			}
			v = f
		}
		if !v.Exists() {
			t.Errorf("%s is not in the schema", def)
			continue
		}
		var got []string
		it, err := v.Fields(cuelang.Optional(true))
		if err != nil {
			t.Fatalf("%s: %v", def, err)
		}
		for it.Next() {
			got = append(got, it.Selector().Unquoted())
		}
		want := append(slices.Clone(known), fastRefused[def]...)
		slices.Sort(got)
		slices.Sort(want)
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%s: fields (-fast path +schema.cue):\n%s", def, d)
		}
	}
}

// TestAppendJSONString: what the fast path's encoder writes decodes to the
// string it was given, for every kind of character a CUE string holds.
func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uote`, `back\slash`, "tab\tnl\ncr\r", "\x00\x01\x1f\x7f",
		"<>&", "é ü 中 🙂", "\u2028\u2029", `\u0041`} {
		var got string
		if err := json.Unmarshal(appendJSONString(nil, s), &got); err != nil || got != s {
			t.Errorf("%q: decoded %q, %v", s, got, err)
		}
	}
}

// fastSchemaDigest is the digest of the definitions of schema.cue whose
// rules fastschema.go writes in Go, as they were when the rules were last
// checked against them.
const fastSchemaDigest = "1350977bb181df50"

// TestFastSchemaUnchanged fails when a definition the fast path's rules
// copy changes in schema.cue (a default, a pattern, a bound, a new
// condition): the Go rules must then be checked against it, since
// the fixtures may not exercise the change. Then set fastSchemaDigest to
// the digest this test prints.
func TestFastSchemaUnchanged(t *testing.T) {
	f, err := parser.ParseFile("schema.cue", berth.Schema)
	if err != nil {
		t.Fatal(err)
	}
	copied := map[string]bool{"#Name": true, "#Owner": true, "#Quantity": true, "#Duration": true, "#Cron": true,
		"#MIGProfile": true, "#Workloads": true, "#Teams": true, "#Team": true, "#FlavorQuota": true,
		"#ResourceQuota": true, "#Resources": true, "#Workload": true, "#Port": true, "#PortRef": true,
		"#Health": true, "#Probe": true, "#Rollout": true}
	h := sha256.New()
	found := 0
	for _, d := range f.Decls {
		fd, ok := d.(*ast.Field)
		if !ok {
			continue
		}
		name, _, _ := ast.LabelName(fd.Label)
		if !copied[name] {
			continue
		}
		found++
		b, err := format.Node(fd)
		if err != nil {
			t.Fatal(err)
		}
		h.Write(b)
	}
	if found != len(copied) {
		t.Fatalf("found %d of the %d definitions the fast path copies in schema.cue", found, len(copied))
	}
	if got := hex.EncodeToString(h.Sum(nil))[:16]; got != fastSchemaDigest {
		t.Errorf("schema.cue's definitions that fastschema.go copies changed (digest %s, was %s): check the rules in fastschema.go against them, then set fastSchemaDigest to %q", got, fastSchemaDigest, got)
	}
}

// TestInParallelRecovers: a panic on one of the fast path's goroutines
// sends the instance to CUE instead of killing the evaluation process.
func TestInParallelRecovers(t *testing.T) {
	err := inParallel(100, func(i int) error {
		if i == 57 {
			panic("boom")
		}
		return nil
	})
	var nf *errNotFast
	if !errors.As(err, &nf) {
		t.Fatalf("got %v, want the fast path to give up", err)
	}
}
