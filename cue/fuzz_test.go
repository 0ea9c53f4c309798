package cue_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
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

// FuzzLoad feeds Load repositories written as txtar archives, seeded with
// the demo and the broken fixtures: Load must not panic or hang, a valid
// repository must give a Config, and an invalid one cue.Errors, each error
// with a position. Run it with go test -fuzz=FuzzLoad ./cue/.
func FuzzLoad(f *testing.F) {
	f.Add(archive(f, fixtures.Demo()))
	for _, name := range brokenCases(f) {
		if _, runaway := readCaseOptions(f, filepath.Join(brokenDir, name)); runaway {
			continue // each run would leave an evaluation behind for a while
		}
		f.Add(archive(f, os.DirFS(filepath.Join(brokenDir, name))))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m := unarchive(data)
		cfg, err := cue.Load(m, cue.Options{Timeout: 10 * time.Second, MaxFileSize: 64 << 10, MaxTotalSize: 1 << 20, Parallelism: 1})
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
