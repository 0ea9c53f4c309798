package sources

import (
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

func TestGitLatestLocal(t *testing.T) {
	origin := newRepo(t)
	hash := commit(t, origin, "add the teams\n\nwith a body", map[string]string{
		"teams/vision.cue": "teams: vision: {}\n",
		"README.md":        "hello\n",
	})
	g := newGit(t, GitOptions{URL: origin})
	rev, err := g.Latest(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if rev.Hash != hash || rev.Branch != "main" || rev.Kind != Commit {
		t.Errorf("got %+v, want main at %s", rev, hash)
	}
	if got, want := rev.String(), "main@sha1:"+hash; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if rev.Subject != "add the teams" || rev.Author != "Ada Lovelace <ada@example.com>" || rev.Time.IsZero() {
		t.Errorf("metadata: subject %q author %q time %v", rev.Subject, rev.Author, rev.Time)
	}
	if rev.Rewrite != nil {
		t.Errorf("first fetch reports a rewrite: %v", rev.Rewrite)
	}
	b, err := fs.ReadFile(rev.FS, "teams/vision.cue")
	if err != nil || string(b) != "teams: vision: {}\n" {
		t.Errorf("ReadFile = %q, %v", b, err)
	}
	if err := fstest.TestFS(rev.FS, "README.md", "teams/vision.cue"); err != nil {
		t.Error(err)
	}
	if g.LocalPath() != origin {
		t.Errorf("LocalPath() = %q, want %q", g.LocalPath(), origin)
	}
}

func TestGitIncrementalFetch(t *testing.T) {
	origin := newRepo(t)
	files := map[string]string{}
	for i := range 50 {
		files["workloads/w"+string(rune('a'+i%26))+strings.Repeat("x", i/26)+".cue"] = "x: 1\n"
	}
	commit(t, origin, "first", files)
	g := newGit(t, GitOptions{URL: origin})
	first, err := g.Latest(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	before := packs(t, g.Dir())
	if len(before) != 1 {
		t.Fatalf("after the first fetch: packs %v, want one", before)
	}

	// Unchanged: no new pack, the same revision.
	again, err := g.Latest(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if again.Hash != first.Hash || !maps.Equal(packs(t, g.Dir()), before) {
		t.Errorf("unchanged fetch: %s, packs %v; want %s, %v", again.Hash, packs(t, g.Dir()), first.Hash, before)
	}

	// One new file at the root: the new pack holds the commit, the root
	// tree and the blob, nothing of the 50 files before.
	second := commit(t, origin, "second", map[string]string{"new.cue": "y: 2\n"})
	rev, err := g.Latest(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if rev.Hash != second {
		t.Fatalf("Latest = %s, want %s", rev.Hash, second)
	}
	after := packs(t, g.Dir())
	var added []int
	for name, n := range after {
		if _, ok := before[name]; !ok {
			added = append(added, n)
		}
	}
	if !slices.Equal(added, []int{3}) {
		t.Errorf("second fetch added packs with %v objects, want one with 3 (commit, tree, blob)", added)
	}
	if _, err := fs.Stat(rev.FS, "new.cue"); err != nil {
		t.Error(err)
	}
	// The first revision still reads after the fetch.
	if _, err := fs.ReadFile(first.FS, "workloads/wa.cue"); err != nil {
		t.Error(err)
	}
}

func TestGitReopenKeepsCache(t *testing.T) {
	origin := newRepo(t)
	commit(t, origin, "first", map[string]string{"a.cue": "a: 1\n"})
	cache := t.TempDir()
	g, err := NewGit(GitOptions{URL: origin, CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Latest(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	// A second process (or source) on the same clone is refused.
	if _, err := NewGit(GitOptions{URL: origin, CacheDir: cache}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second NewGit on one cache: %v, want in use", err)
	}
	rev, err := g.Latest(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	g.Close()
	if _, err := g.Latest(ctxT(t)); err == nil {
		t.Error("Latest after Close succeeded")
	}
	if _, err := fs.ReadFile(rev.FS, "a.cue"); err == nil {
		t.Error("reading a revision after Close succeeded")
	}

	second := commit(t, origin, "second", map[string]string{"b.cue": "b: 1\n"})
	g = newGit(t, GitOptions{URL: origin, CacheDir: cache})
	before := len(packs(t, g.Dir()))
	rev, err = g.Latest(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if rev.Hash != second || len(packs(t, g.Dir())) != before+1 {
		t.Errorf("after reopen: %s with %d packs, want %s with %d", rev.Hash, len(packs(t, g.Dir())), second, before+1)
	}
}

func TestGitForcePush(t *testing.T) {
	origin := newRepo(t)
	base := commit(t, origin, "base", map[string]string{"a.cue": "a: 1\n"})
	old := commit(t, origin, "old", map[string]string{"b.cue": "b: 1\n"})
	cache := t.TempDir()
	g := newGit(t, GitOptions{URL: origin, CacheDir: cache})
	if _, err := g.Latest(ctxT(t)); err != nil {
		t.Fatal(err)
	}

	// Rewrite: drop "old", commit something else on base.
	run(t, origin, "reset", "-q", "--hard", base)
	rewritten := commit(t, origin, "rewritten", map[string]string{"c.cue": "c: 1\n"})
	rev, err := g.Latest(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	want := Rewrite{Previous: old, Base: base}
	if rev.Hash != rewritten || rev.Rewrite == nil || *rev.Rewrite != want {
		t.Fatalf("after force-push: %s rewrite %+v, want %s rewrite %+v", rev.Hash, rev.Rewrite, rewritten, want)
	}
	if _, err := fs.Stat(rev.FS, "b.cue"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("rewritten tree still has b.cue: %v", err)
	}
	// Asking again reports the same head and the same rewrite.
	again, err := g.Latest(ctxT(t))
	if err != nil || again.Rewrite == nil || *again.Rewrite != want {
		t.Errorf("second Latest: %+v, %v; want the rewrite again", again.Rewrite, err)
	}

	// A fast-forward after that is not a rewrite.
	next := commit(t, origin, "next", map[string]string{"d.cue": "d: 1\n"})
	rev, err = g.Latest(ctxT(t))
	if err != nil || rev.Hash != next || rev.Rewrite != nil {
		t.Errorf("fast-forward: %s rewrite %v err %v", rev.Hash, rev.Rewrite, err)
	}

	// A rewrite to unrelated history while berth was not running is seen
	// at the next start.
	g.Close()
	run(t, origin, "checkout", "-q", "--orphan", "fresh")
	run(t, origin, "rm", "-rq", "--cached", ".")
	orphan := commit(t, origin, "unrelated", map[string]string{"z.cue": "z: 1\n"})
	run(t, origin, "branch", "-M", "fresh", "main")
	g = newGit(t, GitOptions{URL: origin, CacheDir: cache})
	rev, err = g.Latest(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if rev.Hash != orphan || rev.Rewrite == nil || *rev.Rewrite != (Rewrite{Previous: next}) {
		t.Errorf("unrelated history: %s rewrite %+v, want %s from %s with no base", rev.Hash, rev.Rewrite, orphan, next)
	}
	if !strings.Contains(rev.Rewrite.String(), "shares no history") {
		t.Errorf("Rewrite.String() = %q", rev.Rewrite.String())
	}
}

func TestGitBranchNotFound(t *testing.T) {
	t.Run("empty repository", func(t *testing.T) {
		origin := newRepo(t)
		g := newGit(t, GitOptions{URL: origin})
		_, err := g.Latest(ctxT(t))
		var bnf *BranchNotFoundError
		if !errors.As(err, &bnf) || !bnf.Empty || bnf.Branch != "main" {
			t.Fatalf("Latest on an empty repository: %v, want BranchNotFoundError{Empty}", err)
		}
		if !strings.HasPrefix(err.Error(), "source git "+origin+": fetch main: ") {
			t.Errorf("error text %q does not start with its subject", err)
		}
		// Pushing the first commit makes it work.
		hash := commit(t, origin, "first", map[string]string{"a.cue": "a: 1\n"})
		rev, err := g.Latest(ctxT(t))
		if err != nil || rev.Hash != hash {
			t.Errorf("after the first commit: %v, %v", rev.Hash, err)
		}
	})
	t.Run("deleted branch", func(t *testing.T) {
		origin := newRepo(t)
		commit(t, origin, "first", map[string]string{"a.cue": "a: 1\n"})
		run(t, origin, "branch", "feature")
		g := newGit(t, GitOptions{URL: origin, Branch: "feature"})
		if _, err := g.Latest(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		run(t, origin, "branch", "-D", "feature")
		_, err := g.Latest(ctxT(t))
		var bnf *BranchNotFoundError
		if !errors.As(err, &bnf) || bnf.Empty || bnf.Branch != "feature" {
			t.Fatalf("Latest of a deleted branch: %v, want BranchNotFoundError", err)
		}
		if want := "source git " + origin + ": fetch feature: branch feature not found"; err.Error() != want {
			t.Errorf("error text %q, want %q", err, want)
		}
	})
}

func TestGitAtAndRef(t *testing.T) {
	origin := newRepo(t)
	first := commit(t, origin, "first", map[string]string{"a.cue": "a: 1\n"})
	commit(t, origin, "second", map[string]string{"a.cue": "a: 2\n"})
	run(t, origin, "checkout", "-q", "-b", "pr")
	prHead := commit(t, origin, "pull request", map[string]string{"a.cue": "a: 3\n"})
	run(t, origin, "update-ref", "refs/pull/7/head", prHead)
	run(t, origin, "checkout", "-q", "main")
	g := newGit(t, GitOptions{URL: origin})
	if _, err := g.Latest(ctxT(t)); err != nil {
		t.Fatal(err)
	}

	// A commit already in the cache.
	rev, err := g.At(ctxT(t), first)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := fs.ReadFile(rev.FS, "a.cue"); string(b) != "a: 1\n" || rev.String() != "sha1:"+first {
		t.Errorf("At(first) = %s with a.cue %q", rev, b)
	}

	// A pull request's head, fetched by its ref.
	rev, err = g.Ref(ctxT(t), "refs/pull/7/head")
	if err != nil {
		t.Fatal(err)
	}
	if rev.Hash != prHead || rev.String() != "refs/pull/7/head@sha1:"+prHead {
		t.Errorf("Ref(refs/pull/7/head) = %s, want %s", rev, prHead)
	}
	rev, err = g.Ref(ctxT(t), "pr")
	if err != nil || rev.String() != "pr@sha1:"+prHead {
		t.Errorf("Ref(pr) = %s, %v", rev, err)
	}
	run(t, origin, "tag", "-a", "-m", "release one", "v1", first)
	rev, err = g.Ref(ctxT(t), "refs/tags/v1")
	if err != nil || rev.Hash != first || rev.String() != "refs/tags/v1@sha1:"+first {
		t.Errorf("Ref(refs/tags/v1) = %s, %v; want the tagged commit %s", rev, err, first)
	}
	if _, err := g.Ref(ctxT(t), "refs/pull/8/head"); !errors.As(err, new(*BranchNotFoundError)) {
		t.Errorf("Ref of a missing ref: %v, want BranchNotFoundError", err)
	}

	// A commit that exists nowhere.
	_, err = g.At(ctxT(t), strings.Repeat("ab", 20))
	var cnf *CommitNotFoundError
	if !errors.As(err, &cnf) {
		t.Errorf("At(unknown) = %v, want CommitNotFoundError", err)
	}
	if _, err := g.At(ctxT(t), "HEAD"); err == nil {
		t.Error("At(HEAD) succeeded; want an error for a non-hash")
	}
}

// TestGitAtFetchesByHash fetches a commit no fetched ref reaches yet, the
// way a pull request's head arrives with a webhook.
func TestGitAtFetchesByHash(t *testing.T) {
	origin := newRepo(t)
	commit(t, origin, "first", map[string]string{"a.cue": "a: 1\n"})
	run(t, origin, "config", "uploadpack.allowReachableSHA1InWant", "true")
	g := newGit(t, GitOptions{URL: origin})
	if _, err := g.Latest(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	run(t, origin, "checkout", "-q", "-b", "pr")
	head := commit(t, origin, "pull request", map[string]string{"a.cue": "a: 3\n"})
	rev, err := g.At(ctxT(t), head)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := fs.ReadFile(rev.FS, "a.cue"); string(b) != "a: 3\n" {
		t.Errorf("At(pr head) a.cue = %q", b)
	}
	_, err = g.At(ctxT(t), strings.Repeat("ab", 20))
	if !errors.As(err, new(*CommitNotFoundError)) {
		t.Errorf("At(unknown) = %v, want CommitNotFoundError", err)
	}
}

func TestGitOptionsErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts GitOptions
		want string
	}{
		{"no url", GitOptions{}, "no repository URL"},
		{"relative path", GitOptions{URL: "repo"}, "must be absolute"},
		{"no cache", GitOptions{URL: "/srv/repo", CacheDir: "-"}, "no cache directory"},
		{"bad branch", GitOptions{URL: "/srv/repo", Branch: "a b"}, "not a valid branch"},
		{"ssh without key", GitOptions{URL: "git@github.com:o/r.git"}, "SSHKeyFile"},
		{"ssh without known_hosts", GitOptions{URL: "ssh://git@h/r", Auth: GitAuth{SSHKeyFile: "/nonexistent"}}, "ssh key /nonexistent"},
		{"scheme", GitOptions{URL: "ftp://h/r"}, "unsupported URL scheme"},
		{"token in url", GitOptions{URL: "https://u:s3cret@h/r", Branch: "a..b"}, "source git https://h/r: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			switch tc.opts.CacheDir {
			case "-":
				tc.opts.CacheDir = ""
			case "":
				tc.opts.CacheDir = t.TempDir()
			}
			_, err := NewGit(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "s3cret") {
				t.Errorf("NewGit: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// A berth SIGKILLed while go-git wrote a ref leaves the ref file empty in
// its cache; the next start must not fail on it for ever.
func TestGitReopenAfterATornRef(t *testing.T) {
	origin := newRepo(t)
	hash := commit(t, origin, "first", map[string]string{"a.cue": "a: 1\n"})
	cache := t.TempDir()
	g, err := NewGit(GitOptions{URL: origin, CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Latest(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	dir := g.Dir()
	g.Close()
	var torn []string
	filepath.WalkDir(filepath.Join(dir, "refs"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			torn = append(torn, p)
			os.WriteFile(p, nil, 0o644)
		}
		return nil
	})
	if len(torn) == 0 {
		t.Fatal("the cache has no loose refs to tear")
	}
	g = newGit(t, GitOptions{URL: origin, CacheDir: cache})
	rev, err := g.Latest(ctxT(t))
	if err != nil || rev.Hash != hash {
		t.Fatalf("after %d torn refs: %v, %v; want %s", len(torn), rev.Hash, err, hash)
	}
}
