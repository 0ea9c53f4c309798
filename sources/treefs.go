package sources

import (
	"errors"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// treeFS is a commit's tree read straight from the object store. Trees
// are decoded on first use and kept for the life of the FS; blobs are read
// when opened.
//
// Directories exist only as trees hold them (Git has no empty
// directories). A symlink is a blob holding its target: ReadDir and Lstat
// report it as a symlink, ReadLink returns the target, and Open, Stat and
// ReadDir follow it when it stays inside the tree (a target that is
// absolute or climbs above the root is refused, as is a chain of more than
// 40 links). A submodule (a gitlink: a commit of another repository, which
// berth does not fetch) is an empty, read-only directory. Every file's
// modification time is the commit time.
type treeFS struct {
	store   *objectStore
	root    *node
	modTime time.Time

	mu   sync.Mutex
	dirs map[plumbing.Hash][]*node // decoded trees, sorted by name
}

var (
	_ fs.ReadDirFS   = (*treeFS)(nil)
	_ fs.ReadFileFS  = (*treeFS)(nil)
	_ fs.StatFS      = (*treeFS)(nil)
	_ fs.ReadLinkFS  = (*treeFS)(nil)
	_ fs.ReadDirFile = (*dirFile)(nil)
)

// errOutside refuses a symlink that leaves the tree.
var errOutside = errors.New("symlink leads outside the repository")

// errLoop refuses a chain of too many symlinks.
var errLoop = errors.New("too many levels of symbolic links")

// node is one tree entry. Its size and link target are read once, on
// first use.
type node struct {
	name string
	mode filemode.FileMode
	hash plumbing.Hash

	once   sync.Once
	size   int64
	target string
	err    error
}

func newTreeFS(store *objectStore, root plumbing.Hash, modTime time.Time) *treeFS {
	return &treeFS{
		store:   store,
		root:    &node{name: ".", mode: filemode.Dir, hash: root},
		modTime: modTime,
		dirs:    map[plumbing.Hash][]*node{},
	}
}

func (n *node) isDir() bool { return n.mode == filemode.Dir || n.mode == filemode.Submodule }

func (n *node) fsMode() fs.FileMode {
	switch n.mode {
	case filemode.Dir, filemode.Submodule:
		return fs.ModeDir | 0o555
	case filemode.Symlink:
		return fs.ModeSymlink | 0o777
	case filemode.Executable:
		return 0o555
	}
	return 0o444
}

// load reads a blob's size, and a symlink's target.
func (f *treeFS) load(n *node) error {
	if n.isDir() {
		return nil
	}
	n.once.Do(func() {
		n.err = f.store.do(func(s *filesystem.Storage) error {
			if n.mode != filemode.Symlink {
				var err error
				n.size, err = s.EncodedObjectSize(n.hash)
				return err
			}
			b, err := object.GetBlob(s, n.hash)
			if err != nil {
				return err
			}
			r, err := b.Reader()
			if err != nil {
				return err
			}
			defer r.Close()
			t, err := io.ReadAll(io.LimitReader(r, 4096))
			n.target, n.size = string(t), int64(len(t))
			return err
		})
	})
	return n.err
}

// children returns a directory's entries, sorted by name. A submodule has
// none.
func (f *treeFS) children(n *node) ([]*node, error) {
	if n.mode == filemode.Submodule {
		return nil, nil
	}
	f.mu.Lock()
	entries, ok := f.dirs[n.hash]
	f.mu.Unlock()
	if ok {
		return entries, nil
	}
	err := f.store.do(func(s *filesystem.Storage) error {
		t, err := object.GetTree(s, n.hash)
		if err != nil {
			return err
		}
		entries = make([]*node, 0, len(t.Entries))
		for _, e := range t.Entries {
			entries = append(entries, &node{name: e.Name, mode: e.Mode, hash: e.Hash})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Git sorts a tree as if directory names ended in "/"; fs.ReadDir
	// promises plain name order.
	slices.SortFunc(entries, func(a, b *node) int { return strings.Compare(a.name, b.name) })
	f.mu.Lock()
	f.dirs[n.hash] = entries
	f.mu.Unlock()
	return entries, nil
}

func (f *treeFS) child(dir *node, name string) (*node, error) {
	entries, err := f.children(dir)
	if err != nil {
		return nil, err
	}
	i, ok := slices.BinarySearchFunc(entries, name, func(n *node, name string) int { return strings.Compare(n.name, name) })
	if !ok {
		return nil, fs.ErrNotExist
	}
	return entries[i], nil
}

// lookup finds the node a path names, following symlinks in every
// component but the last, and in the last when follow is set.
func (f *treeFS) lookup(op, name string, follow bool) (*node, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	var rest []string
	if name != "." {
		rest = strings.Split(name, "/")
	}
	cur := f.root
	var curPath []string // the resolved path of cur
	links := 0
	for len(rest) > 0 {
		part := rest[0]
		rest = rest[1:]
		if !cur.isDir() {
			return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		n, err := f.child(cur, part)
		if err != nil {
			return nil, &fs.PathError{Op: op, Path: name, Err: err}
		}
		if n.mode != filemode.Symlink || (len(rest) == 0 && !follow) {
			cur = n
			curPath = append(curPath, part)
			continue
		}
		if links++; links > 40 {
			return nil, &fs.PathError{Op: op, Path: name, Err: errLoop}
		}
		if err := f.load(n); err != nil {
			return nil, &fs.PathError{Op: op, Path: name, Err: err}
		}
		target := n.target
		if path.IsAbs(target) || strings.HasPrefix(target, "\\") || (len(target) > 1 && target[1] == ':') {
			return nil, &fs.PathError{Op: op, Path: name, Err: errOutside}
		}
		joined := path.Join(path.Join(curPath...), target)
		if joined == ".." || strings.HasPrefix(joined, "../") {
			return nil, &fs.PathError{Op: op, Path: name, Err: errOutside}
		}
		// Resolve again from the root: the target may name any part of
		// the tree, through further links.
		var parts []string
		if joined != "." && joined != "" {
			parts = strings.Split(joined, "/")
		}
		rest = append(parts, rest...)
		cur, curPath = f.root, nil
	}
	return cur, nil
}

func (f *treeFS) Open(name string) (fs.File, error) {
	n, err := f.lookup("open", name, true)
	if err != nil {
		return nil, err
	}
	if n.isDir() {
		entries, err := f.children(n)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return &dirFile{fs: f, n: n, name: name, entries: entries}, nil
	}
	var r io.ReadCloser
	var size int64
	err = f.store.do(func(s *filesystem.Storage) error {
		o, err := s.EncodedObject(plumbing.BlobObject, n.hash)
		if err != nil {
			return err
		}
		size = o.Size()
		r, err = o.Reader()
		return err
	})
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	// The object knows its size: record it unless load did already. (Not
	// under the store lock: load holds once while it waits for that lock.)
	n.once.Do(func() { n.size = size })
	if size > largeObject {
		r = &lockedReader{o: f.store, r: r}
	}
	return &blobFile{fs: f, n: n, name: name, r: r}, nil
}

func (f *treeFS) ReadFile(name string) ([]byte, error) {
	file, err := f.Open(name)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	bf, ok := file.(*blobFile)
	if !ok {
		return nil, &fs.PathError{Op: "read", Path: name, Err: errors.New("is a directory")}
	}
	b := make([]byte, 0, bf.n.size)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		m, err := bf.Read(b[len(b):cap(b)])
		b = b[:len(b)+m]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

func (f *treeFS) ReadDir(name string) ([]fs.DirEntry, error) {
	n, err := f.lookup("readdir", name, true)
	if err != nil {
		return nil, err
	}
	if !n.isDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	entries, err := f.children(n)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	out := make([]fs.DirEntry, len(entries))
	for i, e := range entries {
		out[i] = dirEntry{f, e}
	}
	return out, nil
}

func (f *treeFS) Stat(name string) (fs.FileInfo, error) { return f.stat("stat", name, true) }

func (f *treeFS) Lstat(name string) (fs.FileInfo, error) { return f.stat("lstat", name, false) }

func (f *treeFS) stat(op, name string, follow bool) (fs.FileInfo, error) {
	n, err := f.lookup(op, name, follow)
	if err != nil {
		return nil, err
	}
	if err := f.load(n); err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	return fileInfo{f, n, path.Base(name)}, nil
}

func (f *treeFS) ReadLink(name string) (string, error) {
	n, err := f.lookup("readlink", name, false)
	if err != nil {
		return "", err
	}
	if n.mode != filemode.Symlink {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	if err := f.load(n); err != nil {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: err}
	}
	return n.target, nil
}

// fileInfo describes a node. It is made after load, so Size is known.
type fileInfo struct {
	fs   *treeFS
	n    *node
	name string // the name it was looked up by (a symlink's, when followed)
}

func (i fileInfo) Name() string       { return i.name }
func (i fileInfo) Size() int64        { return i.n.size }
func (i fileInfo) Mode() fs.FileMode  { return i.n.fsMode() }
func (i fileInfo) ModTime() time.Time { return i.fs.modTime }
func (i fileInfo) IsDir() bool        { return i.n.isDir() }
func (i fileInfo) Sys() any           { return nil }

type dirEntry struct {
	fs *treeFS
	n  *node
}

func (e dirEntry) Name() string      { return e.n.name }
func (e dirEntry) IsDir() bool       { return e.n.isDir() }
func (e dirEntry) Type() fs.FileMode { return e.n.fsMode().Type() }
func (e dirEntry) Info() (fs.FileInfo, error) {
	if err := e.fs.load(e.n); err != nil {
		return nil, &fs.PathError{Op: "stat", Path: e.n.name, Err: err}
	}
	return fileInfo{e.fs, e.n, e.n.name}, nil
}
func (e dirEntry) String() string { return fs.FormatDirEntry(e) }

type blobFile struct {
	fs   *treeFS
	n    *node
	name string
	r    io.ReadCloser
}

func (b *blobFile) Stat() (fs.FileInfo, error) { return fileInfo{b.fs, b.n, path.Base(b.name)}, nil }
func (b *blobFile) Read(p []byte) (int, error) { return b.r.Read(p) }
func (b *blobFile) Close() error               { return b.r.Close() }

type dirFile struct {
	fs      *treeFS
	n       *node
	name    string
	entries []*node
	off     int
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return fileInfo{d.fs, d.n, path.Base(d.name)}, nil }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.name, Err: errors.New("is a directory")}
}
func (d *dirFile) Close() error { return nil }

func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.entries[d.off:]
	if n > 0 {
		if len(rest) == 0 {
			return nil, io.EOF
		}
		rest = rest[:min(n, len(rest))]
	}
	d.off += len(rest)
	out := make([]fs.DirEntry, len(rest))
	for i, e := range rest {
		out[i] = dirEntry{d.fs, e}
	}
	return out, nil
}
