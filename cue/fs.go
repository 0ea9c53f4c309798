package cue

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"cuelang.org/go/cue/parser"

	"github.com/berth-gpu/berth"
)

// tree is the part of a repository berth loads: every .cue file, and
// everything under cue.mod, read into memory after the safety checks. CUE
// is given this copy, so it reads exactly what was checked.
type tree struct {
	files map[string][]byte // slash path relative to the root, no leading slash
	dirs  []string          // sorted directories holding .cue files (outside cue.mod)

	listOnce sync.Once
	dirList  map[string][]fs.DirEntry // see listing
	filesOf  map[string][]string      // see dirFiles
}

// skipDir reports whether a directory is never loaded: hidden directories
// (.git, .github), and vendored or generated trees.
func skipDir(name string) bool {
	return name != "." && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") ||
		name == "node_modules" || name == "testdata")
}

// Warning is an entry of the repository berth did not read although it
// could have held CUE: a .cue file CUE ignores for its name, something that
// is not a regular file, a symlink berth does not follow. It does not make
// the repository invalid; it says why something the user wrote has no
// effect.
//
// A warning with Code WarnCredential is of another sort: an env value in
// Git that looks like a credential (credential.go).
type Warning struct {
	Pos berth.Pos `json:"pos"`
	// Path is the CUE path the warning is about, when it is about a value.
	Path    string `json:"path,omitempty"`
	Message string `json:"message"`
	Code    string `json:"code,omitempty"`
}

// String is "file: message", or "file:line:col: path: message".
func (w Warning) String() string { return w.Pos.String() + ": " + w.Text() }

// Text is the message with the path before it, if there is one.
func (w Warning) Text() string {
	if w.Path != "" {
		return w.Path + ": " + w.Message
	}
	return w.Message
}

// Error is the warning as an error (validate --strict).
func (w Warning) Error() Error {
	return Error{Path: w.Path, Message: w.Message, Positions: []berth.Pos{w.Pos}}
}

// readTree walks fsys and reads every file CUE may load. It returns what
// it skipped as warnings, sorted by file.
func readTree(fsys fs.FS, opts Options) (*tree, Errors, []Warning) {
	r := &treeReader{fsys: fsys, opts: opts, files: map[string][]byte{}}
	r.walk(".", 0)
	r.readPending()
	slices.SortStableFunc(r.warns, func(a, b Warning) int { return a.Pos.Compare(b.Pos) })
	return newTree(r.files), r.errs, r.warns
}

// treeReader reads a tree's CUE files within the limits of opts,
// collecting errors and warnings as it goes.
type treeReader struct {
	fsys  fs.FS
	opts  Options
	files map[string][]byte
	errs  Errors
	warns []Warning
	total int // bytes of CUE read

	pending []string // the CUE files found by walk, in its order
}

func (r *treeReader) warn(p, msg string) {
	r.warns = append(r.warns, Warning{Pos: berth.Pos{File: p}, Message: msg})
}

func (r *treeReader) walk(dir string, depth int) {
	if depth > 64 {
		r.errs = append(r.errs, fileError(dir, "directory nesting deeper than 64 levels"))
		return
	}
	entries, err := fs.ReadDir(r.fsys, dir)
	if err != nil {
		r.errs = append(r.errs, fileError(dir, "read directory: "+err.Error()))
		return
	}
	for _, e := range entries {
		p := path.Join(dir, e.Name())
		mode := e.Type()
		if mode&fs.ModeSymlink != 0 {
			var ok bool
			if mode, ok = r.linkMode(p); !ok {
				continue
			}
		}
		switch {
		case mode.IsDir():
			if skipDir(e.Name()) {
				continue
			}
			r.walk(p, depth+1)
		case mode.IsRegular():
			r.found(p, e.Name())
		default:
			r.warn(p, "skipped: a "+kindOfFile(mode)+", not a regular file; berth reads only regular files")
		}
	}
}

