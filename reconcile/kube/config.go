package kube

import (
	"fmt"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// ConfigSource says where a cluster's credentials come from. The command
// line decides (it may read the environment); nothing below it does.
type ConfigSource struct {
	// Kubeconfig is the kubeconfig file; empty with InCluster false means
	// clientcmd's default places are not consulted: name a file.
	Kubeconfig string
	// Context is the kubeconfig context (the repository's cluster.context);
	// empty means the file's current context.
	Context string
	// InCluster uses the pod's service account.
	InCluster bool
}

// RESTConfig builds the rest.Config of a cluster.
func RESTConfig(src ConfigSource) (*rest.Config, error) {
	if src.InCluster {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in-cluster config: %w", err)
		}
		return cfg, nil
	}
	if src.Kubeconfig == "" {
		return nil, fmt.Errorf("no kubeconfig given and not running in a pod: pass --kubeconfig")
	}
	rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: src.Kubeconfig}
	overrides := &clientcmd.ConfigOverrides{CurrentContext: src.Context}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	if err != nil {
		if src.Context != "" {
			return nil, fmt.Errorf("kubeconfig %s, context %s: %w", src.Kubeconfig, src.Context, err)
		}
		return nil, fmt.Errorf("kubeconfig %s: %w", src.Kubeconfig, err)
	}
	return cfg, nil
}
