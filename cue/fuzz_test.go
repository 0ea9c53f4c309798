package cue_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/berth-gpu/berth/cue"
	"github.com/berth-gpu/berth/fixtures"
)

// archive packs a repository's .cue files (cue.mod included) in the txtar
// format: each file is a line "-- name --" and its content.
func archive(t testing.TB, fsys fs.FS) []byte {
	var ar bytes.Buffer
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(p) != ".cue" || d.Type()&fs.ModeSymlink != 0 {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		ar.WriteString("-- " + p + " --\n")
		ar.Write(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ar.Bytes()
}

// unarchive reads what archive writes (and whatever else the fuzzer makes
// of it) into a file system: text before the first marker is dropped, a
// name that is not a valid path is skipped.
func unarchive(data []byte) fstest.MapFS {
	m := fstest.MapFS{}
	name := ""
	var cur []byte
	flush := func() {
		if name != "" && name != "." && fs.ValidPath(name) {
			m[name] = &fstest.MapFile{Data: cur}
		}
	}
	for _, line := range strings.SplitAfter(string(data), "\n") {
		if n, ok := strings.CutPrefix(line, "-- "); ok {
			if n, ok := strings.CutSuffix(strings.TrimRight(n, "\n"), " --"); ok {
				flush()
				name, cur = strings.TrimSpace(n), nil
				continue
			}
		}
		cur = append(cur, line...)
	}
	flush()
	return m
}

// flatten makes a one-package repository of a repository's .cue files:
// every file goes to the root, in package repo, and an import of the
// repository's own package becomes a reference in the same package. The
// fuzzer's seeds are small this way: each directory is a package CUE loads
// and evaluates with its own copy of the schema, which made a mutated demo
// cost 100 ms, ten times a one-package repository.
func flatten(t testing.TB, fsys fs.FS) fstest.MapFS {
	clause := regexp.MustCompile(`(?m)^package \w+`)
	ownImport := regexp.MustCompile(`(?m)^import "example\.com/[^"]*/(\w+)"\n`)
	m := fstest.MapFS{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(p) != ".cue" || !d.Type().IsRegular() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		if strings.HasPrefix(p, "cue.mod/") {
			m[p] = &fstest.MapFile{Data: b}
			return nil
		}
		src := clause.ReplaceAllString(string(b), "package repo")
		for _, imp := range ownImport.FindAllStringSubmatch(src, -1) {
			src = strings.ReplaceAll(src, imp[0], "")
			src = strings.ReplaceAll(src, imp[1]+".#", "#")
		}
		m[strings.ReplaceAll(p, "/", "-")] = &fstest.MapFile{Data: []byte(src)}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// FuzzLoad feeds Load repositories written as txtar archives, seeded with
// the demo and the broken fixtures, each made one package (see flatten):
// Load must not panic or hang, a valid repository must give a Config, and
// an invalid one cue.Errors, each error with a position. Run it with
// go test -fuzz=FuzzLoad ./cue/ (or make fuzz).
//
// It evaluates in this process, where the fuzzer sees what the loader's
// code covers, under a budget small enough that an input that runs away
// costs a quarter of a second: a child process would cost more than the
// evaluation of a small input, and the fuzzer would see none of it.
func FuzzLoad(f *testing.F) {
	f.Add(archive(f, flatten(f, fixtures.Demo())))
	for _, name := range brokenCases(f) {
		dir := filepath.Join(brokenDir, name)
		if _, runaway := readCaseOptions(f, dir); runaway {
			continue // each run would leave an evaluation behind for a while
		}
		f.Add(archive(f, flatten(f, os.DirFS(dir))))
	}
	opts := cue.Options{Timeout: 250 * time.Millisecond, MaxMemory: 256 << 20, MaxFileSize: 16 << 10, MaxTotalSize: 64 << 10, Parallelism: 1}
	f.Fuzz(func(t *testing.T, data []byte) {
		m := unarchive(data)
		cfg, err := cue.Load(m, opts)
		if err == nil {
			if cfg == nil {
				t.Fatal("Load returned neither a Config nor an error")
			}
			return
		}
		var errs cue.Errors
		if !errors.As(err, &errs) {
			t.Fatalf("Load returned %T, not cue.Errors: %v", err, err)
		}
		if len(errs) == 0 {
			t.Fatal("Load returned empty Errors")
		}
		for _, e := range errs {
			if len(e.Positions) == 0 || !e.Positions[0].IsValid() {
				t.Errorf("error without a position: %q", e.Error())
			}
			if e.Message == "" {
				t.Errorf("error without a message: %+v", e)
			}
		}
	})
}
