package sources

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// DirOptions configure a Dir.
type DirOptions struct {
	// HashLimit is the largest file hashed by content (default 1 MiB). A
	// larger file is hashed by its size and modification time, so a
	// directory holding a model checkpoint is not read on every change.
	HashLimit int64
	// Logger receives what the source does (default: discarded).
	Logger *slog.Logger
}

// Dir is a working directory on disk, the source for a user editing a
// repository locally. Its revision is named dir@sha256:<hash>, where the
// hash covers the path, executable bit and content of every file, and the
// target of every symlink, outside hidden files and directories (see
// Hidden): the same content gives the same name, whatever the timestamps.
//
// The revision's FS is the live directory (os.DirFS), not a copy: a change
// made while a revision is being read shows up in it, and the watcher then
// reports another change, so the next revision settles it.
type Dir struct {
	dir  string
	opts DirOptions
	log  *slog.Logger
}

// NewDir returns the source for the directory dir.
func NewDir(dir string, opts DirOptions) (*Dir, error) {
	if opts.HashLimit <= 0 {
		opts.HashLimit = 1 << 20
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("source dir %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("source dir %s: not a directory", dir)
	}
	return &Dir{dir: dir, opts: opts, log: log.With("source", dir)}, nil
}

// String is "source dir PATH".
func (d *Dir) String() string { return "source dir " + d.dir }

// Path is the directory.
func (d *Dir) Path() string { return d.dir }

// Hidden reports whether a file or directory name is left out of a Dir's
// hash and a directory watch: .git and other dot names, and editors'
// scratch files (vim's 4913 probe and name~ backups, emacs' #name#).
func Hidden(name string) bool {
	return strings.HasPrefix(name, ".") || strings.HasSuffix(name, "~") ||
		(strings.HasPrefix(name, "#") && strings.HasSuffix(name, "#")) || name == "4913"
}

// Latest hashes the directory's content. Its Time is the newest
// modification time among the files hashed.
func (d *Dir) Latest(ctx context.Context) (Revision, error) {
	h := sha256.New()
	var newest time.Time
	buf := make([]byte, 64<<10)
	err := filepath.WalkDir(d.dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p != d.dir && Hidden(e.Name()) {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if e.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(d.dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		info, err := e.Info()
		if err != nil {
			return err
		}
		if info.ModTime().After(newest) {
			newest = info.ModTime()
		}
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "link\x00%s\x00%s\x00", rel, target)
		case info.Mode().IsRegular() && info.Size() > d.opts.HashLimit:
			fmt.Fprintf(h, "large\x00%s\x00%d\x00%d\x00%t\x00", rel, info.Size(), info.ModTime().UnixNano(), info.Mode()&0o111 != 0)
		case info.Mode().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			fmt.Fprintf(h, "file\x00%s\x00%t\x00", rel, info.Mode()&0o111 != 0)
			n, err := io.CopyBuffer(h, f, buf)
			if err != nil {
				return err
			}
			// The length ends the content, so no file's bytes can pass for
			// the next file's header.
			io.WriteString(h, "\x00"+strconv.FormatInt(n, 10)+"\x00")
		}
		return nil
	})
	if err != nil {
		return Revision{}, fmt.Errorf("source dir %s: hash: %w", d.dir, err)
	}
	return Revision{
		Kind:    WorkingDir,
		Branch:  "dir",
		Hash:    hex.EncodeToString(h.Sum(nil)),
		Time:    newest,
		Subject: "working directory " + d.dir,
		FS:      os.DirFS(d.dir),
	}, nil
}