// linkMode is the type of what the symlink p points to; ok is false
// (with an error for CUE, a warning otherwise) when berth does not
// follow it.
func (r *treeReader) linkMode(p string) (fs.FileMode, bool) {
	target, ok, msg := resolveLink(r.fsys, p)
	if !ok {
		if strings.HasSuffix(p, ".cue") || isUnderCueMod(p) {
			r.errs = append(r.errs, fileError(p, msg))
		} else {
			r.warn(p, msg+"; berth does not follow it, so no CUE behind it is read")
		}
		return 0, false
	}
	fi, err := fs.Stat(r.fsys, target)
	if err != nil {
		switch {
		case strings.HasSuffix(p, ".cue"):
			r.errs = append(r.errs, fileError(p, "symlink to "+target+": "+err.Error()))
		case errors.Is(err, fs.ErrNotExist):
			r.warn(p, "skipped: symlink to "+target+", which does not exist")
		default:
			r.warn(p, "skipped: symlink to "+target+", which cannot be read: "+pathErrText(err))
		}
		return 0, false
	}
	return fi.Mode().Type(), true
}

// found notes the regular file p (named name) for reading when it is CUE
// that CUE reads.
func (r *treeReader) found(p, name string) {
	if !strings.HasSuffix(p, ".cue") {
		return
	}
	if strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
		// CUE leaves such a file out of its package.
		r.warn(p, fmt.Sprintf("skipped: CUE ignores files whose names start with %q; rename it if it is meant to be read", name[:1]))
		return
	}
	r.pending = append(r.pending, p)
}

// readBatch is how many files readPending reads at once: what it may read
// past MaxTotalSize is at most this many files of MaxFileSize.
const readBatch = 64

// readPending reads the files walk found, a batch at a time on
// Options.Parallelism goroutines (reading and checking 2,200 files one
// by one was a seventh of a warm validate), and takes them in walk order:
// the file that passes MaxTotalSize is an error, and no file after it is
// read.
func (r *treeReader) readPending() {
	type read struct {
		b        []byte
		err      *Error
		noClause *Error
	}
	out := make([]read, readBatch)
	for lo := 0; lo < len(r.pending); lo += readBatch {
		batch := r.pending[lo:min(lo+readBatch, len(r.pending))]
		parallel(len(batch), max(r.opts.Parallelism, 1), func(k int) {
			p := batch[k]
			b, err := readFile(r.fsys, p, r.opts.MaxFileSize)
			out[k] = read{b: b, err: err}
			if err == nil && !isUnderCueMod(p) {
				out[k].noClause = checkPackageClause(p, b)
			}
		})
		for k, p := range batch {
			f := out[k]
			out[k] = read{}
			if f.err != nil {
				r.errs = append(r.errs, *f.err)
				continue
			}
			r.total += len(f.b)
			if r.opts.MaxTotalSize > 0 && int64(r.total) > r.opts.MaxTotalSize {
				r.errs = append(r.errs, fileError(p, fmt.Sprintf("the repository has more than %d bytes of CUE, the most berth reads; this file is past the limit", r.opts.MaxTotalSize)))
				return
			}
			r.files[p] = f.b
			if f.noClause != nil {
				r.errs = append(r.errs, *f.noClause)
			}
		}
	}
}

// pathErrText is the reason of a *fs.PathError, without its path.
func pathErrText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// kindOfFile names a file type that is neither a directory nor a regular
// file.
func kindOfFile(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "named pipe (fifo)"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "device"
	default:
		return "special file"
	}
}

func isUnderCueMod(p string) bool { return p == "cue.mod" || strings.HasPrefix(p, "cue.mod/") }

// resolveLink follows a symlink and refuses one that leads outside the
// tree: an absolute target, or a relative one that climbs above the root.
func resolveLink(fsys fs.FS, p string) (target string, ok bool, msg string) {
	seen := 0
	cur := p
	for {
		dest, err := fs.ReadLink(fsys, cur)
		if err != nil {
			return "", false, "symlink: " + err.Error()
		}
		if path.IsAbs(dest) || strings.HasPrefix(dest, "\\") || (len(dest) > 1 && dest[1] == ':') {
			return "", false, fmt.Sprintf("symlink to %s leads outside the repository", dest)
		}
		next := path.Join(path.Dir(cur), dest)
		if next == ".." || strings.HasPrefix(next, "../") {
			return "", false, fmt.Sprintf("symlink to %s leads outside the repository", dest)
		}
		fi, err := fs.Lstat(fsys, next)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			return next, true, ""
		}
		seen++
		if seen > 40 {
			return "", false, "symlink loop"
		}
		cur = next
	}
}

