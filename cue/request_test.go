package cue

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/berth-gpu/berth/fixtures/gen"
)

// subtree is the tree of t's files at paths: what a child gets.
func subtree(t *tree, paths []string) *tree {
	files := make(map[string][]byte, len(paths))
	for _, p := range paths {
		files[p] = t.files[p]
	}
	return newTree(files)
}

// resultJSON is everything a result says, for comparing two.
func resultJSON(t *testing.T, r *instanceResult) string {
	t.Helper()
	if r == nil {
		return "nil"
	}
	w, _, err := toWire(r, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(struct {
		W   *wireResult
		Key [32]byte
	}{w, r.key})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRequestFilesEvaluateAlike: every instance of every fixture
// repository evaluates to the same result, objects, errors, positions,
// dependencies and cache key, from the files requestFiles sends a child
// as from the whole tree, on the fast path and through CUE.
func TestRequestFilesEvaluateAlike(t *testing.T) {
	repos := map[string]*tree{}
	add := func(name string, tr *tree) {
		if _, dup := repos[name]; dup {
			t.Fatalf("%s twice", name)
		}
		repos[name] = tr
	}
	dirs, _ := filepath.Glob("../fixtures/repos/*")
	broken, _ := filepath.Glob("../fixtures/repos/broken/*")
	for _, d := range append(dirs, broken...) {
		name := filepath.Base(d)
		if fi, err := os.Stat(filepath.Join(d, "cue.mod")); err != nil || !fi.IsDir() {
			if name != "no-package-clause" && name != "file-too-large" && name != "non-utf8" && name != "symlink-outside" {
				continue // not a repository (broken/ itself)
			}
		}
		if strings.Contains(name, "bomb") || name == "runaway" {
			continue // in-process evaluation has no bounds
		}
		tr, _, _ := readTree(os.DirFS(d), Options{}.withDefaults())
		if tr != nil {
			add(filepath.ToSlash(d), tr)
		}
	}
	for i, opts := range []gen.Options{{Teams: 3, Workloads: 60, Seed: 1}, {Teams: 2, Workloads: 40, Seed: 2, OnePackage: true}} {
		tr, errs, _ := readTree(gen.Generate(opts).FS(), Options{}.withDefaults())
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		add(fmt.Sprintf("gen-%d", i), tr)
	}
	add("imports", importsTree(t))
	if len(repos) < 10 {
		t.Fatalf("only %d repositories", len(repos))
	}

	for name, full := range repos {
		for _, dir := range full.dirs {
			paths := full.requestFiles([]string{dir})
			sub := subtree(full, paths)
			fastFull, fastSub := newFastEval(full).try(dir), newFastEval(sub).try(dir)
			if a, b := resultJSON(t, fastFull), resultJSON(t, fastSub); a != b {
				t.Errorf("%s: %s: fast path: whole tree %s, request %s", name, dir, a, b)
			}
			evFull, err := newEvaluator(full)
			if err != nil {
				t.Fatal(err)
			}
			evSub, err := newEvaluator(sub)
			if err != nil {
				t.Fatal(err)
			}
			rsFull, err1 := evFull.evaluateDirsSafely([]string{dir}, &running{})
			rsSub, err2 := evSub.evaluateDirsSafely([]string{dir}, &running{})
			if err1 != nil || err2 != nil {
				t.Fatalf("%s: %s: %v, %v", name, dir, err1, err2)
			}
			if a, b := resultJSON(t, rsFull[0]), resultJSON(t, rsSub[0]); a != b {
				t.Errorf("%s: %s: CUE: whole tree\n%s\nrequest\n%s", name, dir, a, b)
			}
			if name == "imports" && dir == "teams/ml" {
				// The instance that imports through two packages, and
				// takes its team from the directory above, is valid: the
				// comparison is of what it defines, not of errors.
				r := rsFull[0]
				var keys []string
				for _, o := range r.objects {
					keys = append(keys, o.key)
				}
				slices.Sort(keys)
				if len(r.errs) > 0 || !slices.Equal(keys, []string{"teams.ml", "workloads.ml.train"}) {
					t.Errorf("imports: teams/ml: %s", resultJSON(t, r))
				}
			}
		}
	}
}

// importsTree is a repository whose instances reach other directories
// every way CUE allows: a package split over parent directories, an
// import chain inside the module, an import with a package qualifier and
// the module's root package. (A package under cue.mod/pkg is sent, but
// CUE cannot import one from berth's in-memory tree.)
func importsTree(t *testing.T) *tree {
	t.Helper()
	files := fstest.MapFS{
		"cue.mod/module.cue":                  {Data: []byte("module: \"example.com/acme@v0\"\nlanguage: version: \"v0.9.0\"\n")},
		"cue.mod/pkg/vendor.io/base/base.cue": {Data: []byte("package base\n\n#Image: \"ghcr.io/acme/base:1\"\n")},
		"root.cue":                            {Data: []byte("package acme\n\n#Retries: 2\n")},
		"lib/a/a.cue":                         {Data: []byte("package a\n\nimport \"example.com/acme/lib/b\"\n\n#Train: b.#Train & {priority: \"high\"}\n")},
		"lib/b/b.cue":                         {Data: []byte("package b\n\nimport acme \"example.com/acme\"\n\n#Train: {kind: \"training\", retries: acme.#Retries, command: [\"python\", \"train.py\"], ...}\n")},
		"lib/c/c.cue":                         {Data: []byte("package c\n\n#Unused: 1\n")},
		"teams/teams.cue":                     {Data: []byte("package teams\n\nteams: ml: {owners: [\"@acme/ml\"], quota: [{flavor: \"h100\", gpu: nominal: 8}]}\n")},
		"teams/ml/train.cue":                  {Data: []byte("package teams\n\nimport x \"example.com/acme/lib/a:a\"\n\nworkloads: ml: train: x.#Train & {resources: {gpu: 1, flavor: \"h100\"}}\n")},
		"teams/other/other.cue":               {Data: []byte("package other\n\nimport \"example.com/acme/lib/c\"\n\n_x: c.#Unused\n")},
		"platform/flavors.cue":                {Data: []byte("package platform\n\nflavors: h100: gpuModel: \"H100\"\nclusters: box: {backend: \"local\", simulatedGPUs: \"8xH100\"}\n")},
	}
	tr, errs, _ := readTree(files, Options{}.withDefaults())
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return tr
}

// TestRequestFilesFollowImports: a request holds the instance, the
// directories above it, what it imports transitively and cue.mod; not an
// unrelated instance or a package only another instance imports.
func TestRequestFilesFollowImports(t *testing.T) {
	tr := importsTree(t)
	got := tr.requestFiles([]string{"teams/ml"})
	want := []string{
		"cue.mod/module.cue",
		"cue.mod/pkg/vendor.io/base/base.cue",
		"lib/a/a.cue",
		"lib/b/b.cue",
		"root.cue",
		"teams/ml/train.cue",
		"teams/teams.cue",
	}
	if !slices.Equal(got, want) {
		t.Errorf("requestFiles(teams/ml)\n got %q\nwant %q", got, want)
	}
	if got := tr.requestFiles([]string{"platform"}); !slices.Equal(got, []string{"cue.mod/module.cue", "cue.mod/pkg/vendor.io/base/base.cue", "platform/flavors.cue", "root.cue"}) {
		t.Errorf("requestFiles(platform) = %q", got)
	}
	all := tr.paths()

	// Whatever cannot be followed for certain sends everything.
	for name, change := range map[string]func(files map[string][]byte){
		"an import that does not parse": func(f map[string][]byte) { f["lib/b/b.cue"] = []byte("package b\n\nimport (\n\t\"example.com/acme\n") },
		"a module path not read here":   func(f map[string][]byte) { f["cue.mod/module.cue"] = []byte("module: strings.ToLower(\"X\")\n") },
		"an import with a version": func(f map[string][]byte) {
			f["lib/a/a.cue"] = []byte("package a\n\nimport \"example.com/acme/lib/b@v0\"\n")
		},
		// Imports that name no directory of the tree (once, "//etc" never
		// ended the walk up to the root).
		"an import out of the module": func(f map[string][]byte) {
			f["lib/a/a.cue"] = []byte("package a\n\nimport \"example.com/acme/../etc\"\n")
		},
		"an import of an absolute path": func(f map[string][]byte) {
			f["lib/a/a.cue"] = []byte("package a\n\nimport \"example.com/acme//etc\"\n")
		},
	} {
		files := map[string][]byte{}
		for p, b := range tr.files {
			files[p] = b
		}
		change(files)
		if got := newTree(files).requestFiles([]string{"teams/ml"}); !slices.Equal(got, all) {
			t.Errorf("%s: requestFiles = %q, want every file", name, got)
		}
	}
}
