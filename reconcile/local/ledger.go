package local

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
)

// The ledger is one bbolt bucket of runs, keyed "team/name\x00runID", each
// value a JSON record. Every write is one transaction, so a crash leaves
// either the old record or the new one. The Cluster keeps the decoded
// records in memory (it is the database's only writer: bbolt's file lock
// keeps other processes out), so Observe reads no database pages.
var bucketRuns = []byte("runs")

const dbFile = "berth.db"

// record is what the ledger knows of one run: the run record every
// backend keeps (its Preemptions count the attempts before the latest that
// ended in a preemption), and this machine's processes.
type record struct {
	reconcile.RunRecord
	// Retries is the workload's retries when it was last queued or started:
	// a failed run with Attempts <= Retries waits to be retried.
	Retries  int    `json:"retries"`
	Revision string `json:"revision,omitempty"`

	// Waiting is true while the run is queued.
	Waiting bool `json:"waiting,omitempty"`
	// MasterPort is the run's BERTH_MASTER_PORT, kept across attempts.
	MasterPort int `json:"masterPort,omitempty"`
	// Attempt is the latest attempt.
	Attempt *attempt `json:"attempt,omitempty"`
	// Stop is a stop Apply asked of the latest attempt: once its pods have
	// ended, the run is in Stop.Phase.
	Stop *stopRequest `json:"stop,omitempty"`
	// Ended is the latest attempt's end as Apply last saw it (exit.json
	// folded in), so an ended run needs no file read and survives its run
	// directory being cleaned up.
	Ended *ending `json:"ended,omitempty"`
	// Service is how the run's replicas are reached (a service, inference
	// server or notebook with ports): berth's proxy and probes read it.
	Service *serviceSpec `json:"service,omitempty"`
	// Retiring is the attempt a rolling update replaces while the new one
	// becomes ready; recorded so that a crash in between leaves no pod
	// unaccounted for (recover stops it).
	Retiring *attempt `json:"retiring,omitempty"`
	// DropCheckpoints is set when the spec does not keep the run's
	// checkpoints: they are removed when the run succeeds or is stopped
	// for good.
	DropCheckpoints bool `json:"dropCheckpoints,omitempty"`
	// OutputsRetention is how long a step's outputs stay after its run
	// succeeded (zero: it has none); OutputsRemoved says they are gone.
	OutputsRetention berth.Duration `json:"outputsRetention,omitempty"`
	OutputsRemoved   bool           `json:"outputsRemoved,omitempty"`
	// Idle is a notebook's idle limit when it was started: berth stops it
	// once it has been idle that long (the configuration's newer limit,
	// where Observe has seen one, wins).
	Idle berth.Duration `json:"idle,omitempty"`
}

// serviceSpec is the part of a workload's spec that says how its replicas
// are reached.
type serviceSpec struct {
	Ports   []berth.Port   `json:"ports"`
	Health  *berth.Health  `json:"health,omitempty"`
	Rollout *berth.Rollout `json:"rollout,omitempty"`
	Expose  *berth.Expose  `json:"expose,omitempty"`
}

// attempt is one start of a run: one pod per replica or worker.
type attempt struct {
	N    int       `json:"n"`
	Pods []podSpec `json:"pods"`
	// Starting is recorded before the first shim is spawned and cleared
	// once every pod has started: a Cluster that finds it set after a crash
	// finishes the start (pods that started are adopted, never restarted).
	Starting  bool      `json:"starting,omitempty"`
	StartedAt time.Time `json:"startedAt,omitzero"`
	// Scratch is the attempt's scratch directory, relative to the volume
	// root: removed when the attempt ends.
	Scratch string `json:"scratch,omitempty"`
}

// podSpec is everything a pod's shim needs, so an interrupted start can be
// finished from the ledger alone.
type podSpec struct {
	Dir     string   `json:"dir"` // relative to the state directory
	Argv    []string `json:"argv"`
	Env     []string `json:"env"`
	Devices []string `json:"devices,omitempty"` // GPU or MIG device UUIDs
	Note    string   `json:"note,omitempty"`
	// Ports are the ports on 127.0.0.1 this pod was told to listen on,
	// one per port of the workload, in its order: every replica of a
	// service gets its own.
	Ports []int `json:"ports,omitempty"`
	// WorkDir is the process's working directory when it is not the
	// pod's own work/ (a notebook's directory, kept across restarts);
	// absolute.
	WorkDir string `json:"workDir,omitempty"`
}

// workDir is the pod's working directory, absolute.
func (p podSpec) workDir(stateDir string) string {
	if p.WorkDir != "" {
		return p.WorkDir
	}
	return filepath.Join(stateDir, p.Dir, dirWork)
}

type stopRequest struct {
	Phase  reconcile.Phase `json:"phase"`
	Reason string          `json:"reason"`
	At     time.Time       `json:"at"`
	// Idle: berth stopped a notebook that was idle past its limit; the
	// run is over (Observe reports it finished) until its runId changes.
	Idle bool `json:"idle,omitempty"`
}

type ending struct {
	Phase      reconcile.Phase `json:"phase"`
	Reason     string          `json:"reason,omitempty"`
	FinishedAt time.Time       `json:"finishedAt"`
}

// dbKey is a run's key in the bucket: "team/name\x00runID", so the
// bucket's byte order is the runs' order.
func dbKey(k berth.RunKey) []byte { return []byte(string(k.Workload) + "\x00" + k.RunID) }

