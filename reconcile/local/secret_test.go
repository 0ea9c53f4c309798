package local

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
)

// secretValue is what the tests' secret holds; no file berth writes may
// contain it.
const secretValue = "hf_s3cr3t-Value-81723"

// secretSetup makes a secrets directory holding vision's secret hf with
// key token (mode 0600), and the configuration that names it.
func secretSetup(t *testing.T) (dir, file string, cfg *berth.Config) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "secrets")
	file = filepath.Join(dir, "vision", "hf", "token")
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(secretValue+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg = &berth.Config{Clusters: map[string]berth.Cluster{"box": {Name: "box", Backend: berth.BackendLocal, SecretsDir: dir}}}
	return dir, file, cfg
}

// TestSecretFromFile: a process gets an env secret's value from the file
// under the cluster's secretsDir (one trailing newline dropped), a role's
// env too, and the value is nowhere in what berth writes: the ledger, the
// pods' spec.json, the shim's log, berth's own log.
func TestSecretFromFile(t *testing.T) {
	_, _, cfg := secretSetup(t)
	var logs syncBuffer
	opts := testOptions(t.TempDir(), slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopAll(c); c.Close() })
	out := filepath.Join(t.TempDir(), "seen")
	w := batch("fetch", `printf '%s|%s' "$HF_TOKEN" "$PLAIN" > "$OUT"`).Env("PLAIN", "plain").Env("OUT", out).Obj()
	w.Env["HF_TOKEN"] = berth.SecretEnv("hf", "token")
	if res := applyCfg(t, c, cfg, change(reconcile.OpStart, w, cpuOnly())); res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	waitPhase(t, c, w.ID(), "1", reconcile.PhaseSucceeded)
	if got := waitFile(t, out, "|"); got != secretValue+"|plain" {
		t.Errorf("the process saw %q, want %q", got, secretValue+"|plain")
	}
	c.Close()
	err = filepath.WalkDir(c.StateDir(), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.Contains(string(b), secretValue) {
			t.Errorf("%s holds the secret's value", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), secretValue) {
		t.Errorf("berth's log holds the secret's value:\n%s", logs.String())
	}
}

// TestSecretRefused: a run whose secret cannot be read safely is not
// started, and the failed change names the variable, the secret, where
// berth looked and what to do.
func TestSecretRefused(t *testing.T) {
	for _, tt := range []struct {
		name  string
		setup func(t *testing.T, dir, file string, cfg *berth.Config, opts *Options)
		want  string
	}{
		{"missing", func(t *testing.T, dir, file string, cfg *berth.Config, opts *Options) { os.Remove(file) },
			"no such file; write the value there with mode 0600"},
		{"readable by others", func(t *testing.T, dir, file string, cfg *berth.Config, opts *Options) { os.Chmod(file, 0o644) },
			"mode 0644: others may read or change it; berth reads a secret only from a file of mode 0600"},
		{"a link", func(t *testing.T, dir, file string, cfg *berth.Config, opts *Options) {
			os.Rename(file, file+".real")
			os.Symlink(file+".real", file)
		}, "a symbolic link; berth reads a secret only from a regular file"},
		{"another owner", func(t *testing.T, dir, file string, cfg *berth.Config, opts *Options) {
			if os.Geteuid() != 0 {
				t.Skip("chown needs root")
			}
			os.Chown(file, 65534, 65534)
		}, "owned by uid 65534, not by the user berth runs as (uid 0)"},
		{"no secretsDir", func(t *testing.T, dir, file string, cfg *berth.Config, opts *Options) {
			cfg.Clusters["box"] = berth.Cluster{Name: "box"}
		}, "the cluster has no secretsDir: set clusters.box.secretsDir to a directory outside the repository"},
		{"inside the repository", func(t *testing.T, dir, file string, cfg *berth.Config, opts *Options) {
			opts.RepoDir = filepath.Dir(dir)
		}, "is inside the repository"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir, file, cfg := secretSetup(t)
			opts := testOptions(t.TempDir(), testLogger(t))
			tt.setup(t, dir, file, cfg, &opts)
			c, err := New(opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { stopAll(c); c.Close() })
			w := batch("fetch", `echo "$HF_TOKEN"`).Obj()
			w.Env = berth.Env{"HF_TOKEN": berth.SecretEnv("hf", "token")}
			res := applyCfg(t, c, cfg, change(reconcile.OpStart, w, cpuOnly()))
			var se *reconcile.SecretError
			if res[0].Outcome != reconcile.OutcomeFailed || !errors.As(res[0].Err, &se) {
				t.Fatalf("outcome %s, err %v; want failed with a SecretError", res[0].Outcome, res[0].Err)
			}
			msg := se.Error()
			if !strings.HasPrefix(res[0].Err.Error(), "workload vision/fetch run 1: start: env HF_TOKEN") {
				t.Errorf("the change's error does not name the workload first: %v", res[0].Err)
			}
			if !strings.Contains(msg, tt.want) || !strings.HasPrefix(msg, "env HF_TOKEN: secret hf key token (") {
				t.Errorf("error %q does not say %q", msg, tt.want)
			}
			for _, r := range observe(t, c).Runs {
				if r.Workload == w.ID() && r.Attempts > 0 {
					t.Errorf("the run started: %+v", r)
				}
			}
		})
	}
}

// applyCfg applies changes with a configuration and returns the results.
func applyCfg(t *testing.T, c *Cluster, cfg *berth.Config, changes ...reconcile.Change) []reconcile.Result {
	t.Helper()
	res, err := c.Apply(context.Background(), cfg, changes)
	if err != nil {
		t.Fatal(err)
	}
	return res
}
