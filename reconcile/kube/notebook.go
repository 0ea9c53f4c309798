package kube

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/berth-gpu/berth"
)

// A notebook on Kubernetes runs its image (a Jupyter image such as
// jupyter/base-notebook, whose server reads JUPYTER_TOKEN and
// JUPYTER_PORT) behind a Service on its port (8888 when it declares
// none), and, where it is exposed on a host, the cluster's Ingress or
// HTTPRoute, as a service is. Its token is a Secret berth creates once per
// start, owned by the notebook's Deployment (so it goes with it); berth
// reads it back only to ask the server for its last activity (the idle
// check, notebook_idle.go). Its owner reads it where their team's
// namespace lets them (kubectl get secret NAME-token).

// NotebookTokenKey is the key of the token in a notebook's Secret.
const NotebookTokenKey = "token"

// NotebookTokenSecret names a notebook's token Secret.
func NotebookTokenSecret(id berth.WorkloadID) string { return DeploymentName(id) + "-token" }

// notebookEnv is what a notebook's container is told: its token, from its
// Secret, and its port.
func notebookEnv(w berth.Workload) []corev1.EnvVar {
	return []corev1.EnvVar{
		{Name: "JUPYTER_TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: NotebookTokenSecret(w.ID())}, Key: NotebookTokenKey}}},
		{Name: "JUPYTER_PORT", Value: strconv.Itoa(w.ServedPorts()[0].Port)},
	}
}

// ensureNotebookToken creates the token Secret of the notebook whose
// Deployment is d, unless it has one: a random 256-bit token, owned by d.
func (c *Cluster) ensureNotebookToken(ctx context.Context, id berth.WorkloadID, ns string) error {
	var d appsv1.Deployment
	if err := c.crc.Get(ctx, client.ObjectKey{Namespace: ns, Name: DeploymentName(id)}, &d); err != nil {
		return fmt.Errorf("notebook %s: its Deployment: %w", id, err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return fmt.Errorf("notebook %s: token: %w", id, err)
	}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: NotebookTokenSecret(id), Namespace: ns,
			Labels: map[string]string{LabelManagedBy: ManagedByValue, LabelTeam: id.Team(), LabelWorkload: id.Name()},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name, UID: d.UID,
				BlockOwnerDeletion: ptr.To(false)}},
		},
		Type:       corev1.SecretTypeOpaque,
		StringData: map[string]string{NotebookTokenKey: hex.EncodeToString(raw[:])},
	}
	if err := c.crc.Create(ctx, s); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("notebook %s: token Secret %s/%s: %w", id, ns, s.Name, err)
	}
	return nil
}

// serviceURL is where a running service or notebook is reached: its
// host on the cluster's ingress (https where the ingress has tls), else its
// Service inside the cluster (kubectl port-forward reaches it from
// outside). "" without ports.
func serviceURL(in *berth.Ingress, w berth.Workload, ns string) string {
	if u := ingressURL(in, w); u != "" {
		return u
	}
	ports := w.ServedPorts()
	if len(ports) == 0 {
		return ""
	}
	p := ports[0]
	if w.Expose != nil {
		if q, ok := w.Port(w.Expose.Port); ok {
			p = q
		}
	}
	return fmt.Sprintf("http://%s.%s.svc:%d/", DeploymentName(w.ID()), ns, p.Port)
}
