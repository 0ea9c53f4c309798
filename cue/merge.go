package cue

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	cuelang "cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"

	"github.com/berth-gpu/berth"
)

// merge combines the instances' objects into one Config. An object defined
// by two instances is an error naming both places, unless both are the same
// source (CUE includes a parent directory's files in every child instance
// of the same package).
func merge(results []*instanceResult) (*berth.Config, map[string]bool, Errors) {
	// Size the maps first: growing them cost most of a re-validation's
	// merge (10,000 workloads, 150,000 positions).
	objects := 0
	for _, r := range results {
		objects += len(r.objects)
	}
	fields := newPositionIndex(objects)
	cfg := &berth.Config{
		Clusters:  map[string]berth.Cluster{},
		Flavors:   map[string]berth.Flavor{},
		Cohorts:   map[string]berth.Cohort{},
		Teams:     map[string]berth.Team{},
		Workloads: make(map[berth.WorkloadID]berth.Workload, objects),
		Fields:    fields,
	}
	cfg.Packages = make(map[string]berth.Package, len(results))
	var errs Errors
	// Where each object but a workload was first defined, to find one
	// defined twice.
	seen := make(map[string]berth.Pos, objects/8)
	invalid := map[string]bool{}
	policy := map[string]json.RawMessage{}
	for _, r := range results {
		errs = append(errs, r.errs...)
		for _, k := range r.invalid {
			invalid[k] = true
		}
		pkg := berth.Package{Digest: r.key}
		for i := range r.objects {
			o := &r.objects[i]
			if w, ok := o.value.(*berth.Workload); ok {
				// A workload's first definition is its Pos in
				// cfg.Workloads: no map of every object's key.
				id := w.ID()
				pkg.Workloads = append(pkg.Workloads, id)
				if prev, dup := cfg.Workloads[id]; dup {
					errs = append(errs, definedTwice(o, prev.Pos)...)
					continue
				}
				fields.add(o)
				cfg.Workloads[id] = *w
				continue
			}
			if prev, dup := seen[o.key]; dup {
				errs = append(errs, definedTwice(o, prev)...)
				continue
			}
			fields.add(o)
			seen[o.key] = o.pos
			parts := strings.SplitN(o.key, ".", 3)
			switch v := o.value.(type) {
			case berth.Cluster:
				cfg.Clusters[v.Name] = v
			case berth.Flavor:
				cfg.Flavors[v.Name] = v
			case berth.Cohort:
				cfg.Cohorts[v.Name] = v
			case berth.Team:
				cfg.Teams[v.Name] = v
			case json.RawMessage:
				policy[parts[1]] = v
			}
		}
		slices.Sort(pkg.Workloads)
		cfg.Packages[r.dir] = pkg
	}
	p, err := buildPolicy(policy)
	if err != nil {
		errs = append(errs, Error{Path: "policy", Message: err.Error(), Positions: []berth.Pos{cfg.Pos("policy")}})
	}
	cfg.Policy = p
	return cfg, invalid, errs
}

// definedTwice is the error of object o defined again where it was
// first defined at prev: none when it is the same definition (a file
// of an ancestor directory, seen by two instances).
func definedTwice(o *object, prev berth.Pos) Errors {
	if prev == o.pos {
		return nil
	}
	return Errors{{
		Path:      o.key,
		Message:   "defined in two packages; a name may be defined in one package only (rename one, or move both into one package to merge them)",
		Positions: dedupPositions([]berth.Pos{prev, o.pos}),
	}}
}

// defaultPolicy is the schema's #Policy with nothing set, decoded once.
var defaultPolicyJSON = func() map[string]json.RawMessage {
	ctx := cuecontext.New()
	v := ctx.CompileBytes(berth.Schema, cuelang.Filename(schemaVirtualFile)).LookupPath(cuelang.ParsePath("#Policy"))
	b, err := v.MarshalJSON()
	if err != nil {
		panic("the embedded schema's #Policy has no concrete default: " + err.Error())
	}
	m := map[string]json.RawMessage{}
	if err := json.Unmarshal(b, &m); err != nil {
		panic(err)
	}
	return m
}()

// buildPolicy overlays the fields the repository defines on the schema's
// defaults.
func buildPolicy(fields map[string]json.RawMessage) (berth.Policy, error) {
	m := map[string]json.RawMessage{}
	for k, v := range defaultPolicyJSON {
		m[k] = v
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		m[k] = fields[k]
	}
	b, err := json.Marshal(m)
	if err != nil {
		return berth.Policy{}, err
	}
	var p berth.Policy
	if err := json.Unmarshal(b, &p); err != nil {
		return berth.Policy{}, fmt.Errorf("decode: %w", err)
	}
	return p, nil
}