// readFile reads one file, refusing one over the size limit or one that is
// not UTF-8 (with the position of the first bad byte).
// sizeHint is how many bytes f will likely give: its size as it says
// (at most limit+1 where there is a limit), or 0.
func sizeHint(f fs.File, limit int64) int {
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() < 0 {
		return 0
	}
	n := fi.Size()
	if limit > 0 {
		n = min(n, limit+1)
	}
	return int(min(n, 1<<30))
}

// readAll is io.ReadAll into a buffer of size+1 bytes to start with, so
// a file read whole takes one allocation instead of a doubling series:
// those were most of reading a 50,000-workload repository (fresh memory
// cleared, page by page). A file that grew since it said its size is
// still read whole (within the reader's limit).
func readAll(r io.Reader, size int) ([]byte, error) {
	b := make([]byte, 0, size+1)
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}

func readFile(fsys fs.FS, p string, limit int64) ([]byte, *Error) {
	f, err := fsys.Open(p)
	if err != nil {
		e := fileError(p, "open: "+err.Error())
		return nil, &e
	}
	defer f.Close()
	r := io.Reader(f)
	if limit > 0 {
		r = io.LimitReader(f, limit+1)
	}
	b, err := readAll(r, sizeHint(f, limit))
	if err != nil {
		e := fileError(p, "read: "+err.Error())
		return nil, &e
	}
	if limit > 0 && int64(len(b)) > limit {
		e := fileError(p, fmt.Sprintf("file is larger than %d bytes, the most berth reads from one file; split it into smaller files", limit))
		return nil, &e
	}
	if !utf8.Valid(b) {
		line, col := 1, 1
		for i := 0; i < len(b); {
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				break
			}
			if r == '\n' {
				line, col = line+1, 1
			} else {
				col++
			}
			i += size
		}
		return nil, &Error{Message: "file is not valid UTF-8; save it as UTF-8", Positions: []berth.Pos{{File: p, Line: line, Col: col}}}
	}
	return b, nil
}

// checkPackageClause refuses a file without a package clause: CUE leaves
// such a file out of every package instance, so its workloads would
// silently not exist. (A syntax error is left for the loader to report.)
func checkPackageClause(p string, b []byte) *Error {
	f, err := parser.ParseFile(p, b, parser.PackageClauseOnly)
	if err != nil || f.PackageName() != "" {
		return nil
	}
	return &Error{
		Message:   "file has no package clause, so it belongs to no package and berth would not read it; start it with 'package <name>', the name the other files in its directory use",
		Positions: []berth.Pos{{File: p, Line: 1, Col: 1}},
	}
}

func fileError(p, msg string) Error {
	return Error{Message: msg, Positions: []berth.Pos{{File: p}}}
}

