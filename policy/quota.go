package policy

import (
	"math"
	"slices"
	"strings"

	"github.com/berth-gpu/berth"
)

// Unlimited stands for a quota without a bound.
const Unlimited = math.MaxInt64

// NumResources is how many resources a Demand holds.
const NumResources = 3

// Demand is an amount of each resource, in the units quotas are kept in
// (berth.Amount): index 0 gpu (thousandths), 1 cpu (millicores), 2 memory
// (bytes).
type Demand [NumResources]int64

// ResourceIndex maps a resource to its index in a Demand.
func ResourceIndex(r berth.Resource) int {
	switch r {
	case berth.ResourceGPU:
		return 0
	case berth.ResourceCPU:
		return 1
	default:
		return 2
	}
}

// Add returns d + e.
func (d Demand) Add(e Demand) Demand {
	for i := range d {
		d[i] += e[i]
	}
	return d
}

// Scale returns d x n.
func (d Demand) Scale(n int64) Demand {
	for i := range d {
		d[i] *= n
	}
	return d
}

// IsZero reports whether nothing is asked.
func (d Demand) IsZero() bool { return d == Demand{} }

// Quotas is the quota tree of one cluster: every team and cohort, and for
// each flavor of the cluster and each resource, the nominal quota, the
// limits, and the usage. It follows Kueue's model:
//
//   - a node's subtree quota is its own nominal plus what its children lend;
//   - a node lends its subtree quota, or at most its lending limit, and keeps
//     the rest for itself (its guaranteed part);
//   - a node's usage counts in its parent only beyond its guaranteed part;
//   - what a team can still use is its unused guaranteed part plus what it
//     may borrow from its cohort: the least of the cohort's availability
//     (recursively) and its own lendable plus borrowing limit, minus what it
//     already takes from the cohort.
//
// A resource a team's quota does not mention is not limited for it. A team
// may use only the flavors its quota lists. Where a team's quota has
// resource groups, a pod takes each group's resources from one flavor: the
// flavor a method is asked about may then join one flavor per group
// ("h100+cpu-nodes"), and each resource is counted in the one whose quota
// gives it. Quotas is not safe for concurrent use; Clone it for what-if
// questions.
type Quotas struct {
	flavors []string
	fidx    map[string]int
	teams   map[string]*qnode
	cohorts map[string]*qnode
	nodes   []*qnode // teams then cohorts, sorted by name within each
}

// qnode is a team or a cohort. Arrays are indexed by flavor*NumResources+resource.
type qnode struct {
	name     string
	team     bool
	weight   float64
	parent   *qnode
	children []*qnode

	defined    []bool  // the quota mentions this flavor and resource
	listed     []bool  // the team's quota lists this flavor (per flavor)
	nominal    []int64 // own nominal
	borrow     []int64 // borrowing limit (Unlimited when unset)
	lend       []int64 // lending limit (Unlimited when unset)
	subtree    []int64 // own nominal + children's lendable
	lendable   []int64
	guaranteed []int64
	usage      []int64 // team: its usage; cohort: sum of children's usage in it
	height     int     // cohort: the distance to its farthest leaf (Kueue's getNodeHeight)
}

// NewQuotas builds the quota tree for the given flavors (those of one
// cluster) from a configuration.
func NewQuotas(cfg *berth.Config, flavors []string) *Quotas {
	fl := append([]string(nil), flavors...)
	slices.Sort(fl)
	q := &Quotas{flavors: fl, fidx: map[string]int{}, teams: map[string]*qnode{}, cohorts: map[string]*qnode{}}
	for i, f := range fl {
		q.fidx[f] = i
	}
	q.addCohorts(cfg)
	q.addTeams(cfg)
	for _, name := range cfg.TeamNames() {
		q.nodes = append(q.nodes, q.teams[name])
	}
	for _, name := range cfg.CohortNames() {
		q.nodes = append(q.nodes, q.cohorts[name])
	}
	q.computeStatic()
	for _, x := range q.nodes {
		x.height = nodeHeight(x)
	}
	return q
}

