package notebook

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berth-gpu/berth"
	standin "github.com/berth-gpu/berth/fixtures/notebook"
)

func TestArgsAndURL(t *testing.T) {
	got := Args([]string{"jupyter-lab"}, 41234, "/", "/state/notebooks/vision/explore")
	want := []string{"jupyter-lab", "--no-browser", "--ip=127.0.0.1", "--port=41234", "--ServerApp.port_retries=0",
		"--ServerApp.base_url=/", "--ServerApp.root_dir=/state/notebooks/vision/explore"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Args (-want +got):\n%s", diff)
	}
	if u := URL("127.0.0.1", 8888, "/", "ab12"); u != "http://127.0.0.1:8888/?token=ab12" {
		t.Errorf("URL = %s", u)
	}
	if u := URL("127.0.0.1", 8888, "/", ""); u != "http://127.0.0.1:8888/" {
		t.Errorf("URL without token = %s", u)
	}
}

func TestTokenKeptOutsideTheNotebookAndPrivate(t *testing.T) {
	s := Store{Root: t.TempDir()}
	id := berth.MakeWorkloadID("vision", "explore")
	tok, err := s.Token(id)
	if err != nil {
		t.Fatal(err)
	}
	if len(tok) != 64 {
		t.Errorf("token %q: want 64 hex digits", tok)
	}
	again, err := s.Token(id)
	if err != nil || again != tok {
		t.Errorf("second Token = %q, %v; want the kept %q", again, err, tok)
	}
	other, _ := s.Token(berth.MakeWorkloadID("vision", "label"))
	if other == tok {
		t.Error("two notebooks share a token")
	}
	fi, err := os.Stat(s.TokenFile(id))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", fi.Mode().Perm())
	}
	di, _ := os.Stat(filepath.Dir(s.TokenFile(id)))
	if di.Mode().Perm() != 0o700 {
		t.Errorf("token directory mode %v, want 0700", di.Mode().Perm())
	}
	dir, err := s.Dir(id)
	if err != nil {
		t.Fatal(err)
	}
	if rel, _ := filepath.Rel(dir, s.TokenFile(id)); !strings.HasPrefix(rel, "..") {
		t.Errorf("token %s is inside the notebook's directory %s, which Jupyter serves", s.TokenFile(id), dir)
	}
}

func TestIdle(t *testing.T) {
	start := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name        string
		last, since time.Time
		now         time.Time
		limit       time.Duration
		wantIdle    time.Duration
		wantStop    bool
	}{
		{"active a minute ago", start.Add(59 * time.Minute), start, start.Add(time.Hour), time.Hour, time.Minute, false},
		{"idle exactly the limit", start, start, start.Add(time.Hour), time.Hour, time.Hour, true},
		{"activity before berth started it counts from the start", start.Add(-5 * time.Hour), start, start.Add(30 * time.Minute), time.Hour, 30 * time.Minute, false},
		{"no answer: from the start", time.Time{}, start, start.Add(2 * time.Hour), time.Hour, 2 * time.Hour, true},
		{"no limit never stops", start, start, start.Add(100 * time.Hour), 0, 100 * time.Hour, false},
		{"a clock behind the server's", start.Add(time.Minute), start, start, time.Hour, 0, false},
	} {
		idle, stop := Idle(tc.last, tc.since, tc.now, tc.limit)
		if idle != tc.wantIdle || stop != tc.wantStop {
			t.Errorf("%s: Idle = %s, %v; want %s, %v", tc.name, idle, stop, tc.wantIdle, tc.wantStop)
		}
	}
	if got := IdleReason(61*time.Minute+400*time.Millisecond, time.Hour); got != "idle for 1h1m0s (limit 1h): stopped and its GPUs freed" {
		t.Errorf("IdleReason = %q", got)
	}
}

