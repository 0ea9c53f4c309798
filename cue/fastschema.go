package cue

import (
	"encoding/json"
	"iter"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/berth-gpu/berth"
)

// The schema's rules for teams and workloads, in Go, for the fast path.
// They say yes only where schema.cue says yes and fill the same defaults;
// anything they do not know (roles, resource groups, expose, autoscale, a
// command probe, volumes, pipeline outputs and inputs, a checkpoint's size
// or keep) or refuse sends the instance to CUE, which then reports
// what is wrong. TestFastPathAgrees and TestFastSchemaRefusesWhatCUERefuses
// hold them to schema.cue.

// The patterns of schema.cue, verbatim.
var (
	reName      = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	reOwner     = regexp.MustCompile(`^@[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(/[A-Za-z0-9._-]+)?$`)
	reQuantity  = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$`)
	reDuration  = regexp.MustCompile(`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`)
	reCron      = regexp.MustCompile(`^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|@every [0-9hms.]+|([^ ]+ ){4}[^ ]+)$`)
	reEnvName   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	reSecretKey = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)
	reDependsOn = regexp.MustCompile(`^([a-z0-9]([-a-z0-9]*[a-z0-9])?/)?[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	reRunID     = regexp.MustCompile(`^[A-Za-z0-9._-]{1,63}$`)
	reProbePath = regexp.MustCompile(`^/`)
)

var migProfiles = []string{"1g.5gb", "1g.5gb+me", "1g.10gb", "1g.10gb+me", "1g.12gb", "1g.18gb",
	"1g.20gb", "1g.23gb", "1g.24gb", "1g.35gb", "1g.45gb", "1g.47gb", "2g.10gb",
	"2g.12gb", "2g.20gb", "2g.24gb", "2g.35gb", "2g.45gb", "3g.20gb", "3g.40gb",
	"3g.47gb", "3g.71gb", "3g.90gb", "4g.20gb", "4g.40gb", "4g.47gb", "4g.71gb",
	"4g.90gb", "7g.40gb", "7g.80gb", "7g.94gb", "7g.141gb"}

func isName(s string) bool { return reName.MatchString(s) && utf8.RuneCountInString(s) <= 63 }

// sv is a value being checked: the fast path's value at a path.
type sv struct {
	c    *schemaCheck
	path string // the full path, "workloads.t.n.resources.gpu"
	v    *fval  // nil: absent
	// dflt is set when the value is a disjunction's default.
	dflt bool
}

// schemaCheck checks one object and collects its positions.
type schemaCheck struct {
	obj *object
	err error
}

func (c *schemaCheck) fail(format string, args ...any) {
	if c.err == nil {
		c.err = notFast(format, args...)
	}
}

// at returns the field name of s.
func (s sv) at(name string) sv {
	out := sv{c: s.c, path: s.path + "." + name}
	if s.v == nil || s.v.kind != fStruct {
		return out
	}
	f := s.v.field(name)
	if f == nil {
		return out
	}
	out.v, out.dflt = resolve(f)
	return out
}

// resolve picks a disjunction's default.
func resolve(v *fval) (*fval, bool) {
	if v.kind != fDisj || v.dflt < 0 {
		return v, false
	}
	d := *v.alts[v.dflt]
	d.pos, d.user, d.nested = v.pos, v.user, v.nested
	return &d, true
}

func (s sv) present() bool { return s.v != nil }

