package cue_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-gpu/berth/cue"
	goldens "github.com/berth-gpu/berth/fixtures/golden"
)

var update = flag.Bool("update", false, "rewrite the golden files of fixtures/repos/broken")

const brokenDir = "../fixtures/repos/broken"

// caseOptions is options.json in a broken repository: the loader options
// its test uses (a small file size limit, a short timeout) instead of the
// defaults `berth validate` uses, and whether its evaluation runs away (so
// that only a child process, which can be killed, may evaluate it).
type caseOptions struct {
	MaxFileSize int64  `json:"maxFileSize"`
	Timeout     string `json:"timeout"`
	Runaway     bool   `json:"runaway"`
}

func readCaseOptions(t testing.TB, dir string) (opts cue.Options, runaway bool) {
	b, err := os.ReadFile(filepath.Join(dir, "options.json"))
	if errors.Is(err, os.ErrNotExist) {
		return cue.Options{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	var co caseOptions
	if err := json.Unmarshal(b, &co); err != nil {
		t.Fatalf("%s/options.json: %v", dir, err)
	}
	opts = cue.Options{MaxFileSize: co.MaxFileSize}
	if co.Timeout != "" {
		if opts.Timeout, err = time.ParseDuration(co.Timeout); err != nil {
			t.Fatal(err)
		}
	}
	return opts, co.Runaway
}

// brokenCases lists the broken repositories, sorted.
func brokenCases(t testing.TB) []string {
	entries, err := os.ReadDir(brokenDir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	if len(out) == 0 {
		t.Fatal("no broken repositories")
	}
	return out
}

// renderText is what `berth validate` prints to stderr for an invalid
// repository; cmd/berth's tests check the real command prints the same.
func renderText(errs cue.Errors) string {
	var b strings.Builder
	for _, e := range errs {
		b.WriteString(e.Error())
		b.WriteByte('\n')
	}
	noun := "errors"
	if len(errs) == 1 {
		noun = "error"
	}
	fmt.Fprintf(&b, "%d %s\n", len(errs), noun)
	return b.String()
}

// renderJSON is what `berth validate -o json` prints for an invalid
// repository.
func renderJSON(t testing.TB, errs cue.Errors) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(struct {
		Valid  bool       `json:"valid"`
		Errors cue.Errors `json:"errors"`
	}{false, errs}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestBrokenRepositories loads every repository in fixtures/repos/broken
// as berth's commands do, in a child process, and compares the errors with
// its expected.txt and expected.json. go test ./cue/ -update rewrites them.
func TestBrokenRepositories(t *testing.T) {
	for _, name := range brokenCases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(brokenDir, name)
			opts, _ := readCaseOptions(t, dir)
			cfg, err := cue.Load(os.DirFS(dir), isolated(t, opts))
			var errs cue.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Load returned (%v, %v), want cue.Errors", cfg, err)
			}
			checkActionable(t, errs)
			golden(t, filepath.Join(dir, "expected.txt"), renderText(errs))
			golden(t, filepath.Join(dir, "expected.json"), renderJSON(t, errs))
		})
	}
}

// checkActionable holds every error to what a person needs to act on it:
// where (a file, and a line and column unless the whole file is the
// problem), what (a path into the configuration, unless the problem is a
// file), and a message that is not CUE's internal shorthand.
func checkActionable(t *testing.T, errs cue.Errors) {
	t.Helper()
	for _, e := range errs {
		if len(e.Positions) == 0 || !e.Positions[0].IsValid() {
			t.Errorf("error without a position: %v", e)
			continue
		}
		if strings.HasPrefix(e.Positions[0].File, cue.SchemaPosFile) {
			t.Errorf("error whose first position is the schema's, not the user's: %v", e)
		}
		if e.Path == "" {
			fileLevel := strings.HasPrefix(e.Message, "syntax error") || strings.HasPrefix(e.Message, "import ") ||
				strings.Contains(e.Message, "UTF-8") || strings.Contains(e.Message, "package clause")
			if e.Positions[0].Line != 0 && !fileLevel {
				t.Errorf("error with a line but no CUE path: %v", e)
			}
		} else if e.Positions[0].Line == 0 {
			t.Errorf("error with a CUE path but no line: %v", e)
		}
		for _, bad := range []string{"_|_", "#Config", "#Workloads", "(and ", "%!"} {
			if strings.Contains(e.Message, bad) {
				t.Errorf("message contains %q: %v", bad, e)
			}
		}
	}
}

func golden(t *testing.T, file, got string) {
	t.Helper()
	goldens.Check(t, file, []byte(got), *update)
}