// TestStandInHonoursTokenAndBaseURL: the stand-in the local backend's
// tests run answers only under its base URL and only with its token, and
// reports activity as Jupyter does (api/status is not activity).
func TestStandInHonoursTokenAndBaseURL(t *testing.T) {
	root := t.TempDir()
	tokFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokFile, []byte("s3cret"), 0o600)
	env := map[string]string{"JUPYTER_TOKEN_FILE": tokFile}
	cfg := standin.ParseArgs(Args([]string{"stand-in"}, 9999, "/nb/vision/explore", root)[1:], func(k string) string { return env[k] })
	if cfg.Token != "s3cret" || cfg.BaseURL != "/nb/vision/explore/" || cfg.Port != "9999" || cfg.RootDir != root {
		t.Fatalf("ParseArgs = %+v", cfg)
	}
	srv := httptest.NewServer(standin.NewServer(cfg))
	defer srv.Close()
	base := srv.URL + cfg.BaseURL
	checkServer(t, base, "s3cret")
	if code := get(t, srv.URL+"/api/status?token=s3cret"); code != http.StatusNotFound {
		t.Errorf("outside the base URL: %d, want 404", code)
	}
}

// TestRealJupyter runs the same checks against a real Jupyter server
// started with Args, where one is installed (Debian's python3-jupyter-server,
// or pip install jupyterlab); it skips elsewhere.
func TestRealJupyter(t *testing.T) {
	prefix := findJupyter()
	if prefix == nil {
		t.Skip("no Jupyter server here (python3 -m jupyter_server)")
	}
	if os.Geteuid() == 0 {
		prefix = append(prefix, "--allow-root")
	}
	port := freePort(t)
	s := Store{Root: t.TempDir()}
	id := berth.MakeWorkloadID("vision", "explore")
	tok, err := s.Token(id)
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := s.Dir(id)
	args := Args(prefix, port, BaseURL, dir)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), EnvTokenFile+"="+s.TokenFile(id), "HOME="+t.TempDir())
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	base := URL("127.0.0.1", port, BaseURL, "")
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := ReadStatus(context.Background(), http.DefaultClient, base, tok); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Jupyter did not answer in 60s:\n%s", log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	checkServer(t, base, tok)
	if b, err := os.ReadFile(filepath.Join(dir, "note.txt")); err != nil || string(b) != "kept" {
		t.Errorf("the notebook's file in its directory: %q, %v", b, err)
	}
}

// checkServer checks what berth relies on of a notebook server at base:
// the token is required, api/status reports last_activity without
// counting as activity, other requests are activity, and files land in
// its root.
func checkServer(t *testing.T, base, token string) {
	t.Helper()
	if code := get(t, base+"api/status"); code != http.StatusForbidden {
		t.Errorf("api/status without the token: %d, want 403", code)
	}
	if code := get(t, base+"api/status?token=wrong"); code != http.StatusForbidden {
		t.Errorf("api/status with a wrong token: %d, want 403", code)
	}
	ctx := context.Background()
	first, err := ReadStatus(ctx, http.DefaultClient, base, token)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	again, err := ReadStatus(ctx, http.DefaultClient, base, token)
	if err != nil {
		t.Fatal(err)
	}
	if !again.LastActivity.Equal(first.LastActivity) {
		t.Errorf("api/status moved last_activity %s -> %s: polling would keep a notebook alive", first.LastActivity, again.LastActivity)
	}
	body, _ := json.Marshal(map[string]string{"type": "file", "format": "text", "content": "kept"})
	req, _ := http.NewRequest(http.MethodPut, base+"api/contents/note.txt", bytes.NewReader(body))
	req.Header.Set("Authorization", "token "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("PUT api/contents/note.txt: %s", resp.Status)
	}
	after, err := ReadStatus(ctx, http.DefaultClient, base, token)
	if err != nil {
		t.Fatal(err)
	}
	if !after.LastActivity.After(first.LastActivity) {
		t.Errorf("a request did not move last_activity (%s -> %s)", first.LastActivity, after.LastActivity)
	}
}

func get(t *testing.T, u string) int {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// findJupyter is a Jupyter server's command here, or nil.
func findJupyter() []string {
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(py, "-c", "import jupyter_server").Run() == nil {
			return []string{py, "-m", "jupyter_server"}
		}
	}
	return nil
}
