package cue

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berth-gpu/berth"
)

// diskCache keeps the result of each instance's evaluation on disk, so
// that a new process (berth validate in CI, berth plan on a laptop, a
// restarted berth serve) evaluates only the instances whose files or
// imports changed since any process last evaluated them.
//
// An entry is found by what is known before evaluating: berth's version
// (Options.CacheVersion, and the schema), the instance directory, and the
// content of the files every instance depends on (its directory's, its
// ancestors', cue.mod's). It holds the directories the result depends on
// (its imports') and the hash of their content when it was evaluated; it is
// used only when that hash is the tree's now. So an entry stands for the
// content it was computed from, never for a path or a commit.
//
// Entries are written to a temporary file and renamed into place, so
// processes that share the directory see a whole entry or none. An entry
// starts with a checksum of the rest: a torn, truncated or altered entry,
// or one written by another version of berth, is a miss, re-evaluated and
// rewritten, never trusted. Reading an entry only decodes data (what a
// child process sent); nothing in it is evaluated. The first write that
// fails (a full disk, a read-only directory) makes the cache read-only for
// the rest of the Loader's life, with one warning; loads go on.
//
// Each version of berth keeps its entries in a directory of its own, and
// a hit marks its entry used (its modification time, at most once an
// hour), so the cache can be pruned by names and times alone (see prune).
type diskCache struct {
	dir     string
	version string // everything besides the files that a result depends on
	sub     string // the directory of this version's entries, in dir
	limit   int64  // the largest entry read
	warn    func(error)
	maxSize int64
	maxAge  time.Duration

	mu       sync.Mutex
	readOnly bool
}

// cacheFormat names the layout of an entry; a new layout is a new name,
// and old entries are misses.
const cacheFormat = "berth-eval-cache 3"

// DefaultCacheMaxSize and DefaultCacheMaxAge are the defaults of
// Options.CacheMaxSize and CacheMaxAge: a 50,000-workload repository's
// entries take about 40 MB.
const (
	DefaultCacheMaxSize = 1 << 30
	DefaultCacheMaxAge  = 30 * 24 * time.Hour
)

func newDiskCache(opts Options) *diskCache {
	if opts.CacheDir == "" {
		return nil
	}
	schema := sha256.Sum256(berth.Schema)
	// The result budget decides which results are replaced by "too
	// large", so it is part of what a result depends on.
	version := fmt.Sprintf("%s\x00%s\x00%x\x00%d", cacheFormat, opts.CacheVersion, schema, resultBudget(opts))
	sum := sha256.Sum256([]byte(version))
	return &diskCache{
		dir:     opts.CacheDir,
		version: version,
		sub:     versionPrefix + hex.EncodeToString(sum[:8]),
		limit:   resultBudget(opts) + 1<<20,
		warn:    opts.CacheWarn,
		maxSize: opts.CacheMaxSize,
		maxAge:  opts.CacheMaxAge,
	}
}

// versionPrefix starts the name of a version's directory in the cache.
const versionPrefix = "v-"

// name is the file an instance's entry is stored in.
func (c *diskCache) name(t *tree, dir string) string {
	own := t.hashFiles(ownFiles(t, dir))
	h := sha256.New()
	io.WriteString(h, c.version)
	h.Write([]byte{0})
	io.WriteString(h, dir)
	h.Write([]byte{0})
	h.Write(own[:])
	sum := hex.EncodeToString(h.Sum(nil))
	return filepath.Join(c.dir, c.sub, sum[:2], sum[2:])
}

// ownFiles are the files any result for dir depends on, whatever it
// imports: the directory's own, its ancestors' (CUE adds files of the same
// package from parent directories), and cue.mod's.
func ownFiles(t *tree, dir string) []string {
	var files []string
	for _, d := range instanceDeps(dir, nil) {
		files = append(files, t.dirFiles(d)...)
	}
	return files
}

// entryHeader is the first line of an entry's body: what decides whether
// the entry is the result for the tree at hand, before its objects are
// decoded.
type entryHeader struct {
	Version string   `json:"version"`
	Dir     string   `json:"dir"`
	Deps    []string `json:"deps"`
	Key     string   `json:"key"` // hex of the hash of the files of Deps
}