// newNode is a team's or a cohort's node with no quota: nothing
// nominal, borrowing and lending unlimited.
func (q *Quotas) newNode(name string, team bool) *qnode {
	n := len(q.flavors) * NumResources
	x := &qnode{name: name, team: team, weight: 1,
		defined: make([]bool, n), listed: make([]bool, len(q.flavors)),
		nominal: make([]int64, n), borrow: make([]int64, n), lend: make([]int64, n),
		subtree: make([]int64, n), lendable: make([]int64, n), guaranteed: make([]int64, n), usage: make([]int64, n)}
	for i := range x.borrow {
		x.borrow[i] = Unlimited
		x.lend[i] = Unlimited
	}
	return x
}

// addCohorts adds the cohorts with their quotas, then links each to its
// parent (a parent that would make a cycle is left out).
func (q *Quotas) addCohorts(cfg *berth.Config) {
	for _, name := range cfg.CohortNames() {
		c := q.newNode(name, false)
		q.setQuota(c, cfg.Cohorts[name].Quota)
		q.cohorts[name] = c
	}
	for _, name := range cfg.CohortNames() {
		c := q.cohorts[name]
		if p, ok := q.cohorts[cfg.Cohorts[name].Parent]; ok && !q.wouldCycle(c, p) {
			c.parent = p
			p.children = append(p.children, c)
		}
	}
}

// addTeams adds the teams with their weights and quotas, each under its
// cohort.
func (q *Quotas) addTeams(cfg *berth.Config) {
	for _, name := range cfg.TeamNames() {
		t := cfg.Teams[name]
		x := q.newNode(name, true)
		if t.Weight > 0 {
			x.weight = t.Weight
		}
		q.setQuota(x, t.Quotas())
		if c, ok := q.cohorts[t.Cohort]; ok {
			x.parent = c
			c.children = append(c.children, x)
		}
		q.teams[name] = x
	}
}

// computeStatic computes the static quantities of every node (subtree,
// lendable, guaranteed), children before parents.
func (q *Quotas) computeStatic() {
	done := map[*qnode]bool{}
	var compute func(x *qnode)
	compute = func(x *qnode) {
		if done[x] {
			return
		}
		done[x] = true
		for _, c := range x.children {
			compute(c)
		}
		for k := range x.subtree {
			s := x.nominal[k]
			for _, c := range x.children {
				s += c.lendable[k]
			}
			x.subtree[k] = s
			x.lendable[k] = s
			if x.lend[k] != Unlimited && x.lend[k] < s {
				x.lendable[k] = x.lend[k]
			}
			x.guaranteed[k] = s - x.lendable[k]
		}
	}
	for _, x := range q.nodes {
		compute(x)
	}
}

// nodeHeight is Kueue's getNodeHeight: 1 for a cohort of teams only, one
// more for each level of cohorts below it, 0 for a team.
func nodeHeight(x *qnode) int {
	h := min(len(x.children), 1)
	for _, c := range x.children {
		if !c.team {
			h = max(h, nodeHeight(c)+1)
		}
	}
	return h
}

func (q *Quotas) wouldCycle(c, p *qnode) bool {
	for x := p; x != nil; x = x.parent {
		if x == c {
			return true
		}
	}
	return false
}

func (q *Quotas) setQuota(x *qnode, quota []berth.FlavorQuota) {
	for _, fq := range quota {
		f, ok := q.fidx[fq.Flavor]
		if !ok {
			continue
		}
		x.listed[f] = true
		for _, r := range berth.ResourceNames {
			rq := fq.Resource(r)
			if rq == nil {
				continue
			}
			k := f*NumResources + ResourceIndex(r)
			x.defined[k] = true
			x.nominal[k] = berth.Amount(r, rq.Nominal)
			if rq.BorrowingLimit != nil {
				x.borrow[k] = berth.Amount(r, *rq.BorrowingLimit)
			}
			if rq.LendingLimit != nil {
				x.lend[k] = berth.Amount(r, *rq.LendingLimit)
			}
		}
	}
}

