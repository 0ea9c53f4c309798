// Package kube is berth's Kubernetes backend: a reconcile.Cluster on
// client-go that renders workload runs into ordinary objects, applies them
// with server-side apply under one field manager ("berth"), and observes
// nodes and berth's own objects with informers.
//
// What it owns:
//   - Rendering (render.go, pure, golden-tested): a namespace per team
//     (namespacePrefix + team) with a ResourceQuota backstop; a Job per
//     batch or training run (an indexed Job and a headless Service for a
//     gang; one indexed Job per role and one headless Service for a
//     workload with roles, observed and stopped as one run, roles.go); a
//     Deployment and a Service for services, inference and notebooks, with
//     an Ingress or a Gateway API HTTPRoute where one is exposed on a host
//     (render_expose.go) and a HorizontalPodAutoscaler where one
//     autoscales (render_autoscale.go). Every object is labelled app.kubernetes.io/managed-by=berth
//     and annotated with the repository, the workload's file and line, the
//     commit, the run id and the spec digest.
//   - Storage (render_storage.go, apply_claims.go): a run's checkpoint
//     claim, a pipeline step's outputs claim, the claims of team volumes
//     and datasets that name none, and ephemeral scratch; made before the
//     pods that mount them, deleted as render_storage.go says. Never a
//     hostPath.
//   - Observing (observe.go, status.go, nodes.go): GPU nodes (allocatable
//     nvidia.com/gpu, MIG resources, nvidia.com/gpu.product), and every run
//     from its objects, its pods and the run ledger.
//   - Applying (apply.go lists the stages, one file each: apply_teams.go,
//     apply_change.go with apply_job.go, apply_service.go, apply_scale.go
//     (a replica of an autoscaled service above its minimum: one more or
//     less on its autoscaler's maxReplicas) and roles_apply.go per kind of
//     run, apply_ledger.go, apply_delete.go, apply_wait.go):
//     fluxcd/pkg/ssa's ResourceManager (ssa.go, apply_object.go):
//     server-side apply under one field manager of what a dry-run apply
//     shows has drifted, in parallel with a bounded pool; deletes only what
//     berth owns. An object the informers do not hold is new to ssa
//     without a read, and its writes are waited for in the informers
//     (apply_wait.go), not with its WaitForSet: Apply does not wait for
//     readiness, Observe reports it. Status comes from kstatus. The
//     configuration each Apply and Observe is handed gives the teams'
//     quotas and the flavors' labels.
//   - The run ledger (ledger.go): what berth did and saw, durable in the
//     cluster, never only in memory.
//   - Leader election (leader.go): a coordination Lease; a replica that does
//     not hold it observes but never applies.
//   - The idle limit of notebooks (notebook_idle.go): on the leader, every
//     Options.IdleCheckEvery, each running notebook's last activity
//     (Jupyter's /api/status through the API server's service proxy, or
//     its pod's berth.dev/last-activity); one idle past its limit is
//     stopped as an OpStop would, and recorded over in the ledger.
//
// What it does not own: deciding (reconcile/schedule), diffing and the
// retry policy of the engine (reconcile), GPU assignment inside a node (the
// device plugin picks the GPUs; berth's GPU indices are its own
// bookkeeping), and the container images.
//
// # The lifecycle of a run
//
// OpQueue creates a batch or training run's Job suspended (a service's wait
// is recorded in the ledger only). OpStart unsuspends it, pinned to the
// nodes berth chose (required node affinity: one term per chosen node, on
// metadata.name, each with the flavor's node labels), or creates the
// Deployment. Within those nodes the kube-scheduler places the pods, and
// Observe reports where they landed. OpStop of a preempted
// Job suspends it (the Job controller deletes its pods; the Job keeps its
// annotations and is resumed by the next OpStart, on new nodes); any other
// stop deletes the run's objects after the ledger recorded why.
//
// # Who retries
//
// Kubernetes owns the retries of a Job: backoffLimit is the workload's
// retries, and pods that fail because of a disruption (eviction,
// preemption by the kube-scheduler, a node drain) do not count against it
// (a podFailurePolicy ignores the DisruptionTarget condition). A Job that
// failed has used every retry, so berth reports it with Attempts past the
// retries it was started with and the engine never starts it again; bump
// runId for a new run. Services are restarted by their Deployment, so a
// service is never reported failed: a crash loop or an image that cannot be
// pulled is the Reason of a running service.
//
// # The run ledger
//
// A Job carries its run's state in annotations and the finalizer
// berth.dev/ledger, so it cannot disappear before berth recorded how it
// ended. Each team namespace has a ConfigMap, berth-ledger, with one entry
// per run (workload.runId): written when a run starts (so a run whose Job
// vanished is never started again), when it ends, is stopped, or waits (a
// queued service). Apply folds finished Jobs into the ledger and then lets
// deleted Jobs go. Observe only reads: objects first, the ledger for what
// has no object.
//
// # Limits
//
// Jobs are kept after they end (the ledger also holds their end): a
// periodic job leaves one Job per tick until someone deletes them. A team's
// ledger is one ConfigMap (1 MiB: a few thousand runs). Pods of a Job that
// someone deleted with orphan propagation are no longer berth's: their
// capacity is not counted. berth's scheduler sees whole GPUs: a node that
// offers whole GPUs but not the fractional resource may be chosen for a
// fractional pod that Kubernetes then cannot place.
//
// # Drift
//
// A Deployment or Service carries the spec it was rendered from
// (berth.dev/spec). Observe renders it again and asks fluxcd/pkg/ssa's
// Diff (a server-side dry-run apply compared with the live object) whether
// applying it would change anything: the API server's defaults are not
// drift, a kubectl edit of a field berth sets is. A run whose objects
// drifted is reported with a digest that is not the spec's and a note
// naming the field ("changed outside berth: Deployment
// /spec/template/spec/containers/0/image"), so the engine asks for a
// restart and Apply takes the fields back. Fields berth does not set, and
// spec.replicas once another manager (an autoscaler) owns it, are left
// alone. The check is remembered per Deployment generation, labels and
// annotations and Service resourceVersion: an unchanged service costs no
// request.
package kube
