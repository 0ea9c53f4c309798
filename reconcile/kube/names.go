package kube

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"

	"github.com/berth-gpu/berth"
)

// FieldManager is the one field manager berth applies with.
const FieldManager = "berth"

// Labels berth sets on everything it owns.
const (
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedByValue = "berth"
	LabelTeam      = "berth.dev/team"
	LabelWorkload  = "berth.dev/workload"
	LabelRun       = "berth.dev/run"
	LabelKind      = "berth.dev/kind"
	// LabelRole names the role of a Job (and its pods) of a workload with
	// roles.
	LabelRole = "berth.dev/role"
)

// RankGate is the scheduling gate a role's pods wait at until berth gives
// each its global rank (roles_rank.go).
const RankGate = "berth.dev/rank"

// Annotations berth writes. The first group leads `kubectl describe` back
// to Git; the second is the run's state, read back by Observe.
const (
	AnnotationRepository  = "berth.dev/repository"
	AnnotationPath        = "berth.dev/path"
	AnnotationCommit      = "berth.dev/commit"
	AnnotationPullRequest = "berth.dev/pull-request"
	AnnotationRunID       = "berth.dev/run-id"
	AnnotationDigest      = "berth.dev/spec-digest"

	AnnotationSpec        = "berth.dev/spec"
	AnnotationPriority    = "berth.dev/priority"
	AnnotationFlavor      = "berth.dev/flavor"
	AnnotationPlacements  = "berth.dev/placements"
	AnnotationRoles       = "berth.dev/roles"
	AnnotationAttempts    = "berth.dev/attempts"
	AnnotationQueuedSince = "berth.dev/queued-since"
	AnnotationStartedAt   = "berth.dev/started-at"
	AnnotationPhase       = "berth.dev/phase"
	AnnotationReason      = "berth.dev/reason"
	AnnotationStoppedAt   = "berth.dev/stopped-at"
	// AnnotationNotStarted is on a suspended Job that berth was to start
	// and did not: why (a Secret or key its env needs is missing). Observe
	// reports it as the queued run's reason.
	AnnotationNotStarted = "berth.dev/not-started"
	// AnnotationCheckpointClaim names the run's checkpoint claim
	// (CheckpointClaimName), on a run whose spec has a checkpoint.
	AnnotationCheckpointClaim = "berth.dev/checkpoint-claim"
	// AnnotationResume is "1" on a run's Job and pod template when the run
	// started before (it was preempted, lost its node, or is retried) and
	// its spec resumes from checkpoints: pods read it as BERTH_RESUME.
	AnnotationResume = "berth.dev/resume"
	// AnnotationInputs is, on a pipeline step's Job, the claim of each
	// step whose outputs it reads (JSON: step -> claim).
	AnnotationInputs = "berth.dev/inputs"
	// AnnotationRetention is, on a step's outputs claim, how long it stays
	// after the step's run succeeded.
	AnnotationRetention = "berth.dev/retention"
	// AnnotationKeep is "true" on a run's checkpoint claim whose spec says
	// checkpoint.keep: it stays after the run ends.
	AnnotationKeep = "berth.dev/keep"
	// AnnotationRank is a role's pod's global rank (BERTH_RANK), which
	// berth writes while the pod waits at RankGate; AnnotationRankOffset,
	// on the pod template, is the pods of the roles before it.
	AnnotationRank       = "berth.dev/rank"
	AnnotationRankOffset = "berth.dev/rank-offset"
)

// FinalizerLedger keeps a Job until its end is in the ledger.
const FinalizerLedger = "berth.dev/ledger"

// LedgerName is the ConfigMap of each team namespace that records runs.
const LedgerName = "berth-ledger"

// QuotaName is the ResourceQuota of each team namespace.
const QuotaName = "berth-quota"

// maxJobName leaves room for the pod suffixes of an indexed Job
// ("-<index>-<5 random>") within a 63-character hostname.
const maxJobName = 52

var (
	invalidName  = regexp.MustCompile(`[^a-z0-9-]+`)
	validLabelRe = regexp.MustCompile(`^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`)
)

// Namespace is the team's namespace.
func Namespace(prefix, team string) string { return prefix + team }

// JobName names a run's Job: the workload's name and its run id, shortened
// with a hash when that would be too long (or the run id has characters a
// name cannot).
func JobName(k berth.RunKey) string {
	w, runID := k.Workload, k.RunID
	clean := strings.Trim(invalidName.ReplaceAllString(strings.ToLower(runID), "-"), "-")
	name := w.Name() + "-" + clean
	if clean == strings.ToLower(runID) && clean != "" && len(name) <= maxJobName {
		return name
	}
	h := shortHash(k.String())
	keep := maxJobName - len(h) - 1
	if len(name) > keep {
		name = strings.TrimRight(name[:keep], "-")
	}
	return name + "-" + h
}

// CheckpointClaimName names the PersistentVolumeClaim of a run's
// checkpoints: one per run (workload and runId), so every attempt of the
// run, after a preemption or a retry and on whichever node, mounts the
// same claim, and a new runId starts from none. A claim name may be longer
// than a Job's, so JobName's stays whole.
func CheckpointClaimName(k berth.RunKey) string {
	return JobName(k) + "-checkpoints"
}

// RoleJobName names the Job of one role of a run of a workload with roles:
// <workload>-<run>-<role>, shortened with a hash like JobName when that
// would be too long. The run's headless Service is JobName.
func RoleJobName(k berth.RunKey, role string) string {
	w, runID := k.Workload, k.RunID
	cleanRun := strings.Trim(invalidName.ReplaceAllString(strings.ToLower(runID), "-"), "-")
	cleanRole := strings.Trim(invalidName.ReplaceAllString(strings.ToLower(role), "-"), "-")
	name := w.Name() + "-" + cleanRun + "-" + cleanRole
	if cleanRun == strings.ToLower(runID) && cleanRun != "" && cleanRole == role && cleanRole != "" && len(name) <= maxJobName {
		return name
	}
	// Shorten the workload and run, so the role stays readable.
	h := shortHash(k.String() + "/" + role)
	run := w.Name() + "-" + cleanRun
	keep := maxJobName - len(h) - len(cleanRole) - 2
	if keep < 8 {
		keep = maxJobName - len(h) - 1
		if len(name) > keep {
			name = strings.TrimRight(name[:keep], "-")
		}
		return name + "-" + h
	}
	if len(run) > keep {
		run = strings.TrimRight(run[:keep], "-")
	}
	return run + "-" + cleanRole + "-" + h
}

// DeploymentName names a service's Deployment and Service: the workload's
// name (a service runs whatever its run id).
func DeploymentName(w berth.WorkloadID) string { return w.Name() }

// LedgerKey is a run's key in the ledger ConfigMap.
func LedgerKey(name, runID string) string { return name + "." + runID }

// labelValue is v when it is a valid label value, else a hash of it.
func labelValue(v string) string {
	if len(v) <= 63 && validLabelRe.MatchString(v) {
		return v
	}
	return "h-" + shortHash(v)
}

func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:5])
}

// OutputsClaimName names the PersistentVolumeClaim of a pipeline step's
// outputs: one per run of the step, which the steps reading it mount.
func OutputsClaimName(k berth.RunKey) string {
	return JobName(k) + "-outputs"
}