// Clone returns an independent copy (usage included).
func (q *Quotas) Clone() *Quotas {
	c := &Quotas{flavors: q.flavors, fidx: q.fidx, teams: map[string]*qnode{}, cohorts: map[string]*qnode{}}
	m := map[*qnode]*qnode{}
	for _, x := range q.nodes {
		y := *x
		y.usage = append([]int64(nil), x.usage...)
		y.children = nil
		m[x] = &y
		c.nodes = append(c.nodes, &y)
		if x.team {
			c.teams[x.name] = &y
		} else {
			c.cohorts[x.name] = &y
		}
	}
	for _, x := range q.nodes {
		y := m[x]
		if x.parent != nil {
			y.parent = m[x.parent]
		}
		for _, ch := range x.children {
			y.children = append(y.children, m[ch])
		}
	}
	return c
}

// Flavors returns the flavors the tree covers, sorted.
func (q *Quotas) Flavors() []string { return q.flavors }

// Listed reports whether the team's quota lists the flavor (so the team may
// use it).
func (q *Quotas) Listed(team, flavor string) bool {
	t, ok := q.teams[team]
	if !ok {
		return false
	}
	_, listed, kok := q.keys(t, flavor)
	return kok && listed
}

// key is the key of resource r of the flavor for team t (-1 and false
// where none).
func (q *Quotas) key(t *qnode, flavor string, r int) (int, bool) {
	ks, _, ok := q.keys(t, flavor)
	if !ok || ks[r] < 0 {
		return -1, false
	}
	return ks[r], true
}

// keys resolves a flavor for team t to the key of each resource, -1 where
// no flavor of it bounds the resource. A plain flavor keys every resource
// to itself. A name joining one flavor per resource group
// ("h100+cpu-nodes", berth.FlavorSeparator) keys each resource to the
// flavor whose quota the team gives it in (a resource no group covers is
// not limited, and is charged nowhere). listed is false when the team may
// not use one of the flavors; ok is false when one is not of this tree.
func (q *Quotas) keys(t *qnode, flavor string) (ks [NumResources]int, listed, ok bool) {
	if f, found := q.fidx[flavor]; found {
		for r := range ks {
			ks[r] = f*NumResources + r
		}
		return ks, t.listed[f], true
	}
	if !strings.Contains(flavor, berth.FlavorSeparator) {
		return ks, false, false
	}
	for r := range ks {
		ks[r] = -1
	}
	listed = true
	for rest := flavor; rest != ""; {
		var name string
		name, rest, _ = strings.Cut(rest, berth.FlavorSeparator)
		f, found := q.fidx[name]
		if !found {
			return ks, false, false
		}
		listed = listed && t.listed[f]
		for r := range ks {
			if k := f*NumResources + r; t.defined[k] {
				ks[r] = k
			}
		}
	}
	return ks, listed, true
}

// FlavorOf is the flavor of a name joining several (one per resource
// group) that bounds resource r for the team: "h100" for gpu in
// "h100+cpu-nodes". A plain flavor is its own; "" where none bounds it.
func (q *Quotas) FlavorOf(team, flavor string, r berth.Resource) string {
	t, ok := q.teams[team]
	if !ok || !strings.Contains(flavor, berth.FlavorSeparator) {
		return flavor
	}
	ks, _, ok := q.keys(t, flavor)
	if !ok || ks[ResourceIndex(r)] < 0 {
		return ""
	}
	return q.flavors[ks[ResourceIndex(r)]/NumResources]
}

// Available is how much more of a resource the team may use now, with
// borrowing: Unlimited when its quota does not bound the resource.
func (q *Quotas) Available(team, flavor string, r berth.Resource) int64 {
	return q.bound(team, flavor, r, available)
}

