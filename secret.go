package berth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
)

// EnvVar is one variable of a workload's env: a value written in Git, or
// a reference to a secret that the backend resolves where the pod starts
// (a Kubernetes Secret's key in the team's namespace; on one machine a
// file under the cluster's secretsDir). A secret's value is never read
// into the configuration, a plan, a comment, a log or the ledger: only its
// name and key are.
//
// In CUE and JSON a value is a string and a reference is
// {secret: {name, key}}, so an env without references has the form it
// always had (and the spec digest of such a workload is unchanged).
type EnvVar struct {
	Value  string
	Secret *SecretRef
}

// SecretRef names one key of one secret of the workload's team.
type SecretRef struct {
	Name string `json:"name"`
	Key  string `json:"key"`
}

// String is "name.key", how messages name a secret's key.
func (r SecretRef) String() string { return r.Name + "." + r.Key }

// Equal reports whether two entries say the same.
func (e EnvVar) Equal(o EnvVar) bool {
	if (e.Secret == nil) != (o.Secret == nil) {
		return false
	}
	if e.Secret != nil {
		return *e.Secret == *o.Secret
	}
	return e.Value == o.Value
}

// Val is a plain env value.
func Val(v string) EnvVar { return EnvVar{Value: v} }

// SecretEnv is an env entry that reads key of the team's secret name.
func SecretEnv(name, key string) EnvVar { return EnvVar{Secret: &SecretRef{Name: name, Key: key}} }

type envSecretJSON struct {
	Secret *SecretRef `json:"secret"`
}

// MarshalJSON writes a value as a string and a reference as
// {"secret": {"name": ..., "key": ...}}.
// HTML is not escaped here: an encoder that escapes it does so to what
// this returns, and one that does not (a PR comment's JSON) keeps "<".
func (e EnvVar) MarshalJSON() ([]byte, error) {
	var v any = e.Value
	if e.Secret != nil {
		v = envSecretJSON{e.Secret}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// UnmarshalJSON reads either form.
func (e *EnvVar) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 1 && b[0] == '"' && b[len(b)-1] == '"' && !bytes.ContainsAny(b[1:len(b)-1], `"\\`) {
		// No escapes: the usual value, without a decoder (a warm load
		// decodes an env value for most of 50,000 workloads).
		*e = EnvVar{Value: string(b[1 : len(b)-1])}
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		*e = EnvVar{}
		return json.Unmarshal(b, &e.Value)
	}
	var s envSecretJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return fmt.Errorf("an env value is a string or {secret: {name, key}}: %w", err)
	}
	if s.Secret == nil || s.Secret.Name == "" || s.Secret.Key == "" {
		return fmt.Errorf("an env secret needs a name and a key")
	}
	*e = EnvVar{Secret: s.Secret}
	return nil
}

// Env is a workload's or a role's environment.
type Env map[string]EnvVar

// EnvOf is an env of plain values.
func EnvOf(values map[string]string) Env {
	out := make(Env, len(values))
	for k, v := range values {
		out[k] = Val(v)
	}
	return out
}

// Values are the plain values (what Git holds), by name; nil for a nil
// env.
func (e Env) Values() map[string]string {
	if e == nil {
		return nil
	}
	out := make(map[string]string, len(e))
	for k, v := range e {
		if v.Secret == nil {
			out[k] = v.Value
		}
	}
	return out
}

// Secrets are the references to secrets, by variable name.
func (e Env) Secrets() map[string]SecretRef {
	var out map[string]SecretRef
	for k, v := range e {
		if v.Secret != nil {
			if out == nil {
				out = map[string]SecretRef{}
			}
			out[k] = *v.Secret
		}
	}
	return out
}

// Names are the variables' names, sorted.
func (e Env) Names() []string { return slices.Sorted(maps.Keys(e)) }

// With is e with over's variables set over it (a role's env over its
// workload's).
func (e Env) With(over Env) Env {
	out := make(Env, len(e)+len(over))
	maps.Copy(out, e)
	maps.Copy(out, over)
	return out
}

// SecretRefs lists every secret reference of the workload and its roles,
// as "VAR" or "role/VAR" to the reference, for checks and messages.
func (w Workload) SecretRefs() map[string]SecretRef {
	out := map[string]SecretRef{}
	for k, r := range w.Env.Secrets() {
		out[k] = r
	}
	for _, name := range w.RoleNames() {
		for k, r := range w.Roles[name].Env.Secrets() {
			out[name+"/"+k] = r
		}
	}
	return out
}
