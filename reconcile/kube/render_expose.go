package kube

import (
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/berth-gpu/berth"
)

// renderExpose is how people reach a service whose expose names a host:
// an Ingress on the cluster's ingress class, or, where the cluster's
// ingress names a gateway, a Gateway API HTTPRoute attached to it. Either
// sends every path of the host to the workload's Service, on the port
// expose names. nil when the workload names no host or the cluster has no
// ingress (validation refuses that; a plan against an older configuration
// may still meet it).
func renderExpose(o RenderOptions, r Run) runtime.Object {
	w := r.Workload
	if w.Expose == nil || w.Expose.Host == "" || o.Ingress == nil {
		return nil
	}
	port, ok := w.Port(w.Expose.Port)
	if !ok {
		return nil
	}
	meta := metav1.ObjectMeta{
		Name: DeploymentName(w.ID()), Namespace: Namespace(o.NamespacePrefix, w.Team),
		Labels: runLabels(r), Annotations: gitAnnotations(o, r),
	}
	if o.Ingress.Gateway != "" {
		return renderHTTPRoute(o, meta, w.Expose.Host, port)
	}
	return renderIngress(o, meta, w.Expose.Host, port)
}

func renderIngress(o RenderOptions, meta metav1.ObjectMeta, host string, port berth.Port) *networkingv1.Ingress {
	in := o.Ingress
	for k, v := range in.Annotations {
		if _, ours := meta.Annotations[k]; !ours {
			meta.Annotations[k] = v
		}
	}
	ing := &networkingv1.Ingress{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: kindIngress},
		ObjectMeta: meta,
		Spec: networkingv1.IngressSpec{
			Rules: []networkingv1.IngressRule{{
				Host: host,
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
					Paths: []networkingv1.HTTPIngressPath{{
						Path: "/", PathType: ptr.To(networkingv1.PathTypePrefix),
						Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
							Name: meta.Name, Port: networkingv1.ServiceBackendPort{Name: portName(port)},
						}},
					}},
				}},
			}},
		},
	}
	if in.ClassName != "" {
		ing.Spec.IngressClassName = ptr.To(in.ClassName)
	}
	if in.TLS != nil {
		secret := in.TLS.SecretName
		if secret == "" {
			secret = meta.Name + "-tls"
		}
		ing.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{host}, SecretName: secret}}
	}
	return ing
}

// renderHTTPRoute attaches the host to the cluster's gateway. The gateway
// lives in its own namespace: its listeners must allow routes from the
// teams' namespaces (allowedRoutes.namespaces), which is the gateway
// owner's choice, not berth's.
func renderHTTPRoute(o RenderOptions, meta metav1.ObjectMeta, host string, port berth.Port) *gatewayv1.HTTPRoute {
	gwNS, gwName, _ := strings.Cut(o.Ingress.Gateway, "/")
	return &gatewayv1.HTTPRoute{
		TypeMeta:   metav1.TypeMeta{APIVersion: gatewayv1.GroupVersion.String(), Kind: kindHTTPRoute},
		ObjectMeta: meta,
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{
				Namespace: ptr.To(gatewayv1.Namespace(gwNS)), Name: gatewayv1.ObjectName(gwName),
			}}},
			Hostnames: []gatewayv1.Hostname{gatewayv1.Hostname(host)},
			Rules: []gatewayv1.HTTPRouteRule{{
				BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{
					BackendObjectReference: gatewayv1.BackendObjectReference{
						Name: gatewayv1.ObjectName(meta.Name), Port: ptr.To(gatewayv1.PortNumber(port.Port)),
					},
				}}},
			}},
		},
	}
}

// ingressURL is where people reach a workload exposed on a Kubernetes
// cluster's ingress ("https://chat.example.com/"); empty when it names no
// host or the cluster has no ingress.
func ingressURL(in *berth.Ingress, w berth.Workload) string {
	if w.Expose == nil || w.Expose.Host == "" || in == nil {
		return ""
	}
	return in.Scheme() + "://" + w.Expose.Host + "/"
}