// bound applies f to the team's node for a resource of a flavor: 0 when
// the team may not use the flavor, Unlimited when its quota does not bound
// the resource.
func (q *Quotas) bound(team, flavor string, r berth.Resource, f func(*qnode, int) int64) int64 {
	t, ok := q.teams[team]
	if !ok {
		return 0
	}
	ks, listed, kok := q.keys(t, flavor)
	if !kok || !listed {
		return 0
	}
	k := ks[ResourceIndex(r)]
	if k < 0 || !t.defined[k] {
		return Unlimited
	}
	return f(t, k)
}

func available(x *qnode, k int) int64 {
	if x.parent == nil {
		return max(0, x.subtree[k]-x.usage[k])
	}
	local := max(0, x.guaranteed[k]-x.usage[k])
	fromParent := available(x.parent, k)
	if x.borrow[k] != Unlimited {
		capacity := x.lendable[k] + x.borrow[k] - max(0, x.usage[k]-x.guaranteed[k])
		fromParent = min(fromParent, max(0, capacity))
	}
	return local + fromParent
}

// Most is the most of a resource the team could ever use, were every other
// team idle: nominal plus borrowing limit, bounded by what the cohorts hold.
// Unlimited when its quota does not bound the resource.
func (q *Quotas) Most(team, flavor string, r berth.Resource) int64 {
	return q.bound(team, flavor, r, most)
}

func most(x *qnode, k int) int64 {
	if x.parent == nil {
		return x.subtree[k]
	}
	fromParent := most(x.parent, k)
	if x.borrow[k] != Unlimited {
		fromParent = min(fromParent, x.lendable[k]+x.borrow[k])
	}
	return x.guaranteed[k] + fromParent
}

// Shortfall describes why a demand does not fit a team's quota.
type Shortfall struct {
	Resource berth.Resource
	// Asked is the demand for the resource; Need is how much more would
	// have to be free.
	Asked, Need int64
	// Borrowing is true when the team would be above its nominal quota:
	// what is short is the cohort's unused quota or the borrowing limit.
	Borrowing bool
	// AtLimit is true when the borrowing limit, not the cohort, is what
	// stops it.
	AtLimit bool
}

// Fits reports whether the demand fits the team's quota of the flavor now,
// and if not, the first resource (gpu, cpu, memory) that is short.
func (q *Quotas) Fits(team, flavor string, d Demand) (bool, Shortfall) {
	t, ok := q.teams[team]
	if !ok {
		return false, Shortfall{Resource: berth.ResourceGPU, Asked: d[0], Need: d[0]}
	}
	ks, listed, kok := q.keys(t, flavor)
	if !kok || !listed {
		return false, Shortfall{Resource: berth.ResourceGPU, Asked: d[0], Need: d[0]}
	}
	for r := range NumResources {
		if d[r] == 0 {
			continue
		}
		k := ks[r]
		if k < 0 || !t.defined[k] {
			continue
		}
		avail := available(t, k)
		if d[r] > avail {
			sf := Shortfall{Resource: berth.ResourceNames[r], Asked: d[r], Need: d[r] - avail, Borrowing: t.usage[k]+d[r] > t.nominal[k]}
			if t.parent != nil && t.borrow[k] != Unlimited && t.usage[k]+d[r] > t.nominal[k]+t.borrow[k] {
				sf.AtLimit = true
			}
			return false, sf
		}
	}
	return true, Shortfall{}
}

// WouldBorrow reports whether adding the demand takes the team above its
// nominal quota in any resource of the flavor.
func (q *Quotas) WouldBorrow(team, flavor string, d Demand) bool {
	t, ok := q.teams[team]
	if !ok {
		return false
	}
	ks, _, kok := q.keys(t, flavor)
	if !kok {
		return false
	}
	for r := range NumResources {
		k := ks[r]
		if k >= 0 && t.defined[k] && d[r] > 0 && t.usage[k]+d[r] > t.nominal[k] {
			return true
		}
	}
	return false
}

