package local

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/reconcile/notebook"
)

// notebookCluster is a test cluster whose notebooks run the Jupyter
// stand-in (this test binary as "notebook"), checked for idleness every
// 50 ms.
func notebookCluster(t *testing.T) *Cluster {
	t.Helper()
	o := testOptions(t.TempDir(), testLogger(t))
	o.NotebookCommand = []string{os.Args[0], "notebook"}
	o.IdleCheckEvery = 50 * time.Millisecond
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopAll(c); c.Close() })
	return c
}

// explore is a notebook of one GPU with no command: berth runs Jupyter.
func explore(idle time.Duration) berth.Workload {
	w := batch("explore", "").Kind(berth.KindNotebook).Obj()
	w.Command, w.Image, w.Idle = nil, "", berth.Duration(idle)
	w.Resources = berth.Resources{GPU: 1}
	return w
}

// nbRequest sends a request to a notebook and returns its status and body.
func nbRequest(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "token "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitURL observes until the run has a URL that answers with the token.
func waitURL(t *testing.T, c *Cluster, w berth.Workload, token string) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if r, ok := observe(t, c).Run(berth.RunKey{Workload: w.ID(), RunID: w.RunID}); ok && r.URL != "" {
			if code, _ := nbRequest(t, http.MethodGet, r.URL+"api/status", token, ""); code == http.StatusOK {
				return r.URL
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: no URL answering with its token after %s", w.ID(), timeout)
	return ""
}

// TestNotebookTokenURLAndFilesAcrossRestarts: a notebook without a command
// runs a Jupyter server on its own port with a token of its own, kept
// 0600 in the state directory and passed as a file (not on the command
// line, not in the pod's spec); the status URL carries no token and the
// server refuses requests without it; what the owner saves is in the
// notebook's directory and still there after the notebook is stopped and
// started again.
func TestNotebookTokenURLAndFilesAcrossRestarts(t *testing.T) {
	c := notebookCluster(t)
	w := explore(0)
	apply(t, c, change(reconcile.OpStart, w, gpus(2)))
	store := notebook.Store{Root: c.StateDir()}
	token, err := store.ReadToken(w.ID())
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(store.TokenFile(w.ID()))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v, %v; want mode 0600", fi, err)
	}
	url := waitURL(t, c, w, token)
	if !strings.HasPrefix(url, "http://127.0.0.1:") || strings.Contains(url, "token") {
		t.Errorf("status URL %q: want http://127.0.0.1:PORT/ and no token", url)
	}
	if code, _ := nbRequest(t, http.MethodGet, url, "", ""); code != http.StatusForbidden {
		t.Errorf("without the token: %d, want 403", code)
	}
	if code, _ := nbRequest(t, http.MethodGet, notebook.URL("127.0.0.1", portOf(t, url), "/", token), "", ""); code != http.StatusOK {
		t.Errorf("the owner's URL with ?token=: %d, want 200", code)
	}
	spec, err := os.ReadFile(filepath.Join(c.StateDir(), podDir(w.ID(), "1", 1, 0), fileSpec))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(spec, []byte(token)) {
		t.Error("the token is in the pod's spec.json (argv or env): every user of the machine can read it")
	}
	body, _ := json.Marshal(map[string]string{"type": "file", "format": "text", "content": "cell 1"})
	if code, msg := nbRequest(t, http.MethodPut, url+"api/contents/analysis.txt", token, string(body)); code/100 != 2 {
		t.Fatalf("saving a file: %d %s", code, msg)
	}

	apply(t, c, stopChange(w, reconcile.PhaseStopped, "stopped by the test"))
	waitPhase(t, c, w.ID(), "1", reconcile.PhaseStopped)
	apply(t, c, change(reconcile.OpStart, w, gpus(2)))
	url = waitURL(t, c, w, token)
	code, got := nbRequest(t, http.MethodGet, url+"api/contents/analysis.txt", token, "")
	if code != http.StatusOK || !strings.Contains(got, `"content":"cell 1"`) {
		t.Errorf("after a restart the saved file reads %d %s, want its content", code, got)
	}
	if again, _ := store.ReadToken(w.ID()); again != token {
		t.Error("the token changed across a restart: an open tab would stop working")
	}
	apply(t, c, stopChange(w, reconcile.PhaseStopped, "test over"))
}

// TestIdleNotebookIsStoppedAndItsGPUFreed: a notebook in use is not
// stopped however long it runs; once nobody uses it for its idle limit,
// berth stops it, its GPU is free, and it is reported finished (so it is
// not started again until its runId changes).
func TestIdleNotebookIsStoppedAndItsGPUFreed(t *testing.T) {
	c := notebookCluster(t)
	limit := 2 * time.Second
	w := explore(limit)
	apply(t, c, change(reconcile.OpStart, w, gpus(0)))
	token, _ := notebook.Store{Root: c.StateDir()}.ReadToken(w.ID())
	url := waitURL(t, c, w, token)
	// In use for twice its limit: a request every 100 ms.
	for end := time.Now().Add(2 * limit); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		nbRequest(t, http.MethodGet, url, token, "")
	}
	if r, _ := observe(t, c).Run(berth.RunKey{Workload: w.ID(), RunID: "1"}); r.Phase != reconcile.PhaseRunning {
		t.Fatalf("a notebook in use is %s (%s), want running", r.Phase, r.Reason)
	}
	r := waitPhase(t, c, w.ID(), "1", reconcile.PhaseStopped)
	if !strings.HasPrefix(r.Reason, "idle for ") || !strings.Contains(r.Reason, "(limit 2s): stopped and its GPUs freed") {
		t.Errorf("reason %q", r.Reason)
	}
	obs := observe(t, c)
	if len(obs.Snapshot.Running) != 0 {
		t.Errorf("running after the idle stop: %+v (its GPU is still held)", obs.Snapshot.Running)
	}
	if len(obs.Snapshot.Finished) != 1 || obs.Snapshot.Finished[0].Workload != w.ID() || obs.Snapshot.Queue == nil || len(obs.Snapshot.Queue) != 0 {
		t.Errorf("finished %+v, queue %+v: want the notebook finished and nothing waiting to start", obs.Snapshot.Finished, obs.Snapshot.Queue)
	}
}

