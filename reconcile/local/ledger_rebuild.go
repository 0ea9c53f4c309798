package local

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
)

// RebuildOptions configure RebuildLedger.
type RebuildOptions struct {
	// Force rebuilds a ledger that the check finds sound.
	Force bool
	// Config, when set, is the repository's configuration: a run
	// directory without a record file (left by a berth older than the
	// record files) is rebuilt from its latest attempt's pod files and its
	// workload's spec in Config (recordFromPods). Without Config, or for
	// a workload Config lacks, such a directory is only listed.
	Config *berth.Config
	// Now stamps the name the old file is kept under. Default time.Now.
	Now func() time.Time
}

// Rebuilt is what RebuildLedger did.
type Rebuilt struct {
	Path string
	// Kept is where the old file went ("" when there was none).
	Kept string
	// Runs are the runs the new ledger holds, sorted: those that started,
	// from their record files, and those that only wait, from the queue
	// file.
	Runs []RebuiltRun
	// FromPods are the run directories (relative to the state directory)
	// without a record file that were rebuilt from their pods' files and
	// Config.
	FromPods []string
	// Unrecorded are run directories with no run record file that could
	// not be rebuilt (why, for each): runs of a berth older than the
	// record files, or whose file was removed. They are not in the new
	// ledger.
	Unrecorded []string
}

// RebuiltRun is one run of a rebuilt ledger.
type RebuiltRun struct {
	Workload berth.WorkloadID
	RunID    string
	Attempts int
	// QueuedSince is set for a run that waits.
	QueuedSince time.Time
}

// ErrLedgerSound is returned by RebuildLedger for a ledger the check finds
// sound, unless Force is set.
var ErrLedgerSound = errors.New("the ledger is sound: nothing to rebuild (--force rebuilds it anyway)")

// RebuildLedger rebuilds the ledger of a local cluster's state directory
// from the run record files its run directories hold (run.json, written
// with every ledger write of a run that started). The old file is kept as
// berth.db.damaged-<time>. It refuses while another process (berth serve)
// holds the ledger.
//
// A run's record file is never behind what was done to its pods, and the
// rebuilt Cluster reads each pod's exit.json and lock as it always does, so
// a run that finished is finished in the new ledger and is never started
// again. Runs that only wait (they have no directory) come from the queue
// file (queue.json), with the time they were queued; the queue file may
// be one Apply behind, so a run it lists that has a record file is taken
// from the record file. A run queued in the Apply before a crash may be
// missing: the engine queues it again from Git.
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
	for _, rel := range unrecorded {
		if opts.Config == nil {
			out.Unrecorded = append(out.Unrecorded, rel+": no record file (give the repository to rebuild it from its pods' files)")
			continue
		}
		r, err := recordFromPods(stateDir, rel, opts.Config)
		if err != nil {
			out.Unrecorded = append(out.Unrecorded, rel+": "+err.Error())
			continue
		}
		recs = append(recs, r)
		out.FromPods = append(out.FromPods, rel)
	}
	waiting, err := readQueueFile(stateDir)
	if err != nil {
		return out, err
	}
	recs = withWaiting(recs, waiting)
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
		run := RebuiltRun{Workload: r.Workload, RunID: r.RunID, Attempts: r.Attempts}
		if r.Waiting {
			run.QueuedSince = r.QueuedSince
		}
		out.Runs = append(out.Runs, run)
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
	slices.Sort(unrecorded)
	return recs, unrecorded, nil
}

