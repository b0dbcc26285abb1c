package admission

import (
	"context"
	"fmt"
	"slices"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/sets"
	kubeletapis "k8s.io/kubelet/pkg/apis"

	"tower.dev/tower/apiserver/authentication"
	"tower.dev/tower/apiserver/authorization"
)

// NodeRestriction confines what a kubelet (a user system:node:<name> in
// system:nodes) may write, as kube-apiserver's plugin of that name: only
// its own Node (not its taints, nor labels outside the kubelet's set),
// its own Lease, the status of pods bound to it, mirror pods bound to it
// that reference no other objects, evictions and deletions of its pods,
// and tokens bound to its pods. The Node authorizer lets the request this
// far; this plugin checks the objects involved.
type NodeRestriction struct {
	// Pods and Nodes read the stored objects a decision depends on; both
	// return API errors (NotFound when absent).
	Pods  func(ctx context.Context, namespace, name string) (*corev1.Pod, error)
	Nodes func(ctx context.Context, name string) (*corev1.Node, error)
}

// Validate implements Validator: like upstream's, the plugin only
// validates, and sees the object as it will be stored.
func (p *NodeRestriction) Validate(ctx context.Context, a *Attributes) error {
	user, ok := authentication.UserFrom(ctx)
	if !ok || !user.InGroup(authentication.GroupNodes) {
		return nil
	}
	node, ok := authorization.NodeName(user)
	if !ok {
		return p.forbid(a, "could not determine node from user %q", user.Name)
	}
	switch {
	case a.Resource.Group == "" && a.Resource.Resource == "pods":
		switch a.Subresource {
		case "":
			return p.admitPod(ctx, node, a)
		case "status":
			return p.admitPodStatus(node, a)
		case "eviction":
			return p.admitPodEviction(ctx, node, a)
		default:
			return p.forbid(a, "unexpected pod subresource %q, only 'status' and 'eviction' are allowed", a.Subresource)
		}
	case a.Resource.Group == "" && a.Resource.Resource == "nodes":
		return p.admitNode(node, a)
	case a.Resource.Group == "" && a.Resource.Resource == "serviceaccounts" && a.Subresource == "token":
		return p.admitToken(ctx, node, a)
	case a.Resource.Group == coordinationv1.GroupName && a.Resource.Resource == "leases":
		return p.admitLease(node, a)
	}
	return nil
}

func (p *NodeRestriction) admitPod(ctx context.Context, node string, a *Attributes) error {
	switch a.Operation {
	case Create:
		return p.admitMirrorPod(ctx, node, a)
	case Delete:
		pod, err := p.existingPod(ctx, a, a.Name)
		if err != nil {
			return err
		}
		if pod.Spec.NodeName != node {
			return p.forbid(a, "node %q can only delete pods with spec.nodeName set to itself", node)
		}
		return nil
	default:
		return p.forbid(a, "unexpected operation %q, node %q can only create and delete mirror pods", a.Operation, node)
	}
}

// admitMirrorPod lets a node create only the mirror of one of its static
// pods: bound to itself, owned by its Node, and referencing nothing a node
// could use to reach other objects.
func (p *NodeRestriction) admitMirrorPod(ctx context.Context, node string, a *Attributes) error {
	pod, ok := a.Object.(*corev1.Pod)
	if !ok {
		return p.forbid(a, "unexpected type %T", a.Object)
	}
	if _, mirror := pod.Annotations[corev1.MirrorPodAnnotationKey]; !mirror {
		return p.forbid(a, "pod does not have %q annotation, node %q can only create mirror pods", corev1.MirrorPodAnnotationKey, node)
	}
	if pod.Spec.NodeName != node {
		return p.forbid(a, "node %q can only create pods with spec.nodeName set to itself", node)
	}
	switch len(pod.OwnerReferences) {
	case 0:
		return p.forbid(a, "node %q can only create pods with an owner reference set to itself", node)
	case 1:
	default:
		return p.forbid(a, "node %q can only create pods with a single owner reference set to itself", node)
	}
	owner := pod.OwnerReferences[0]
	if owner.APIVersion != corev1.SchemeGroupVersion.String() || owner.Kind != "Node" || owner.Name != node {
		return p.forbid(a, "node %q can only create pods with an owner reference set to itself", node)
	}
	if owner.Controller == nil || !*owner.Controller {
		return p.forbid(a, "node %q can only create pods with a controller owner reference set to itself", node)
	}
	if owner.BlockOwnerDeletion != nil && *owner.BlockOwnerDeletion {
		return p.forbid(a, "node %q must not set blockOwnerDeletion on an owner reference", node)
	}
	stored, err := p.Nodes(ctx, node)
	if apierrors.IsNotFound(err) {
		return err
	}
	if err != nil {
		return p.forbid(a, "error looking up node %s to verify uid: %v", node, err)
	}
	if owner.UID != stored.UID {
		return p.forbid(a, "node %s UID mismatch: expected %s got %s", node, owner.UID, stored.UID)
	}
	if pod.Spec.ServiceAccountName != "" {
		return p.forbid(a, "node %q can not create pods that reference a service account", node)
	}
	if len(authorization.PodReferences(pod, "secrets")) > 0 {
		return p.forbid(a, "node %q can not create pods that reference secrets", node)
	}
	if len(authorization.PodReferences(pod, "configmaps")) > 0 {
		return p.forbid(a, "node %q can not create pods that reference configmaps", node)
	}
	if len(authorization.PodReferences(pod, "persistentvolumeclaims")) > 0 {
		return p.forbid(a, "node %q can not create pods that reference persistentvolumeclaims", node)
	}
	if len(pod.Spec.ResourceClaims) > 0 {
		return p.forbid(a, "node %q can not create pods that reference resourceclaims", node)
	}
	return nil
}

