package history

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
)

// The store's buckets.
var (
	bucketMarks   = []byte("marks")   // Mark.Key() -> Mark (JSON)
	bucketEvents  = []byte("events")  // time (ns, big-endian) + seq -> Event (JSON)
	bucketUsage   = []byte("usage")   // day \0 team \0 cluster \0 flavor -> int64 (big-endian)
	bucketMinutes = []byte("minutes") // cluster \0 device \0 minute (s, big-endian) -> sample (JSON)
	bucketHours   = []byte("hours")   // cluster \0 device \0 hour (s, big-endian) -> sample (JSON)
)

// Options tune a Store.
type Options struct {
	// Retention is how long events, marks of runs no longer seen, and
	// hourly utilisation samples are kept (default 30 days). Minute
	// samples are kept two days.
	Retention time.Duration
	// UsageRetention is how long GPU-hours per day are kept (default 400
	// days: this month and last year's).
	UsageRetention time.Duration
	// BillEvery is how often a run that goes on is billed (default a
	// minute): each bill is a write. A run that ends is billed at once;
	// what a run held is billed exactly either way.
	BillEvery time.Duration
}

func (o Options) withDefaults() Options {
	if o.Retention <= 0 {
		o.Retention = 30 * 24 * time.Hour
	}
	if o.UsageRetention <= 0 {
		o.UsageRetention = 400 * 24 * time.Hour
	}
	if o.BillEvery <= 0 {
		o.BillEvery = time.Minute
	}
	return o
}

// Store is the history in one bbolt file. Every reconcile's outcome is one
// transaction: after a crash the file holds every reconcile before the
// one cut off, and none of that one.
type Store struct {
	db   *bolt.DB
	opts Options

	mu     sync.Mutex
	marks  map[string]Mark
	pruned time.Time
}

// ErrBusy means another process has the store open for writing.
var ErrBusy = errors.New("the history is open in another process (a berth serve on this state directory): ask it (berth usage --server)")

// Open opens (creating) the history at path for writing.
func Open(path string, opts Options) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("history %s: %w", path, ErrBusy)
	}
	if err != nil {
		return nil, fmt.Errorf("history %s: %w", path, err)
	}
	s := &Store{db: db, opts: opts.withDefaults(), marks: map[string]Mark{}}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMarks, bucketEvents, bucketUsage, bucketMinutes, bucketHours} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMarks).ForEach(func(k, v []byte) error {
			var m Mark
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("mark %q: %w", k, err)
			}
			s.marks[string(k)] = m
			return nil
		})
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("history %s: %w", path, err)
	}
	return s, nil
}

// OpenReadOnly opens the history at path for reading (while no serve
// holds it).
func OpenReadOnly(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, ReadOnly: true})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("history %s: %w", path, ErrBusy)
	}
	if err != nil {
		return nil, fmt.Errorf("history %s: %w", path, err)
	}
	return &Store{db: db, opts: Options{}.withDefaults(), marks: map[string]Mark{}}, nil
}

// Origin is the revision in force when a run was first seen.
type Origin struct {
	Commit string
	PR     int
}

// Origins are where each run of each cluster came from, by cluster and run.
func (s *Store) Origins() map[string]map[berth.RunKey]Origin {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]map[berth.RunKey]Origin{}
	for _, m := range s.marks {
		if m.Commit == "" && m.PR == 0 {
			continue
		}
		if out[m.Cluster] == nil {
			out[m.Cluster] = map[berth.RunKey]Origin{}
		}
		out[m.Cluster][m.Run()] = Origin{Commit: m.Commit, PR: m.PR}
	}
	return out
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