// recordFromPods rebuilds the record of a run directory that has no
// record file, from what an older berth left in it and the workload's
// spec in the repository: the latest attempt's pods (their spec.json:
// command, environment, and the devices in CUDA_VISIBLE_DEVICES) and the
// workload's kind, priority, retries, resources and spec digest as the
// repository has them now. The rebuilt Cluster reads each pod's exit.json
// and lock as it always does, so a run that finished stays finished and
// one that runs is adopted. Lost: the placement (which GPUs by index) of
// a run that still runs, and the preemptions among its attempts.
func recordFromPods(stateDir, rel string, cfg *berth.Config) (*record, error) {
	parts := strings.Split(filepath.ToSlash(rel), "/")
	if len(parts) != 4 {
		return nil, errors.New("not a run directory")
	}
	var names [3]string
	for i, p := range parts[1:] {
		u, err := url.PathUnescape(p)
		if err != nil {
			return nil, fmt.Errorf("not a run directory berth names: %w", err)
		}
		names[i] = u
	}
	id, runID := berth.WorkloadID(names[0]+"/"+names[1]), names[2]
	if runDir(id, runID) != filepath.ToSlash(rel) {
		return nil, errors.New("not a run directory berth names")
	}
	w, ok := cfg.Workloads[id]
	if !ok {
		return nil, fmt.Errorf("workload %s is not in the repository, so its kind is unknown", id)
	}
	n := lastAttemptDir(filepath.Join(stateDir, rel))
	if n == 0 {
		return nil, errors.New("no attempt started")
	}
	a := &attempt{N: n}
	masterPort := 0
	for k := 0; ; k++ {
		dir := podDir(id, runID, n, k)
		b, err := os.ReadFile(filepath.Join(stateDir, dir, fileSpec))
		if errors.Is(err, fs.ErrNotExist) {
			if _, serr := os.Stat(filepath.Join(stateDir, dir)); serr == nil {
				return nil, fmt.Errorf("%s has no %s", dir, fileSpec)
			}
			break
		}
		if err != nil {
			return nil, err
		}
		var spec shimSpec
		if err := json.Unmarshal(b, &spec); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, fileSpec), err)
		}
		p := podSpec{Dir: filepath.ToSlash(dir), Argv: spec.Argv, Env: spec.Env, Secrets: spec.Secrets, Note: spec.Note}
		for _, kv := range spec.Env {
			switch k, v, _ := strings.Cut(kv, "="); k {
			case "CUDA_VISIBLE_DEVICES":
				if v != "" {
					p.Devices = strings.Split(v, ",")
				}
			case "BERTH_MASTER_PORT":
				masterPort, _ = strconv.Atoi(v)
			}
		}
		if fi, err := os.Stat(filepath.Join(stateDir, dir, fileSpec)); err == nil && (a.StartedAt.IsZero() || fi.ModTime().Before(a.StartedAt)) {
			a.StartedAt = fi.ModTime().UTC()
		}
		a.Pods = append(a.Pods, p)
	}
	if len(a.Pods) == 0 {
		return nil, fmt.Errorf("attempt %d has no pod", n)
	}
	_, tier := cfg.Priority(w)
	return &record{
		RunRecord: reconcile.RunRecord{
			Workload: id, RunID: runID, Kind: w.Kind, Digest: berth.SpecDigest(w), Priority: tier.Value,
			Resources: w.Resources, MaxDuration: w.MaxDuration, Attempts: n,
		},
		Retries: w.Retries, Attempt: a, MasterPort: masterPort,
	}, nil
}

// readQueueFile reads the records of the runs that only wait.
func readQueueFile(stateDir string) ([]*record, error) {
	b, err := os.ReadFile(filepath.Join(stateDir, fileQueue))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var recs []*record
	if err := json.Unmarshal(b, &recs); err != nil {
		return nil, fmt.Errorf("%s: %w (remove it to rebuild without the runs that only wait: berth serve queues them again from Git)", fileQueue, err)
	}
	for i, r := range recs {
		if r == nil || r.Workload == "" || r.RunID == "" || r.Attempts != 0 || r.Attempt != nil {
			return nil, fmt.Errorf("%s: entry %d is not a run that only waits (remove the file to rebuild without them)", fileQueue, i)
		}
	}
	return recs, nil
}

// withWaiting adds the runs that only wait to the records of runs that
// started, sorted; a run's record file wins over the queue file.
func withWaiting(recs, waiting []*record) []*record {
	have := make(map[berth.RunKey]bool, len(recs))
	for _, r := range recs {
		have[r.Key()] = true
	}
	for _, r := range waiting {
		if !have[r.Key()] {
			have[r.Key()] = true
			recs = append(recs, r)
		}
	}
	slices.SortFunc(recs, func(a, b *record) int { return a.Key().Compare(b.Key()) })
	return recs
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
