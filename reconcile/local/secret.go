package local

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
)

// Secrets on one machine. An env entry {secret: {name, key}} of team T
// reads the file SECRETS/T/name/key, where SECRETS is the cluster's
// secretsDir (clusters.X.secretsDir): one directory per team, one per
// secret, one file per key, as Kubernetes mounts a Secret. berth checks
// the file before it starts anything of the run, and the shim reads it
// when it starts the process, so the value is in the process's environment
// only: never in the ledger, spec.json, berth's log or a plan.
//
// A file is used only if it is a regular file (not a link) owned by the
// user berth runs as and nobody else may read or write it (mode 0600 or
// 0400). A secrets directory inside the repository berth serves is
// refused: its files would be one commit away from Git.

// secretFile is one env variable the shim reads from a file.
type secretFile struct {
	Var  string `json:"var"`
	Path string `json:"path"`
}

// secretPath is where the key of a team's secret lives.
func secretPath(dir, team string, ref berth.SecretRef) string {
	return filepath.Join(dir, team, ref.Name, ref.Key)
}

// secretFiles checks every secret the run's pods refer to and returns,
// per pod, the files its shim reads. It reads no value.
func (c *Cluster) secretFiles(id berth.WorkloadID, pods []localPod) ([][]secretFile, error) {
	out := make([][]secretFile, len(pods))
	for i, p := range pods {
		refs := p.env.Secrets()
		if len(refs) == 0 {
			continue
		}
		dir, problem := c.secretsDirFor()
		for _, v := range p.env.Names() {
			ref, ok := refs[v]
			if !ok {
				continue
			}
			name := v
			if p.role != "" {
				name = p.role + "/" + v
			}
			if problem != "" {
				return nil, &reconcile.SecretError{Workload: id, Var: name, Secret: ref, Where: "cluster " + c.opts.Name, Problem: problem}
			}
			path := secretPath(dir, id.Team(), ref)
			if problem := checkSecretFile(path); problem != "" {
				return nil, &reconcile.SecretError{Workload: id, Var: name, Secret: ref, Where: path, Problem: problem}
			}
			out[i] = append(out[i], secretFile{Var: v, Path: path})
		}
	}
	return out, nil
}

// secretsDirFor is the cluster's secrets directory, or why there is none
// to read from.
func (c *Cluster) secretsDirFor() (string, string) {
	dir := c.secretsDir
	switch {
	case dir == "":
		return "", "the cluster has no secretsDir: set clusters." + c.opts.Name + ".secretsDir to a directory outside the repository"
	case !filepath.IsAbs(dir):
		return "", "secretsDir " + dir + " is not an absolute path"
	case c.opts.RepoDir != "" && within(c.opts.RepoDir, dir):
		return "", "secretsDir " + dir + " is inside the repository " + c.opts.RepoDir + "; a secret belongs outside it, where no commit can take it"
	}
	return dir, ""
}

// within reports whether path is root or below it.
func within(root, path string) bool {
	rel, err := filepath.Rel(filepath.Clean(root), filepath.Clean(path))
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// checkSecretFile says what is wrong with a secret's file, or "".
func checkSecretFile(path string) string {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "no such file; write the value there with mode 0600"
	case err != nil:
		return err.Error()
	case fi.Mode()&fs.ModeSymlink != 0:
		return "a symbolic link; berth reads a secret only from a regular file"
	case !fi.Mode().IsRegular():
		return "not a regular file"
	case fi.Mode().Perm()&0o077 != 0:
		return fmt.Sprintf("mode %04o: others may read or change it; berth reads a secret only from a file of mode 0600 (chmod 600 %s)", fi.Mode().Perm(), path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Sprintf("owned by uid %d, not by the user berth runs as (uid %d)", st.Uid, os.Geteuid())
	}
	return ""
}

// withSecrets is env with each secret file's value set over it, checked
// again as it is read (the shim runs later than berth's check).
func withSecrets(env []string, secrets []secretFile) ([]string, error) {
	if len(secrets) == 0 {
		return env, nil
	}
	out := make([]string, 0, len(env)+len(secrets))
	set := map[string]bool{}
	for _, s := range secrets {
		set[s.Var] = true
	}
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); !set[k] {
			out = append(out, kv)
		}
	}
	for _, s := range secrets {
		if problem := checkSecretFile(s.Path); problem != "" {
			return nil, fmt.Errorf("env %s: secret file %s: %s", s.Var, s.Path, problem)
		}
		b, err := os.ReadFile(s.Path)
		if err != nil {
			return nil, fmt.Errorf("env %s: secret file %s: %w", s.Var, s.Path, err)
		}
		// One trailing newline is the editor's, not the secret's.
		v := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		out = append(out, s.Var+"="+v)
	}
	return out, nil
}
