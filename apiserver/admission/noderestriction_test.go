package admission

import (
	"context"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"tower.dev/tower/apiserver/authentication"
	"tower.dev/tower/apiserver/registry"
)

func TestNodeRestriction(t *testing.T) {
	resource := func(gvr schema.GroupVersionResource) *registry.Resource {
		return &registry.Resource{GroupVersionResource: gvr}
	}
	pods := resource(corev1.SchemeGroupVersion.WithResource("pods"))
	nodes := resource(corev1.SchemeGroupVersion.WithResource("nodes"))
	leases := resource(coordinationv1.SchemeGroupVersion.WithResource("leases"))
	serviceAccounts := resource(corev1.SchemeGroupVersion.WithResource("serviceaccounts"))
	configMaps := resource(corev1.SchemeGroupVersion.WithResource("configmaps"))

	pod := func(name, node string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name), Labels: map[string]string{"app": "a"}}, Spec: corev1.PodSpec{NodeName: node}}
	}
	stored := map[string]*corev1.Pod{"mine": pod("mine", "n1"), "theirs": pod("theirs", "n2")}
	plugin := &NodeRestriction{
		Pods: func(_ context.Context, namespace, name string) (*corev1.Pod, error) {
			if p, ok := stored[name]; ok && namespace == "ns" {
				return p, nil
			}
			return nil, apierrors.NewNotFound(corev1.Resource("pods"), name)
		},
		Nodes: func(_ context.Context, name string) (*corev1.Node, error) {
			return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, UID: "node-uid-" + types.UID(name)}}, nil
		},
	}

	mirror := func(mutate func(*corev1.Pod)) *corev1.Pod {
		p := pod("static-n1", "n1")
		p.Annotations = map[string]string{corev1.MirrorPodAnnotationKey: "hash"}
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: "n1", UID: "node-uid-n1", Controller: ptr.To(true)}}
		if mutate != nil {
			mutate(p)
		}
		return p
	}
	node := func(mutate func(*corev1.Node)) *corev1.Node {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{corev1.LabelHostname: "n1"}}}
		if mutate != nil {
			mutate(n)
		}
		return n
	}
	relabeled := func(p *corev1.Pod) *corev1.Pod {
		p = p.DeepCopy()
		p.Labels["app"] = "b"
		return p
	}
	token := func(ref *authenticationv1.BoundObjectReference) *authenticationv1.TokenRequest {
		return &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{BoundObjectRef: ref}}
	}
	lease := func(name string) *coordinationv1.Lease {
		return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: corev1.NamespaceNodeLease}}
	}

	nodeUser := &authentication.User{Name: "system:node:n1", Groups: []string{authentication.GroupNodes}}
	tests := []struct {
		name string
		user *authentication.User
		a    Attributes
		// want is the Forbidden message, "" for admitted; notFound expects
		// the request's NotFound instead.
		want     string
		notFound bool
	}{
		{name: "other users are not restricted", user: &authentication.User{Name: "jane"},
			a: Attributes{Operation: Update, Resource: nodes, Name: "n2", Object: node(nil), OldObject: node(nil)}},
		{name: "node group member without a node name", user: &authentication.User{Name: "bob", Groups: []string{authentication.GroupNodes}},
			a:    Attributes{Operation: Update, Resource: nodes, Name: "n1", Object: node(nil), OldObject: node(nil)},
			want: `nodes "n1" is forbidden: could not determine node from user "bob"`},
		{name: "unrelated resources pass", a: Attributes{Operation: Create, Resource: configMaps, Namespace: "ns", Name: "c", Object: &corev1.ConfigMap{}}},

		{name: "register itself", a: Attributes{Operation: Create, Resource: nodes, Name: "n1", Object: node(func(n *corev1.Node) {
			n.Labels["node.kubernetes.io/instance-type"] = "big"
			n.Labels["example.com/team"] = "a"
			n.Spec.Taints = []corev1.Taint{{Key: "k", Effect: corev1.TaintEffectNoSchedule}}
		})}},
		{name: "register another node", a: Attributes{Operation: Create, Resource: nodes, Name: "n2", Object: node(nil)},
			want: `nodes "n2" is forbidden: node "n1" is not allowed to modify node "n2"`},
		{name: "register with restricted labels", a: Attributes{Operation: Create, Resource: nodes, Name: "n1", Object: node(func(n *corev1.Node) {
			n.Labels["node-restriction.kubernetes.io/pci"] = "true"
			n.Labels["node-role.kubernetes.io/control-plane"] = ""
		})},
			want: `nodes "n1" is forbidden: node "n1" is not allowed to set the following labels: node-restriction.kubernetes.io/pci, node-role.kubernetes.io/control-plane`},
		{name: "update its own status", a: Attributes{Operation: Update, Resource: nodes, Subresource: "status", Name: "n1", Object: node(func(n *corev1.Node) { n.Status.Phase = corev1.NodeRunning }), OldObject: node(nil)}},
		{name: "update another node's status", a: Attributes{Operation: Update, Resource: nodes, Subresource: "status", Name: "n2", Object: node(nil), OldObject: node(nil)},
			want: `nodes "n2" is forbidden: node "n1" is not allowed to modify node "n2"`},
		{name: "change its taints", a: Attributes{Operation: Update, Resource: nodes, Name: "n1", Object: node(func(n *corev1.Node) { n.Spec.Taints = nil }),
			OldObject: node(func(n *corev1.Node) { n.Spec.Taints = []corev1.Taint{{Key: "k", Effect: corev1.TaintEffectNoSchedule}} })},
			want: `nodes "n1" is forbidden: node "n1" is not allowed to modify taints`},
		{name: "add a kubelet label", a: Attributes{Operation: Update, Resource: nodes, Name: "n1", OldObject: node(nil),
			Object: node(func(n *corev1.Node) { n.Labels[corev1.LabelTopologyZone] = "z1" })}},
		{name: "remove a restricted label", a: Attributes{Operation: Update, Resource: nodes, Name: "n1", Object: node(nil),
			OldObject: node(func(n *corev1.Node) { n.Labels["sub.node-restriction.kubernetes.io/x"] = "1" })},
			want: `nodes "n1" is forbidden: is not allowed to modify labels: sub.node-restriction.kubernetes.io/x`},
		{name: "delete another node", a: Attributes{Operation: Delete, Resource: nodes, Name: "n2", OldObject: node(nil)},
			want: `nodes "n2" is forbidden: node "n1" is not allowed to modify node "n2"`},

		{name: "status of its pod", a: Attributes{Operation: Update, Resource: pods, Subresource: "status", Namespace: "ns", Name: "mine", Object: stored["mine"], OldObject: stored["mine"]}},
		{name: "status of another node's pod", a: Attributes{Operation: Update, Resource: pods, Subresource: "status", Namespace: "ns", Name: "theirs", Object: stored["theirs"], OldObject: stored["theirs"]},
			want: `pods "theirs" is forbidden: node "n1" can only update pod status for pods with spec.nodeName set to itself`},
		{name: "labels through pod status", a: Attributes{Operation: Update, Resource: pods, Subresource: "status", Namespace: "ns", Name: "mine", Object: relabeled(stored["mine"]), OldObject: stored["mine"]},
			want: `pods "mine" is forbidden: node "n1" cannot update labels through pod status`},
		{name: "update a pod's spec", a: Attributes{Operation: Update, Resource: pods, Namespace: "ns", Name: "mine", Object: stored["mine"], OldObject: stored["mine"]},
			want: `pods "mine" is forbidden: unexpected operation "UPDATE", node "n1" can only create and delete mirror pods`},
		{name: "delete its pod", a: Attributes{Operation: Delete, Resource: pods, Namespace: "ns", Name: "mine", OldObject: stored["mine"]}},
		{name: "delete another node's pod", a: Attributes{Operation: Delete, Resource: pods, Namespace: "ns", Name: "theirs", OldObject: stored["theirs"]},
			want: `pods "theirs" is forbidden: node "n1" can only delete pods with spec.nodeName set to itself`},
		{name: "evict its pod", a: Attributes{Operation: Create, Resource: pods, Subresource: "eviction", Namespace: "ns", Name: "mine", Object: &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: "mine"}}}},
		{name: "evict another node's pod", a: Attributes{Operation: Create, Resource: pods, Subresource: "eviction", Namespace: "ns", Name: "theirs", Object: &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: "theirs"}}},
			want: `pods "theirs" is forbidden: node n1 can only evict pods with spec.nodeName set to itself`},
		{name: "evict a missing pod", a: Attributes{Operation: Create, Resource: pods, Subresource: "eviction", Namespace: "ns", Name: "gone", Object: &policyv1.Eviction{}}, notFound: true},
		{name: "exec into a pod", a: Attributes{Operation: Create, Resource: pods, Subresource: "exec", Namespace: "ns", Name: "mine"},
			want: `pods "mine" is forbidden: unexpected pod subresource "exec", only 'status' and 'eviction' are allowed`},

		{name: "mirror pod", a: Attributes{Operation: Create, Resource: pods, Namespace: "ns", Name: "static-n1", Object: mirror(nil)}},
		{name: "regular pod", a: Attributes{Operation: Create, Resource: pods, Namespace: "ns", Name: "static-n1", Object: mirror(func(p *corev1.Pod) { p.Annotations = nil })},
			want: `pods "static-n1" is forbidden: pod does not have "kubernetes.io/config.mirror" annotation, node "n1" can only create mirror pods`},
		{name: "mirror pod on another node", a: Attributes{Operation: Create, Resource: pods, Namespace: "ns", Name: "static-n1", Object: mirror(func(p *corev1.Pod) { p.Spec.NodeName = "n2" })},
			want: `pods "static-n1" is forbidden: node "n1" can only create pods with spec.nodeName set to itself`},
		{name: "mirror pod without owner", a: Attributes{Operation: Create, Resource: pods, Namespace: "ns", Name: "static-n1", Object: mirror(func(p *corev1.Pod) { p.OwnerReferences = nil })},
			want: `pods "static-n1" is forbidden: node "n1" can only create pods with an owner reference set to itself`},
		{name: "mirror pod owned by a stale node", a: Attributes{Operation: Create, Resource: pods, Namespace: "ns", Name: "static-n1", Object: mirror(func(p *corev1.Pod) { p.OwnerReferences[0].UID = "old" })},
			want: `pods "static-n1" is forbidden: node n1 UID mismatch: expected old got node-uid-n1`},
		{name: "mirror pod not controlled", a: Attributes{Operation: Create, Resource: pods, Namespace: "ns", Name: "static-n1", Object: mirror(func(p *corev1.Pod) { p.OwnerReferences[0].Controller = nil })},
			want: `pods "static-n1" is forbidden: node "n1" can only create pods with a controller owner reference set to itself`},
		{name: "mirror pod with a secret", a: Attributes{Operation: Create, Resource: pods, Namespace: "ns", Name: "static-n1", Object: mirror(func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "db"}}}}
		})},
			want: `pods "static-n1" is forbidden: node "n1" can not create pods that reference secrets`},
		{name: "mirror pod with a service account", a: Attributes{Operation: Create, Resource: pods, Namespace: "ns", Name: "static-n1", Object: mirror(func(p *corev1.Pod) { p.Spec.ServiceAccountName = "default" })},
			want: `pods "static-n1" is forbidden: node "n1" can not create pods that reference a service account`},

		{name: "token for its pod", a: Attributes{Operation: Create, Resource: serviceAccounts, Subresource: "token", Namespace: "ns", Name: "default",
			Object: token(&authenticationv1.BoundObjectReference{APIVersion: "v1", Kind: "Pod", Name: "mine", UID: "uid-mine"})}},
		{name: "unbound token", a: Attributes{Operation: Create, Resource: serviceAccounts, Subresource: "token", Namespace: "ns", Name: "default", Object: token(nil)},
			want: `serviceaccounts "default" is forbidden: node requested token not bound to a pod`},
		{name: "token for another node's pod", a: Attributes{Operation: Create, Resource: serviceAccounts, Subresource: "token", Namespace: "ns", Name: "default",
			Object: token(&authenticationv1.BoundObjectReference{APIVersion: "v1", Kind: "Pod", Name: "theirs", UID: "uid-theirs"})},
			want: `serviceaccounts "default" is forbidden: node requested token bound to a pod scheduled on a different node`},
		{name: "token for a recreated pod", a: Attributes{Operation: Create, Resource: serviceAccounts, Subresource: "token", Namespace: "ns", Name: "default",
			Object: token(&authenticationv1.BoundObjectReference{APIVersion: "v1", Kind: "Pod", Name: "mine", UID: "older"})},
			want: `serviceaccounts "default" is forbidden: the UID in the bound object reference (older) does not match the UID in record. The object might have been deleted and then recreated`},

		{name: "create its lease", a: Attributes{Operation: Create, Resource: leases, Namespace: corev1.NamespaceNodeLease, Name: "n1", Object: lease("n1")}},
		{name: "renew another node's lease", a: Attributes{Operation: Update, Resource: leases, Namespace: corev1.NamespaceNodeLease, Name: "n2", Object: lease("n2"), OldObject: lease("n2")},
			want: `leases.coordination.k8s.io "n2" is forbidden: can only access node lease with the same name as the requesting node`},
		{name: "lease outside kube-node-lease", a: Attributes{Operation: Create, Resource: leases, Namespace: "kube-system", Name: "n1", Object: lease("n1")},
			want: `leases.coordination.k8s.io "n1" is forbidden: can only access leases in the "kube-node-lease" system namespace`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			user := tt.user
			if user == nil {
				user = nodeUser
			}
			err := plugin.Validate(authentication.WithUser(context.Background(), user), &tt.a)
			switch {
			case tt.notFound:
				if !apierrors.IsNotFound(err) {
					t.Fatalf("got %v, want NotFound", err)
				}
			case tt.want == "":
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
			default:
				if !apierrors.IsForbidden(err) || err.Error() != tt.want {
					t.Fatalf("got %v\nwant Forbidden %q", err, tt.want)
				}
			}
		})
	}
}