func (p *NodeRestriction) admitPodStatus(node string, a *Attributes) error {
	if a.Operation != Update {
		return p.forbid(a, "unexpected operation %q", a.Operation)
	}
	old, ok := a.OldObject.(*corev1.Pod)
	if !ok {
		return p.forbid(a, "unexpected type %T", a.OldObject)
	}
	if old.Spec.NodeName != node {
		return p.forbid(a, "node %q can only update pod status for pods with spec.nodeName set to itself", node)
	}
	pod, ok := a.Object.(*corev1.Pod)
	if !ok {
		return p.forbid(a, "unexpected type %T", a.Object)
	}
	if !labels.Equals(old.Labels, pod.Labels) {
		return p.forbid(a, "node %q cannot update labels through pod status", node)
	}
	if !apiequality.Semantic.DeepEqual(old.Status.ResourceClaimStatuses, pod.Status.ResourceClaimStatuses) {
		return p.forbid(a, "node %q cannot update resource claim statues", node)
	}
	return nil
}

func (p *NodeRestriction) admitPodEviction(ctx context.Context, node string, a *Attributes) error {
	if a.Operation != Create {
		return p.forbid(a, "unexpected operation %s", a.Operation)
	}
	// The pod named in the URL wins over the one in the body (an
	// Eviction of policy/v1 or v1beta1).
	name := a.Name
	if name == "" {
		eviction, err := meta.Accessor(a.Object)
		if err != nil {
			return p.forbid(a, "unexpected type %T", a.Object)
		}
		name = eviction.GetName()
	}
	if name == "" {
		return p.forbid(a, "could not determine pod from request data")
	}
	pod, err := p.existingPod(ctx, a, name)
	if err != nil {
		return err
	}
	if pod.Spec.NodeName != node {
		return p.forbid(a, "node %s can only evict pods with spec.nodeName set to itself", node)
	}
	return nil
}

func (p *NodeRestriction) admitNode(node string, a *Attributes) error {
	if a.Name != node {
		return p.forbid(a, "node %q is not allowed to modify node %q", node, a.Name)
	}
	switch a.Operation {
	case Create:
		obj, ok := a.Object.(*corev1.Node)
		if !ok {
			return p.forbid(a, "unexpected type %T", a.Object)
		}
		if obj.Spec.ConfigSource != nil {
			return p.forbid(a, "node %q is not allowed to create pods with a non-nil configSource", node)
		}
		if forbidden := forbiddenNodeLabels(modifiedLabels(obj.Labels, nil)); len(forbidden) > 0 {
			return p.forbid(a, "node %q is not allowed to set the following labels: %s", node, strings.Join(forbidden, ", "))
		}
	case Update:
		obj, ok := a.Object.(*corev1.Node)
		if !ok {
			return p.forbid(a, "unexpected type %T", a.Object)
		}
		old, ok := a.OldObject.(*corev1.Node)
		if !ok {
			return p.forbid(a, "unexpected type %T", a.OldObject)
		}
		if obj.Spec.ConfigSource != nil && !apiequality.Semantic.DeepEqual(obj.Spec.ConfigSource, old.Spec.ConfigSource) {
			return p.forbid(a, "node %q is not allowed to update configSource to a new non-nil configSource", node)
		}
		// Taints and restricted labels steer workloads: a node that could
		// change its own would draw in pods meant for other nodes.
		if !apiequality.Semantic.DeepEqual(obj.Spec.Taints, old.Spec.Taints) {
			return p.forbid(a, "node %q is not allowed to modify taints", node)
		}
		if forbidden := forbiddenNodeLabels(modifiedLabels(obj.Labels, old.Labels)); len(forbidden) > 0 {
			return p.forbid(a, "is not allowed to modify labels: %s", strings.Join(forbidden, ", "))
		}
	}
	return nil
}

