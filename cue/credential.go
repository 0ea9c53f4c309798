package cue

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/redact"
)

// WarnCredential is the Code of a warning about an env value in Git that
// looks like a credential. `berth validate --strict` makes it an error.
const WarnCredential = "credential"

// credentialWarnings warns of every plain env value of a workload or a
// role that looks like a credential (redact.Credential), at the value's
// position, sorted by position. The message names the variable and the
// kind of credential, never the value.
func credentialWarnings(cfg *berth.Config) []Warning {
	// In any order: the warnings are sorted by position and path, which
	// no two share (sorting 50,000 ids was a third of the scan).
	ids := make([]berth.WorkloadID, 0, len(cfg.Workloads))
	for id := range cfg.Workloads {
		ids = append(ids, id)
	}
	parts := make([][]Warning, chunks(len(ids)))
	inChunks(len(ids), len(parts), func(k, lo, hi int) { parts[k] = credentialsOf(cfg, ids[lo:hi]) })
	out := slices.Concat(parts...)
	slices.SortFunc(out, func(a, b Warning) int { return cmp.Or(a.Pos.Compare(b.Pos), cmp.Compare(a.Path, b.Path)) })
	return out
}

// credentialsOf warns of the credentials in the env of the workloads ids.
func credentialsOf(cfg *berth.Config, ids []berth.WorkloadID) []Warning {
	var out []Warning
	// check checks env, of the workload team/name or its role (when
	// not ""); the path is made for a warning only.
	check := func(team, name, role string, env berth.Env) {
		for v, value := range env { // in any order: see credentialWarnings
			if value.Secret != nil {
				continue
			}
			kind, ok := redact.Credential(value.Value)
			if !ok {
				continue
			}
			p := "workloads." + team + "." + name
			if role != "" {
				p += ".roles." + role
			}
			p += ".env." + v
			out = append(out, Warning{Pos: cfg.Pos(p), Path: p, Code: WarnCredential, Message: fmt.Sprintf(
				"looks like a credential: %s; whoever can read the repository can read it. Keep it in a Secret and refer to it: env: %s: secret: {name: ..., key: ...}",
				kind, v)})
		}
	}
	for _, id := range ids {
		w := cfg.Workloads[id]
		check(w.Team, w.Name, "", w.Env)
		for role, r := range w.Roles {
			check(w.Team, w.Name, role, r.Env)
		}
	}
	return out
}