// fastFields are the fields of each struct of the schema that the fast
// path checks, and fastRefused those it leaves to CUE (an instance that
// sets one is evaluated by CUE). TestFastFieldsCoverTheSchema holds them
// to schema.cue: a field added there must be added to one of them.
var (
	fastFields = map[string][]string{
		"#Workload": {"name", "team", "kind", "priority", "image", "command", "args", "env", "resources",
			"replicas", "workers", "minWorkers", "parallelism", "completions", "maxDuration", "retries",
			"checkpoint", "schedule", "catchUp", "catchUpLimit", "concurrency", "dependsOn", "runId",
			"ports", "health", "rollout", "idle"},
		"#Workload.checkpoint":                {"dir", "resume"},
		"#Resources":                          {"cpu", "memory", "gpu", "flavor", "gpuModel", "gpuFraction", "mig"},
		"#Port":                               {"name", "port", "protocol"},
		"#Health":                             {"readiness", "liveness"},
		"#Probe":                              {"path", "port", "period", "timeout", "failureThreshold", "startupGrace"},
		"#Rollout":                            {"maxSurge", "maxUnavailable"},
		"#Team":                               {"name", "owners", "leads", "cohort", "weight", "quota", "gpuHoursBudget", "gpuHoursPerMonth", "preemption", "flavorFungibility"},
		"#Team.preemption":                    {"withinTeam", "reclaimWithinCohort", "borrowWithinCohort"},
		"#Team.preemption.borrowWithinCohort": {"policy", "maxPriorityThreshold"},
		"#Team.flavorFungibility":             {"whenCanBorrow", "whenCanPreempt"},
		"#FlavorQuota":                        {"flavor", "gpu", "cpu", "memory"},
		"#ResourceQuota":                      {"nominal", "borrowingLimit", "lendingLimit"},
	}
	fastRefused = map[string][]string{
		"#Workload":            {"roles", "expose", "autoscale", "volumes", "outputs", "inputs"},
		"#Workload.checkpoint": {"size", "keep"},
		"#Probe":               {"command"},
		"#Team":                {"resourceGroups"},
	}
)

// only fails unless s is a struct whose fields are among those the fast
// path checks in the schema's struct def.
func (s sv) only(def string) {
	names := fastFields[def]
	if s.v == nil {
		return
	}
	if s.v.kind != fStruct {
		s.c.fail("%s is not a struct", s.path)
		return
	}
	for _, f := range s.v.fields {
		if !slices.Contains(names, f.name) {
			s.c.fail("%s.%s is not on the fast path", s.path, f.name)
		}
	}
}

// scalar returns s's concrete value of kind sk (a float field takes an
// int), failing otherwise.
func (s sv) scalar(sk string) (string, bool) {
	if s.v == nil {
		return "", false
	}
	if s.v.kind != fScalar || !admits(sk, s.v.sk) {
		s.c.fail("%s is not a concrete %s", s.path, sk)
		return "", false
	}
	return s.v.lit, true
}

// pos records where s is written, as CUE reports it (see posRecorded).
func (s sv) pos() {
	if s.v == nil || !s.posRecorded() {
		return
	}
	s.c.obj.positions[s.path] = fpos(s.v.pos)
}

// posRecorded says whether CUE gives s a position in the repository
// rather than the schema's. CUE's Value.Pos is the position of the
// concrete value where there is one (a scalar the user or a template
// wrote), and otherwise that of the value's last conjunct: the schema's
// for a struct, a list and a default, except a template's default that a
// definition took from another definition (#Batch: #Job & {...}), whose
// conjunct comes after the schema's. TestFastPathAgrees holds this to
// CUE on the fixture repositories.
func (s sv) posRecorded() bool {
	if s.v.kind == fStruct || s.v.kind == fList {
		return false
	}
	if s.dflt {
		return !s.v.user && s.v.nested
	}
	return true
}

// out builds the JSON the object decodes from.
type jobj map[string]any

func num(lit string) json.Number { return json.Number(lit) }

// checkField is the field name of s when there is a value to check. When there
// is none it writes the default (conv(dflt)) or says the field is missing
// where it is required; a value and a default of a disjunction both is an
// error; in those cases ok is false and the caller has nothing left to do.
func checkField[T any](s sv, o jobj, name string, req bool, dflt string, conv func(string) T) (f sv, ok bool) {
	f = s.at(name)
	if !f.present() {
		switch {
		case dflt != "":
			o[name] = conv(dflt)
		case req:
			s.c.fail("%s is missing", f.path)
		}
		return f, false
	}
	if dflt != "" && f.dflt {
		s.c.fail("%s: two defaults", f.path)
		return f, false
	}
	return f, true
}

