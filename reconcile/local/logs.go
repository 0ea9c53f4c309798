package local

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/berth-gpu/berth"
)

// RunLogs are the log files of one attempt of a run, found from the files
// alone (no ledger: `berth logs` runs while `berth serve` holds it).
type RunLogs struct {
	Workload berth.WorkloadID
	RunID    string
	Attempt  int
	Dir      string
	Pods     []PodLogs
}

// PodLogs are one pod's files. Stdout and Stderr list the files that
// exist, oldest first (the rotated .1, then the current one).
type PodLogs struct {
	Pod    int
	Dir    string
	Stdout []string
	Stderr []string
	Shim   string
	// Exit is how the process ended; nil while it runs (or if it never
	// recorded an end).
	Exit *Exit
}

// ErrNoRuns means the state directory has no run of the workload.
var ErrNoRuns = errors.New("no runs")

// LatestLogs finds the logs of the workload's latest attempt, of any run:
// the attempt directory created last.
func LatestLogs(stateDir string, id berth.WorkloadID) (*RunLogs, error) {
	base := filepath.Join(stateDir, "runs", pathSafe(id.Team()), pathSafe(id.Name()))
	runs, err := os.ReadDir(base)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && len(runs) == 0) {
		return nil, fmt.Errorf("workload %s: %w in %s", id, ErrNoRuns, stateDir)
	}
	if err != nil {
		return nil, fmt.Errorf("workload %s: %w", id, err)
	}
	type cand struct {
		run     string
		attempt int
		mod     time.Time
	}
	var best *cand
	for _, r := range runs {
		if !r.IsDir() {
			continue
		}
		attempts, _ := os.ReadDir(filepath.Join(base, r.Name()))
		for _, a := range attempts {
			n, ok := attemptNumber(a.Name())
			if !ok {
				continue
			}
			info, err := a.Info()
			if err != nil {
				continue
			}
			c := cand{r.Name(), n, info.ModTime()}
			if best == nil || c.mod.After(best.mod) || (c.mod.Equal(best.mod) && (c.run > best.run || c.run == best.run && c.attempt > best.attempt)) {
				best = &c
			}
		}
	}
	if best == nil {
		return nil, fmt.Errorf("workload %s: %w in %s", id, ErrNoRuns, stateDir)
	}
	return Logs(stateDir, id, unescape(best.run), best.attempt)
}

// Logs finds the logs of one attempt of a run (attempt 0: the latest).
func Logs(stateDir string, id berth.WorkloadID, runID string, attempt int) (*RunLogs, error) {
	run := filepath.Join(stateDir, runDir(id, runID))
	if attempt == 0 {
		entries, err := os.ReadDir(run)
		if err != nil {
			return nil, fmt.Errorf("workload %s run %s: %w", id, runID, err)
		}
		for _, e := range entries {
			if n, ok := attemptNumber(e.Name()); ok && n > attempt {
				attempt = n
			}
		}
		if attempt == 0 {
			return nil, fmt.Errorf("workload %s run %s: %w", id, runID, ErrNoRuns)
		}
	}
	dir := filepath.Join(stateDir, attemptDir(id, runID, attempt))
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("workload %s run %s attempt %d: %w", id, runID, attempt, err)
	}
	out := &RunLogs{Workload: id, RunID: runID, Attempt: attempt, Dir: dir}
	for _, e := range entries {
		i, ok := strings.CutPrefix(e.Name(), "pod-")
		n, err := strconv.Atoi(i)
		if !ok || err != nil || !e.IsDir() {
			continue
		}
		pd := filepath.Join(dir, e.Name())
		p := PodLogs{Pod: n, Dir: pd, Shim: filepath.Join(pd, fileShim),
			Stdout: existing(pd, fileStdout), Stderr: existing(pd, fileStderr)}
		if ex, ok, _ := readExit(pd); ok {
			p.Exit = &ex
		}
		out.Pods = append(out.Pods, p)
	}
	slices.SortFunc(out.Pods, func(a, b PodLogs) int {
		return cmp.Compare(a.Pod, b.Pod)
	})
	return out, nil
}

func existing(dir, name string) []string {
	var out []string
	for _, p := range []string{filepath.Join(dir, name+".1"), filepath.Join(dir, name)} {
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func attemptNumber(name string) (int, bool) {
	s, ok := strings.CutPrefix(name, "attempt-")
	n, err := strconv.Atoi(s)
	return n, ok && err == nil && n > 0
}

// unescape reverses pathSafe.
func unescape(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 2
				continue
			}
		}
		if s[i] == '%' {
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
