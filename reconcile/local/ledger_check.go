package local

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/berth-gpu/berth"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// A damaged ledger must never take berth down with a panic: bbolt trusts
// its file, and on a torn or garbled page it panics, faults on memory it
// mapped, or descends a cycle of pages until it runs out of memory. So
// before bbolt touches a ledger, checkLedgerFile reads the file as plain
// bytes and walks every page reachable from the current meta page (bounds,
// page types, element offsets, each page reached once); only a file that
// passes is opened by bbolt, read-only, for its own consistency check
// (tx.Check) and the decoding of every record, under recover.

// DamagedError says a ledger file cannot be used, and why.
type DamagedError struct {
	Path string
	// Problems are what the check found, the first ones (at most
	// maxProblems).
	Problems []string
}

const maxProblems = 20

func (e *DamagedError) Error() string {
	return fmt.Sprintf("ledger %s is damaged (%s)", e.Path, e.Summary())
}

// Summary is the first problem, and how many more there are.
func (e *DamagedError) Summary() string {
	if len(e.Problems) == 0 {
		return "unknown damage"
	}
	s := e.Problems[0]
	if n := len(e.Problems) - 1; n > 0 {
		s += fmt.Sprintf("; %d more", n)
	}
	return s
}

// LedgerCheck is what CheckLedger found in a state directory.
type LedgerCheck struct {
	Path string
	// Missing: there is no ledger yet (a state directory never served).
	Missing bool
	// Runs is how many runs the ledger holds (when it is sound).
	Runs int
	// Damaged is nil when the ledger is sound.
	Damaged *DamagedError
}

// CheckLedger checks the ledger of a local cluster's state directory
// without changing it. A ledger that another process holds open (berth
// serve) cannot be read: that is an error wrapping errStateDirBusy, not
// damage.
func CheckLedger(stateDir string) (LedgerCheck, error) {
	path := filepath.Join(stateDir, dbFile)
	res := LedgerCheck{Path: path}
	runs, err := checkLedger(path)
	var damaged *DamagedError
	switch {
	case errors.Is(err, fs.ErrNotExist):
		res.Missing = true
		return res, nil
	case errors.As(err, &damaged):
		res.Damaged = damaged
		return res, nil
	case err != nil:
		return res, err
	}
	res.Runs = len(runs)
	return res, nil
}

// checkLedger reads and checks a ledger file: its structure as bytes, then
// bbolt's consistency check and every record, read-only. It returns the
// decoded records, a *DamagedError, fs.ErrNotExist, or the error that kept
// it from reading (errStateDirBusy).
func checkLedger(path string) (runs map[berth.RunKey]*record, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// A shared lock, as bbolt's read-only open takes: a ledger that berth
	// serve holds (exclusively) is busy, not damaged, and is not read
	// while it is being written.
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("ledger %s: %w", path, errStateDirBusy)
		}
		return nil, fmt.Errorf("ledger %s: lock: %w", path, err)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("ledger %s: %w", path, err)
	}
	if problems := checkLedgerBytes(b); len(problems) > 0 {
		return nil, &DamagedError{Path: path, Problems: problems}
	}
	// The structure holds: bbolt can read it without faulting. Its own
	// check runs in a goroutine of its own; what bbolt does in ours is
	// guarded, in case the walk above missed something.
	defer func() {
		if p := recover(); p != nil {
			runs, err = nil, &DamagedError{Path: path, Problems: []string{fmt.Sprintf("bbolt panicked: %v", p)}}
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 2 * time.Second})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("ledger %s: %w", path, errStateDirBusy)
	}
	if err != nil {
		return nil, &DamagedError{Path: path, Problems: []string{err.Error()}}
	}
	defer db.Close()
	var problems []string
	runs = map[berth.RunKey]*record{}
	err = db.View(func(tx *bolt.Tx) error {
		for cerr := range tx.Check() {
			if len(problems) < maxProblems {
				problems = append(problems, cerr.Error())
			}
		}
		if len(problems) > 0 {
			return nil
		}
		b := tx.Bucket(bucketRuns)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			r := &record{}
			if err := json.Unmarshal(v, r); err != nil {
				problems = append(problems, fmt.Sprintf("run %q: %v", k, err))
			} else if !bytes.Equal(k, dbKey(r.Key())) {
				problems = append(problems, fmt.Sprintf("run %q: the record is of %s run %s", k, r.Workload, r.RunID))
			} else {
				runs[r.Key()] = r
			}
			if len(problems) >= maxProblems {
				return errors.New("too many problems")
			}
			return nil
		})
	})
	if err != nil && len(problems) == 0 {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		return nil, &DamagedError{Path: path, Problems: problems}
	}
	return runs, nil
}

