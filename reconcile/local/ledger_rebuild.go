package local

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/berth-gpu/berth"
)

// RebuildOptions configure RebuildLedger.
type RebuildOptions struct {
	// Force rebuilds a ledger that the check finds sound (it loses the
	// records of runs that only wait; the engine queues them again).
	Force bool
	// Now stamps the name the old file is kept under. Default time.Now.
	Now func() time.Time
}

// Rebuilt is what RebuildLedger did.
type Rebuilt struct {
	Path string
	// Kept is where the old file went ("" when there was none).
	Kept string
	// Runs are the runs the new ledger holds, sorted.
	Runs []RebuiltRun
	// Unrecorded are run directories (relative to the state directory)
	// with no run record file: runs of a berth older than the record
	// files, or whose file was removed. They are not in the new ledger.
	Unrecorded []string
}

// RebuiltRun is one run of a rebuilt ledger.
type RebuiltRun struct {
	Workload berth.WorkloadID
	RunID    string
	Attempts int
}

// ErrLedgerSound is returned by RebuildLedger for a ledger the check finds
// sound, unless Force is set.
var ErrLedgerSound = errors.New("the ledger is sound: nothing to rebuild (--force rebuilds it anyway, and forgets the runs that only wait)")

// RebuildLedger rebuilds the ledger of a local cluster's state directory
// from the run record files its run directories hold (run.json, written
// with every ledger write of a run that started). The old file is kept as
// berth.db.damaged-<time>. It refuses while another process (berth serve)
// holds the ledger.
//
// A run's record file is never behind what was done to its pods, and the
// rebuilt Cluster reads each pod's exit.json and lock as it always does, so
// a run that finished is finished in the new ledger and is never started
// again. What is lost: runs that only waited (they had no directory); the
// engine queues them again from Git, from the time of the rebuild.
func RebuildLedger(stateDir string, opts RebuildOptions) (Rebuilt, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	stateDir, err := filepath.Abs(stateDir)
	if err != nil {
		return Rebuilt{}, err
	}
	path := filepath.Join(stateDir, dbFile)
	out := Rebuilt{Path: path}
	_, err = checkLedger(path)
	var damaged *DamagedError
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.As(err, &damaged):
	case err != nil:
		return out, err
	case !opts.Force:
		return out, fmt.Errorf("ledger %s: %w", path, ErrLedgerSound)
	}
	// Hold the old file's lock (bbolt's, exclusive) while the new one is
	// made: a berth serve starting meanwhile waits, then opens the new one.
	if f, err := os.Open(path); err == nil {
		defer f.Close()
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return out, fmt.Errorf("ledger %s: %w", path, errStateDirBusy)
			}
			return out, fmt.Errorf("ledger %s: lock: %w", path, err)
		}
	}
	recs, unrecorded, err := readRunRecords(stateDir)
	if err != nil {
		return out, err
	}
	out.Unrecorded = unrecorded
	tmp := path + ".rebuild"
	os.Remove(tmp)
	if err := writeLedger(tmp, recs); err != nil {
		os.Remove(tmp)
		return out, fmt.Errorf("ledger %s: %w", tmp, err)
	}
	if _, err := os.Stat(path); err == nil {
		out.Kept = path + ".damaged-" + opts.Now().UTC().Format("20060102T150405Z")
		if err := os.Rename(path, out.Kept); err != nil {
			os.Remove(tmp)
			return out, err
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return out, err
	}
	for _, r := range recs {
		out.Runs = append(out.Runs, RebuiltRun{Workload: r.Workload, RunID: r.RunID, Attempts: r.Attempts})
	}
	return out, nil
}

// readRunRecords reads runs/<team>/<name>/<runID>/run.json under the state
// directory, sorted by run.
func readRunRecords(stateDir string) ([]*record, []string, error) {
	var recs []*record
	var unrecorded []string
	root := filepath.Join(stateDir, "runs")
	teams, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	for _, team := range teams {
		names, _ := os.ReadDir(filepath.Join(root, team.Name()))
		for _, name := range names {
			runs, _ := os.ReadDir(filepath.Join(root, team.Name(), name.Name()))
			for _, run := range runs {
				if !run.IsDir() {
					continue
				}
				rel := filepath.Join("runs", team.Name(), name.Name(), run.Name())
				b, err := os.ReadFile(filepath.Join(stateDir, rel, fileRunRecord))
				if errors.Is(err, fs.ErrNotExist) {
					unrecorded = append(unrecorded, rel)
					continue
				}
				if err != nil {
					return nil, nil, err
				}
				r := &record{}
				if err := json.Unmarshal(b, r); err != nil {
					return nil, nil, fmt.Errorf("%s: %w", filepath.Join(rel, fileRunRecord), err)
				}
				if runDir(r.Workload, r.RunID) != filepath.ToSlash(rel) || r.Attempt == nil {
					return nil, nil, fmt.Errorf("%s: a record of %s run %s, attempt %v: not this directory's", filepath.Join(rel, fileRunRecord), r.Workload, r.RunID, r.Attempt != nil)
				}
				if n := lastAttemptDir(filepath.Join(stateDir, rel)); n > r.Attempt.N {
					// Cannot happen (the record is written before an
					// attempt's pods are spawned); say so rather than guess.
					return nil, nil, fmt.Errorf("%s: the record's latest attempt is %d, but attempt-%d exists", filepath.Join(rel, fileRunRecord), r.Attempt.N, n)
				}
				recs = append(recs, r)
			}
		}
	}
	slices.SortFunc(recs, func(a, b *record) int { return a.Key().Compare(b.Key()) })
	sort.Strings(unrecorded)
	return recs, unrecorded, nil
}

func lastAttemptDir(dir string) int {
	ents, _ := os.ReadDir(dir)
	last := 0
	for _, e := range ents {
		if n, ok := strings.CutPrefix(e.Name(), "attempt-"); ok && e.IsDir() {
			if i, err := strconv.Atoi(n); err == nil && i > last {
				last = i
			}
		}
	}
	return last
}

// writeLedger writes a new ledger file with recs, in one transaction.
func writeLedger(path string, recs []*record) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketRuns)
		if err != nil {
			return err
		}
		return putRecords(b, recs)
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return err
}
