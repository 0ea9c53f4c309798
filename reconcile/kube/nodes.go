package kube

import (
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/berth-gpu/berth"
)

// NodeFromKube is the scheduler's view of a node: its allocatable cpu and
// memory, its GPUs and MIG slices from the device plugin's resources, the
// GPU model from nvidia.com/gpu.product, and whether berth's pods may land
// on it (Ready, not cordoned, no taint they do not tolerate).
//
// GPUs are numbered whole GPUs first (allocatable nvidia.com/gpu), then the
// GPUs carved into MIG slices: each MIG resource (nvidia.com/mig-<profile>)
// fills as many GPUs as its count needs at the profile's slices per GPU. A
// node that offers only the fractional resource has that many shares over
// shares-per-GPU GPUs. The indices are berth's bookkeeping; the device
// plugin chooses the physical GPU.
func NodeFromKube(n *corev1.Node, o RenderOptions) berth.Node {
	o = o.withDefaults()
	alloc := n.Status.Allocatable
	out := berth.Node{
		Name:          n.Name,
		Labels:        map[string]string{},
		Ready:         nodeReady(n),
		NotReadySince: notReadySince(n),
		Unschedulable: n.Spec.Unschedulable || !tolerated(n.Spec.Taints, o),
		CPU:           berthQuantity(alloc[corev1.ResourceCPU]),
		Memory:        berthQuantity(alloc[corev1.ResourceMemory]),
		GPUModel:      n.Labels[LabelGPUProduct],
		MIG:           []berth.MIGSlices{},
	}
	for k, v := range n.Labels {
		out.Labels[k] = v
	}
	whole := quantityInt(alloc[ResourceGPU])
	if whole == 0 {
		if shares := quantityInt(alloc[corev1.ResourceName(o.FractionalResource)]); shares > 0 {
			whole = shares / o.SharesPerGPU
		}
	}
	gpus := whole
	var profiles []string
	for name := range alloc {
		if p, ok := strings.CutPrefix(string(name), ResourceMIGPrefix); ok && berth.MIGSlicesPerGPU(p) > 0 {
			profiles = append(profiles, p)
		}
	}
	slices.Sort(profiles)
	for _, p := range profiles {
		left := quantityInt(alloc[corev1.ResourceName(ResourceMIGPrefix+p)])
		per := berth.MIGSlicesPerGPU(p)
		for left > 0 {
			n := min(per, left)
			out.MIG = append(out.MIG, berth.MIGSlices{GPU: gpus, Profile: p, Count: n})
			gpus++
			left -= n
		}
	}
	out.GPUs = gpus
	return out
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// notReadySince is when a node that is not ready stopped being so: its
// Ready condition's last transition (zero when it is ready, or has no
// Ready condition yet: a node not known to have been lost).
func notReadySince(n *corev1.Node) time.Time {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady && c.Status != corev1.ConditionTrue {
			return c.LastTransitionTime.Time.UTC()
		}
	}
	return time.Time{}
}

// tolerated reports whether berth's pods may be scheduled despite the
// node's taints: they tolerate only the GPU taint.
func tolerated(taints []corev1.Taint, o RenderOptions) bool {
	for _, t := range taints {
		if t.Effect != corev1.TaintEffectNoSchedule && t.Effect != corev1.TaintEffectNoExecute {
			continue
		}
		if o.GPUToleration && t.Key == ResourceGPU && t.Effect == corev1.TaintEffectNoSchedule {
			continue
		}
		return false
	}
	return true
}

func quantityInt(q resource.Quantity) int {
	return int(q.Value())
}

func berthQuantity(q resource.Quantity) berth.Quantity {
	if q.IsZero() {
		return berth.MustQuantity("0")
	}
	if b, err := berth.ParseQuantity(q.String()); err == nil {
		return b
	}
	return berth.MilliQuantity(q.MilliValue())
}

// parseInt is strconv.Atoi with 0 for anything that is not a number.
func parseInt(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0
	}
	return n
}