// Add records that the team uses d more of the flavor.
func (q *Quotas) Add(team, flavor string, d Demand) { q.change(team, flavor, d, 1) }

// Remove records that the team uses d less of the flavor.
func (q *Quotas) Remove(team, flavor string, d Demand) { q.change(team, flavor, d, -1) }

func (q *Quotas) change(team, flavor string, d Demand, sign int64) {
	t, ok := q.teams[team]
	if !ok {
		return
	}
	ks, _, kok := q.keys(t, flavor)
	if !kok {
		return
	}
	for r := range NumResources {
		k := ks[r]
		if d[r] == 0 || k < 0 {
			continue
		}
		// Propagate the change of usage-in-parent up the tree.
		delta := sign * d[r]
		for x := t; x != nil && delta != 0; x = x.parent {
			before := max(0, x.usage[k]-x.guaranteed[k])
			x.usage[k] += delta
			after := max(0, x.usage[k]-x.guaranteed[k])
			delta = after - before
		}
	}
}

// Used is the team's usage of a resource of a flavor.
func (q *Quotas) Used(team, flavor string, r berth.Resource) int64 {
	t, ok := q.teams[team]
	if !ok {
		return 0
	}
	k, kok := q.key(t, flavor, ResourceIndex(r))
	if !ok || !kok {
		return 0
	}
	return t.usage[k]
}

// Nominal is the team's nominal quota of a resource of a flavor, and
// whether the quota defines it.
func (q *Quotas) Nominal(team, flavor string, r berth.Resource) (int64, bool) {
	t, ok := q.teams[team]
	if !ok {
		return 0, false
	}
	k, kok := q.key(t, flavor, ResourceIndex(r))
	if !ok || !kok {
		return 0, false
	}
	return t.nominal[k], t.defined[k]
}

// BorrowingLimit is the team's borrowing limit, or Unlimited.
func (q *Quotas) BorrowingLimit(team, flavor string, r berth.Resource) int64 {
	t, ok := q.teams[team]
	if !ok {
		return 0
	}
	k, kok := q.key(t, flavor, ResourceIndex(r))
	if !ok || !kok {
		return 0
	}
	if t.parent == nil {
		return 0
	}
	return t.borrow[k]
}

// Borrowed is how much of a resource the team uses above its nominal quota.
func (q *Quotas) Borrowed(team, flavor string, r berth.Resource) int64 {
	t, ok := q.teams[team]
	if !ok {
		return 0
	}
	k, kok := q.key(t, flavor, ResourceIndex(r))
	if !ok || !kok || !t.defined[k] {
		return 0
	}
	return max(0, t.usage[k]-t.nominal[k])
}

// InCohort reports whether the team belongs to a cohort (and so may borrow
// and lend).
func (q *Quotas) InCohort(team string) bool {
	t, ok := q.teams[team]
	return ok && t.parent != nil
}

// SameCohortTree reports whether two teams share a root cohort.
func (q *Quotas) SameCohortTree(a, b string) bool {
	x, ok1 := q.teams[a]
	y, ok2 := q.teams[b]
	if !ok1 || !ok2 || x.parent == nil || y.parent == nil {
		return false
	}
	return root(x) == root(y)
}

func root(x *qnode) *qnode {
	for x.parent != nil {
		x = x.parent
	}
	return x
}

// Share is the team's dominant resource share divided by its weight: over
// every flavor and resource it borrows, what it borrows as a share of what
// its root cohort could lend, in thousandths. A team within its nominal
// quota everywhere has share 0.
func (q *Quotas) Share(team string) int64 {
	t, ok := q.teams[team]
	if !ok || t.parent == nil {
		return 0
	}
	r := root(t)
	var best int64
	for k := range t.usage {
		if !t.defined[k] {
			continue
		}
		borrowed := t.usage[k] - t.nominal[k]
		if borrowed <= 0 || r.subtree[k] == 0 {
			continue
		}
		s := borrowed * 1000 / r.subtree[k]
		best = max(best, s)
	}
	return int64(float64(best) / t.weight)
}

