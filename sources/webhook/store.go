package webhook

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// StoreOptions bound a Store.
type StoreOptions struct {
	// Retention is how long a key is remembered (default 7 days: GitHub
	// lets a delivery be redelivered for 3 days).
	Retention time.Duration
	// Max is how many keys are remembered at most (default 100,000); the
	// oldest go first.
	Max int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Store remembers delivery IDs and work keys in a bbolt file, so that a
// redelivery or a replay after a restart is recognised. It is bounded by
// age and count; at 100,000 keys the file stays under a few megabytes.
type Store struct {
	db   *bolt.DB
	opts StoreOptions

	mu    sync.Mutex
	count int
}

var (
	bucketKeys  = []byte("keys")  // key -> when it was recorded (unix ns)
	bucketOrder = []byte("order") // when (8 bytes, big endian) + key -> nothing
)

// OpenStore opens (or creates) the store at path.
func OpenStore(path string, opts StoreOptions) (*Store, error) {
	if opts.Retention <= 0 {
		opts.Retention = 7 * 24 * time.Hour
	}
	if opts.Max <= 0 {
		opts.Max = 100000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("webhook deliveries %s: another berth serve holds it; give each serve its own --state-dir", path)
		}
		return nil, fmt.Errorf("webhook deliveries %s: %w (remove the file to start afresh: redeliveries of the last days are then handled again)", path, err)
	}
	s := &Store{db: db, opts: opts}
	err = db.Update(func(tx *bolt.Tx) error {
		keys, err := tx.CreateBucketIfNotExists(bucketKeys)
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(bucketOrder); err != nil {
			return err
		}
		s.count = keys.Stats().KeyN
		return s.prune(tx)
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("webhook deliveries %s: %w", path, err)
	}
	return s, nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

// Seen records key and reports whether it was recorded within the
// retention.
func (s *Store) Seen(key string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	seen := false
	err := s.db.Update(func(tx *bolt.Tx) error {
		keys, order := tx.Bucket(bucketKeys), tx.Bucket(bucketOrder)
		if v := keys.Get([]byte(key)); len(v) == 8 {
			at := time.Unix(0, int64(binary.BigEndian.Uint64(v)))
			if now.Sub(at) < s.opts.Retention {
				seen = true
				return nil
			}
			if err := order.Delete(orderKey(at, key)); err != nil {
				return err
			}
			s.count--
		}
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], uint64(now.UnixNano()))
		if err := keys.Put([]byte(key), v[:]); err != nil {
			return err
		}
		if err := order.Put(orderKey(now, key), nil); err != nil {
			return err
		}
		s.count++
		return s.prune(tx)
	})
	if err != nil {
		return false, fmt.Errorf("webhook deliveries: %w", err)
	}
	return seen, nil
}

// prune forgets keys older than the retention, and the oldest beyond Max.
func (s *Store) prune(tx *bolt.Tx) error {
	keys, order := tx.Bucket(bucketKeys), tx.Bucket(bucketOrder)
	cutoff := s.opts.Now().Add(-s.opts.Retention)
	c := order.Cursor()
	for k, _ := c.First(); len(k) >= 8; k, _ = c.First() {
		at := time.Unix(0, int64(binary.BigEndian.Uint64(k[:8])))
		if s.count <= s.opts.Max && !at.Before(cutoff) {
			break
		}
		if err := keys.Delete(k[8:]); err != nil {
			return err
		}
		if err := c.Delete(); err != nil {
			return err
		}
		s.count--
	}
	return nil
}

func orderKey(at time.Time, key string) []byte {
	b := make([]byte, 8, 8+len(key))
	binary.BigEndian.PutUint64(b, uint64(at.UnixNano()))
	return append(b, key...)
}

// memorySeen is the default Seen: the last n keys, in memory (a key seen
// again does not count as recent: the first sighting is what ages).
type memorySeen struct{ keys *lru.Cache[string, struct{}] }

func newMemorySeen(n int) *memorySeen {
	keys, _ := lru.New[string, struct{}](max(n, 1)) // errs only for a size under 1
	return &memorySeen{keys: keys}
}

func (m *memorySeen) Seen(key string) (bool, error) {
	seen, _ := m.keys.ContainsOrAdd(key, struct{}{})
	return seen, nil
}
