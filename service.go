package berth

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Port is a port a service listens on.
type Port struct {
	Name     string `json:"name,omitempty"`
	Port     int    `json:"port"`
	Protocol string `json:"protocol"`
}

// PortRef names one of a workload's ports by name ("http") or by number
// (8080). The zero value names none: the workload's first port.
type PortRef struct {
	Name   string
	Number int
}

// IsZero reports whether r names no port.
func (r PortRef) IsZero() bool { return r.Name == "" && r.Number == 0 }

func (r PortRef) String() string {
	if r.Name != "" {
		return r.Name
	}
	return strconv.Itoa(r.Number)
}

// MarshalJSON writes the name, or the number.
func (r PortRef) MarshalJSON() ([]byte, error) {
	if r.Name != "" {
		return json.Marshal(r.Name)
	}
	return json.Marshal(r.Number)
}

// UnmarshalJSON reads a name or a number.
func (r *PortRef) UnmarshalJSON(b []byte) error {
	if strings.HasPrefix(string(b), `"`) {
		*r = PortRef{}
		return json.Unmarshal(b, &r.Name)
	}
	*r = PortRef{}
	return json.Unmarshal(b, &r.Number)
}

// Port resolves ref among the workload's ports: by name, by number, or,
// for the zero ref, the first port. ok is false when there is no such
// port.
func (w Workload) Port(ref PortRef) (Port, bool) {
	for _, p := range w.Ports {
		switch {
		case ref.IsZero(), ref.Name != "" && p.Name == ref.Name, ref.Number != 0 && p.Port == ref.Number:
			return p, true
		}
	}
	return Port{}, false
}

// Health is how berth tells whether a replica works.
type Health struct {
	// Readiness gates traffic and rollouts; nil: a replica is ready once
	// started.
	Readiness *Probe `json:"readiness,omitempty"`
	// Liveness restarts a replica that fails it; nil: only an exit does.
	Liveness *Probe `json:"liveness,omitempty"`
}

// ProbeKind is what a probe does.
type ProbeKind string

const (
	ProbeHTTP    ProbeKind = "http"
	ProbeTCP     ProbeKind = "tcp"
	ProbeCommand ProbeKind = "command"
)

// Probe is one check of a replica: an HTTP GET of Path, a TCP connection
// (no Path, no Command), or a Command.
type Probe struct {
	Path    string   `json:"path,omitempty"`
	Port    PortRef  `json:"port,omitzero"`
	Command []string `json:"command,omitempty"`
	Period  Duration `json:"period"`
	Timeout Duration `json:"timeout"`
	// FailureThreshold failures in a row make a replica unready or get it
	// restarted.
	FailureThreshold int `json:"failureThreshold"`
	// StartupGrace is how long after a start failures do not count.
	StartupGrace Duration `json:"startupGrace,omitempty"`
}

// Kind is what the probe does.
func (p Probe) Kind() ProbeKind {
	switch {
	case len(p.Command) > 0:
		return ProbeCommand
	case p.Path != "":
		return ProbeHTTP
	}
	return ProbeTCP
}

// Rollout is how a change of a running service replaces its replicas.
type Rollout struct {
	MaxSurge       int `json:"maxSurge"`
	MaxUnavailable int `json:"maxUnavailable"`
}

// DefaultRollout is a surge of one that never drops below the ready count
// asked for: what a service gets when its rollout is not set.
var DefaultRollout = Rollout{MaxSurge: 1}

// RolloutOrDefault is the workload's rollout, or DefaultRollout.
func (w Workload) RolloutOrDefault() Rollout {
	if w.Rollout != nil {
		return *w.Rollout
	}
	return DefaultRollout
}

// Expose is how people reach a service.
type Expose struct {
	// Host is a host name on the cluster's ingress (kubernetes).
	Host string `json:"host,omitempty"`
	// HostPort is a port on the machine where berth's proxy listens
	// (local).
	HostPort int `json:"hostPort,omitempty"`
	// Port is the workload's port requests go to (zero: its first).
	Port PortRef `json:"port,omitzero"`
}

