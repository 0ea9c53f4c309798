package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/fixtures/notebook"
	"github.com/berth-gpu/berth/fixtures/replica"
	"github.com/berth-gpu/berth/status"
)

var update = flag.Bool("update", false, "rewrite the expected output in testdata/script")

// TestMain lets testscript run this test binary as the berth command.
func TestMain(m *testing.M) {
	if len(os.Args) == 2 && os.Args[1] == "replica" {
		// A service's replica for the end-to-end tests.
		os.Exit(replica.Main())
	}
	if len(os.Args) > 1 && os.Args[1] == evalCommand {
		// berth re-executing itself to evaluate (os.Executable is this
		// test binary).
		os.Exit(Main())
	}
	// Tests that run berth in this process keep no evaluation cache (not
	// the user's); the scripts each have their own (see TestScripts), and
	// run this binary as berth with it in their environment.
	if filepath.Base(os.Args[0]) != "berth" {
		os.Setenv(cacheEnv, "off")
	}
	testscript.Main(m, map[string]func(){
		"berth": func() { os.Exit(Main()) },
		// A Jupyter server's stand-in, for berth serve --notebook-command.
		"notebook-standin": func() { os.Exit(notebook.Main(os.Args[1:])) },
	})
}

// TestScripts runs testdata/script/*.txtar: berth as a user runs it.
// $FIXTURES is fixtures/repos. The command exits CODE cmd args... runs a
// command and checks its exit status.
func TestScripts(t *testing.T) {
	fixturesDir, err := filepath.Abs("../../fixtures/repos")
	if err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir:           "testdata/script",
		UpdateScripts: *update,
		// berth runs only through exec (or exits), as a user runs it, and
		// a file of a script's archive is named once.
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("FIXTURES", fixturesDir)
			env.Setenv(cacheEnv, filepath.Join(env.WorkDir, ".cache", "berth"))
			// What a script's berth serve started runs under shims that
			// outlive it.
			env.Defer(func() { killShims(env.WorkDir) })
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// waitstate STATEDIR WORKLOAD STATE: wait until the berth serve
			// of STATEDIR says the workload is in STATE (a running service
			// or notebook: with its URL).
			"waitstate": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 3 {
					ts.Fatalf("usage: waitstate STATEDIR WORKLOAD STATE")
				}
				deadline := time.Now().Add(60 * time.Second)
				var last string
				for time.Now().Before(deadline) {
					ws, ok := serveWorkload(args[0], args[1])
					if ok && ws.State == args[2] && (ws.State != "running" || ws.URL != "" || ws.Kind == berth.KindBatch) {
						return
					}
					last = ws.State + " " + ws.Reason
					time.Sleep(50 * time.Millisecond)
				}
				ts.Fatalf("%s is %q after 60s, want %s", args[1], last, args[2])
			},
			"exits": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) < 2 {
					ts.Fatalf("usage: exits CODE command [args...]")
				}
				want, err := strconv.Atoi(args[0])
				if err != nil {
					ts.Fatalf("exits: %v", err)
				}
				got := 0
				if err := ts.Exec(args[1], args[2:]...); err != nil {
					var ee *exec.ExitError
					if !errors.As(err, &ee) {
						ts.Fatalf("exits: %v", err)
					}
					got = ee.ExitCode()
				}
				if got != want {
					ts.Fatalf("exit status %d, want %d", got, want)
				}
			},
		},
	})
}

// TestBrokenGoldens runs berth validate in every broken repository and
// compares what it prints with the expected.txt and expected.json that
// go test ./cue/ -update wrote, so the goldens are what users see.
// Repositories that need other loader options (a timeout or file size in
// options.json) are left to the cue tests; the runaway ones that need
// none are here: berth validate survives them.
func TestBrokenGoldens(t *testing.T) {
	dirs, err := filepath.Glob("../../fixtures/repos/broken/*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no broken repositories: %v", err)
	}
	for _, dir := range dirs {
		if b, err := os.ReadFile(filepath.Join(dir, "options.json")); err == nil {
			var o map[string]any
			if err := json.Unmarshal(b, &o); err != nil {
				t.Fatalf("%s/options.json: %v", dir, err)
			}
			if _, ok := o["timeout"]; ok {
				continue
			}
			if _, ok := o["maxFileSize"]; ok {
				continue
			}
		}
		t.Run(filepath.Base(dir), func(t *testing.T) {
			abs, err := filepath.Abs(dir)
			if err != nil {
				t.Fatal(err)
			}
			t.Chdir(abs)
			for _, tc := range []struct {
				args   []string
				golden string
				stdout bool
			}{
				{[]string{"validate"}, "expected.txt", false},
				{[]string{"validate", "-o", "json"}, "expected.json", true},
			} {
				var stdout, stderr bytes.Buffer
				if code := run(tc.args, &stdout, &stderr); code != exitInvalid {
					t.Errorf("berth %v: exit %d, want %d\n%s", tc.args, code, exitInvalid, stderr.String())
				}
				got := stderr.String()
				if tc.stdout {
					got = stdout.String()
				}
				want, err := os.ReadFile(tc.golden)
				if err != nil {
					t.Fatal(err)
				}
				if d := cmp.Diff(string(want), got); d != "" {
					t.Errorf("berth %v differs from %s (-want +got):\n%s", tc.args, tc.golden, d)
				}
			}
		})
	}
}

// serveWorkload is the status of the workload's run (its latest, when
// no runID is given) from the berth serve of stateDir, if it answers and
// knows it.
func serveWorkload(stateDir, id string, runID ...string) (status.WorkloadStatus, bool) {
	var info serveInfo
	if b, err := os.ReadFile(filepath.Join(stateDir, "serve.json")); err != nil || json.Unmarshal(b, &info) != nil {
		return status.WorkloadStatus{}, false
	}
	resp, err := http.Get(info.Address + "/api/status")
	if err != nil {
		return status.WorkloadStatus{}, false
	}
	defer resp.Body.Close()
	var s statusResponse
	if json.NewDecoder(resp.Body).Decode(&s) != nil {
		return status.WorkloadStatus{}, false
	}
	for _, c := range s.Clusters {
		for _, w := range c.Workloads {
			if string(w.Workload) == id && (len(runID) == 0 || w.RunID == runID[0]) {
				return w, true
			}
		}
	}
	return status.WorkloadStatus{}, false
}

// killShims ends every workload under dir that a berth serve started:
// each runs under a shim that leads its own session.
func killShims(dir string) {
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Name() == "shim.pid" {
			if b, err := os.ReadFile(p); err == nil {
				exec.Command("pkill", "-KILL", "-s", strings.TrimSpace(string(b))).Run()
			}
		}
		return nil
	})
}
