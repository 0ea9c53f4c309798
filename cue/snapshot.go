package cue

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	cuelang "cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"
	"cuelang.org/go/encoding/yaml"

	"github.com/berth-gpu/berth"
)

// MaxSnapshotSize is the largest snapshot LoadSnapshot reads: a cluster of
// 1,000 nodes and 10,000 runs is about 5 MB.
const MaxSnapshotSize = 64 << 20

// LoadSnapshot parses a cluster snapshot (JSON or YAML), checks it
// against the schema's #Snapshot, and decodes it. name is the file name
// errors carry; it also says which of the two the snapshot is: ".yaml"
// and ".yml" are YAML, ".json" is JSON, and any other name is JSON when
// its first character is "{" and YAML otherwise (`berth snapshot -o yaml`
// writes YAML). An invalid snapshot is reported as Errors, with the line
// and column in the file.
//
// A snapshot is data, and may come from anywhere (any CI job can write
// one), so it is read as data only: JSON, or YAML through CUE's YAML
// decoder, which yields literals and bounds what aliases expand to. CUE
// itself would also evaluate comprehensions and references, whose cost
// its author chooses. Unified with the schema, plain data costs what its
// size does, and the size is bounded.
func LoadSnapshot(name string, data []byte) (*berth.Snapshot, error) {
	s, _, err := checkSnapshot(name, data)
	return s, err
}

// checkSnapshot is LoadSnapshot, also returning the snapshot as the JSON
// the schema gave it.
func checkSnapshot(name string, data []byte) (*berth.Snapshot, []byte, error) {
	name = filepath.ToSlash(name)
	if len(data) > MaxSnapshotSize {
		return nil, nil, Errors{{Message: fmt.Sprintf("snapshot is larger than %d MiB, the most berth reads", MaxSnapshotSize>>20),
			Positions: []berth.Pos{{File: name}}}}
	}
	ctx := cuecontext.New()
	schema := ctx.CompileBytes(berth.Schema, cuelang.Filename(schemaVirtualFile))
	if err := schema.Err(); err != nil {
		return nil, nil, err
	}
	var v cuelang.Value
	if isYAML(name, data) {
		f, err := yaml.Extract(name, data)
		if err != nil {
			return nil, nil, yamlErrors(name, err)
		}
		v = ctx.BuildFile(f)
	} else {
		if err := jsonSyntax(name, data); err != nil {
			return nil, nil, err
		}
		// Valid JSON is CUE without comprehensions or references:
		// compiled as CUE, it keeps CUE's positions.
		v = ctx.CompileBytes(data, cuelang.Filename(name))
	}
	if err := v.Err(); err != nil {
		return nil, nil, fromCUE(err, nil).sort()
	}
	u := schema.LookupPath(cuelang.ParsePath("#Snapshot")).Unify(v)
	userPos := func(p []string) []berth.Pos { return lookupPos(v, p) }
	if err := u.Validate(cuelang.Concrete(true)); err != nil {
		return nil, nil, fromCUE(err, userPos).sort()
	}
	b, err := u.MarshalJSON()
	if err != nil {
		return nil, nil, fromCUE(err, userPos).sort()
	}
	s, err := decodeSnapshot(name, b)
	if err != nil {
		return nil, nil, err
	}
	return s, b, nil
}

// decodeSnapshot decodes a snapshot that the schema has checked, as its
// JSON.
func decodeSnapshot(name string, b []byte) (*berth.Snapshot, error) {
	var s berth.Snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, Errors{{Message: "decode snapshot: " + err.Error(), Positions: []berth.Pos{{File: name}}}}
	}
	s.Sort()
	return &s, nil
}

// LoadSnapshot is the package's LoadSnapshot, keeping what it checked in
// the loader's evaluation cache (Options.CacheDir): a snapshot read again
// (the same bytes, by the same berth) is decoded from the JSON the schema
// gave it last time instead of being checked again through CUE, which
// takes most of a second for a cluster of a thousand nodes. Only
// snapshots that passed are kept; a broken one is checked each time, so
// its errors always name its own file. An entry is checked as the
// evaluation cache's are (a checksum; anything else is a miss).
func (l *Loader) LoadSnapshot(name string, data []byte) (*berth.Snapshot, error) {
	if l.disk == nil || len(data) > MaxSnapshotSize {
		return LoadSnapshot(name, data)
	}
	key := l.disk.blobName("snapshot", data)
	if b := l.disk.getBlob(key); b != nil {
		if s, err := decodeSnapshot(name, b); err == nil {
			return s, nil
		}
	}
	s, b, err := checkSnapshot(name, data)
	if err != nil {
		return nil, err
	}
	l.disk.putBlob(key, b)
	return s, nil
}

// isYAML says whether a snapshot named name is YAML (see LoadSnapshot).
func isYAML(name string, data []byte) bool {
	switch strings.ToLower(path.Ext(name)) {
	case ".yaml", ".yml":
		return true
	case ".json":
		return false
	}
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	return len(trimmed) > 0 && trimmed[0] != '{'
}

// yamlErrors are the errors of CUE's YAML decoder, each at its file and
// line: its syntax errors are plain text ("snap.yaml:2: did not find
// expected node content"), not CUE errors with positions.
func yamlErrors(name string, err error) Errors {
	errs := fromCUE(err, nil)
	for i, e := range errs {
		if len(e.Positions) > 0 {
			continue
		}
		pos := berth.Pos{File: name}
		if rest, ok := strings.CutPrefix(e.Message, name+":"); ok {
			if l, msg, ok := strings.Cut(rest, ": "); ok {
				if n, err := strconv.Atoi(l); err == nil {
					pos.Line, e.Message = n, msg
				}
			}
		}
		e.Positions = []berth.Pos{pos}
		errs[i] = e
	}
	return errs.sort()
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