// Autoscale lets berth change the replica count between Min and Max.
type Autoscale struct {
	Min                  int      `json:"min"`
	Max                  int      `json:"max"`
	TargetRPS            float64  `json:"targetRPS,omitempty"`
	TargetGPUUtilization int      `json:"targetGPUUtilization,omitempty"`
	ScaleDownWindow      Duration `json:"scaleDownWindow"`
}

// Ingress is how a kubernetes cluster's services are reached from
// outside.
type Ingress struct {
	// ClassName is the IngressClass (empty: the cluster's default).
	ClassName string `json:"className,omitempty"`
	// Gateway is a Gateway API gateway, "namespace/name": HTTPRoutes
	// instead of Ingresses.
	Gateway string `json:"gateway,omitempty"`
	// TLS serves every exposed host over HTTPS: an Ingress's tls; with a
	// gateway, which terminates TLS on its own listeners, only that its
	// URLs are https. nil: plain HTTP.
	TLS *IngressTLS `json:"tls,omitempty"`
	// Annotations are put on every Ingress (an ingress controller's
	// settings, cert-manager's issuer).
	Annotations map[string]string `json:"annotations,omitempty"`
}

// IngressTLS is where an Ingress's certificate comes from.
type IngressTLS struct {
	// SecretName is the Secret, in each team's namespace, holding the
	// certificate of every host (a wildcard certificate); empty: one
	// Secret per service, "<name>-tls", as cert-manager fills it in when
	// the annotations name an issuer.
	SecretName string `json:"secretName,omitempty"`
}

// Scheme is "https" when the ingress serves TLS, else "http".
func (i Ingress) Scheme() string {
	if i.TLS != nil {
		return "https"
	}
	return "http"
}

// PortEnv is the environment variable that tells a replica the port it
// listens on for the workload's port p: BERTH_PORT_<NAME> (HTTP ->
// BERTH_PORT_HTTP), or BERTH_PORT_<NUMBER> for an unnamed port.
func PortEnv(p Port) string {
	if p.Name == "" {
		return fmt.Sprintf("BERTH_PORT_%d", p.Port)
	}
	return "BERTH_PORT_" + strings.ToUpper(strings.ReplaceAll(p.Name, "-", "_"))
}

// NotebookPort is the port a notebook that declares none listens on:
// Jupyter's.
var NotebookPort = Port{Name: "http", Port: 8888, Protocol: "TCP"}

// ServedPorts are the ports the workload listens on: its ports, or, for a
// notebook that declares none, NotebookPort.
func (w Workload) ServedPorts() []Port {
	if len(w.Ports) == 0 && w.Kind == KindNotebook {
		return []Port{NotebookPort}
	}
	return w.Ports
}

// A replica of an autoscaled service above its autoscale minimum is a run
// of its own, admitted within the team's quota like any other: the
// service's run id and the replica's number, "1.replica-3". The service's
// run holds the minimum.
const scaleSep = ".replica-"

// ScaleRunID is the run of replica n (counted from 1; above the minimum) of
// the service run runID.
func ScaleRunID(runID string, n int) string { return runID + scaleSep + strconv.Itoa(n) }

// ParseScaleRunID splits a replica's run into the service's run and the
// replica's number; ok is false for a run that is not a replica's.
func ParseScaleRunID(runID string) (service string, n int, ok bool) {
	i := strings.LastIndex(runID, scaleSep)
	if i < 0 {
		return "", 0, false
	}
	n, err := strconv.Atoi(runID[i+len(scaleSep):])
	if err != nil || n < 1 {
		return "", 0, false
	}
	return runID[:i], n, true
}

// Replicas bounds the replicas an autoscaler asks for (want) to the
// autoscale's min and max.
func (a Autoscale) Replicas(want int) int { return min(max(want, a.Min, 1), max(a.Max, a.Min, 1)) }
