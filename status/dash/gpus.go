package dash

import (
	"cmp"
	"fmt"
	"html/template"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile/history"
)

// holder is a run that holds (part of) a GPU.
type holder struct {
	Run   link
	Share string // "whole", "0.5 of it", "2 x MIG 1g.10gb"
	share string // one pod's
	n     int    // how many pods hold it so
}

type gpuRow struct {
	Index   int
	Model   string
	MIG     string
	Holders []holder
	Free    bool
	// NVML's figures now, where this machine reads them.
	Util, MemUtil, Memory, Power, Temperature string
}

type nodeView struct {
	Name    string
	Model   string
	State   string
	GPUs    []gpuRow
	Used    string // "3 of 4 GPUs given to runs"
	Chart   template.HTML
	HasPlot bool
}

type gpuCluster struct {
	Name  string
	Nodes []nodeView
	// More says how many nodes are left out (MaxNodes).
	More int
}

type gpusView struct {
	page
	Clusters []gpuCluster
}

// MaxNodes is how many nodes of a cluster the GPUs page draws.
const MaxNodes = 200

// GPUs writes the GPUs page: per cluster and node, each GPU (and MIG
// slice, and share) with the runs that hold it, NVML's figures on this
// machine (utilisation, memory, power draw and temperature), and the node's allocation and utilisation over the readings
// kept (two hours, per minute) as a plot.
func GPUs(w io.Writer, d Data) error {
	v := gpusView{page: newPage(d, "gpus", "GPUs")}
	live := map[DeviceKey]Device{}
	for _, dv := range d.Devices {
		live[DeviceKey{dv.Cluster, history.Device(dv.Node, dv.Index)}] = dv
	}
	for _, c := range sortedClusters(d.Clusters) {
		gc := gpuCluster{Name: c.Name}
		holders := gpuHolders(c.Running)
		nodes := slices.SortedFunc(slices.Values(c.Nodes), func(a, b berth.Node) int { return cmp.Compare(a.Name, b.Name) })
		if len(nodes) > MaxNodes {
			gc.More, nodes = len(nodes)-MaxNodes, nodes[:MaxNodes]
		}
		for _, n := range nodes {
			nv := nodeView{Name: n.Name, Model: n.GPUModel, State: nodeState(n)}
			used := 0
			for i := range n.GPUs {
				row := gpuRow{Index: i, Model: n.GPUModel, Holders: holders[gpuAt{n.Name, i}]}
				for _, m := range n.MIG {
					if m.GPU == i {
						row.MIG = fmt.Sprintf("%d x %s", m.Count, m.Profile)
					}
				}
				row.Free = len(row.Holders) == 0
				if !row.Free {
					used++
				}
				if dv, ok := live[DeviceKey{c.Name, history.Device(n.Name, i)}]; ok {
					row.readings(dv)
				} else {
					row.Util, row.MemUtil, row.Memory, row.Power, row.Temperature = "-", "-", "-", "-", "-"
				}
				nv.GPUs = append(nv.GPUs, row)
			}
			nv.Used = fmt.Sprintf("%d of %d GPUs given to runs", used, n.GPUs)
			nv.Chart, nv.HasPlot = nodeChart(d, c.Name, n)
			gc.Nodes = append(gc.Nodes, nv)
		}
		v.Clusters = append(v.Clusters, gc)
	}
	return render(w, "gpus", v)
}

// readings fills a row with NVML's figures for its GPU ("-" for those
// NVML does not give).
func (row *gpuRow) readings(dv Device) {
	row.Model = dv.Name
	row.Util, row.MemUtil = percent(dv.Utilization), percent(dv.MemoryUtilization)
	row.Memory = strconv.FormatUint(dv.MemoryMiB/1024, 10) + " GiB"
	row.Power = "-"
	if dv.PowerMilliwatts >= 0 {
		row.Power = strconv.Itoa((dv.PowerMilliwatts+500)/1000) + " W"
		if dv.PowerLimitMilliwatts > 0 {
			row.Power += " of " + strconv.Itoa((dv.PowerLimitMilliwatts+500)/1000)
		}
	}
	row.Temperature = "-"
	if dv.TemperatureC >= 0 {
		row.Temperature = strconv.Itoa(dv.TemperatureC) + " °C"
	}
	if dv.MIGEnabled {
		row.MIG = "MIG on: " + strings.Join(dv.MIG, ", ")
	}
}

