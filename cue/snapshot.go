package cue

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"

	cuelang "cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"

	"github.com/berth-gpu/berth"
)

// MaxSnapshotSize is the largest snapshot LoadSnapshot reads: a cluster of
// 1,000 nodes and 10,000 runs is about 5 MB.
const MaxSnapshotSize = 64 << 20

// LoadSnapshot parses a cluster snapshot (JSON), checks it against the
// schema's #Snapshot, and decodes it. name is the file name errors carry.
// An invalid snapshot is reported as Errors.
//
// A snapshot is data, and may come from anywhere (any CI job can write
// one), so it is read as JSON only: CUE would also evaluate comprehensions
// and references, whose cost its author chooses. Unified with the schema,
// plain data costs what its size does, and the size is bounded.
func LoadSnapshot(name string, data []byte) (*berth.Snapshot, error) {
	name = filepath.ToSlash(name)
	if len(data) > MaxSnapshotSize {
		return nil, Errors{{Message: fmt.Sprintf("snapshot is larger than %d MiB, the most berth reads", MaxSnapshotSize>>20),
			Positions: []berth.Pos{{File: name}}}}
	}
	if err := jsonSyntax(name, data); err != nil {
		return nil, err
	}
	ctx := cuecontext.New()
	schema := ctx.CompileBytes(berth.Schema, cuelang.Filename(schemaVirtualFile))
	if err := schema.Err(); err != nil {
		return nil, err
	}
	// Valid JSON is CUE without comprehensions or references: compiled
	// as CUE, it keeps CUE's positions.
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

// jsonSyntax reports data that is not JSON at the line and column where
// it stops being JSON.
func jsonSyntax(name string, data []byte) error {
	var x any
	err := json.Unmarshal(data, &x)
	if err == nil {
		return nil
	}
	pos := berth.Pos{File: name}
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		off := int(min(max(syn.Offset-1, 0), int64(len(data))))
		pos.Line = 1 + bytes.Count(data[:off], []byte("\n"))
		pos.Col = 1 + off - (bytes.LastIndexByte(data[:off], '\n') + 1)
	}
	return Errors{{Message: "a snapshot is JSON: " + err.Error(), Positions: []berth.Pos{pos}}}
}
