package cue

import (
	"encoding/json"
	"path/filepath"

	cuelang "cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"

	"github.com/berth-gpu/berth"
)

// LoadSnapshot parses a cluster snapshot (JSON, or CUE: JSON is CUE),
// checks it against the schema's #Snapshot, and decodes it. name is the
// file name errors carry. An invalid snapshot is reported as Errors.
func LoadSnapshot(name string, data []byte) (*berth.Snapshot, error) {
	ctx := cuecontext.New()
	schema := ctx.CompileBytes(berth.Schema, cuelang.Filename(schemaVirtualFile))
	if err := schema.Err(); err != nil {
		return nil, err
	}
	name = filepath.ToSlash(name)
	v := ctx.CompileBytes(data, cuelang.Filename(name))
	if err := v.Err(); err != nil {
		return nil, fromCUE(err, nil).sort()
	}
	u := schema.LookupPath(cuelang.ParsePath("#Snapshot")).Unify(v)
	userPos := func(p []string) []berth.Pos { return lookupPos(v, p) }
	if err := u.Validate(cuelang.Concrete(true)); err != nil {
		return nil, fromCUE(err, userPos).sort()
	}
	b, err := u.MarshalJSON()
	if err != nil {
		return nil, fromCUE(err, userPos).sort()
	}
	var s berth.Snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, Errors{{Message: "decode snapshot: " + err.Error(), Positions: []berth.Pos{{File: name}}}}
	}
	s.Sort()
	return &s, nil
}