func portOf(t *testing.T, url string) int {
	t.Helper()
	var port int
	rest := strings.TrimPrefix(url, "http://127.0.0.1:")
	for _, ch := range rest {
		if ch < '0' || ch > '9' {
			break
		}
		port = port*10 + int(ch-'0')
	}
	return port
}

// TestNotebookRunsRealJupyter: where a Jupyter server is installed
// (Debian's python3-jupyter-server, or pip install jupyterlab), a notebook
// without a command runs it through the shim, reachable with its token
// from the token file, its files in the notebook's directory. Skips
// elsewhere.
func TestNotebookRunsRealJupyter(t *testing.T) {
	var prefix []string
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(py, "-c", "import jupyter_server").Run() == nil {
			prefix = []string{py, "-m", "jupyter_server"}
			break
		}
	}
	if prefix == nil {
		t.Skip("no Jupyter server here (python3 -m jupyter_server)")
	}
	if os.Geteuid() == 0 {
		prefix = append(prefix, "--allow-root")
	}
	o := testOptions(t.TempDir(), testLogger(t))
	o.NotebookCommand = prefix
	o.Env = []string{defaultPath, "HOME=" + t.TempDir()}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopAll(c); c.Close() })
	w := explore(0)
	apply(t, c, change(reconcile.OpStart, w, gpus(1)))
	token, err := notebook.Store{Root: c.StateDir()}.ReadToken(w.ID())
	if err != nil {
		t.Fatal(err)
	}
	url := waitURL(t, c, w, token)
	body, _ := json.Marshal(map[string]string{"type": "file", "format": "text", "content": "cell 1"})
	if code, msg := nbRequest(t, http.MethodPut, url+"api/contents/analysis.txt", token, string(body)); code/100 != 2 {
		t.Fatalf("saving a file through Jupyter: %d %s", code, msg)
	}
	dir, _ := notebook.Store{Root: c.StateDir()}.Dir(w.ID())
	if b, err := os.ReadFile(filepath.Join(dir, "analysis.txt")); err != nil || string(b) != "cell 1" {
		t.Errorf("the file in the notebook's directory: %q, %v", b, err)
	}
	if code, _ := nbRequest(t, http.MethodGet, url+"api/status", "", ""); code != http.StatusForbidden {
		t.Errorf("Jupyter without the token: %d, want 403", code)
	}
	apply(t, c, stopChange(w, reconcile.PhaseStopped, "test over"))
}