func (r *record) clone() *record {
	c := *r
	if r.Attempt != nil {
		a := *r.Attempt
		c.Attempt = &a
	}
	if r.Stop != nil {
		s := *r.Stop
		c.Stop = &s
	}
	if r.Ended != nil {
		e := *r.Ended
		c.Ended = &e
	}
	return &c
}

// ledger is the bbolt database and its decoded copy.
type ledger struct {
	db     *bolt.DB
	runs   map[berth.RunKey]*record
	writes int // transactions committed, for tests
	// stateDir is where the run record files go; warn notes a record file
	// that could not be written.
	stateDir string
	warn     func(msg string, args ...any)
	// queueDirty: the runs that only wait changed since the queue file
	// was written (flushQueue).
	queueDirty bool
}

// errStateDirBusy means another process has the ledger open.
var errStateDirBusy = errors.New("the ledger is open in another process (is another berth serving this state directory?)")

// openLedger checks the ledger (checkLedger: a damaged file is a
// *DamagedError, never a panic) and opens it for writing.
func openLedger(stateDir string, warn func(msg string, args ...any)) (*ledger, error) {
	path := filepath.Join(stateDir, dbFile)
	runs, err := checkLedger(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		runs = map[berth.RunKey]*record{}
	case err != nil:
		return nil, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("ledger %s: %w", path, errStateDirBusy)
	}
	if err != nil {
		return nil, fmt.Errorf("ledger %s: %w", path, err)
	}
	// Create the bucket only when missing: opening an existing ledger
	// commits nothing.
	missing := false
	db.View(func(tx *bolt.Tx) error { missing = tx.Bucket(bucketRuns) == nil; return nil })
	if missing {
		err = db.Update(func(tx *bolt.Tx) error {
			_, err := tx.CreateBucketIfNotExists(bucketRuns)
			return err
		})
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("ledger %s: %w", path, err)
	}
	// The first Apply writes the queue file, whatever wrote the ledger.
	return &ledger{db: db, runs: runs, stateDir: stateDir, warn: warn, queueDirty: true}, nil
}

// put writes records in one transaction and, once it committed, into the
// in-memory copy.
func (l *ledger) put(rs ...*record) error {
	if len(rs) == 0 {
		return nil
	}
	err := l.db.Update(func(tx *bolt.Tx) error { return putRecords(tx.Bucket(bucketRuns), rs) })
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	l.writes++
	for _, r := range rs {
		if prev := l.runs[r.Key()]; r.Attempts == 0 || prev != nil && prev.Attempts == 0 {
			l.queueDirty = true
		}
		l.runs[r.Key()] = r.clone()
	}
	// Then each run's record file: the ledger is the truth, the files are
	// what `berth ledger rebuild` rebuilds it from. A run's pods are
	// started or stopped only after put returns, so a record file is never
	// behind what was done to its run.
	for _, r := range rs {
		if err := writeRunRecord(l.stateDir, r); err != nil && l.warn != nil {
			l.warn("cannot write a run's record file (berth ledger rebuild reads it)", "workload", r.Workload, "run", r.RunID, "err", err)
		}
	}
	return nil
}

// fileRunRecord is a run's record file, in its run directory: the run's
// ledger record as JSON, written atomically whenever the ledger's is, for
// runs that ever started (a run that only waits has no directory; the
// engine queues it again from Git).
const fileRunRecord = "run.json"

func writeRunRecord(stateDir string, r *record) error {
	if r.Attempts == 0 {
		return nil
	}
	dir := filepath.Join(stateDir, runDir(r.Workload, r.RunID))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, fileRunRecord), append(b, '\n'))
}

func (l *ledger) delete(key berth.RunKey) error {
	err := l.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketRuns).Delete(dbKey(key)) })
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	l.writes++
	if prev := l.runs[key]; prev != nil && prev.Attempts == 0 {
		l.queueDirty = true
	}
	delete(l.runs, key)
	return nil
}

// fileQueue is the queue file, in the cluster's state directory: the
// ledger records of the runs that only wait (never started, so they have
// no run directory), as a JSON array sorted by run, rewritten after an
// Apply that changed them (one write however many a commit queues).
// `berth ledger rebuild` reads it, so a rebuilt ledger keeps them, with
// the time they were queued. It may be one Apply behind the ledger: a
// run it lists that has since started has a record file, which wins.
const fileQueue = "queue.json"

// flushQueue writes the queue file when the runs that only wait changed.
func (l *ledger) flushQueue() error {
	if !l.queueDirty {
		return nil
	}
	waiting := []*record{}
	for _, r := range l.runs {
		if r.Attempts == 0 {
			waiting = append(waiting, r)
		}
	}
	slices.SortFunc(waiting, func(a, b *record) int { return a.Key().Compare(b.Key()) })
	b, err := json.MarshalIndent(waiting, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(l.stateDir, fileQueue), append(b, '\n')); err != nil {
		return err
	}
	l.queueDirty = false
	return nil
}

// get returns a copy of a record to change and put back.
func (l *ledger) get(k berth.RunKey) (*record, bool) {
	r, ok := l.runs[k]
	if !ok {
		return nil, false
	}
	return r.clone(), true
}

// txID is the database's last committed transaction id.
func (l *ledger) txID() int {
	var id int
	l.db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil })
	return id
}

func (l *ledger) close() error { return l.db.Close() }

// putRecords writes records into the runs bucket, each under its key.
func putRecords(b *bolt.Bucket, rs []*record) error {
	for _, r := range rs {
		v, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if err := b.Put(dbKey(r.Key()), v); err != nil {
			return err
		}
	}
	return nil
}
