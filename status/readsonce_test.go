package status_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

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
		for i, line := range strings.Split(string(b), "\n") {
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
