package sources

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// gitServer serves the repositories under root over smart HTTP with the
// real git-http-backend, asking for basic auth with password token when
// token is not empty.
type gitServer struct {
	*httptest.Server
	bytes atomic.Int64 // response bytes sent
}

func serveGit(t testing.TB, root, token string) *gitServer {
	t.Helper()
	execPath, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Fatal(err)
	}
	backend := &cgi.Handler{
		Path:   filepath.Join(strings.TrimSpace(string(execPath)), "git-http-backend"),
		Env:    append(gitEnv(root), "GIT_PROJECT_ROOT="+root, "GIT_HTTP_EXPORT_ALL=1"),
		Stderr: io.Discard,
	}
	s := &gitServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token != "" {
			_, pass, ok := r.BasicAuth()
			if !ok || pass != token {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(w, "authentication required", http.StatusUnauthorized)
				return
			}
		}
		backend.ServeHTTP(countingWriter{w, &s.bytes}, r)
	}))
	t.Cleanup(s.Close)
	return s
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c countingWriter) Write(b []byte) (int, error) {
	c.n.Add(int64(len(b)))
	return c.ResponseWriter.Write(b)
}

func TestGitHTTP(t *testing.T) {
	root := t.TempDir()
	origin := filepath.Join(root, "repo")
	run(t, root, "init", "-q", "-b", "main", "repo")
	files := map[string]string{}
	for i := range 300 {
		files[filepath.Join("workloads", strings.Repeat("w", 1+i%7)+string(rune('a'+i%26))+strings.Repeat("z", i/26)+".cue")] = strings.Repeat("x: 1\n", 20+i)
	}
	commit(t, origin, "first", files)
	const token = "ghs_s3cretT0ken"
	srv := serveGit(t, root, token)
	url := srv.URL + "/repo"

	g := newGit(t, GitOptions{URL: url, Auth: GitAuth{Token: token}})
	rev, err := g.Latest(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rev.FS.Open("workloads/wa.cue"); err != nil {
		t.Fatal(err)
	}
	first := srv.bytes.Swap(0)

	// Nothing new: only the ref advertisement crosses the wire.
	if _, err := g.Latest(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	unchanged := srv.bytes.Swap(0)

	// One new commit: only its objects are sent.
	want := commit(t, origin, "second", map[string]string{"new.cue": "n: 1\n"})
	rev, err = g.Latest(ctxT(t))
	if err != nil || rev.Hash != want {
		t.Fatalf("Latest after a commit: %v, %v; want %s", rev.Hash, err, want)
	}
	incremental := srv.bytes.Swap(0)
	t.Logf("bytes sent: first fetch %d, unchanged %d, one commit %d", first, unchanged, incremental)
	if incremental*10 > first || unchanged*10 > first {
		t.Errorf("fetches after the first sent %d and %d bytes, the first %d: not incremental", unchanged, incremental, first)
	}

	// A token from a function, as a GitHub App installation token comes.
	calls := 0
	g2 := newGit(t, GitOptions{URL: url, Auth: GitAuth{TokenFunc: func(context.Context) (string, error) {
		calls++
		return token, nil
	}}})
	if _, err := g2.Latest(ctxT(t)); err != nil || calls != 1 {
		t.Errorf("TokenFunc: %v after %d calls", err, calls)
	}

	// A token in the URL is used, and shown nowhere.
	g3 := newGit(t, GitOptions{URL: strings.Replace(url, "http://", "http://x-access-token:"+token+"@", 1)})
	if _, err := g3.Latest(ctxT(t)); err != nil {
		t.Errorf("token in the URL: %v", err)
	}
	if strings.Contains(g3.String(), token) || strings.Contains(g3.Dir(), token) {
		t.Errorf("token shown in %q or %q", g3.String(), g3.Dir())
	}
}

func TestGitHTTPErrors(t *testing.T) {
	root := t.TempDir()
	run(t, root, "init", "-q", "-b", "main", "repo")
	commit(t, filepath.Join(root, "repo"), "first", map[string]string{"a.cue": "a: 1\n"})
	run(t, root, "init", "-q", "-b", "main", "empty")
	const token = "ghp_r1ghtT0ken"
	srv := serveGit(t, root, token)

	// A listener that is closed at once: connection refused.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + l.Addr().String() + "/repo"
	l.Close()

	for _, tc := range []struct {
		name, url, token string
		check            func(error) bool
		text             string
	}{
		{"no token", srv.URL + "/repo", "", isErr[*AuthError], "authentication failed"},
		{"wrong token", srv.URL + "/repo", "ghp_wr0ngT0ken", isErr[*AuthError], "authentication failed"},
		{"no such repository", srv.URL + "/nope", token, isErr[*RepositoryNotFoundError], "repository not found"},
		{"empty repository", srv.URL + "/empty", token, func(err error) bool {
			var e *BranchNotFoundError
			return errors.As(err, &e) && e.Empty
		}, "repository is empty"},
		{"server down", down, token, isErr[*NetworkError], "connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGit(t, GitOptions{URL: tc.url, Auth: GitAuth{Token: tc.token}})
			_, err := g.Latest(ctxT(t))
			if err == nil || !tc.check(err) {
				t.Fatalf("Latest: %v (%T)", err, err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "source git "+tc.url+": fetch main: ") || !strings.Contains(msg, tc.text) {
				t.Errorf("error text %q: want the subject, then %q", msg, tc.text)
			}
			if tc.token != "" && strings.Contains(msg, tc.token) {
				t.Errorf("error text %q contains the token", msg)
			}
		})
	}
}

func isErr[T error](err error) bool {
	var target T
	return errors.As(err, &target)
}
