package sources

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing/format/idxfile"
)

// gitEnv makes the git CLI deterministic and blind to the user's config.
func gitEnv(home string) []string {
	return append(os.Environ(),
		"HOME="+home,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=Ada Lovelace",
		"GIT_AUTHOR_EMAIL=ada@example.com",
		"GIT_COMMITTER_NAME=Ada Lovelace",
		"GIT_COMMITTER_EMAIL=ada@example.com",
		"GIT_TERMINAL_PROMPT=0",
	)
}

// run runs git in dir and returns its trimmed output.
func run(tb testing.TB, dir string, args ...string) string {
	tb.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = gitEnv(dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// newRepo makes a repository with a work tree on branch main.
func newRepo(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	run(tb, dir, "init", "-q", "-b", "main")
	return dir
}

// write writes files (path -> content) under dir; content "->target" makes
// a symlink, and a nil-like "" with a path ending in "/" a directory.
func write(tb testing.TB, dir string, files map[string]string) {
	tb.Helper()
	for p, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				tb.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			tb.Fatal(err)
		}
		os.Remove(full)
		if target, ok := strings.CutPrefix(content, "->"); ok {
			if err := os.Symlink(target, full); err != nil {
				tb.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

// commit writes files, commits everything, and returns the commit hash.
func commit(tb testing.TB, dir, msg string, files map[string]string) string {
	tb.Helper()
	write(tb, dir, files)
	run(tb, dir, "add", "-A")
	run(tb, dir, "commit", "-q", "--allow-empty", "-m", msg)
	return run(tb, dir, "rev-parse", "HEAD")
}

// newGit opens a source on url with a fresh cache.
func newGit(tb testing.TB, opts GitOptions) *Git {
	tb.Helper()
	if opts.CacheDir == "" {
		opts.CacheDir = tb.TempDir()
	}
	g, err := NewGit(opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { g.Close() })
	return g
}

func ctxT(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	tb.Cleanup(cancel)
	return ctx
}

// packs returns the object count of each pack in a bare clone.
func packs(tb testing.TB, dir string) map[string]int {
	tb.Helper()
	idxs, err := filepath.Glob(filepath.Join(dir, "objects", "pack", "*.idx"))
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]int{}
	for _, p := range idxs {
		f, err := os.Open(p)
		if err != nil {
			tb.Fatal(err)
		}
		idx := idxfile.NewMemoryIndex()
		if err := idxfile.NewDecoder(f).Decode(idx); err != nil {
			tb.Fatal(err)
		}
		f.Close()
		n, err := idx.Count()
		if err != nil {
			tb.Fatal(err)
		}
		out[filepath.Base(p)] = int(n)
	}
	return out
}

// recv waits for a value on ch, failing after a generous timeout.
func recv[T any](tb testing.TB, ch <-chan T, what string) T {
	tb.Helper()
	select {
	case v, ok := <-ch:
		if !ok {
			tb.Fatalf("%s: channel closed", what)
		}
		return v
	case <-time.After(30 * time.Second):
		tb.Fatalf("%s: nothing after 30s", what)
	}
	panic("unreachable")
}
