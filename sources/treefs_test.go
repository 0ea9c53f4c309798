package sources

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

// treeRepo commits a tree with every kind of entry and returns its latest
// revision.
func treeRepo(t *testing.T) Revision {
	t.Helper()
	origin := newRepo(t)
	write(t, origin, map[string]string{
		"teams/vision.cue":   "teams: vision: {}\n",
		"teams/nlp.cue":      "teams: nlp: {}\n",
		"cue.mod/module.cue": "module: \"example.com/x\"\n",
		"a-b/c.cue":          "c: 1\n", // sorts before "a/" in Git's order, after it in fs order
		"a/x.cue":            "x: 1\n",
		"link.cue":           "->teams/vision.cue",
		"teamlink":           "->teams",
		"chain.cue":          "->link.cue",
		"up.cue":             "->../../etc/passwd",
		"abs.cue":            "->/etc/passwd",
		"loop1":              "->loop2",
		"loop2":              "->loop1",
		"teams/parent.cue":   "->../a/x.cue",
		"teams/dangling.cue": "->missing.cue",
		"big.bin":            strings.Repeat("0123456789abcdef", 1<<17), // 2 MiB: streamed
		"scripts/run.sh":     "#!/bin/sh\n",
	})
	if err := os.Chmod(filepath.Join(origin, "scripts/run.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, origin, "add", "-A")
	// A submodule entry: a gitlink to a commit of another repository.
	run(t, origin, "update-index", "--add", "--cacheinfo", "160000,"+strings.Repeat("1", 40)+",vendor/lib")
	run(t, origin, "commit", "-q", "-m", "every kind of entry")
	g := newGit(t, GitOptions{URL: origin})
	rev, err := g.Latest(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

func TestTreeFS(t *testing.T) {
	rev := treeRepo(t)
	fsys := rev.FS

	t.Run("ReadDir", func(t *testing.T) {
		entries, err := fs.ReadDir(fsys, ".")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range entries {
			got = append(got, e.Name()+" "+e.Type().String())
		}
		want := []string{
			"a d---------", "a-b d---------", "abs.cue L---------", "big.bin ----------",
			"chain.cue L---------", "cue.mod d---------", "link.cue L---------",
			"loop1 L---------", "loop2 L---------", "scripts d---------", "teamlink L---------",
			"teams d---------", "up.cue L---------", "vendor d---------",
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ReadDir(.) (-want +got):\n%s", diff)
		}
	})

	t.Run("symlinks", func(t *testing.T) {
		for _, tc := range []struct {
			name, target, content string
			err                   error
		}{
			{"link.cue", "teams/vision.cue", "teams: vision: {}\n", nil},
			{"chain.cue", "link.cue", "teams: vision: {}\n", nil},
			{"teams/parent.cue", "../a/x.cue", "x: 1\n", nil},
			{"teamlink/nlp.cue", "", "teams: nlp: {}\n", nil}, // through a linked directory
			{"up.cue", "../../etc/passwd", "", errOutside},
			{"abs.cue", "/etc/passwd", "", errOutside},
			{"loop1", "loop2", "", errLoop},
			{"teams/dangling.cue", "missing.cue", "", fs.ErrNotExist},
		} {
			if tc.target != "" {
				got, err := fs.ReadLink(fsys, tc.name)
				if err != nil || got != tc.target {
					t.Errorf("ReadLink(%s) = %q, %v; want %q", tc.name, got, err, tc.target)
				}
				fi, err := fs.Lstat(fsys, tc.name)
				if err != nil || fi.Mode()&fs.ModeSymlink == 0 || fi.Size() != int64(len(tc.target)) {
					t.Errorf("Lstat(%s) = %v, %v; want a symlink of size %d", tc.name, fi, err, len(tc.target))
				}
			}
			b, err := fs.ReadFile(fsys, tc.name)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Errorf("ReadFile(%s) = %v, want %v", tc.name, err, tc.err)
				}
				if _, err := fs.Stat(fsys, tc.name); !errors.Is(err, tc.err) {
					t.Errorf("Stat(%s) = %v, want %v", tc.name, err, tc.err)
				}
				continue
			}
			if err != nil || string(b) != tc.content {
				t.Errorf("ReadFile(%s) = %q, %v; want %q", tc.name, b, err, tc.content)
			}
			if fi, err := fs.Stat(fsys, tc.name); err != nil || !fi.Mode().IsRegular() || fi.Size() != int64(len(tc.content)) {
				t.Errorf("Stat(%s) = %v, %v; want a regular file of %d bytes", tc.name, fi, err, len(tc.content))
			}
		}
		if fi, err := fs.Stat(fsys, "teamlink"); err != nil || !fi.IsDir() || fi.Name() != "teamlink" {
			t.Errorf("Stat(teamlink) = %v, %v; want the directory it names", fi, err)
		}
		if _, err := fs.ReadLink(fsys, "a/x.cue"); err == nil {
			t.Error("ReadLink of a regular file succeeded")
		}
	})

	t.Run("submodule", func(t *testing.T) {
		fi, err := fs.Stat(fsys, "vendor/lib")
		if err != nil || !fi.IsDir() {
			t.Fatalf("Stat(vendor/lib) = %v, %v; want a directory", fi, err)
		}
		entries, err := fs.ReadDir(fsys, "vendor/lib")
		if err != nil || len(entries) != 0 {
			t.Errorf("ReadDir(vendor/lib) = %v, %v; want empty", entries, err)
		}
		if _, err := fsys.Open("vendor/lib/x.cue"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Open inside a submodule: %v", err)
		}
	})

	t.Run("files", func(t *testing.T) {
		fi, err := fs.Stat(fsys, "scripts/run.sh")
		if err != nil || fi.Mode() != 0o555 || fi.Size() != 10 || !fi.ModTime().Equal(rev.Time) {
			t.Errorf("Stat(scripts/run.sh) = %v %v %d %v, %v", fi.Name(), fi.Mode(), fi.Size(), fi.ModTime(), err)
		}
		b, err := fs.ReadFile(fsys, "big.bin")
		if err != nil || len(b) != 2<<20 || string(b[:16]) != "0123456789abcdef" {
			t.Errorf("ReadFile(big.bin) = %d bytes, %v", len(b), err)
		}
		for _, name := range []string{"/teams", "teams/", "../x", "teams/../a"} {
			if _, err := fsys.Open(name); !errors.Is(err, fs.ErrInvalid) {
				t.Errorf("Open(%q) = %v, want ErrInvalid", name, err)
			}
		}
		if _, err := fsys.Open("teams/vision.cue/x"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Open below a file: %v", err)
		}
		if _, err := fs.ReadDir(fsys, "a/x.cue"); err == nil {
			t.Error("ReadDir of a file succeeded")
		}
	})

	t.Run("fstest", func(t *testing.T) {
		// fstest opens every entry, so it gets the part of the tree whose
		// links all resolve.
		if err := fstest.TestFS(onlyResolvable{fsys}, "a/x.cue", "teams/nlp.cue", "link.cue", "scripts/run.sh", "cue.mod/module.cue", "a-b/c.cue"); err != nil {
			t.Error(err)
		}
	})
}

// onlyResolvable hides the links that do not resolve, for fstest.TestFS.
type onlyResolvable struct{ fs.FS }

var unresolvable = map[string]bool{"up.cue": true, "abs.cue": true, "loop1": true, "loop2": true, "teams/dangling.cue": true}

func (o onlyResolvable) Open(name string) (fs.File, error) {
	if unresolvable[name] {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	f, err := o.FS.Open(name)
	if err != nil {
		return nil, err
	}
	if d, ok := f.(fs.ReadDirFile); ok {
		return filteredDir{d, name}, nil
	}
	return f, nil
}

type filteredDir struct {
	fs.ReadDirFile
	name string
}

func (d filteredDir) ReadDir(n int) ([]fs.DirEntry, error) {
	for {
		entries, err := d.ReadDirFile.ReadDir(n)
		var out []fs.DirEntry
		for _, e := range entries {
			p := e.Name()
			if d.name != "." {
				p = d.name + "/" + p
			}
			if !unresolvable[p] {
				out = append(out, e)
			}
		}
		if len(out) > 0 || err != nil || n <= 0 {
			return out, err
		}
	}
}

// TestTreeFSConcurrent reads one revision from many goroutines while the
// source fetches new ones (run with -race).
func TestTreeFSConcurrent(t *testing.T) {
	origin := newRepo(t)
	files := map[string]string{}
	for i := range 200 {
		files[fmt.Sprintf("d%d/f%d.cue", i%10, i)] = fmt.Sprintf("f%d: %d\n", i, i)
	}
	commit(t, origin, "first", files)
	g := newGit(t, GitOptions{URL: origin})
	rev, err := g.Latest(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for range 8 {
		wg.Go(func() {
			for range 5 {
				n := 0
				err := fs.WalkDir(rev.FS, ".", func(p string, d fs.DirEntry, err error) error {
					if err != nil || d.IsDir() {
						return err
					}
					f, err := rev.FS.Open(p)
					if err != nil {
						return err
					}
					defer f.Close()
					b, err := io.ReadAll(f)
					if err != nil {
						return err
					}
					if !strings.HasPrefix(string(b), strings.TrimSuffix(filepath.Base(p), ".cue")+":") {
						return fmt.Errorf("%s: read %q", p, b)
					}
					n++
					return nil
				})
				if err == nil && n != 200 {
					err = fmt.Errorf("walked %d files, want 200", n)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for i := range 5 {
		commit(t, origin, fmt.Sprintf("change %d", i), map[string]string{"new.cue": fmt.Sprintf("n: %d\n", i)})
		next, err := g.Latest(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fs.ReadFile(next.FS, "new.cue"); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