// ShareWith is Share as it would be with d more of the flavor.
func (q *Quotas) ShareWith(team, flavor string, d Demand, sign int64) int64 {
	q.change(team, flavor, d, sign)
	s := q.Share(team)
	q.change(team, flavor, d, -sign)
	return s
}

// The questions below are those Kueue's flavor assigner and preemptor ask
// of the quota tree (pkg/cache/resource_node.go and
// pkg/scheduler/preemption/classical at v0.12.10); resources a team's quota
// does not define are not limited, so they never borrow and never need
// preemption.

// Short reports which resources of the demand do not fit the team's
// unused quota (with borrowing) of the flavor now.
func (q *Quotas) Short(team, flavor string, d Demand) [NumResources]bool {
	var short [NumResources]bool
	t, ok := q.teams[team]
	var ks [NumResources]int
	listed, kok := false, false
	if ok {
		ks, listed, kok = q.keys(t, flavor)
	}
	if !kok || !listed {
		for r := range short {
			short[r] = d[r] > 0
		}
		return short
	}
	for r := range NumResources {
		k := ks[r]
		if d[r] > 0 && k >= 0 && t.defined[k] && d[r] > available(t, k) {
			short[r] = true
		}
	}
	return short
}

// WithinNominalAlone reports whether the demand alone, on an idle team, is
// within the team's nominal quota of resource r: Kueue lets a workload that
// would borrow preempt when it is (inside its team, or by reclaiming).
func (q *Quotas) WithinNominalAlone(team, flavor string, r int, d Demand) bool {
	t, ok := q.teams[team]
	if !ok {
		return true
	}
	k, kok := q.key(t, flavor, r)
	if !kok || !t.defined[k] {
		return true
	}
	return d[r] <= t.nominal[k]
}

// BorrowLevel is how far up the cohort tree the team must borrow to take
// the demand: 0 when it fits within its own quota (or it has no cohort),
// else the height of the lowest cohort whose subtree holds it, or of the
// root when none does (Kueue's FindHeightOfLowestSubtreeThatFits; the most
// over the resources). mayReclaim is, per resource, whether a cohort below
// the root holds it, so that reclaiming inside that subtree could make
// room.
func (q *Quotas) BorrowLevel(team, flavor string, d Demand) (level int, mayReclaim [NumResources]bool) {
	t, ok := q.teams[team]
	if !ok {
		return 0, mayReclaim
	}
	ks, _, kok := q.keys(t, flavor)
	if !kok {
		return 0, mayReclaim
	}
	for r := range NumResources {
		k := ks[r]
		if d[r] == 0 || k < 0 || !t.defined[k] {
			continue
		}
		l, m := lowestSubtreeThatFits(t, k, d[r])
		level = max(level, l)
		mayReclaim[r] = m
	}
	return level, mayReclaim
}

func lowestSubtreeThatFits(t *qnode, k int, val int64) (int, bool) {
	if !borrowingWith(t, k, val) || t.parent == nil {
		return 0, t.parent != nil
	}
	remaining := val - localAvailable(t, k)
	for x := t.parent; x != nil; x = x.parent {
		if !borrowingWith(x, k, remaining) {
			return x.height, x.parent != nil
		}
		remaining -= localAvailable(x, k)
	}
	return root(t).height, false
}

// borrowingWith reports whether the node would use more than its subtree
// quota with val more.
func borrowingWith(x *qnode, k int, val int64) bool { return x.usage[k]+val > x.subtree[k] }

func localAvailable(x *qnode, k int) int64 { return max(0, x.guaranteed[k]-x.usage[k]) }