func asText(s string) string { return s }
func isTrue(s string) bool   { return s == "true" }

// str checks an optional or required string field; ok reports whether it
// is present and valid.
func (s sv) str(o jobj, name string, valid func(string) bool, req bool, dflt string) {
	f, ok := checkField(s, o, name, req, dflt, asText)
	if !ok {
		return
	}
	v, ok := f.scalar(skString)
	if !ok {
		return
	}
	if valid != nil && !valid(v) {
		s.c.fail("%s: %q is not valid", f.path, v)
		return
	}
	o[name] = v
}

// integer checks an int field within [lo, hi].
func (s sv) integer(o jobj, name string, lo, hi int64, req bool, dflt string) {
	f, ok := checkField(s, o, name, req, dflt, num)
	if !ok {
		return
	}
	v, ok := f.scalar(skInt)
	if !ok {
		return
	}
	if len(v) > 15 {
		s.c.fail("%s: a large number", f.path)
		return
	}
	n := int64(0)
	for _, r := range v {
		n = n*10 + int64(r-'0')
	}
	if n < lo || n > hi {
		s.c.fail("%s: %d out of range", f.path, n)
		return
	}
	o[name] = num(v)
}

// positive checks a number field > 0.
func (s sv) positive(o jobj, name string, dflt string) {
	f, ok := checkField(s, o, name, false, dflt, num)
	if !ok {
		return
	}
	v, ok := f.scalar(skNumber)
	if !ok {
		return
	}
	if strings.Trim(v, "0.") == "" {
		s.c.fail("%s: not > 0", f.path)
		return
	}
	o[name] = num(v)
}

func (s sv) boolean(o jobj, name string, dflt string) {
	f, ok := checkField(s, o, name, false, dflt, isTrue)
	if !ok {
		return
	}
	if v, ok := f.scalar(skBool); ok {
		o[name] = v == "true"
	}
}

// quantity checks a #Quantity: a number >= 0 or a quantity string.
func (s sv) quantity(o jobj, name string, req bool, dflt string) {
	f, ok := checkField(s, o, name, req, dflt, asText)
	if !ok {
		return
	}
	if f.v.kind != fScalar {
		s.c.fail("%s is not concrete", f.path)
		return
	}
	switch f.v.sk {
	case skInt, skFloat:
		o[name] = num(f.v.lit)
	case skString:
		if !reQuantity.MatchString(f.v.lit) {
			s.c.fail("%s: not a quantity", f.path)
			return
		}
		o[name] = f.v.lit
	default:
		s.c.fail("%s: not a quantity", f.path)
	}
}

// strings checks a list of strings, each valid; an absent list is [].
func (s sv) strList(o jobj, name string, valid func(string) bool, minItems int) []string {
	f := s.at(name)
	out := []any{}
	var got []string
	if !f.list() {
		return nil
	}
	for es := range f.elems() {
		v, ok := es.scalar(skString)
		if !ok {
			return nil
		}
		if valid != nil && !valid(v) {
			s.c.fail("%s: %q is not valid", es.path, v)
			return nil
		}
		out = append(out, v)
		got = append(got, v)
	}
	if len(out) < minItems {
		s.c.fail("%s: too few items", f.path)
	}
	o[name] = out
	return got
}

// list fails unless s is absent or a list.
func (s sv) list() bool {
	if s.v != nil && s.v.kind != fList {
		s.c.fail("%s is not a list", s.path)
		return false
	}
	return true
}