// hashFiles hashes the named files' paths and contents.
func (t *tree) hashFiles(paths []string) [32]byte {
	h := sha256.New()
	for _, p := range paths {
		io.WriteString(h, p)
		h.Write([]byte{0})
		h.Write(t.files[p])
		h.Write([]byte{0})
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

// paths returns every file's path, sorted.
func (t *tree) paths() []string {
	out := make([]string, 0, len(t.files))
	for p := range t.files {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// newTree makes a tree of files that were checked already (a child
// process gets them from its parent).
func newTree(files map[string][]byte) *tree {
	t := &tree{files: files, filesOf: map[string][]string{}}
	dirs := map[string]bool{}
	for p := range files {
		d := path.Dir(p)
		t.filesOf[d] = append(t.filesOf[d], p)
		if !isUnderCueMod(p) {
			dirs[d] = true
		}
	}
	for _, fs := range t.filesOf {
		slices.Sort(fs)
	}
	for d := range dirs {
		t.dirs = append(t.dirs, d)
	}
	slices.Sort(t.dirs)
	return t
}

// dirFiles returns the sorted files directly in dir.
func (t *tree) dirFiles(dir string) []string { return t.filesOf[dir] }

// fsys is the in-memory copy as an fs.FS for cue/load.
func (t *tree) fsys() fs.FS { return memFS{t: t} }

// memFS serves the checked copy to CUE's loader. Directories are implied by
// the files' paths.
type memFS struct{ t *tree }

func (m memFS) Open(name string) (fs.File, error) {
	name = strings.TrimPrefix(name, "/")
	if name == "" {
		name = "."
	}
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	if b, ok := m.t.files[name]; ok {
		return &memFile{name: path.Base(name), r: bytes.NewReader(b), size: int64(len(b))}, nil
	}
	entries := m.readDir(name)
	if entries == nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return &memDir{name: path.Base(name), entries: entries}, nil
}

func (m memFS) ReadDir(name string) ([]fs.DirEntry, error) {
	name = strings.TrimPrefix(name, "/")
	if name == "" {
		name = "."
	}
	entries := m.readDir(name)
	if entries == nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
	}
	return entries, nil
}

func (m memFS) readDir(name string) []fs.DirEntry { return m.t.listing()[name] }

// listing returns every directory's entries, sorted, computed once: CUE's
// loader lists directories many times per instance.
func (t *tree) listing() map[string][]fs.DirEntry {
	t.listOnce.Do(func() {
		seen := map[string]map[string]fs.DirEntry{".": {}}
		for p, b := range t.files {
			dir, child := ".", p
			for {
				i := strings.IndexByte(child, '/')
				if seen[dir] == nil {
					seen[dir] = map[string]fs.DirEntry{}
				}
				if i < 0 {
					seen[dir][child] = memInfo{name: child, size: int64(len(b))}
					break
				}
				d := child[:i]
				seen[dir][d] = memInfo{name: d, dir: true}
				dir, child = path.Join(dir, d), child[i+1:]
			}
		}
		t.dirList = make(map[string][]fs.DirEntry, len(seen))
		for d, m := range seen {
			out := make([]fs.DirEntry, 0, len(m))
			for _, e := range m {
				out = append(out, e)
			}
			slices.SortFunc(out, func(a, b fs.DirEntry) int {
				return cmp.Compare(a.Name(), b.Name())
			})
			t.dirList[d] = out
		}
	})
	return t.dirList
}

type memInfo struct {
	name string
	size int64
	dir  bool
}

func (i memInfo) Name() string { return i.name }
func (i memInfo) Size() int64  { return i.size }
func (i memInfo) Mode() fs.FileMode {
	if i.dir {
		return fs.ModeDir | 0o555
	}
	return 0o444
}
func (i memInfo) ModTime() time.Time         { return time.Time{} }
func (i memInfo) IsDir() bool                { return i.dir }
func (i memInfo) Sys() any                   { return nil }
func (i memInfo) Type() fs.FileMode          { return i.Mode().Type() }
func (i memInfo) Info() (fs.FileInfo, error) { return i, nil }

type memFile struct {
	name string
	r    *bytes.Reader
	size int64
}

func (f *memFile) Stat() (fs.FileInfo, error) { return memInfo{name: f.name, size: f.size}, nil }
func (f *memFile) Read(b []byte) (int, error) { return f.r.Read(b) }
func (f *memFile) Close() error               { return nil }

type memDir struct {
	name    string
	entries []fs.DirEntry
	off     int
}

func (d *memDir) Stat() (fs.FileInfo, error) { return memInfo{name: d.name, dir: true}, nil }
func (d *memDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.name, Err: fs.ErrInvalid}
}
func (d *memDir) Close() error { return nil }
func (d *memDir) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.entries[d.off:]
	if n <= 0 {
		d.off = len(d.entries)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	if n > len(rest) {
		n = len(rest)
	}
	d.off += n
	return rest[:n], nil
}