// Advantage says, for each cohort above the team (index 0 its own cohort,
// then up to the root), whether a workload of the team demanding d has
// hierarchical advantage over the runs of teams that meet it there: the
// demand fits in the subtree quota of the team or of a cohort on the path
// below (Kueue's collectCandidatesForHierarchicalReclaim). A run it has
// advantage over may be reclaimed whatever its priority.
func (q *Quotas) Advantage(team, flavor string, d Demand) []bool {
	t, ok := q.teams[team]
	if !ok || t.parent == nil {
		return nil
	}
	ks, _, kok := q.keys(t, flavor)
	if !kok {
		return nil
	}
	var out []bool
	remaining := d
	adv, rem := fitsInQuota(t, ks, remaining)
	remaining = rem
	for x := t.parent; x != nil; x = x.parent {
		out = append(out, adv)
		fits, rem := fitsInQuota(x, ks, remaining)
		remaining = rem
		adv = adv || fits
	}
	return out
}

// fitsInQuota is Kueue's QuantitiesFitInQuota: whether the demand fits the
// node's subtree quota on top of its usage, and what is left of it once the
// node's unused guaranteed part is taken.
func fitsInQuota(x *qnode, ks [NumResources]int, d Demand) (bool, Demand) {
	fits := true
	var rem Demand
	for r := range NumResources {
		k := ks[r]
		if d[r] == 0 || k < 0 || (x.team && !x.defined[k]) {
			continue
		}
		if x.usage[k]+d[r] > x.subtree[k] {
			fits = false
		}
		rem[r] = max(0, d[r]-localAvailable(x, k))
	}
	return fits, rem
}

// LCA is where two teams meet in the cohort tree: the index of that cohort
// among a's cohorts (0: a's own cohort), or -1 when they share none.
func (q *Quotas) LCA(a, b string) int {
	x, ok1 := q.teams[a]
	y, ok2 := q.teams[b]
	if !ok1 || !ok2 {
		return -1
	}
	i := 0
	for c := x.parent; c != nil; c = c.parent {
		for z := y.parent; z != nil; z = z.parent {
			if z == c {
				return i
			}
		}
		i++
	}
	return -1
}

// Reclaimable reports whether a run of team cand still uses quota that a
// workload of team by may take back on the flavor: cand, and every cohort
// between it and where the two meet, is above its subtree quota in one of
// the resources res (Kueue's candidateIsValid).
func (q *Quotas) Reclaimable(cand, by, flavor string, res [NumResources]bool) bool {
	c, ok1 := q.teams[cand]
	b, ok2 := q.teams[by]
	if !ok1 || !ok2 {
		return false
	}
	// The resources are those of the preemptor's flavors.
	ks, _, kok := q.keys(b, flavor)
	if !kok {
		return false
	}
	if withinNominal(c, ks, res) {
		return false
	}
	lca := map[*qnode]bool{}
	for x := b.parent; x != nil; x = x.parent {
		lca[x] = true
	}
	for x := c.parent; x != nil && !lca[x]; x = x.parent {
		if withinNominal(x, ks, res) {
			return false
		}
	}
	return true
}

// withinNominal is Kueue's IsWithinNominalInResources.
func withinNominal(x *qnode, ks [NumResources]int, res [NumResources]bool) bool {
	for r := range NumResources {
		k := ks[r]
		if res[r] && k >= 0 && (!x.team || x.defined[k]) && x.usage[k] > x.subtree[k] {
			return false
		}
	}
	return true
}

// UnderNominal reports whether the team uses less than its nominal quota
// of each of the resources res of the flavor (Kueue's
// queueUnderNominalInResourcesNeedingPreemption).
func (q *Quotas) UnderNominal(team, flavor string, res [NumResources]bool) bool {
	t, ok := q.teams[team]
	if !ok {
		return false
	}
	ks, _, kok := q.keys(t, flavor)
	if !kok {
		return false
	}
	for r := range NumResources {
		k := ks[r]
		if res[r] && k >= 0 && t.defined[k] && t.usage[k] >= t.nominal[k] {
			return false
		}
	}
	return true
}
