package main

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-gpu/berth/fixtures"
	"github.com/berth-gpu/berth/status/gh/ghfake"
)

// ciRepo is a local Git repository with the demo repository on main and a
// pull request's head at refs/pull/7/head, as a forge keeps it.
func ciRepo(t *testing.T, file, content string) (dir, base, head string) {
	t.Helper()
	dir = t.TempDir()
	git := func(args ...string) string {
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@t.invalid"}, args...)...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q", "-b", "main")
	err := fs.WalkDir(fixtures.Demo(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fixtures.Demo(), p)
		if err != nil {
			return err
		}
		os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755)
		return os.WriteFile(filepath.Join(dir, p), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	git("add", "-A")
	git("commit", "-q", "-m", "base")
	base = git("rev-parse", "HEAD")
	git("checkout", "-q", "-b", "feature")
	os.WriteFile(filepath.Join(dir, file), []byte(content), 0o644)
	git("add", "-A")
	git("commit", "-q", "-m", "head")
	head = git("rev-parse", "HEAD")
	git("update-ref", "refs/pull/7/head", head)
	git("checkout", "-q", "main")
	return dir, base, head
}

const ciJob = `package vision

workloads: vision: "llama-ft": {
	kind:  "training"
	image: "ghcr.io/acme/llama:3.1", command: ["python", "train.py"]
	workers: 2
	resources: {gpu: GPUS, cpu: 8, memory: "64Gi", flavor: "h100"}
	maxDuration: "10h"
	env: TOKEN: "sk-ci-secret-value-123"
}
`

// TestPlanGitHubPR runs `berth plan --github-pr` as a CI system would,
// against the GitHub-shaped fake and a local repository holding the pull
// request's ref: the statuses and the comment are posted, the exit status
// says whether a status failed.
func TestPlanGitHubPR(t *testing.T) {
	snapshot, err := filepath.Abs("../../fixtures/snapshots/demo-box.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		gpus   string
		exit   int
		plan   string
		policy string
	}{
		{"fits", "2", exitOK, "berth/plan: box  success  everything fits: 1 admitted now (4 GPUs)", "berth/policy     pending  needs 1 approval: team vision owner (@ana or @acme/vision)"},
		{"never fits", "3", exitInvalid, "berth/plan: box  failure  vision/llama-ft can never fit: asks for 6 GPUs of h100", "berth/policy     pending  needs 1 approval"},
		{"invalid", "8", exitInvalid, "berth/validate   failure  1 error; first: workloads/vision/llama.cue:7:19:", "berth/policy     pending  the configuration does not validate; approvals are checked once it does"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			repo, base, head := ciRepo(t, "workloads/vision/llama.cue", strings.Replace(ciJob, "GPUS", tt.gpus, 1))
			f := ghfake.New("acme", "gpu-platform")
			defer f.Close()
			f.AddPR(ghfake.PR{Number: 7, Author: "zoe", HeadSHA: head, BaseSHA: base, BaseRef: "main", HeadRef: "feature",
				Files: []string{"workloads/vision/llama.cue"}})
			t.Setenv("GITHUB_TOKEN", "ghp_ci_token_value")
			t.Setenv("GITHUB_REPOSITORY", "acme/gpu-platform")
			t.Setenv("GITHUB_API_URL", strings.TrimSuffix(f.APIURL(), "/"))
			var stdout, stderr bytes.Buffer
			code := run([]string{"plan", "--github-pr", "7", "--git-url", repo, "--cache-dir", t.TempDir(), "--snapshot", snapshot}, &stdout, &stderr)
			if code != tt.exit {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.exit, stdout.String(), stderr.String())
			}
			out := stdout.String()
			for _, want := range []string{"pull request #7 of acme/gpu-platform: head " + head[:7] + ", base " + base[:7], tt.plan, tt.policy, "comment: box"} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			if n := len(f.Statuses(head)); n != 3 {
				t.Errorf("%d statuses posted", n)
			}
			cs := f.Comments(7)
			if len(cs) != 1 || !strings.HasPrefix(cs[0].Body, "<!-- berth:plan cluster=box -->") {
				t.Fatalf("comments %+v", cs)
			}
			for _, r := range f.Requests() {
				if strings.Contains(r.String(), "sk-ci-secret-value-123") || strings.Contains(r.String(), "ghp_ci_token_value") {
					t.Errorf("a secret was sent in %s", r.Method+" "+r.Path)
				}
			}
			if strings.Contains(out+stderr.String(), "ghp_ci_token_value") {
				t.Error("the token was printed")
			}
		})
	}
}

func TestPlanGitHubPRNeedsToken(t *testing.T) {
	t.Setenv("GITHUB_TOKEN", "")
	var stdout, stderr bytes.Buffer
	code := run([]string{"plan", "--github-pr", "7", "--repo", "a/b"}, &stdout, &stderr)
	if code != exitError || !strings.Contains(stderr.String(), "no GitHub token: set $GITHUB_TOKEN") {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
}
