package reconcile

import (
	"fmt"
	"strings"

	"github.com/berth-gpu/berth"
)

// SecretError says why a run that refers to a secret was not started: the
// secret or its key is missing where the backend looks for it, or (on one
// machine) the file holding it may be read by someone else. Nothing of the
// run is started; it is tried again at the next reconcile, so creating the
// secret (or fixing the file) is all the user does. It never holds the
// secret's value.
type SecretError struct {
	Workload berth.WorkloadID
	// Var is the env variable that refers to the secret ("role/VAR" for a
	// role's own env).
	Var    string
	Secret berth.SecretRef
	// Where is where the backend looked: "namespace berth-vision" or a
	// file's path.
	Where string
	// Problem is what is wrong, for people: "no secret hf", "no key token",
	// "mode 0644: others may read it; chmod 600 it".
	Problem string
	// Pos is where the reference is written in Git (Locate), so the error
	// reads as every other error about the repository: file:line:col.
	Pos berth.Pos
}

// Locate sets where the reference is written: the variable's position in
// cfg, or the nearest one cfg has (its env, the workload), or, with no
// cfg, the workload's own position.
func (e *SecretError) Locate(cfg *berth.Config, w berth.Workload) {
	path := "workloads." + w.Team + "." + w.Name
	if role, name, ok := strings.Cut(e.Var, "/"); ok {
		path += ".roles." + role + ".env." + name
	} else {
		path += ".env." + e.Var
	}
	if cfg != nil {
		e.Pos = cfg.Pos(path)
	}
	if !e.Pos.IsValid() {
		e.Pos = w.Pos
	}
}

// Error does not name the workload: the backends wrap it in the change's
// error, which does.
func (e *SecretError) Error() string {
	at := ""
	if e.Pos.IsValid() {
		at = " (" + e.Pos.String() + ")"
	}
	return fmt.Sprintf("env %s%s: secret %s key %s (%s): %s; not started", e.Var, at, e.Secret.Name, e.Secret.Key, e.Where, e.Problem)
}