// bbolt's file format (go.etcd.io/bbolt/internal/common), in the byte order
// of the machines berth runs on (little-endian: amd64, arm64).
const (
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	pageHeaderSize   = 16
	elementSize      = 16 // branch and leaf elements alike
	inBucketSize     = 16
	flagBranch       = 0x01
	flagLeaf         = 0x02
	flagMeta         = 0x04
	flagFreelist     = 0x10
	flagBucketLeaf   = 0x01
	pgidNoFreelist   = ^uint64(0)
	metaChecksumSpan = 56
	maxBucketDepth   = 64
)

var le = binary.LittleEndian

type boltMeta struct {
	pageSize uint32
	root     uint64
	freelist uint64
	pgid     uint64 // high water mark: pages [0, pgid) are in use or free
	txid     uint64
}

// readMeta reads and validates the meta page at off.
func readMeta(b []byte, off int) (boltMeta, error) {
	if off+pageHeaderSize+metaChecksumSpan+8 > len(b) {
		return boltMeta{}, errors.New("file too short")
	}
	p := b[off:]
	if le.Uint16(p[8:]) != flagMeta {
		return boltMeta{}, fmt.Errorf("not a meta page (flags %#x)", le.Uint16(p[8:]))
	}
	m := p[pageHeaderSize:]
	if le.Uint32(m[0:]) != boltMagic {
		return boltMeta{}, errors.New("bad magic number")
	}
	if v := le.Uint32(m[4:]); v != boltVersion {
		return boltMeta{}, fmt.Errorf("format version %d, want %d", v, boltVersion)
	}
	h := fnv.New64a()
	h.Write(m[:metaChecksumSpan])
	if h.Sum64() != le.Uint64(m[metaChecksumSpan:]) {
		return boltMeta{}, errors.New("checksum mismatch")
	}
	return boltMeta{
		pageSize: le.Uint32(m[8:]), root: le.Uint64(m[16:]), freelist: le.Uint64(m[32:]),
		pgid: le.Uint64(m[40:]), txid: le.Uint64(m[48:]),
	}, nil
}

// checkLedgerBytes walks a bbolt file as bbolt would read it, and returns
// what would make bbolt fault, panic or loop: nothing when it is sound.
func checkLedgerBytes(b []byte) []string {
	if len(b) == 0 {
		return []string{"the file is empty (a write was torn before the first commit)"}
	}
	// The second meta page is one page in, and the page size is in the
	// meta pages: read the first; if it is torn, try every size bbolt
	// allows.
	ps := 0
	if m, err := readMeta(b, 0); err == nil {
		ps = int(m.pageSize)
	} else {
		for try := 1024; try <= 16<<20 && try < len(b); try *= 2 {
			if m, err := readMeta(b, try); err == nil && int(m.pageSize) == try {
				ps = try
				break
			}
		}
		if ps == 0 {
			return []string{"no valid meta page: " + err.Error()}
		}
	}
	if ps < 1024 || ps&(ps-1) != 0 {
		return []string{fmt.Sprintf("meta page: page size %d", ps)}
	}
	// bbolt uses the valid meta page of the highest transaction.
	m0, err0 := readMeta(b, 0)
	m1, err1 := readMeta(b, ps)
	meta := m0
	if err0 != nil || (err1 == nil && m1.txid > m0.txid) {
		meta = m1
	}
	if err0 != nil && err1 != nil {
		return []string{"no valid meta page: " + err0.Error()}
	}
	w := &walker{b: b, ps: uint64(ps), hwm: meta.pgid, seen: map[uint64]string{0: "meta", 1: "meta"}}
	if meta.pgid < 2 || meta.pgid*uint64(ps) > uint64(len(b)) {
		return []string{fmt.Sprintf("meta page (txid %d): %d pages in use, but the file has %d", meta.txid, meta.pgid, len(b)/ps)}
	}
	if meta.freelist != pgidNoFreelist {
		w.freelist(meta.freelist)
	}
	w.page(meta.root, "root bucket", 0)
	return w.problems
}

// walker visits the pages reachable from a meta page, each once.
type walker struct {
	b        []byte
	ps, hwm  uint64
	seen     map[uint64]string
	problems []string
}

func (w *walker) fail(format string, args ...any) {
	if len(w.problems) < maxProblems {
		w.problems = append(w.problems, fmt.Sprintf(format, args...))
	}
}

