// Package notebook is what berth adds to a Jupyter server: on one machine
// the command line it is started with, its token and its directory (kept
// under the state directory, outside Git, across restarts and runs) and
// the URL its owner opens; on both backends, reading the server's own
// /api/status last_activity and when it is idle long enough to be stopped
// (as JupyterHub's idle culler decides). Both backends share that rule:
// reconcile/local's culler and reconcile/kube's idle check.
//
// What it does not own: starting and stopping the server (each backend's
// pods), routing to it (package traffic on one machine, a Service and an
// Ingress on Kubernetes) and deciding that a stopped notebook stays
// stopped (reconcile/schedule).
package notebook

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/berth-gpu/berth"
)

// BaseURL is the path a notebook is served under on one machine: the root,
// so that http://127.0.0.1:PORT/?token=... opens it.
const BaseURL = "/"

// The environment a notebook's process is told its token and directory
// with. JUPYTER_TOKEN_FILE is Jupyter's own: the token is read from the
// file, so it is neither on the command line (which every user of the
// machine can read in ps) nor in the pod's spec.json.
const (
	EnvTokenFile = "JUPYTER_TOKEN_FILE"
	EnvDir       = "BERTH_NOTEBOOK_DIR"
	EnvBaseURL   = "BERTH_NOTEBOOK_BASE_URL"
)

// Args is the command line of a notebook's Jupyter server: prefix (the
// server, such as ["jupyter-lab"] or ["python3", "-m", "jupyter_server"])
// and the arguments that make it listen on 127.0.0.1:port under baseURL
// with dir as its root. The token comes from EnvTokenFile.
func Args(prefix []string, port int, baseURL, dir string) []string {
	return append(append([]string{}, prefix...),
		"--no-browser",
		"--ip=127.0.0.1",
		"--port="+strconv.Itoa(port),
		"--ServerApp.port_retries=0",
		"--ServerApp.base_url="+baseURL,
		"--ServerApp.root_dir="+dir,
	)
}

// URL is where the owner opens the notebook: its base URL on host:port,
// with the token as Jupyter takes it on a first visit.
func URL(host string, port int, baseURL, token string) string {
	u := url.URL{Scheme: "http", Host: host + ":" + strconv.Itoa(port), Path: baseURL}
	if token != "" {
		u.RawQuery = url.Values{"token": {token}}.Encode()
	}
	return u.String()
}

// Store keeps each notebook's token and directory under a state
// directory:
//
//	notebooks/<team>/<name>/          the notebook's files (Jupyter's root), kept across restarts and runs
//	secrets/notebooks/<team>/<name>   its token, 0600 in a 0700 directory
//
// The token is outside the notebook's root, so Jupyter's file browser
// does not show it.
type Store struct{ Root string }

// Dir is the notebook's directory, created if it is not there.
func (s Store) Dir(id berth.WorkloadID) (string, error) {
	d := filepath.Join(s.Root, "notebooks", id.Team(), id.Name())
	if err := os.MkdirAll(d, 0o755); err != nil {
		return "", fmt.Errorf("notebook %s: directory: %w", id, err)
	}
	return d, nil
}

// TokenFile is where the notebook's token is kept.
func (s Store) TokenFile(id berth.WorkloadID) string {
	return filepath.Join(s.Root, "secrets", "notebooks", id.Team(), id.Name())
}

// Token is the notebook's token: the one kept, or a new random one (256
// bits) written 0600 the first time, with no newline (Jupyter reads the
// whole file as the token). It stays across restarts, so an open
// browser tab keeps working; remove the file to change it.
func (s Store) Token(id berth.WorkloadID) (string, error) {
	f := s.TokenFile(id)
	b, err := os.ReadFile(f)
	if err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("notebook %s: token: %w", id, err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("notebook %s: token: %w", id, err)
	}
	tok := hex.EncodeToString(raw[:])
	if err := os.MkdirAll(filepath.Dir(f), 0o700); err != nil {
		return "", fmt.Errorf("notebook %s: token: %w", id, err)
	}
	tmp := f + ".tmp"
	if err := os.WriteFile(tmp, []byte(tok), 0o600); err != nil {
		return "", fmt.Errorf("notebook %s: token: %w", id, err)
	}
	if err := os.Rename(tmp, f); err != nil {
		return "", fmt.Errorf("notebook %s: token: %w", id, err)
	}
	return tok, nil
}

// ReadToken is the notebook's kept token, without making one.
func (s Store) ReadToken(id berth.WorkloadID) (string, error) {
	b, err := os.ReadFile(s.TokenFile(id))
	if err != nil {
		return "", fmt.Errorf("notebook %s: token: %w", id, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Status is what a Jupyter server says of itself at /api/status.
type Status struct {
	Started      time.Time `json:"started"`
	LastActivity time.Time `json:"last_activity"`
	Kernels      int       `json:"kernels"`
	Connections  int       `json:"connections"`
}

// maxStatus bounds the answer read from /api/status (a few hundred bytes
// from Jupyter).
const maxStatus = 64 << 10

// ReadStatus asks the server at base (http://127.0.0.1:PORT/) for its
// status. Jupyter does not count this request as activity.
func ReadStatus(ctx context.Context, client *http.Client, base, token string) (Status, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/api/status", nil)
	if err != nil {
		return Status{}, err
	}
	req.Header.Set("Authorization", "token "+token)
	resp, err := client.Do(req)
	if err != nil {
		return Status{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxStatus))
	if err != nil {
		return Status{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return Status{}, fmt.Errorf("/api/status answered %s", resp.Status)
	}
	var st Status
	if err := json.Unmarshal(b, &st); err != nil {
		return Status{}, fmt.Errorf("/api/status: %w", err)
	}
	return st, nil
}

// Idle says how long a notebook has been idle at now and whether that
// reaches its limit: idle since the later of its last activity (as its
// server reports it) and since, when berth started it or last heard from
// it. A server that answers nothing has no activity to report: it is
// measured from since alone. A limit of zero never stops it.
func Idle(lastActivity, since, now time.Time, limit time.Duration) (time.Duration, bool) {
	from := since
	if lastActivity.After(from) {
		from = lastActivity
	}
	idle := max(now.Sub(from), 0)
	return idle, limit > 0 && idle >= limit
}

// IdleReason is the reason a notebook stopped for being idle is given.
func IdleReason(idle, limit time.Duration) string {
	return fmt.Sprintf("idle for %s (limit %s): stopped and its GPUs freed", roundIdle(idle), berth.Duration(limit))
}

func roundIdle(d time.Duration) string {
	switch {
	case d >= time.Minute:
		return d.Round(time.Second).String()
	case d >= time.Second:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Millisecond).String()
}
