package cue

import (
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
	ids := cfg.WorkloadIDs()
	parts := make([][]Warning, chunks(len(ids)))
	inChunks(len(ids), len(parts), func(k, lo, hi int) { parts[k] = credentialsOf(cfg, ids[lo:hi]) })
	out := slices.Concat(parts...)
	slices.SortStableFunc(out, func(a, b Warning) int { return a.Pos.Compare(b.Pos) })
	return out
}

// credentialsOf warns of the credentials in the env of the workloads ids.
func credentialsOf(cfg *berth.Config, ids []berth.WorkloadID) []Warning {
	var out []Warning
	check := func(path string, env berth.Env) {
		for _, name := range env.Names() {
			v := env[name]
			if v.Secret != nil {
				continue
			}
			kind, ok := redact.Credential(v.Value)
			if !ok {
				continue
			}
			p := path + ".env." + name
			out = append(out, Warning{Pos: cfg.Pos(p), Path: p, Code: WarnCredential, Message: fmt.Sprintf(
				"looks like a credential: %s; whoever can read the repository can read it. Keep it in a Secret and refer to it: env: %s: secret: {name: ..., key: ...}",
				kind, name)})
		}
	}
	for _, id := range ids {
		w := cfg.Workloads[id]
		prefix := "workloads." + w.Team + "." + w.Name
		check(prefix, w.Env)
		for _, role := range w.RoleNames() {
			check(prefix+".roles."+role, w.Roles[role].Env)
		}
	}
	return out
}
