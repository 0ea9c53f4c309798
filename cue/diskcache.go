package cue

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"

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
// rewritten, never trusted. Reading an entry only decodes data (the JSON
// a child process wrote); nothing in it is evaluated. The first write that
// fails (a full disk, a read-only directory) makes the cache read-only for
// the rest of the Loader's life, with one warning; loads go on.
type diskCache struct {
	dir     string
	version string // everything besides the files that a result depends on
	limit   int64  // the largest entry read
	warn    func(error)

	mu       sync.Mutex
	readOnly bool
}

// cacheFormat names the layout of an entry; a new layout is a new name,
// and old entries are misses.
const cacheFormat = "berth-eval-cache 2"

func newDiskCache(opts Options) *diskCache {
	if opts.CacheDir == "" {
		return nil
	}
	schema := sha256.Sum256(berth.Schema)
	return &diskCache{
		dir: opts.CacheDir,
		// The result budget decides which results are replaced by "too
		// large", so it is part of what a result depends on.
		version: fmt.Sprintf("%s\x00%x\x00%d", opts.CacheVersion, schema, resultBudget(opts)),
		limit:   resultBudget(opts) + 1<<20,
		warn:    opts.CacheWarn,
	}
}

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
	return filepath.Join(c.dir, sum[:2], sum[2:])
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

// entryHeader is the first line of an entry's body.
type entryHeader struct {
	Version string `json:"version"`
	Dir     string `json:"dir"`
	Key     string `json:"key"` // hex of the hash of the files of the result's deps
}

// get returns the result for dir stored for t's content, or nil.
func (c *diskCache) get(t *tree, dir string) *instanceResult {
	f, err := os.Open(c.name(t, dir))
	if err != nil {
		return nil
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, c.limit+1))
	if err != nil || int64(len(b)) > c.limit {
		return nil
	}
	// cacheFormat, the checksum of the body, the body: a header line and
	// the child's Result frame.
	format, rest, _ := bytes.Cut(b, []byte{'\n'})
	sum, body, _ := bytes.Cut(rest, []byte{'\n'})
	if string(format) != cacheFormat {
		return nil
	}
	want, err := hex.DecodeString(string(sum))
	if got := sha256.Sum256(body); err != nil || !bytes.Equal(want, got[:]) {
		return nil
	}
	line, frame, _ := bytes.Cut(body, []byte{'\n'})
	var h entryHeader
	if json.Unmarshal(line, &h) != nil || h.Version != c.version || h.Dir != dir {
		return nil
	}
	var m message
	if json.Unmarshal(frame, &m) != nil || m.Result == nil || m.Result.Dir != dir {
		return nil
	}
	r, err := fromWire(m.Result, t)
	if err != nil || hex.EncodeToString(r.key[:]) != h.Key {
		return nil // an import changed since, or the entry is not what it says
	}
	return r
}

// put stores r, whose Result frame is frame, for t's content.
func (c *diskCache) put(t *tree, r *instanceResult, frame []byte) {
	c.mu.Lock()
	ro := c.readOnly
	c.mu.Unlock()
	if ro {
		return
	}
	h, err := json.Marshal(entryHeader{Version: c.version, Dir: r.dir, Key: hex.EncodeToString(r.key[:])})
	if err != nil {
		return
	}
	body := make([]byte, 0, len(h)+1+len(frame))
	body = append(append(append(body, h...), '\n'), frame...)
	sum := sha256.Sum256(body)
	if err := writeEntry(c.name(t, r.dir), []byte(cacheFormat+"\n"+hex.EncodeToString(sum[:])+"\n"), body); err != nil {
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

// writeEntry writes head and body to name through a temporary file in the
// same directory and a rename, so that a reader sees the whole entry or
// none.
func writeEntry(name string, head, body []byte) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(name), ".tmp-"+strconv.Itoa(os.Getpid())+"-*")
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