// span returns the bytes of page id and its overflow pages, after checking
// that it is in bounds, of the right id, and reached for the first time.
func (w *walker) span(id uint64, what string) ([]byte, bool) {
	if id < 2 || id >= w.hwm {
		w.fail("%s: page %d is out of bounds (pages in use: %d)", what, id, w.hwm)
		return nil, false
	}
	if prev, ok := w.seen[id]; ok {
		w.fail("%s: page %d is also the %s", what, id, prev)
		return nil, false
	}
	off := id * w.ps
	p := w.b[off:]
	if got := le.Uint64(p); got != id {
		w.fail("%s: page %d says it is page %d", what, id, got)
		return nil, false
	}
	overflow := uint64(le.Uint32(p[12:]))
	if id+overflow >= w.hwm {
		w.fail("%s: page %d overflows past the pages in use (%d more)", what, id, overflow)
		return nil, false
	}
	for i := uint64(0); i <= overflow; i++ {
		if prev, ok := w.seen[id+i]; ok {
			w.fail("%s: page %d is also the %s", what, id+i, prev)
			return nil, false
		}
		w.seen[id+i] = what
	}
	return w.b[off : off+(overflow+1)*w.ps], true
}

func (w *walker) freelist(id uint64) {
	p, ok := w.span(id, "freelist")
	if !ok {
		return
	}
	if f := le.Uint16(p[8:]); f != flagFreelist {
		w.fail("freelist: page %d is not a freelist page (flags %#x)", id, f)
		return
	}
	n, start := uint64(le.Uint16(p[10:])), uint64(pageHeaderSize)
	if n == 0xFFFF {
		if len(p) < pageHeaderSize+8 {
			w.fail("freelist: page %d is truncated", id)
			return
		}
		n, start = le.Uint64(p[pageHeaderSize:]), pageHeaderSize+8
	}
	if n > (uint64(len(p))-start)/8 {
		w.fail("freelist: page %d lists %d pages, more than it can hold", id, n)
		return
	}
	for i := range n {
		if f := le.Uint64(p[start+8*i:]); f < 2 || f >= w.hwm {
			w.fail("freelist: page %d frees page %d, out of bounds", id, f)
			return
		}
	}
}

// page checks a bucket's page (branch or leaf) and what it leads to.
func (w *walker) page(id uint64, what string, depth int) {
	if depth > maxBucketDepth {
		w.fail("%s: pages nested more than %d deep", what, maxBucketDepth)
		return
	}
	p, ok := w.span(id, what)
	if !ok {
		return
	}
	w.elements(p, id, what, depth)
}

// elements checks the elements of page p (a whole page, or an inline
// bucket's page inside a value).
func (w *walker) elements(p []byte, id uint64, what string, depth int) {
	if len(p) < pageHeaderSize {
		w.fail("%s: page %d is truncated", what, id)
		return
	}
	flags, count := le.Uint16(p[8:]), int(le.Uint16(p[10:]))
	if flags != flagBranch && flags != flagLeaf {
		w.fail("%s: page %d is of unknown type (flags %#x)", what, id, flags)
		return
	}
	if pageHeaderSize+count*elementSize > len(p) {
		w.fail("%s: page %d has %d elements, more than it can hold", what, id, count)
		return
	}
	if flags == flagBranch && count == 0 {
		w.fail("%s: branch page %d is empty", what, id)
		return
	}
	for i := range count {
		e := pageHeaderSize + i*elementSize
		el := p[e:]
		if flags == flagBranch {
			pos, ksize := uint64(le.Uint32(el[0:])), uint64(le.Uint32(el[4:]))
			if uint64(e)+pos+ksize > uint64(len(p)) {
				w.fail("%s: page %d element %d: key past the page's end", what, id, i)
				return
			}
			w.page(le.Uint64(el[8:]), what, depth+1)
			continue
		}
		eflags := le.Uint32(el[0:])
		pos, ksize, vsize := uint64(le.Uint32(el[4:])), uint64(le.Uint32(el[8:])), uint64(le.Uint32(el[12:]))
		end := uint64(e) + pos + ksize + vsize
		if end > uint64(len(p)) {
			w.fail("%s: page %d element %d: key or value past the page's end", what, id, i)
			return
		}
		if eflags&flagBucketLeaf == 0 {
			continue
		}
		key := string(p[uint64(e)+pos : uint64(e)+pos+ksize])
		v := p[uint64(e)+pos+ksize : end]
		name := "bucket " + strconv.Quote(key)
		if what != "root bucket" {
			name = what + " > " + name
		}
		if len(v) < inBucketSize {
			w.fail("%s: page %d element %d: bucket header truncated", name, id, i)
			return
		}
		if root := le.Uint64(v); root != 0 {
			w.page(root, name, depth+1)
			continue
		}
		// An inline bucket: its page follows the header, in the value.
		w.elements(v[inBucketSize:], id, strings.TrimSpace(name+" (inline)"), depth+1)
	}
}
