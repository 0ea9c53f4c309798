package cue

import (
	"maps"
	"strings"
	"sync"

	"github.com/berth-gpu/berth"
)

// positionIndex is a loaded Config's Fields: each object's positions, kept
// as the compact text a child sent (encodePositions) and decoded the first
// time a path of the object is asked for. Building one map of every
// position was a fifth of a warm load of 50,000 workloads (about 750,000
// positions), for the few that an error or a pull request's approvals
// read. It is safe for concurrent use.
type positionIndex struct {
	mu      sync.Mutex
	objects map[string]*objectPositions // by object key
	// foreign holds the positions objects gave for paths outside their
	// own key (not found by the key), decoded when the index is built.
	foreign map[string]berth.Pos
}

// objectPositions are one object's positions: decoded (m), or not yet
// (enc, with the file table its indexes refer to).
type objectPositions struct {
	enc   string
	files []string
	m     map[string]berth.Pos
}

func newPositionIndex(objects int) *positionIndex {
	return &positionIndex{objects: make(map[string]*objectPositions, objects), foreign: map[string]berth.Pos{}}
}

// add records o's positions. Objects are added in merge's order, and a
// later object's position for a path replaces an earlier one's, as they
// did in one map.
func (x *positionIndex) add(o *object) {
	op := &objectPositions{enc: o.enc, files: o.files, m: o.positions}
	// A path outside the object's key is written quoted after a "!"
	// (encodePositions): such an object is decoded now.
	if op.m == nil && strings.Contains(o.enc, "!") {
		op.m = x.decode(o.key, op)
	}
	for p, pos := range op.m {
		if !strings.HasPrefix(p, o.key) {
			x.foreign[p] = pos
		}
	}
	x.objects[o.key] = op
}

// decode decodes an object's positions; positions that do not decode
// (nothing berth wrote) are none.
func (x *positionIndex) decode(key string, op *objectPositions) map[string]berth.Pos {
	m, err := decodePositions(key, op.enc, op.files)
	if err != nil {
		return map[string]berth.Pos{}
	}
	return m
}

// Lookup finds the object path belongs to by its key (a prefix of path
// ending at a dot), and path among its positions.
func (x *positionIndex) Lookup(path string) (berth.Pos, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for i := 0; i <= len(path); i++ {
		if i < len(path) && path[i] != '.' {
			continue
		}
		op := x.objects[path[:i]]
		if op == nil {
			continue
		}
		if op.m == nil {
			op.m = x.decode(path[:i], op)
			op.enc = ""
		}
		if p, ok := op.m[path]; ok {
			return p, true
		}
		break
	}
	p, ok := x.foreign[path]
	return p, ok
}

// All decodes every object's positions and yields them.
func (x *positionIndex) All(yield func(string, berth.Pos) bool) {
	x.mu.Lock()
	all := maps.Clone(x.foreign)
	for key, op := range x.objects {
		if op.m == nil {
			op.m = x.decode(key, op)
			op.enc = ""
		}
		for p, pos := range op.m {
			if strings.HasPrefix(p, key) {
				all[p] = pos
			}
		}
	}
	x.mu.Unlock()
	for p, pos := range all {
		if !yield(p, pos) {
			return
		}
	}
}

// Equal reports whether x and y hold the same positions (go-cmp uses it
// to compare Configs).
func (x *positionIndex) Equal(y berth.PositionIndex) bool {
	a, b := map[string]berth.Pos{}, map[string]berth.Pos{}
	x.All(func(p string, pos berth.Pos) bool { a[p] = pos; return true })
	if y != nil {
		y.All(func(p string, pos berth.Pos) bool { b[p] = pos; return true })
	}
	return maps.Equal(a, b)
}
