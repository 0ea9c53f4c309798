// Package dash renders berth serve's web dashboard: the workloads page,
// one workload's page and the queues page, as HTML from values.
//
// It is pure: the caller gathers what /api/status computes (the same
// statuses, runs and plans), the time and a log tail it read, and passes
// them in; dash reads no clock, file or network, so the same values give
// the same bytes. It decides nothing (the scheduler did) and serves
// nothing (cmd/berth mounts the pages and the embedded assets).
package dash

import (
	"cmp"
	"embed"
	"io/fs"
	"slices"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile"
	"github.com/berth-gpu/berth/reconcile/history"
	"github.com/berth-gpu/berth/status"
)

// Data is what every page is drawn from: what /api/status computes, and
// what the configuration in force says about teams and workloads.
type Data struct {
	// Revision is the newest revision; Applied the one in force (they
	// differ while the newest is invalid).
	Revision string
	Applied  string
	// Commit is the applied revision's commit hash ("" for a directory).
	Commit string
	// RepoURL is the repository's web address (https://github.com/o/r);
	// with it, commits and source files are links.
	RepoURL string
	// Error is the last reconcile's error, if any; Invalid the newest
	// revision's errors.
	Error   string
	Invalid []string
	// Now is the time the page is drawn at: ages and runtimes count to it.
	Now      time.Time
	Clusters []Cluster
	// Config is the configuration in force (nil before one is loaded):
	// teams' cohorts, and where each workload is defined. It is read, never
	// changed.
	Config *berth.Config

	// From the history, read by the caller: Usage is the GPU time billed
	// this month (UTC), per day, team, cluster and flavor; Series each
	// GPU's readings per minute over the last two hours.
	Usage  []history.Usage
	Series map[DeviceKey][]history.Point
	// Devices are this machine's GPUs as NVML reads them now.
	Devices []Device
	// Origins are the commit and pull request each run of each cluster
	// came from (the revision in force when it was first seen).
	Origins map[string]map[berth.RunKey]history.Origin
}

// Device is one GPU of a machine berth runs, as NVML reports it.
type Device struct {
	Cluster, Node string
	Index         int
	Name, UUID    string
	MemoryMiB     uint64
	// Utilization and MemoryUtilization are percent (-1: NVML gives none,
	// as in MIG mode).
	Utilization, MemoryUtilization int
	// PowerMilliwatts and PowerLimitMilliwatts are the board's draw and
	// enforced limit, TemperatureC its temperature (the whole GPU's in MIG
	// mode; -1: NVML gives none).
	PowerMilliwatts, PowerLimitMilliwatts, TemperatureC int
	MIGEnabled                                          bool
	MIG                                                 []string // the MIG devices' profiles
}

// cohort is the team's cohort, "" for none.
func (d Data) cohort(team string) string {
	if d.Config == nil {
		return ""
	}
	return d.Config.Teams[team].Cohort
}

// pos is where the workload is defined, if known.
func (d Data) pos(id berth.WorkloadID) berth.Pos {
	if d.Config == nil {
		return berth.Pos{}
	}
	return d.Config.Workloads[id].Pos
}

// Cluster is one cluster as /api/status reports it.
type Cluster struct {
	Name  string
	Error string
	// Nodes are the cluster's nodes as last observed, and Running the
	// runs that hold capacity on them (the snapshot's).
	Nodes     []berth.Node
	Running   []berth.RunningWorkload
	Workloads []status.WorkloadStatus
	Runs      []reconcile.RunState
	Plan      *berth.Plan
}

// LogTail is the end of a run's output on one machine, read by the caller.
type LogTail struct {
	// Source names what was read ("run 3 attempt 1 pod 0, stdout").
	Source string
	Lines  []string
	// Truncated is true when earlier output was left out.
	Truncated bool
	// Missing says why there is no tail (a Kubernetes cluster, no run yet).
	Missing string
}

//go:embed assets
var assets embed.FS

// Assets are the files the pages link under /assets/ (the stylesheet).
func Assets() fs.FS {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the directory is embedded: it exists
	}
	return sub
}

// sortedClusters are the clusters in name order (the API's order already;
// sorted again so that a caller's order does not matter).
func sortedClusters(cs []Cluster) []Cluster {
	return slices.SortedStableFunc(slices.Values(cs), func(a, b Cluster) int { return cmp.Compare(a.Name, b.Name) })
}