// elems yields the elements of the list s, each at its path ("….ports.0")
// with its default picked; nothing when s is absent or not a list.
func (s sv) elems() iter.Seq[sv] {
	return func(yield func(sv) bool) {
		if s.v == nil || s.v.kind != fList {
			return
		}
		for i, e := range s.v.elems {
			es := sv{c: s.c, path: s.path + "." + itoa(i)}
			es.v, es.dflt = resolve(e)
			if !yield(es) {
				return
			}
		}
	}
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

// check checks the object against the schema and decodes it.
func (o *objSrc) check() (object, error) {
	key := strings.Join(o.path, ".")
	obj := object{key: key, pos: fpos(o.pos), positions: map[string]berth.Pos{}}
	c := &schemaCheck{obj: &obj}
	root := sv{c: c, path: key}
	root.v, root.dflt = resolve(o.v)
	if root.v.kind != fStruct || root.dflt {
		return obj, notFast("%s is not a struct", key)
	}
	if hasClosed(root.v) {
		// A definition's struct without "...": the schema's defaults are
		// fields it does not allow, which CUE reports.
		return obj, notFast("%s holds a closed struct", key)
	}
	out := jobj{}
	var err error
	switch o.path[0] {
	case "workloads":
		fastWorkload(root, out, o.path[1], o.path[2])
		if c.err == nil {
			w := new(berth.Workload)
			err = decodeJSON(out, w)
			w.Pos = obj.pos
			obj.value = w
		}
	case "teams":
		var t berth.Team
		fastTeam(root, out, o.path[1])
		if c.err == nil {
			err = decodeJSON(out, &t)
			obj.value = t
		}
	}
	if c.err != nil {
		return obj, c.err
	}
	if err != nil {
		return obj, notFast("decode %s: %v", key, err)
	}
	obj.positions[key] = obj.pos
	return obj, nil
}

// fastWorkload is #Workload & {team: team, name: name}.
func fastWorkload(s sv, o jobj, team, name string) {
	s.only("#Workload")
	if !isName(team) || !isName(name) {
		s.c.fail("a name")
		return
	}
	s.str(o, "name", func(v string) bool { return v == name }, false, "")
	s.str(o, "team", func(v string) bool { return v == team }, false, "")
	o["name"], o["team"] = name, team
	kinds := []string{"training", "batch", "service", "inference", "notebook"}
	s.str(o, "kind", func(v string) bool { return slices.Contains(kinds, v) }, true, "")
	kind, _ := o["kind"].(string)
	s.str(o, "priority", isName, false, "")
	s.str(o, "image", func(v string) bool { return v != "" }, false, "")
	s.strList(o, "command", nil, 0)
	s.strList(o, "args", nil, 0)
	s.env(o)
	fastResources(s.at("resources"), o)
	for _, f := range []string{"replicas", "workers", "minWorkers", "parallelism", "completions"} {
		s.integer(o, f, 1, 1<<53, false, "")
	}
	s.str(o, "maxDuration", reDuration.MatchString, false, "")
	s.integer(o, "retries", 0, 1<<53, false, "0")
	fastCheckpoint(s.at("checkpoint"), o)
	s.str(o, "schedule", reCron.MatchString, false, "")
	s.str(o, "catchUp", func(v string) bool { return v == "none" || v == "latest" || v == "all" }, false, "")
	s.integer(o, "catchUpLimit", 1, 1000, false, "")
	s.str(o, "concurrency", func(v string) bool { return v == "allow" || v == "forbid" || v == "replace" }, false, "")
	s.strList(o, "dependsOn", reDependsOn.MatchString, 0)
	s.str(o, "runId", reRunID.MatchString, false, "1")
	s.str(o, "idle", reDuration.MatchString, false, "")
	fastPorts(s, o)
	fastHealth(s.at("health"), o)
	fastRollout(s.at("rollout"), o)
	fastShape(s, o, kind)
	workloadPositions(s)
}

// fastCheckpoint is #Workload.checkpoint, when set.
func fastCheckpoint(cp sv, o jobj) {
	if !cp.present() {
		return
	}
	cp.only("#Workload.checkpoint")
	co := jobj{}
	cp.str(co, "dir", func(v string) bool { return v != "" }, true, "")
	cp.boolean(co, "resume", "true")
	o["checkpoint"] = co
}

// fastHealth is #Health, when set.
func fastHealth(h sv, o jobj) {
	if !h.present() {
		return
	}
	h.only("#Health")
	ho := jobj{}
	for _, p := range []string{"readiness", "liveness"} {
		if pr := h.at(p); pr.present() {
			ho[p] = fastProbe(pr)
		}
	}
	o["health"] = ho
}

// fastRollout is #Rollout, when set.
func fastRollout(r sv, o jobj) {
	if !r.present() {
		return
	}
	r.only("#Rollout")
	ro := jobj{}
	r.integer(ro, "maxSurge", 0, 1<<53, false, "1")
	r.integer(ro, "maxUnavailable", 0, 1<<53, false, "0")
	o["rollout"] = ro
}

// fastShape is the shape of each kind (the "if kind == ..." of
// #Workload): the defaults of its shape fields, and no field of another
// kind's shape.
func fastShape(s sv, o jobj, kind string) {
	not := func(fields ...string) {
		for _, f := range fields {
			if s.at(f).present() {
				s.c.fail("%s of a %s", f, kind)
			}
		}
	}
	if kind != "notebook" {
		not("idle")
	}
	switch kind {
	case "service", "inference", "notebook":
		if _, ok := o["replicas"]; !ok {
			o["replicas"] = num("1")
		} else if s.at("replicas").dflt {
			s.c.fail("replicas: two defaults")
		}
		not("workers", "minWorkers", "parallelism", "completions", "schedule")
		if _, ok := o["rollout"]; !ok {
			o["rollout"] = jobj{"maxSurge": num("1"), "maxUnavailable": num("0")}
		}
	case "training":
		if _, ok := o["workers"]; !ok {
			o["workers"] = num("1")
		} else if s.at("workers").dflt {
			s.c.fail("workers: two defaults")
		}
		not("replicas", "parallelism", "completions", "health", "rollout")
	case "batch":
		for _, f := range []string{"parallelism", "completions"} {
			if _, ok := o[f]; !ok {
				o[f] = num("1")
			} else if s.at(f).dflt {
				s.c.fail("%s: two defaults", f)
			}
		}
		not("replicas", "workers", "minWorkers", "health", "rollout")
	}
}

// workloadPositions records a workload's positions, as the CUE path
// records them (evaluator.object).
func workloadPositions(s sv) {
	for _, f := range []string{"kind", "priority", "image", "resources", "maxDuration", "schedule", "catchUp",
		"catchUpLimit", "concurrency", "replicas", "workers", "minWorkers", "parallelism", "completions", "runId",
		"ports", "health", "rollout", "rollout.maxSurge", "idle", "checkpoint", "checkpoint.dir"} {
		s.atPath(f).pos()
	}
	for _, f := range []string{"gpu", "flavor", "gpuModel", "mig", "gpuFraction"} {
		s.at("resources").at(f).pos()
	}
	for _, p := range []string{"readiness", "liveness"} {
		pr := s.at("health").at(p)
		pr.pos()
		pr.at("path").pos()
		pr.at("port").pos()
	}
	s.listPos("dependsOn", "")
	s.listPos("ports", "name")
	s.listPos("ports", "port")
}

// atPath is at for a dotted path.
func (s sv) atPath(p string) sv {
	for f := range strings.SplitSeq(p, ".") {
		s = s.at(f)
	}
	return s
}

// listPos records the positions of a list's elements, or of one field of
// each.
func (s sv) listPos(list, field string) {
	for es := range s.at(list).elems() {
		if field != "" {
			es = es.at(field)
		}
		es.pos()
	}
}

func (s sv) env(o jobj) {
	f := s.at("env")
	eo := map[string]any{}
	o["env"] = eo
	if !f.present() {
		return
	}
	if f.v.kind != fStruct {
		s.c.fail("env is not a struct")
		return
	}
	for _, fl := range f.v.fields {
		if !reEnvName.MatchString(fl.name) {
			s.c.fail("env %s", fl.name)
			return
		}
		e := f.at(fl.name)
		if e.v != nil && e.v.kind == fStruct {
			if ref, ok := e.envSecret(); ok {
				eo[fl.name] = map[string]any{"secret": ref}
			}
			continue
		}
		if v, ok := e.scalar(skString); ok {
			eo[fl.name] = v
			e.pos() // for the credential warnings, as the CUE path records it
		}
	}
}

// envSecret is #EnvSecret: {secret: {name, key}} and nothing else.
func (s sv) envSecret() (map[string]any, bool) {
	sec := s.at("secret")
	if len(s.v.fields) != 1 || !sec.present() || sec.v.kind != fStruct || len(sec.v.fields) != 2 {
		s.c.fail("%s is not a secret reference", s.path)
		return nil, false
	}
	name, ok := sec.at("name").scalar(skString)
	if ok && !isName(name) {
		s.c.fail("%s.secret.name %q", s.path, name)
	}
	key, ok2 := sec.at("key").scalar(skString)
	if ok2 && (!reSecretKey.MatchString(key) || key == "." || key == ".." || utf8.RuneCountInString(key) > 253) {
		s.c.fail("%s.secret.key %q", s.path, key)
	}
	if s.c.err != nil || !ok || !ok2 {
		return nil, false
	}
	return map[string]any{"name": name, "key": key}, true
}

// fastResources is #Resources.
func fastResources(s sv, o jobj) {
	s.only("#Resources")
	ro := jobj{}
	o["resources"] = ro
	s.quantity(ro, "cpu", false, "1")
	s.quantity(ro, "memory", false, "1Gi")
	s.integer(ro, "gpu", 0, 1<<53, false, "0")
	s.str(ro, "flavor", isName, false, "")
	s.str(ro, "gpuModel", func(v string) bool { return v != "" }, false, "")
	s.str(ro, "mig", func(v string) bool { return slices.Contains(migProfiles, v) }, false, "")
	if f := s.at("gpuFraction"); f.present() {
		v, ok := f.scalar(skNumber)
		if ok && !(f.v.sk == skFloat && strings.HasPrefix(v, "0.") && strings.Trim(v, "0.") != "") {
			s.c.fail("gpuFraction %s", v)
		}
		if ok {
			ro["gpuFraction"] = num(v)
		}
	}
	_, fraction := ro["gpuFraction"]
	_, mig := ro["mig"]
	if fraction && mig {
		s.c.fail("gpuFraction and mig")
	}
	if fraction || mig {
		if g, _ := ro["gpu"].(json.Number); g != "0" && g != "1" {
			s.c.fail("gpu above 1 with a fraction or mig")
		}
	}
}

// fastPorts is ports: [...#Port].
func fastPorts(s sv, o jobj) {
	f := s.at("ports")
	out := []any{}
	o["ports"] = out
	if !f.list() {
		return
	}
	for es := range f.elems() {
		if es.v.kind != fStruct {
			s.c.fail("a port is not a struct")
			return
		}
		es.only("#Port")
		po := jobj{}
		es.str(po, "name", isName, false, "")
		es.integer(po, "port", 1, 65535, true, "")
		es.str(po, "protocol", func(v string) bool { return v == "TCP" || v == "UDP" }, false, "TCP")
		out = append(out, po)
	}
	o["ports"] = out
}

// fastProbe is #Probe without command (a command probe goes to CUE: its
// conditional errors are CUE's).
func fastProbe(s sv) jobj {
	s.only("#Probe")
	po := jobj{}
	s.str(po, "path", reProbePath.MatchString, false, "")
	if p := s.at("port"); p.present() {
		switch {
		case p.v.kind == fScalar && p.v.sk == skString:
			s.str(po, "port", isName, false, "")
		default:
			s.integer(po, "port", 1, 65535, false, "")
		}
	}
	s.str(po, "period", reDuration.MatchString, false, "10s")
	s.str(po, "timeout", reDuration.MatchString, false, "1s")
	s.integer(po, "failureThreshold", 1, 1<<53, false, "3")
	s.str(po, "startupGrace", reDuration.MatchString, false, "")
	return po
}

// fastTeam is #Team & {name: name}, without resourceGroups.
func fastTeam(s sv, o jobj, name string) {
	s.only("#Team")
	if !isName(name) {
		s.c.fail("a name")
		return
	}
	s.str(o, "name", func(v string) bool { return v == name }, false, "")
	o["name"] = name
	owners := s.strList(o, "owners", reOwner.MatchString, 1)
	if s.at("leads").present() {
		s.strList(o, "leads", reOwner.MatchString, 0)
	} else {
		leads := []any{}
		for _, x := range owners {
			leads = append(leads, x)
		}
		o["leads"] = leads
	}
	s.str(o, "cohort", isName, false, "")
	s.positive(o, "weight", "1")
	for _, f := range []string{"gpuHoursBudget", "gpuHoursPerMonth"} {
		if s.at(f).present() {
			s.positive(o, f, "")
		}
	}
	if !fastQuota(s.at("quota"), o) {
		return
	}
	fastPreemption(s.at("preemption"), o)
	fastFungibility(s.at("flavorFungibility"), o)

	// Positions, as evaluator.object records them.
	s.at("cohort").pos()
	s.atPath("preemption.borrowWithinCohort.maxPriorityThreshold").pos()
	s.listPos("quota", "flavor")
}

// fastQuota is quota: [...#FlavorQuota]; false when it is not that.
func fastQuota(q sv, o jobj) bool {
	qs := []any{}
	if !q.list() {
		return false
	}
	for es := range q.elems() {
		if es.v.kind != fStruct {
			q.c.fail("a quota is not a struct")
			return false
		}
		es.only("#FlavorQuota")
		fo := jobj{}
		es.str(fo, "flavor", isName, true, "")
		for _, r := range []string{"gpu", "cpu", "memory"} {
			rq := es.at(r)
			if !rq.present() {
				continue
			}
			rq.only("#ResourceQuota")
			ro := jobj{}
			rq.quantity(ro, "nominal", true, "")
			rq.quantity(ro, "borrowingLimit", false, "")
			rq.quantity(ro, "lendingLimit", false, "")
			fo[r] = ro
		}
		qs = append(qs, fo)
	}
	o["quota"] = qs
	return true
}

// fastPreemption is #Team.preemption, defaults included.
func fastPreemption(p sv, o jobj) {
	p.only("#Team.preemption")
	po := jobj{}
	p.str(po, "withinTeam", func(v string) bool {
		return v == "lowerPriority" || v == "never" || v == "lowerOrNewerEqualPriority"
	}, false, "lowerPriority")
	p.str(po, "reclaimWithinCohort", func(v string) bool { return v == "any" || v == "never" || v == "lowerPriority" }, false, "any")
	b := p.at("borrowWithinCohort")
	b.only("#Team.preemption.borrowWithinCohort")
	bo := jobj{}
	b.str(bo, "policy", func(v string) bool { return v == "never" || v == "lowerPriority" }, false, "never")
	b.integer(bo, "maxPriorityThreshold", -1<<53, 1<<53, false, "")
	po["borrowWithinCohort"] = bo
	o["preemption"] = po
}

// fastFungibility is #Team.flavorFungibility, defaults included.
func fastFungibility(ff sv, o jobj) {
	ff.only("#Team.flavorFungibility")
	fo := jobj{}
	ff.str(fo, "whenCanBorrow", func(v string) bool { return v == "Borrow" || v == "TryNextFlavor" }, false, "Borrow")
	ff.str(fo, "whenCanPreempt", func(v string) bool { return v == "TryNextFlavor" || v == "Preempt" }, false, "TryNextFlavor")
	o["flavorFungibility"] = fo
}

// hasClosed reports whether v holds a closed struct.
func hasClosed(v *fval) bool {
	if v.closed {
		return true
	}
	for _, f := range v.fields {
		if hasClosed(f.v) {
			return true
		}
	}
	for _, e := range v.elems {
		if hasClosed(e) {
			return true
		}
	}
	return v.rest != nil && hasClosed(v.rest)
}