// percent is a percentage NVML gave, "-" where it gave none (-1).
func percent(v int) string {
	if v < 0 {
		return "-"
	}
	return strconv.Itoa(v) + "%"
}

type gpuAt struct {
	node string
	gpu  int
}

// gpuHolders are the runs that hold each GPU, by node and index, in run
// order.
func gpuHolders(running []berth.RunningWorkload) map[gpuAt][]holder {
	out := map[gpuAt][]holder{}
	rs := slices.SortedFunc(slices.Values(running), func(a, b berth.RunningWorkload) int { return a.Key().Compare(b.Key()) })
	for _, r := range rs {
		l := link{Text: r.Key().String(), URL: "/workloads/" + string(r.Workload) + "?run=" + r.RunID}
		places := slices.Clone(r.Placements)
		for _, role := range r.Roles {
			places = append(places, role.Placements...)
		}
		for _, p := range places {
			for _, g := range p.GPUs {
				share := "whole"
				if p.GPUFraction > 0 {
					share = strconv.FormatFloat(p.GPUFraction, 'f', -1, 64) + " of it"
				}
				out[gpuAt{p.Node, g}] = addHolder(out[gpuAt{p.Node, g}], l, share)
			}
			for _, m := range p.MIG {
				out[gpuAt{p.Node, m.GPU}] = addHolder(out[gpuAt{p.Node, m.GPU}], l, "MIG "+m.Profile)
			}
		}
	}
	return out
}

// addHolder adds a run's share of a GPU, counting a share its pods hold
// more than once ("2 x 0.5 of it").
func addHolder(hs []holder, run link, share string) []holder {
	for i := range hs {
		if hs[i].Run == run && hs[i].share == share {
			hs[i].n++
			hs[i].Share = strconv.Itoa(hs[i].n) + " x " + share
			return hs
		}
	}
	return append(hs, holder{Run: run, Share: share, share: share, n: 1})
}

func nodeState(n berth.Node) string {
	switch {
	case !n.Ready:
		return "not ready"
	case n.Unschedulable:
		return "cordoned"
	}
	return "ready"
}

// nodeChart plots a node's GPUs' mean utilisation and allocation per
// minute of the readings kept, or false when there are none.
func nodeChart(d Data, cluster string, n berth.Node) (template.HTML, bool) {
	type acc struct{ util, utilN, alloc, allocN float64 }
	perMinute := map[time.Time]*acc{}
	for i := range n.GPUs {
		for _, p := range d.Series[DeviceKey{cluster, history.Device(n.Name, i)}] {
			a := perMinute[p.Time]
			if a == nil {
				a = &acc{}
				perMinute[p.Time] = a
			}
			if p.Utilization >= 0 {
				a.util += p.Utilization
				a.utilN++
			}
			a.alloc += p.Allocated / 10 // thousandths -> percent
			a.allocN++
		}
	}
	if len(perMinute) == 0 {
		return "", false
	}
	times := slices.SortedFunc(func(yield func(time.Time) bool) {
		for t := range perMinute {
			if !yield(t) {
				return
			}
		}
	}, time.Time.Compare)
	util := series{Name: "GPU utilisation, mean of the node's GPUs (%)", Class: "util"}
	alloc := series{Name: "allocated to runs (% of the node's GPUs)", Class: "alloc"}
	for _, t := range times {
		a := perMinute[t]
		u := math.NaN()
		if a.utilN > 0 {
			u = a.util / a.utilN
		}
		util.Values = append(util.Values, u)
		alloc.Values = append(alloc.Values, a.alloc/math.Max(a.allocN, 1))
	}
	first, last := times[0].Format("15:04"), times[len(times)-1].Format("15:04 MST")
	return lineChart("plot-"+cluster+"-"+n.Name, []series{alloc, util}, first, last,
		fmt.Sprintf("node %s: allocation and utilisation from %s to %s", n.Name, first, last)), true
}