// cacheEntry is an entry whose header says it is the result for the tree
// at hand; its body is read, checked and decoded later (load).
type cacheEntry struct {
	name  string // the file
	dir   string
	deps  []string
	key   [32]byte
	line  []byte // the header line, as read
	mtime time.Time
}

// touchAfter is how old an entry's modification time may grow before a
// hit renews it: the mark prune goes by, written at most once an hour.
const touchAfter = time.Hour

// headerRead is how much of an entry lookup reads to find its header: the
// format, the checksum and the header line, whose list of directories is
// rarely more than a few hundred bytes. An entry whose header is longer
// is a miss.
const headerRead = 16 << 10

// lookup returns the entry for dir stored for t's content, or nil. It
// reads only the entry's header, so that what has no entry is known, and
// sent to a child, before the bodies of 200 entries are read; load reads
// and checks the rest.
func (c *diskCache) lookup(t *tree, dir string) *cacheEntry {
	name := c.name(t, dir)
	f, err := os.Open(name)
	if err != nil {
		return nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() > c.limit {
		return nil
	}
	var buf [headerRead]byte
	n, err := io.ReadFull(f, buf[:])
	if err != nil && err != io.ErrUnexpectedEOF {
		return nil
	}
	format, rest, _ := bytes.Cut(buf[:n], []byte{'\n'})
	_, rest, _ = bytes.Cut(rest, []byte{'\n'}) // the checksum: load checks it
	line, _, ok := bytes.Cut(rest, []byte{'\n'})
	if string(format) != cacheFormat || !ok {
		return nil
	}
	var h entryHeader
	if json.Unmarshal(line, &h) != nil || h.Version != c.version || h.Dir != dir {
		return nil
	}
	key := hashDeps(t, h.Deps)
	if hex.EncodeToString(key[:]) != h.Key {
		return nil // an import changed since
	}
	return &cacheEntry{name: name, dir: dir, deps: h.Deps, key: key, line: bytes.Clone(line), mtime: fi.ModTime()}
}

// load reads the entry's body into *buf (grown as needed), checks it (the
// checksum, and that the file is still the entry lookup found: another
// process may have replaced it) and decodes its result, or says why it
// cannot. The result holds no part of *buf: the caller reads the next
// entry into it (reading 200 entries, 66 MB for 50,000 workloads, into new
// memory cost a warm load more in page faults than the reading).
func (c *diskCache) load(e *cacheEntry, buf *[]byte) (*instanceResult, error) {
	body, _, err := c.readInto(e.name, buf)
	if err != nil {
		return nil, err
	}
	line, payload, _ := bytes.Cut(body, []byte{'\n'})
	if !bytes.Equal(line, e.line) {
		return nil, errors.New("cache entry: replaced since it was found")
	}
	r, err := decodeEntry(payload)
	if err != nil {
		return nil, err
	}
	r.dir, r.deps, r.key = e.dir, e.deps, e.key
	touch(e.name, e.mtime)
	return r, nil
}

// readInto reads the entry in the file name into *buf, grown as needed,
// and returns its body, when it passes its checks (an entry is
// cacheFormat, the checksum of the body, the body), and the file's
// modification time.
func (c *diskCache) readInto(name string, buf *[]byte) ([]byte, time.Time, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, time.Time{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, time.Time{}, err
	}
	if fi.Size() > c.limit {
		return nil, time.Time{}, errors.New("cache entry: too large")
	}
	if int64(cap(*buf)) < fi.Size()+1 {
		*buf = make([]byte, fi.Size()+1)
	}
	b := (*buf)[:fi.Size()+1] // +1: a file that grew since is read short, not cut
	n, err := io.ReadFull(f, b)
	if err != io.ErrUnexpectedEOF {
		return nil, time.Time{}, errors.New("cache entry: changed while read")
	}
	body, ok := checkEntry(b[:n])
	if !ok {
		return nil, time.Time{}, errors.New("cache entry: checksum")
	}
	return body, fi.ModTime(), nil
}

// checkEntry returns the body of the entry b when b is cacheFormat, the
// checksum of the body, the body.
func checkEntry(b []byte) ([]byte, bool) {
	format, rest, _ := bytes.Cut(b, []byte{'\n'})
	sum, body, _ := bytes.Cut(rest, []byte{'\n'})
	if string(format) != cacheFormat {
		return nil, false
	}
	want, err := hex.DecodeString(string(sum))
	if got := sha256.Sum256(body); err != nil || !bytes.Equal(want, got[:]) {
		return nil, false
	}
	return body, true
}

// read returns the body of the entry in the file name, and the file's
// modification time, or nil where there is none or it does not pass its
// checks: an entry is cacheFormat, the checksum of the body, the body.
func (c *diskCache) read(name string) ([]byte, time.Time) {
	var buf []byte
	body, mtime, err := c.readInto(name, &buf)
	if err != nil {
		return nil, time.Time{}
	}
	return body, mtime
}

// touch marks the entry in name used, at most once per touchAfter.
func touch(name string, mtime time.Time) {
	if now := time.Now(); now.Sub(mtime) > touchAfter {
		os.Chtimes(name, now, now) // a read-only cache stays as it is
	}
}

// write stores body as the entry in name, with its format and checksum;
// the first write that fails makes the cache read-only, with one warning.
func (c *diskCache) write(name string, body []byte) {
	sum := sha256.Sum256(body)
	if err := writeEntry(name, []byte(cacheFormat+"\n"+hex.EncodeToString(sum[:])+"\n"), body); err != nil {
		c.mu.Lock()
		defer c.mu.Unlock()
		if !c.readOnly {
			c.readOnly = true
			if c.warn != nil {
				c.warn(fmt.Errorf("evaluation cache %s: %w; not writing to it any more", c.dir, err))
			}
		}
	}
}

// blobName is the file that keeps what berth derived from data as kind
// (a snapshot checked against the schema): found by the content, never
// by a file name.
func (c *diskCache) blobName(kind string, data []byte) string {
	h := sha256.New()
	io.WriteString(h, c.version)
	h.Write([]byte{0})
	io.WriteString(h, kind)
	h.Write([]byte{0})
	h.Write(data)
	sum := hex.EncodeToString(h.Sum(nil))
	return filepath.Join(c.dir, c.sub, sum[:2], sum[2:])
}

// getBlob returns what putBlob stored in name, or nil.
func (c *diskCache) getBlob(name string) []byte {
	body, mtime := c.read(name)
	if body == nil {
		return nil
	}
	version, payload, _ := bytes.Cut(body, []byte{'\n'})
	if string(version) != strconv.Quote(c.version) {
		return nil
	}
	touch(name, mtime)
	return payload
}

// putBlob stores payload in name (see blobName).
func (c *diskCache) putBlob(name string, payload []byte) {
	c.mu.Lock()
	ro := c.readOnly
	c.mu.Unlock()
	if ro {
		return
	}
	body := make([]byte, 0, len(c.version)+8+len(payload))
	body = append(append(strconv.AppendQuote(body, c.version), '\n'), payload...)
	c.write(name, body)
}

// put stores r, whose result as a child sends it is w, for t's content.
func (c *diskCache) put(t *tree, r *instanceResult, w *wireResult) {
	c.mu.Lock()
	ro := c.readOnly
	c.mu.Unlock()
	if ro {
		return
	}
	h, err := json.Marshal(entryHeader{Version: c.version, Dir: r.dir, Deps: r.deps, Key: hex.EncodeToString(r.key[:])})
	if err != nil {
		return
	}
	payload, err := encodeEntry(w)
	if err != nil {
		return
	}
	body := make([]byte, 0, len(h)+1+len(payload))
	body = append(append(append(body, h...), '\n'), payload...)
	c.write(c.name(t, r.dir), body)
}

// entryMeta is what an entry holds of a result besides its objects.
type entryMeta struct {
	Errs    Errors   `json:"errs,omitempty"`
	Invalid []string `json:"invalid,omitempty"`
	Files   []string `json:"files,omitempty"` // the files positions name, by index
	Failed  bool     `json:"failed,omitempty"`
	Objects int      `json:"objects"`
}

// encodeEntry writes a result as an entry holds it: the meta data as a
// JSON frame, then each object as frames of its key, its position (file
// index, line, column), its positions (encodePositions) and its value as
// JSON. A frame is a uvarint length and that many bytes. The objects are
// not one JSON document, so reading an entry does not scan every value
// twice (once to find where it ends, once to decode it): JSON framing was
// a third of a warm load.
func encodeEntry(w *wireResult) ([]byte, error) {
	files := &fileTable{index: map[string]int{}}
	for _, f := range w.Files {
		files.of(f)
	}
	var objs []byte
	for _, o := range w.Objects {
		objs = appendFrame(objs, []byte(o.Key))
		objs = binary.AppendUvarint(objs, uint64(files.of(o.Pos.File)))
		objs = binary.AppendUvarint(objs, uint64(max(o.Pos.Line, 0)))
		objs = binary.AppendUvarint(objs, uint64(max(o.Pos.Col, 0)))
		objs = appendFrame(objs, []byte(o.Positions))
		objs = appendFrame(objs, o.Value)
	}
	meta, err := json.Marshal(entryMeta{Errs: w.Errs, Invalid: w.Invalid, Files: files.names, Failed: w.Failed, Objects: len(w.Objects)})
	if err != nil {
		return nil, err
	}
	return append(appendFrame(nil, meta), objs...), nil
}

// decodeEntry reads what encodeEntry wrote, decoding every object.
func decodeEntry(b []byte) (*instanceResult, error) {
	rd := &frameReader{b: b}
	var m entryMeta
	if err := json.Unmarshal(rd.frame(), &m); err != nil {
		return nil, fmt.Errorf("cache entry: %w", err)
	}
	if m.Objects < 0 || m.Objects > len(b) {
		return nil, errors.New("cache entry: not an object count")
	}
	r := &instanceResult{errs: m.Errs, invalid: m.Invalid, failed: m.Failed, objects: make([]object, 0, m.Objects)}
	for range m.Objects {
		key := string(rd.frame())
		file, line, col := rd.uvarint(), rd.uvarint(), rd.uvarint()
		positions := string(rd.frame())
		value := rd.frame()
		if rd.err != nil {
			return nil, rd.err
		}
		if file >= uint64(len(m.Files)) || line > 1<<31 || col > 1<<31 {
			return nil, fmt.Errorf("cache entry: %s: not a position", key)
		}
		if strings.HasPrefix(key, "policy.") { // policy fields stay JSON: keep a copy, not the entry
			value = bytes.Clone(value)
		}
		wo := wireObject{Key: key, Pos: berth.Pos{File: m.Files[file], Line: int(line), Col: int(col)}, Value: value, Positions: positions}
		o, err := decodeObject(wo, m.Files)
		if err != nil {
			return nil, fmt.Errorf("cache entry: %s: %w", key, err)
		}
		r.objects = append(r.objects, o)
	}
	if len(rd.b) != 0 {
		return nil, errors.New("cache entry: data after the last object")
	}
	return r, nil
}

func appendFrame(b, data []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(data))), data...)
}

// frameReader reads frames and uvarints from b; the first error sticks.
type frameReader struct {
	b   []byte
	err error
}

var errShortEntry = errors.New("cache entry: cut short")

func (r *frameReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errShortEntry
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *frameReader) frame() []byte {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)) {
		r.err = errShortEntry
		return nil
	}
	f := r.b[:n:n]
	r.b = r.b[n:]
	return f
}

// writeEntry writes head and body to name through a temporary file in the
// same directory and a rename, so that a reader sees the whole entry or
// none. A directory a pruning process removed in between is made again.
func writeEntry(name string, head, body []byte) error {
	var err error
	for range 3 {
		err = writeEntryOnce(name, head, body)
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	return err
}

func writeEntryOnce(name string, head, body []byte) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(name), tempPrefix+strconv.Itoa(os.Getpid())+"-*")
	if err != nil {
		return err
	}
	_, err = f.Write(head)
	if err == nil {
		_, err = f.Write(body)
	}
	err = errors.Join(err, f.Close())
	if err == nil {
		err = os.Rename(f.Name(), name)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// tempPrefix starts the name of an entry being written.
const tempPrefix = ".tmp-"