func (p *NodeRestriction) admitToken(ctx context.Context, node string, a *Attributes) error {
	if a.Operation != Create {
		return nil
	}
	request, ok := a.Object.(*authenticationv1.TokenRequest)
	if !ok {
		return p.forbid(a, "unexpected type %T", a.Object)
	}
	ref := request.Spec.BoundObjectRef
	if ref == nil || ref.APIVersion != "v1" || ref.Kind != "Pod" || ref.Name == "" {
		return p.forbid(a, "node requested token not bound to a pod")
	}
	if ref.UID == "" {
		return p.forbid(a, "node requested token with a pod binding without a uid")
	}
	pod, err := p.existingPod(ctx, a, ref.Name)
	if err != nil {
		return err
	}
	if ref.UID != pod.UID {
		return p.forbid(a, "the UID in the bound object reference (%s) does not match the UID in record. The object might have been deleted and then recreated", ref.UID)
	}
	if pod.Spec.NodeName != node {
		return p.forbid(a, "node requested token bound to a pod scheduled on a different node")
	}
	return nil
}

func (p *NodeRestriction) admitLease(node string, a *Attributes) error {
	if a.Namespace != corev1.NamespaceNodeLease {
		return p.forbid(a, "can only access leases in the %q system namespace", corev1.NamespaceNodeLease)
	}
	name := a.Name
	if a.Operation == Create {
		lease, ok := a.Object.(*coordinationv1.Lease)
		if !ok {
			return p.forbid(a, "unexpected type %T", a.Object)
		}
		name = lease.Name
	}
	if name != node {
		return p.forbid(a, "can only access node lease with the same name as the requesting node")
	}
	return nil
}

// existingPod reads the pod a request is about; a missing pod is the
// request's NotFound, any other failure a refusal.
func (p *NodeRestriction) existingPod(ctx context.Context, a *Attributes, name string) (*corev1.Pod, error) {
	pod, err := p.Pods(ctx, a.Namespace, name)
	if apierrors.IsNotFound(err) {
		return nil, err
	}
	if err != nil {
		return nil, p.forbid(a, "%v", err)
	}
	return pod, nil
}

func (p *NodeRestriction) forbid(a *Attributes, format string, args ...any) error {
	return forbidden(a, fmt.Sprintf(format, args...))
}

// modifiedLabels are the keys added, removed or changed from old to new.
func modifiedLabels(new, old map[string]string) sets.Set[string] {
	modified := sets.New[string]()
	for k, v := range new {
		if oldValue, ok := old[k]; !ok || oldValue != v {
			modified.Insert(k)
		}
	}
	for k := range old {
		if _, ok := new[k]; !ok {
			modified.Insert(k)
		}
	}
	return modified
}

// forbiddenNodeLabels are the labels among keys a kubelet may not set:
// the node-restriction.kubernetes.io namespace (reserved for
// administrators to steer workloads) and kubernetes.io or k8s.io labels
// that are not kubelet labels.
func forbiddenNodeLabels(keys sets.Set[string]) []string {
	var out []string
	for _, key := range keys.UnsortedList() {
		prefix := labelPrefix(key)
		if inDomain(prefix, corev1.LabelNamespaceNodeRestriction) || (isKubernetesLabel(prefix) && !kubeletapis.IsKubeletLabel(key)) {
			out = append(out, key)
		}
	}
	slices.Sort(out)
	return out
}

func labelPrefix(key string) string {
	prefix, _, found := strings.Cut(key, "/")
	if !found {
		return ""
	}
	return prefix
}

func isKubernetesLabel(prefix string) bool {
	return inDomain(prefix, "kubernetes.io") || inDomain(prefix, "k8s.io")
}

// inDomain reports whether prefix is domain or one of its subdomains.
func inDomain(prefix, domain string) bool {
	return prefix == domain || strings.HasSuffix(prefix, "."+domain)
}
