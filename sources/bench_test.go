package sources

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// bigRepo makes a repository of 10,000 .cue files in 100 directories.
func bigRepo(b *testing.B) string {
	b.Helper()
	dir := newRepo(b)
	for d := range 100 {
		sub := filepath.Join(dir, "workloads", fmt.Sprintf("team%02d", d))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := range 100 {
			body := fmt.Sprintf("workloads: \"team%02d-job%02d\": {\n\tkind: \"batch\"\n\tteam: \"team%02d\"\n\tgpus: %d\n}\n", d, f, d, f%8+1)
			if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("job%02d.cue", f)), []byte(body), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	run(b, dir, "add", "-A")
	run(b, dir, "commit", "-q", "-m", "10,000 workloads")
	return dir
}

// BenchmarkGitLatestUnchanged is a poll that finds nothing new: fetch
// (ref advertisement only) and open the head's tree.
func BenchmarkGitLatestUnchanged(b *testing.B) {
	origin := bigRepo(b)
	g := newGit(b, GitOptions{URL: origin})
	ctx := ctxT(b)
	if _, err := g.Latest(ctx); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		rev, err := g.Latest(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := fs.Stat(rev.FS, "workloads/team42/job42.cue"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGitLatestOneCommit fetches one new commit (one changed file)
// into a cache that holds the rest, and opens it. Making the commit is
// not timed.
func BenchmarkGitLatestOneCommit(b *testing.B) {
	origin := bigRepo(b)
	g := newGit(b, GitOptions{URL: origin})
	ctx := ctxT(b)
	if _, err := g.Latest(ctx); err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		b.StopTimer()
		i++
		want := commit(b, origin, "change", map[string]string{"workloads/team07/job07.cue": fmt.Sprintf("x: %d\n", i)})
		b.StartTimer()
		rev, err := g.Latest(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if rev.Hash != want {
			b.Fatalf("Latest = %s, want %s", rev.Hash, want)
		}
		if _, err := fs.ReadFile(rev.FS, "workloads/team07/job07.cue"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGitFirstFetch clones the 10,000-file repository into an empty
// cache.
func BenchmarkGitFirstFetch(b *testing.B) {
	origin := bigRepo(b)
	ctx := ctxT(b)
	for b.Loop() {
		b.StopTimer()
		g := newGit(b, GitOptions{URL: origin})
		b.StartTimer()
		if _, err := g.Latest(ctx); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		g.Close()
		b.StartTimer()
	}
}

// BenchmarkTreeFSWalk walks a fresh revision's tree of 10,000 files:
// listing every directory; and listing with every file's size (Info); and
// listing and reading every file, as the loader does.
func BenchmarkTreeFSWalk(b *testing.B) {
	origin := bigRepo(b)
	g := newGit(b, GitOptions{URL: origin})
	ctx := ctxT(b)
	head, err := g.Latest(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for _, mode := range []string{"list", "list+stat", "list+read"} {
		b.Run(mode, func(b *testing.B) {
			for b.Loop() {
				rev, err := g.At(ctx, head.Hash) // a new FS: nothing decoded yet
				if err != nil {
					b.Fatal(err)
				}
				files := 0
				err = fs.WalkDir(rev.FS, ".", func(p string, d fs.DirEntry, err error) error {
					if err != nil || d.IsDir() {
						return err
					}
					files++
					switch mode {
					case "list+stat":
						_, err = d.Info()
						return err
					case "list+read":
						f, err := rev.FS.Open(p)
						if err != nil {
							return err
						}
						defer f.Close()
						_, err = io.Copy(io.Discard, f)
						return err
					}
					return nil
				})
				if err != nil || files != 10000 {
					b.Fatalf("walked %d files: %v", files, err)
				}
			}
		})
	}
}

// BenchmarkCommitToNotification is the time from `git commit` returning
// in a watched repository to the watcher's Change, and to the new
// revision in hand (Change, then Latest). Reported as p50/p90 in ms;
// the watcher's debounce (default 100 ms) is part of it.
func BenchmarkCommitToNotification(b *testing.B) {
	origin := bigRepo(b)
	g := newGit(b, GitOptions{URL: origin})
	ctx := ctxT(b)
	if _, err := g.Latest(ctx); err != nil {
		b.Fatal(err)
	}
	w, err := WatchGitRefs(ctx, origin, WatchOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	var toChange, toRevision []time.Duration
	i := 0
	for b.Loop() {
		i++
		want := commit(b, origin, "change", map[string]string{"workloads/team01/job01.cue": fmt.Sprintf("x: %d\n", i)})
		start := time.Now()
		waitForChange(b, w, "refs/heads/main")
		toChange = append(toChange, time.Since(start))
		rev, err := g.Latest(ctx)
		if err != nil || rev.Hash != want {
			b.Fatalf("Latest = %s, %v; want %s", rev.Hash, err, want)
		}
		toRevision = append(toRevision, time.Since(start))
	}
	b.ReportMetric(pct(toChange, 50), "change-p50-ms")
	b.ReportMetric(pct(toChange, 90), "change-p90-ms")
	b.ReportMetric(pct(toRevision, 50), "revision-p50-ms")
	b.ReportMetric(pct(toRevision, 90), "revision-p90-ms")
}

func waitForChange(b *testing.B, w *Watcher, path string) {
	for {
		c := recv(b, w.Changes(), "waiting for "+path)
		if slices.Contains(c.Paths, path) {
			return
		}
	}
}

func pct(ds []time.Duration, p int) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return float64(s[(len(s)-1)*p/100]) / float64(time.Millisecond)
}
