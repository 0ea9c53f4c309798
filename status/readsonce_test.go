package status_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/txtar"

	"github.com/berth-gpu/berth/fixtures/readsonce"
)

// TestGoldensReadOnce reads every golden of what people read about plans
// (pull-request and sync comments, statuses, the plan text and JSON of the
// CLI): no line, and no cell of a table, says a clause twice.
func TestGoldensReadOnce(t *testing.T) {
	var files []string
	for _, pattern := range []string{"testdata/*.golden", "gh/testdata/*.golden", "../cmd/berth/testdata/script/*.txtar"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 10 {
		t.Fatalf("found only %d goldens: %v", len(files), files)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		if strings.HasSuffix(f, ".txtar") {
			text = comparedOutput(t, f)
		}
		for i, line := range strings.Split(text, "\n") {
			if strings.HasPrefix(line, "berth/policy") {
				// Who may approve is not a plan's reason (two requirements
				// with the same approvers each name them).
				continue
			}
			for _, cell := range strings.Split(line, " | ") {
				if r := readsonce.Repeated(cell); r != "" {
					t.Errorf("%s:%d says %q twice: %s", f, i+1, r, cell)
				}
			}
		}
	}
}

// TestScenarioDecisionsReadOnce checks the decisions of every pull-request
// scenario as the comment renders them.
func TestScenarioDecisionsReadOnce(t *testing.T) {
	for name, mk := range scenarios() {
		v, _ := mk()
		for _, r := range v.Rows {
			for _, s := range readsonce.Texts(r.Decision, v.Time) {
				if rep := readsonce.Repeated(s); rep != "" {
					t.Errorf("%s: %s: %q says %q twice", name, r.Decision.Workload, s, rep)
				}
			}
		}
		for _, l := range [][]string{v.Blast.OverQuota, v.Blast.Unadmittable, v.Blast.Preempted, v.Blast.Displaced, v.Blast.Exposed} {
			for _, s := range l {
				if rep := readsonce.Repeated(s); rep != "" {
					t.Errorf("%s: %q says %q twice", name, s, rep)
				}
			}
		}
	}
}

// comparedOutput is what a testscript compares berth's output with (the
// files named by "cmp stdout" or "cmp stderr"), not its inputs.
func comparedOutput(t *testing.T, path string) string {
	a, err := txtar.ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, line := range strings.Split(string(a.Comment), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "cmp" && (f[1] == "stdout" || f[1] == "stderr") {
			want[f[2]] = true
		}
	}
	var out []string
	for _, f := range a.Files {
		if want[f.Name] {
			out = append(out, string(f.Data))
		}
	}
	return strings.Join(out, "\n")
}