// Record adds what one reconcile's report says to the history, as of now
// (when the clusters were observed), in one transaction, and returns it;
// once a day it drops what is past its retention.
func (s *Store) Record(rep reconcile.Report, now time.Time) (Outcome, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := Step(s.marks, rep, now, s.opts.BillEvery)
	changed := map[string]Mark{}
	for k, m := range out.Marks {
		prev, ok := s.marks[k]
		if ok && !worthWriting(prev, m) {
			continue
		}
		changed[k] = m
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := putEvents(tx, out.Events); err != nil {
			return err
		}
		if err := addUsage(tx, out.Usage); err != nil {
			return err
		}
		b := tx.Bucket(bucketMarks)
		for _, k := range slices.Sorted(maps.Keys(changed)) {
			v, err := json.Marshal(changed[k])
			if err != nil {
				return err
			}
			if err := b.Put([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return Outcome{}, fmt.Errorf("history: %w", err)
	}
	maps.Copy(s.marks, changed)
	if now.Sub(s.pruned) >= 24*time.Hour {
		if err := s.prune(now); err != nil {
			return out, err
		}
		s.pruned = now
	}
	return out, nil
}

// worthWriting says whether a mark changed enough to be written: in
// anything but when it was last seen, or seen a day later. (A bill always
// moves Billed: the usage it adds and the mark are written together, so
// nothing is billed twice after a restart.)
func worthWriting(prev, next Mark) bool {
	p, n := prev, next
	p.Seen, n.Seen = time.Time{}, time.Time{}
	return p != n || next.Seen.Sub(prev.Seen) >= 24*time.Hour
}

func eventKey(t time.Time, seq uint64) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k, uint64(t.UnixNano()))
	binary.BigEndian.PutUint64(k[8:], seq)
	return k
}

func putEvents(tx *bolt.Tx, evs []Event) error {
	b := tx.Bucket(bucketEvents)
	for _, e := range evs {
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		e.Seq = seq
		v, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if err := b.Put(eventKey(e.Time, seq), v); err != nil {
			return err
		}
	}
	return nil
}

func usageKey(k UsageKey) []byte {
	return []byte(strings.Join([]string{k.Day, k.Team, k.Cluster, k.Flavor}, "\x00"))
}

func parseUsageKey(b []byte) (UsageKey, bool) {
	p := strings.Split(string(b), "\x00")
	if len(p) != 4 {
		return UsageKey{}, false
	}
	return UsageKey{Day: p[0], Team: p[1], Cluster: p[2], Flavor: p[3]}, true
}

func addUsage(tx *bolt.Tx, usage map[UsageKey]int64) error {
	b := tx.Bucket(bucketUsage)
	for k, add := range usage {
		if add == 0 {
			continue
		}
		key := usageKey(k)
		var v int64
		if old := b.Get(key); len(old) == 8 {
			v = int64(binary.BigEndian.Uint64(old))
		}
		buf := make([]byte, 8)
		binary.BigEndian.PutUint64(buf, uint64(v+add))
		if err := b.Put(key, buf); err != nil {
			return err
		}
	}
	return nil
}

// Usage is the GPU time billed on the days from..to (UTC, inclusive;
// "2026-12-01"), per team, cluster and flavor, in key order.
func (s *Store) Usage(from, to string) ([]Usage, error) {
	var out []Usage
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketUsage)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek([]byte(from)); k != nil; k, v = c.Next() {
			key, ok := parseUsageKey(k)
			if !ok || len(v) != 8 {
				continue
			}
			if to != "" && key.Day > to {
				break
			}
			out = append(out, Usage{UsageKey: key, MilliGPUMillis: int64(binary.BigEndian.Uint64(v))})
		}
		return nil
	})
	return out, err
}

// Query selects events. Zero fields select everything.
type Query struct {
	Since, Until time.Time
	Cluster      string
	Team         string
	Workload     string // team/name
	Types        []EventType
	// Match keeps events whose what or reason contains it.
	Match string
	// Limit keeps the newest Limit events (0: all).
	Limit int
}

func (q Query) keep(e Event) bool {
	switch {
	case q.Cluster != "" && e.Cluster != q.Cluster,
		q.Team != "" && e.Team != q.Team,
		q.Workload != "" && string(e.Workload) != q.Workload,
		len(q.Types) > 0 && !slices.Contains(q.Types, e.Type),
		q.Match != "" && !strings.Contains(e.What, q.Match) && !strings.Contains(e.Reason, q.Match):
		return false
	}
	return true
}

// Events are the events q selects, oldest first.
func (s *Store) Events(q Query) ([]Event, error) {
	var out []Event
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEvents)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		var k, v []byte
		if q.Until.IsZero() {
			k, v = c.Last()
		} else {
			// The last event before Until: the one before the first at or
			// after it, or the last of all.
			if k, _ = c.Seek(eventKey(q.Until, 0)); k == nil {
				k, v = c.Last()
			} else {
				k, v = c.Prev()
			}
		}
		// Newest first, so that Limit stops the walk.
		for ; k != nil; k, v = c.Prev() {
			if !q.Since.IsZero() && bytes.Compare(k, eventKey(q.Since, 0)) < 0 {
				break
			}
			var e Event
			if err := json.Unmarshal(v, &e); err != nil {
				continue // one unreadable entry hides only itself
			}
			if !q.keep(e) {
				continue
			}
			out = append(out, e)
			if q.Limit > 0 && len(out) == q.Limit {
				break
			}
		}
		return nil
	})
	slices.Reverse(out)
	return out, err
}

// prune drops events and hourly samples past the retention, minute
// samples past two days, usage past its retention, and marks not seen for
// the retention.
func (s *Store) prune(now time.Time) error {
	cut := now.Add(-s.opts.Retention)
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := deleteWhile(tx.Bucket(bucketEvents), func(k, _ []byte) bool { return bytes.Compare(k, eventKey(cut, 0)) < 0 }); err != nil {
			return err
		}
		usageCut := now.Add(-s.opts.UsageRetention).UTC().Format(time.DateOnly)
		if err := deleteWhile(tx.Bucket(bucketUsage), func(k, _ []byte) bool { return string(k) < usageCut }); err != nil {
			return err
		}
		if err := deleteSamples(tx.Bucket(bucketMinutes), now.Add(-48*time.Hour)); err != nil {
			return err
		}
		if err := deleteSamples(tx.Bucket(bucketHours), cut); err != nil {
			return err
		}
		b := tx.Bucket(bucketMarks)
		for k, m := range s.marks {
			if m.Seen.Before(cut) {
				if err := b.Delete([]byte(k)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("history: prune: %w", err)
	}
	maps.DeleteFunc(s.marks, func(_ string, m Mark) bool { return m.Seen.Before(cut) })
	return nil
}

// deleteWhile deletes the bucket's first keys while del says so.
func deleteWhile(b *bolt.Bucket, del func(k, v []byte) bool) error {
	c := b.Cursor()
	for k, v := c.First(); k != nil && del(k, v); k, v = c.First() {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}
