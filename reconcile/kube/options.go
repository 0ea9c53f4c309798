package kube

import (
	"log/slog"
	"time"

	"k8s.io/client-go/rest"

	"github.com/berth-gpu/berth"
)

// Options configure a Cluster. Name and Config are required.
type Options struct {
	// Name is the cluster's name in the repository.
	Name string
	// Config reaches the API server (RESTConfig builds one from a
	// kubeconfig context or the pod's service account). QPS and Burst are
	// raised to at least 1000 and 2000: berth applies in parallel.
	Config *rest.Config
	// Render is the cluster's rendering settings (namespace prefix, the
	// fractional GPU resource); FromCluster derives them from the
	// repository's cluster.
	Render RenderOptions
	// Workers bounds how many objects are applied at once (default 16).
	Workers int
	// LeaderElection, when set, makes Apply act only while this replica
	// holds the Lease.
	LeaderElection *LeaderElection
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
	// SyncTimeout bounds the wait for the informers' first list (default
	// 2 minutes).
	SyncTimeout time.Duration
	// IdleCheckEvery is how often the notebooks with an idle limit are
	// checked (notebook_idle.go; default 1 minute; negative: never).
	IdleCheckEvery time.Duration
	// IdleCheckTimeout bounds one notebook's activity reading (default
	// 5 s).
	IdleCheckTimeout time.Duration
	// NotebookActivity reads a notebook's last activity (default:
	// Cluster.JupyterActivity, Jupyter's /api/status through the API
	// server's service proxy).
	NotebookActivity NotebookActivity
}

// RenderOptions are what rendering needs beyond the run: the cluster's
// settings and where the repository lives.
type RenderOptions struct {
	// NamespacePrefix + team is the team's namespace (schema default
	// "berth-").
	NamespacePrefix string
	// FractionalResource is the extended resource a share of a GPU is
	// requested as; a workload with gpuFraction f asks for
	// round(f x SharesPerGPU) of it.
	FractionalResource string
	SharesPerGPU       int
	// Repository is the repository berth reconciles, for annotations.
	Repository string
	// GPUToleration lets berth's GPU pods onto nodes tainted
	// nvidia.com/gpu:NoSchedule (the usual taint of GPU pools).
	GPUToleration bool
	// StorageClass is the class of the claims berth creates (empty: the
	// cluster's default class).
	StorageClass string
	// Ingress is the cluster's ingress: how an exposed host is reached
	// (nil: none). Apply takes it from the configuration it is handed.
	Ingress *berth.Ingress
	// Metrics are the metrics of the autoscale targets (zero:
	// berth.DefaultAutoscaleMetrics). Apply takes them from the
	// configuration it is handed.
	Metrics berth.AutoscaleMetrics
}

// FromCluster returns the render options of a repository's cluster, with
// the schema's defaults where it leaves a field empty.
func FromCluster(c berth.Cluster, repository string) RenderOptions {
	o := RenderOptions{
		NamespacePrefix:    c.NamespacePrefix,
		FractionalResource: c.FractionalResource,
		SharesPerGPU:       c.SharesPerGPU,
		Repository:         repository,
		GPUToleration:      true,
		StorageClass:       c.StorageClass,
		Ingress:            c.Ingress,
	}
	if c.AutoscaleMetrics != nil {
		o.Metrics = *c.AutoscaleMetrics
	}
	return o.withDefaults()
}

func (o RenderOptions) withDefaults() RenderOptions {
	if o.NamespacePrefix == "" {
		o.NamespacePrefix = "berth-"
	}
	if o.FractionalResource == "" {
		o.FractionalResource = "nvidia.com/gpu.shared"
	}
	if o.SharesPerGPU < 2 {
		o.SharesPerGPU = 10
	}
	if o.Metrics == (berth.AutoscaleMetrics{}) {
		o.Metrics = berth.DefaultAutoscaleMetrics
	}
	return o
}

func (o Options) withDefaults() Options {
	o.Render = o.Render.withDefaults()
	if o.Workers <= 0 {
		o.Workers = 16
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.SyncTimeout <= 0 {
		o.SyncTimeout = 2 * time.Minute
	}
	if o.IdleCheckEvery == 0 {
		o.IdleCheckEvery = time.Minute
	}
	if o.IdleCheckTimeout <= 0 {
		o.IdleCheckTimeout = 5 * time.Second
	}
	return o
}

// renderOptions are the cluster's render options with what the
// configuration being applied says of the cluster (its ingress and
// autoscale metrics), so a
// commit that changes it takes effect without a restart of berth.
func (c *Cluster) renderOptions(cfg *berth.Config) RenderOptions {
	o := c.opts.Render
	if cfg != nil {
		if cl, ok := cfg.Clusters[c.opts.Name]; ok {
			o.Ingress = cl.Ingress
			if cl.AutoscaleMetrics != nil {
				o.Metrics = *cl.AutoscaleMetrics
			}
		}
	}
	return o
}
