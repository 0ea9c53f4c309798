package cue

import (
	"fmt"

	cuelang "cuelang.org/go/cue"

	"github.com/berth-gpu/berth"
	"github.com/berth-gpu/berth/reconcile/schedule"
)

// servicePos records where a workload's ports, probes, expose and
// autoscale fields are written, which the service checks point at.
func (ev *evaluator) servicePos(obj *object, o cuelang.Value, p []string, w berth.Workload) {
	ev.refPos(obj, o, p, "ports", "health", "health.readiness", "health.readiness.path", "health.readiness.port",
		"health.liveness", "health.liveness.path", "health.liveness.port", "rollout", "rollout.maxSurge",
		"expose", "expose.host", "expose.hostPort", "expose.port", "autoscale", "autoscale.min", "autoscale.max",
		"autoscale.targetRPS", "autoscale.targetGPUUtilization", "idle")
	ev.listPos(obj, o, p, "ports", len(w.Ports), "name")
	ev.listPos(obj, o, p, "ports", len(w.Ports), "port")
}

// service checks what the schema cannot see of one workload's ports,
// health checks, rollout, expose and autoscale: references to its own
// ports, duplicates, bounds between fields and what its cluster offers.
func (c *checker) service(p string, w berth.Workload) {
	// A notebook that declares no port has Jupyter's: its probes and
	// expose refer to that.
	declared := len(w.Ports)
	w.Ports = w.ServedPorts()
	names, numbers := map[string]int{}, map[string]int{}
	for i, port := range w.Ports[:declared] {
		if port.Name != "" {
			if j, dup := names[port.Name]; dup {
				c.errorf(fmt.Sprintf("%s.ports.%d.name", p, i), "port name %s is used twice (ports %d and %d): name each port once", port.Name, j, i)
			}
			names[port.Name] = i
		}
		key := fmt.Sprintf("%d/%s", port.Port, port.Protocol)
		if j, dup := numbers[key]; dup {
			c.errorf(fmt.Sprintf("%s.ports.%d.port", p, i), "port %d/%s is used twice (ports %d and %d)", port.Port, port.Protocol, j, i)
		}
		numbers[key] = i
	}
	if h := w.Health; h != nil {
		c.probe(p+".health.readiness", w, h.Readiness)
		c.probe(p+".health.liveness", w, h.Liveness)
	}
	if r := w.Rollout; r != nil && r.MaxSurge == 0 && r.MaxUnavailable == 0 {
		c.errorf(p+".rollout.maxSurge", "maxSurge and maxUnavailable are both 0: a rollout could neither start a new replica nor stop an old one; set maxSurge: 1")
	}
	if a := w.Autoscale; a != nil {
		c.autoscale(p, w, *a)
	}
	if e := w.Expose; e != nil {
		c.expose(p+".expose", w, *e)
	}
}

// autoscale checks an autoscale's bounds and target, and that replicas,
// which it replaces, is not also written with another count than min.
func (c *checker) autoscale(p string, w berth.Workload, a berth.Autoscale) {
	if a.Min > a.Max {
		c.errorf(p+".autoscale.min", "autoscale min %d is more than max %d", a.Min, a.Max)
	}
	switch {
	case a.TargetRPS == 0 && a.TargetGPUUtilization == 0:
		c.errorf(p+".autoscale", "autoscale needs a target: targetRPS (requests per second per replica) or targetGPUUtilization")
	case a.TargetRPS != 0 && a.TargetGPUUtilization != 0:
		c.errorf(p+".autoscale.targetGPUUtilization", "autoscale has two targets, targetRPS %g and targetGPUUtilization %d: the autoscaler follows one; keep one of them", a.TargetRPS, a.TargetGPUUtilization)
	}
	if w.Replicas != a.Min && c.written(p+".replicas") {
		c.errorf(p+".replicas", "replicas %d with autoscale: the autoscaler sets the replicas, from min %d up to max %d; drop replicas (autoscale.min is the count it starts with)", w.Replicas, a.Min, a.Max)
	}
}

// written reports whether the user wrote the field at path (a default has
// no position of its own).
func (c *checker) written(path string) bool {
	if _, ok := c.cfg.Positions[path]; ok {
		return true
	}
	if c.cfg.Fields != nil {
		_, ok := c.cfg.Fields.Lookup(path)
		return ok
	}
	return false
}

// probe checks one health probe's port against the workload's ports.
func (c *checker) probe(p string, w berth.Workload, pr *berth.Probe) {
	if pr == nil || pr.Kind() == berth.ProbeCommand {
		return
	}
	if _, ok := w.Port(pr.Port); ok {
		return
	}
	what, at := "a TCP check", p
	if pr.Kind() == berth.ProbeHTTP {
		what, at = "health path "+pr.Path, p+".path"
	}
	if pr.Port.IsZero() {
		c.errorf(at, "%s has no port: the workload declares no ports; add ports: [{name: \"http\", port: 8080}] or set port", what)
		return
	}
	c.errorf(p+".port", "%s checks port %s, which the workload does not declare (%s)", what, pr.Port, portList(w.Ports))
}

// expose checks that the workload's cluster can expose it the way asked.
func (c *checker) expose(p string, w berth.Workload, e berth.Expose) {
	if _, ok := w.Port(e.Port); !ok {
		if e.Port.IsZero() {
			c.errorf(p, "expose has no port to send requests to: the workload declares no ports")
		} else {
			c.errorf(p+".port", "expose sends requests to port %s, which the workload does not declare (%s)", e.Port, portList(w.Ports))
		}
	}
	if e.Host == "" && e.HostPort == 0 {
		c.errorf(p, "expose needs host (a name on a kubernetes cluster's ingress) or hostPort (a port on a local cluster's machine)")
	}
	if c.partial {
		return
	}
	name := schedule.ClusterOf(c.cfg, w)
	cl, ok := c.cfg.Clusters[name]
	if !ok {
		return
	}
	switch {
	case e.Host != "" && cl.Backend == berth.BackendLocal:
		c.errorf(p+".host", "expose.host %s: cluster %s (backend local) has no ingress; on one machine use expose.hostPort", e.Host, name)
	case e.Host != "" && cl.Ingress == nil:
		c.errorf(p+".host", "expose.host %s: cluster %s has no ingress configured; set clusters.%s.ingress (className, or gateway) or drop host", e.Host, name, name)
	case e.HostPort != 0 && cl.Backend != berth.BackendLocal:
		c.errorf(p+".hostPort", "expose.hostPort %d: cluster %s (backend %s) is reached through its ingress; use expose.host", e.HostPort, name, cl.Backend)
	}
}

func portList(ports []berth.Port) string {
	if len(ports) == 0 {
		return "it declares none"
	}
	out := "declared:"
	for i, p := range ports {
		if i > 0 {
			out += ","
		}
		if p.Name != "" {
			out += fmt.Sprintf(" %s (%d)", p.Name, p.Port)
		} else {
			out += fmt.Sprintf(" %d", p.Port)
		}
	}
	return out
}

// notebook checks a notebook against what its cluster asks of notebooks.
func (c *checker) notebook(p string, w berth.Workload) {
	if w.Kind != berth.KindNotebook || w.Idle != 0 || c.partial {
		return
	}
	name := schedule.ClusterOf(c.cfg, w)
	if cl, ok := c.cfg.Clusters[name]; ok && cl.Notebooks != nil && cl.Notebooks.RequireIdle {
		c.errorf(p, "no idle limit: cluster %s requires one of every notebook (clusters.%s.notebooks.requireIdle), so that a forgotten notebook does not hold its GPUs; set idle, e.g. idle: \"2h\"", name, name)
	}
}
