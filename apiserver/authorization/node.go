package authorization

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"tower.dev/tower/apiserver/authentication"
)

// Node authorizes kubelets (users system:node:<name> in system:nodes) by
// their relationship to the objects they ask for: a node reads the
// secrets, configmaps, claims and service-account tokens of the pods bound
// to it, and writes only its own Node, Lease and those pods' status.
type Node struct {
	// Pods lists the pods bound to a node.
	Pods func(ctx context.Context, node string) ([]*corev1.Pod, error)
}

// NodeName returns the node a user is the kubelet of.
func NodeName(u *authentication.User) (string, bool) {
	if u == nil || !u.InGroup(authentication.GroupNodes) {
		return "", false
	}
	name, ok := strings.CutPrefix(u.Name, authentication.NodeUserPrefix)
	return name, ok && name != ""
}

// Authorize implements Authorizer.
func (n *Node) Authorize(ctx context.Context, a *Attributes) (Decision, string, error) {
	node, ok := NodeName(a.User)
	if !ok || !a.ResourceRequest {
		return NoOpinion, "", nil
	}
	read := a.Verb == "get" || a.Verb == "list" || a.Verb == "watch"
	write := a.Verb == "create" || a.Verb == "update" || a.Verb == "patch" || a.Verb == "delete"
	switch {
	// Nodes and Leases are authorized by verb alone, as upstream's node
	// rules do: which Node and which Lease a node may write is
	// NodeRestriction's call, and its refusals name the reason.
	case a.APIGroup == "" && a.Resource == "nodes":
		switch {
		case read && a.Subresource == "",
			(a.Verb == "create" || a.Verb == "update" || a.Verb == "patch") && a.Subresource == "",
			(a.Verb == "update" || a.Verb == "patch") && a.Subresource == "status",
			a.Verb == "delete" && a.Subresource == "" && a.Name == node:
			return Allow, "", nil
		}
		return NoOpinion, "", nil
	case a.APIGroup == "coordination.k8s.io" && a.Resource == "leases":
		if a.Verb == "get" || write {
			return Allow, "", nil
		}
		return NoOpinion, "", nil
	case a.APIGroup == "" && a.Resource == "pods":
		switch {
		case a.Subresource == "" && (read || a.Verb == "create" || a.Verb == "delete"),
			a.Subresource == "status" && (a.Verb == "update" || a.Verb == "patch"),
			a.Subresource == "eviction" && a.Verb == "create":
			// NodeRestriction admission checks that the pod is the node's.
			return Allow, "", nil
		}
		return NoOpinion, "", nil
	case a.APIGroup == "" && (a.Resource == "secrets" || a.Resource == "configmaps" || a.Resource == "persistentvolumeclaims") && a.Subresource == "":
		if a.Verb != "get" {
			return NoOpinion, "", nil
		}
		return n.related(ctx, node, a, func(p *corev1.Pod) []string { return PodReferences(p, a.Resource) })
	case a.APIGroup == "" && a.Resource == "serviceaccounts" && a.Subresource == "token" && a.Verb == "create":
		return n.related(ctx, node, a, func(p *corev1.Pod) []string { return []string{p.Spec.ServiceAccountName} })
	}
	return NoOpinion, "", nil
}

// related allows a when a pod bound to node names the object.
func (n *Node) related(ctx context.Context, node string, a *Attributes, names func(*corev1.Pod) []string) (Decision, string, error) {
	if a.Name == "" || n.Pods == nil {
		return NoOpinion, "", nil
	}
	pods, err := n.Pods(ctx, node)
	if err != nil {
		return NoOpinion, "", err
	}
	for _, p := range pods {
		if p.Namespace == a.Namespace && slices.Contains(names(p), a.Name) {
			return Allow, "", nil
		}
	}
	return NoOpinion, fmt.Sprintf("no relationship found between node '%s' and this object", node), nil
}

// PodReferences lists the names of the objects of one resource (secrets,
// configmaps or persistentvolumeclaims) that a pod uses: volumes,
// projected sources, env and envFrom, image pull secrets.
func PodReferences(p *corev1.Pod, resource string) []string {
	var out []string
	add := func(name string) {
		if name != "" {
			out = append(out, name)
		}
	}
	for _, v := range p.Spec.Volumes {
		switch resource {
		case "secrets":
			if v.Secret != nil {
				add(v.Secret.SecretName)
			}
		case "configmaps":
			if v.ConfigMap != nil {
				add(v.ConfigMap.Name)
			}
		case "persistentvolumeclaims":
			if v.PersistentVolumeClaim != nil {
				add(v.PersistentVolumeClaim.ClaimName)
			}
		}
		if v.Projected != nil {
			for _, src := range v.Projected.Sources {
				if resource == "secrets" && src.Secret != nil {
					add(src.Secret.Name)
				}
				if resource == "configmaps" && src.ConfigMap != nil {
					add(src.ConfigMap.Name)
				}
			}
		}
	}
	if resource == "secrets" {
		for _, s := range p.Spec.ImagePullSecrets {
			add(s.Name)
		}
	}
	containers := append(append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...), ephemeral(p)...)
	for _, c := range containers {
		for _, e := range c.EnvFrom {
			if resource == "secrets" && e.SecretRef != nil {
				add(e.SecretRef.Name)
			}
			if resource == "configmaps" && e.ConfigMapRef != nil {
				add(e.ConfigMapRef.Name)
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				continue
			}
			if resource == "secrets" && e.ValueFrom.SecretKeyRef != nil {
				add(e.ValueFrom.SecretKeyRef.Name)
			}
			if resource == "configmaps" && e.ValueFrom.ConfigMapKeyRef != nil {
				add(e.ValueFrom.ConfigMapKeyRef.Name)
			}
		}
	}
	return out
}

func ephemeral(p *corev1.Pod) []corev1.Container {
	out := make([]corev1.Container, 0, len(p.Spec.EphemeralContainers))
	for _, e := range p.Spec.EphemeralContainers {
		out = append(out, corev1.Container(e.EphemeralContainerCommon))
	}
	return out
}
