package registry

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

func TestNamespace(t *testing.T) {
	namespaces := resourceFor(t, "", "namespaces")
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}
	if errs := create(t, namespaces, ns); len(errs) > 0 {
		t.Fatal(errs.ToAggregate())
	}
	if ns.Labels[corev1.LabelMetadataName] != "team-a" || ns.Status.Phase != corev1.NamespaceActive ||
		len(ns.Spec.Finalizers) != 1 || ns.Spec.Finalizers[0] != corev1.FinalizerKubernetes {
		t.Errorf("namespace after create: labels=%v phase=%s finalizers=%v", ns.Labels, ns.Status.Phase, ns.Spec.Finalizers)
	}

	updated := ns.DeepCopy()
	updated.Labels = map[string]string{"team": "a"}
	updated.Spec.Finalizers = nil
	updated.Status.Phase = corev1.NamespaceTerminating
	expectErrors(t, update(t, namespaces, updated, ns))
	if updated.Labels[corev1.LabelMetadataName] != "team-a" || len(updated.Spec.Finalizers) != 1 || updated.Status.Phase != corev1.NamespaceActive {
		t.Errorf("namespace after update: labels=%v finalizers=%v phase=%s", updated.Labels, updated.Spec.Finalizers, updated.Status.Phase)
	}

	expectErrors(t, create(t, namespaces, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "Team.A"}}), "FieldValueInvalid metadata.name")
	expectErrors(t, create(t, namespaces, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "b"}}), "FieldValueForbidden metadata.namespace")
	renamed := ns.DeepCopy()
	renamed.Name = "team-b"
	expectErrors(t, update(t, namespaces, renamed, ns), "FieldValueInvalid metadata.name")

	_, f, err := namespaces.Strategy.GetAttrs(ns)
	if err != nil || f["status.phase"] != "Active" || f["metadata.name"] != "team-a" || f["name"] != "team-a" {
		t.Errorf("namespace fields = %v, %v", f, err)
	}
	if _, ok := f["metadata.namespace"]; ok {
		t.Error("cluster-scoped namespace must not have metadata.namespace")
	}

	status := ns.DeepCopy()
	status.Spec.Finalizers = nil
	status.Status.Phase = corev1.NamespaceTerminating
	expectErrors(t, updateStatus(t, namespaces, status, ns), "FieldValueInvalid status.phase")
	if len(status.Spec.Finalizers) != 1 {
		t.Error("namespace status update changed spec")
	}
}

func TestConfigMapAndSecret(t *testing.T) {
	configmaps := resourceFor(t, "", "configmaps")
	secrets := resourceFor(t, "", "secrets")
	big := strings.Repeat("x", maxConfigAndSecretLen+1)
	cases := []struct {
		name string
		run  func() []string
		want []string
	}{
		{"configmap valid", func() []string {
			return errKeys(create(t, configmaps, &corev1.ConfigMap{ObjectMeta: objectMeta("c"), Data: map[string]string{"a.conf": "x"}}))
		}, nil},
		{"configmap bad key", func() []string {
			return errKeys(create(t, configmaps, &corev1.ConfigMap{ObjectMeta: objectMeta("c"), Data: map[string]string{"a/b": "x"}}))
		}, []string{"FieldValueInvalid data[a/b]"}},
		{"configmap too big", func() []string {
			return errKeys(create(t, configmaps, &corev1.ConfigMap{ObjectMeta: objectMeta("c"), Data: map[string]string{"a": big}}))
		}, []string{"FieldValueTooLong []"}},
		{"secret too big", func() []string {
			return errKeys(create(t, secrets, &corev1.Secret{ObjectMeta: objectMeta("s"), Data: map[string][]byte{"a": []byte(big)}}))
		}, []string{"FieldValueTooLong data"}},
		{"secret tls missing key", func() []string {
			return errKeys(create(t, secrets, &corev1.Secret{ObjectMeta: objectMeta("s"), Type: corev1.SecretTypeTLS, Data: map[string][]byte{"tls.crt": []byte("c")}}))
		}, []string{"FieldValueRequired data[tls.key]"}},
		{"secret bad key", func() []string {
			return errKeys(create(t, secrets, &corev1.Secret{ObjectMeta: objectMeta("s"), Data: map[string][]byte{"..": []byte("c")}}))
		}, []string{"FieldValueInvalid data[..]"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := c.run()
			if strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Errorf("errors = %v, want %v", got, c.want)
			}
		})
	}

	t.Run("secret type defaults to Opaque and is immutable", func(t *testing.T) {
		s := stored(t, secrets, &corev1.Secret{ObjectMeta: objectMeta("s")})
		if s.Type != corev1.SecretTypeOpaque {
			t.Fatalf("type = %q", s.Type)
		}
		changed := s.DeepCopy()
		changed.Type = "example.com/other"
		expectErrors(t, update(t, secrets, changed, s), "FieldValueInvalid type")
		_, f, _ := secrets.Strategy.GetAttrs(s)
		if f["type"] != string(corev1.SecretTypeOpaque) {
			t.Errorf("secret fields = %v", f)
		}
	})
	t.Run("immutable configmap", func(t *testing.T) {
		old := stored(t, configmaps, &corev1.ConfigMap{ObjectMeta: objectMeta("c"), Immutable: ptr.To(true), Data: map[string]string{"a": "1"}})
		changed := old.DeepCopy()
		changed.Data["a"] = "2"
		expectErrors(t, update(t, configmaps, changed, old), "FieldValueForbidden data")
		unset := old.DeepCopy()
		unset.Immutable = nil
		expectErrors(t, update(t, configmaps, unset, old), "FieldValueForbidden immutable")
		relabeled := old.DeepCopy()
		relabeled.Labels = map[string]string{"a": "b"}
		expectErrors(t, update(t, configmaps, relabeled, old))
	})
	t.Run("immutable secret", func(t *testing.T) {
		old := stored(t, secrets, &corev1.Secret{ObjectMeta: objectMeta("s"), Immutable: ptr.To(true), Data: map[string][]byte{"a": []byte("1")}})
		changed := old.DeepCopy()
		changed.Data["a"] = []byte("2")
		expectErrors(t, update(t, secrets, changed, old), "FieldValueForbidden data")
	})
}

func newService() *corev1.Service {
	return &corev1.Service{ObjectMeta: objectMeta("web"), Spec: corev1.ServiceSpec{
		Selector: appLabels,
		Ports:    []corev1.ServicePort{{Port: 80}},
	}}
}

func TestServiceDefaultsAndValidation(t *testing.T) {
	services := resourceFor(t, "", "services")
	svc := newService()
	if errs := create(t, services, svc); len(errs) > 0 {
		t.Fatal(errs.ToAggregate())
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"type", svc.Spec.Type, corev1.ServiceTypeClusterIP},
		{"sessionAffinity", svc.Spec.SessionAffinity, corev1.ServiceAffinityNone},
		{"protocol", svc.Spec.Ports[0].Protocol, corev1.ProtocolTCP},
		{"targetPort", svc.Spec.Ports[0].TargetPort, intstr.FromInt32(80)},
		{"ipFamilyPolicy", *svc.Spec.IPFamilyPolicy, corev1.IPFamilyPolicySingleStack},
		{"ipFamilies", len(svc.Spec.IPFamilies) == 1 && svc.Spec.IPFamilies[0] == corev1.IPv4Protocol, true},
		{"internalTrafficPolicy", *svc.Spec.InternalTrafficPolicy, corev1.ServiceInternalTrafficPolicyCluster},
		{"no externalTrafficPolicy", svc.Spec.ExternalTrafficPolicy, corev1.ServiceExternalTrafficPolicy("")},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	np := newService()
	np.Spec.Type = corev1.ServiceTypeNodePort
	if errs := create(t, services, np); len(errs) > 0 || np.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyCluster {
		t.Errorf("nodeport: %v externalTrafficPolicy=%q", errs.ToAggregate(), np.Spec.ExternalTrafficPolicy)
	}

	cases := []struct {
		name   string
		mutate func(*corev1.Service)
		want   []string
	}{
		{"no ports", func(s *corev1.Service) { s.Spec.Ports = nil }, []string{"FieldValueRequired spec.ports"}},
		{"headless without ports", func(s *corev1.Service) { s.Spec.Ports = nil; s.Spec.ClusterIP = "None" }, nil},
		{"name not DNS-1035", func(s *corev1.Service) { s.Name = "1web" }, []string{"FieldValueInvalid metadata.name"}},
		{"bad type", func(s *corev1.Service) { s.Spec.Type = "Internal" }, []string{"FieldValueNotSupported spec.type"}},
		{"unnamed ports", func(s *corev1.Service) { s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Port: 81}) },
			[]string{"FieldValueRequired spec.ports[0].name", "FieldValueRequired spec.ports[1].name"}},
		{"port out of range", func(s *corev1.Service) { s.Spec.Ports[0].Port = 0 }, []string{"FieldValueInvalid spec.ports[0].port", "FieldValueInvalid spec.ports[0].targetPort"}},
		{"nodePort on ClusterIP", func(s *corev1.Service) { s.Spec.Ports[0].NodePort = 30001 }, []string{"FieldValueForbidden spec.ports[0].nodePort"}},
		{"external name required", func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeExternalName }, []string{"FieldValueRequired spec.externalName"}},
		{"bad cluster IP", func(s *corev1.Service) { s.Spec.ClusterIP = "10.0.0.300" }, []string{"FieldValueInvalid spec.clusterIPs[0]"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newService()
			c.mutate(s)
			expectErrors(t, create(t, services, s), c.want...)
		})
	}
}

func TestServiceUpdateKeepsAllocations(t *testing.T) {
	services := resourceFor(t, "", "services")
	old := newService()
	old.Spec.Type = corev1.ServiceTypeNodePort
	old.Spec.ClusterIP = "10.0.0.10"
	old.Spec.Ports[0].NodePort = 30080
	old = stored(t, services, old)
	if len(old.Spec.ClusterIPs) != 1 || old.Spec.ClusterIPs[0] != "10.0.0.10" {
		t.Fatalf("clusterIPs not normalized: %v", old.Spec.ClusterIPs)
	}

	// A replace that omits allocated values (as kubectl replace does).
	replaced := newService()
	replaced.Spec.Type = corev1.ServiceTypeNodePort
	expectErrors(t, update(t, services, replaced, old))
	if replaced.Spec.ClusterIP != "10.0.0.10" || replaced.Spec.Ports[0].NodePort != 30080 {
		t.Errorf("allocations lost: clusterIP=%q nodePort=%d", replaced.Spec.ClusterIP, replaced.Spec.Ports[0].NodePort)
	}

	moved := old.DeepCopy()
	moved.Spec.ClusterIP = "10.0.0.11"
	moved.Spec.ClusterIPs = []string{"10.0.0.11"}
	errs := update(t, services, moved, old)
	expectErrors(t, errs, "FieldValueInvalid spec.clusterIPs[0]")
	expectDetail(t, errs, "spec.clusterIPs[0]", "may not change once set")

	toClusterIP := old.DeepCopy()
	toClusterIP.Spec.Type = corev1.ServiceTypeClusterIP
	toClusterIP.Spec.ExternalTrafficPolicy = ""
	expectErrors(t, update(t, services, toClusterIP, old))
	if toClusterIP.Spec.Ports[0].NodePort != 0 {
		t.Errorf("node port kept after switching to ClusterIP: %d", toClusterIP.Spec.Ports[0].NodePort)
	}

	_, f, _ := services.Strategy.GetAttrs(old)
	if f["spec.clusterIP"] != "10.0.0.10" || f["spec.type"] != "NodePort" {
		t.Errorf("service fields = %v", f)
	}
}

func TestNode(t *testing.T) {
	nodes := resourceFor(t, "", "nodes")
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Status: corev1.NodeStatus{
		Capacity: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")},
	}}
	if errs := create(t, nodes, node); len(errs) > 0 {
		t.Fatal(errs.ToAggregate())
	}
	if node.Status.Allocatable.Cpu().String() != "2" {
		t.Errorf("allocatable not defaulted from capacity: %v", node.Status.Allocatable)
	}
	node.Spec.PodCIDRs = []string{"10.244.0.0/24"}
	node.Spec.PodCIDR = "10.244.0.0/24"

	cordoned := node.DeepCopy()
	cordoned.Spec.Unschedulable = true
	cordoned.Status.Capacity = nil
	expectErrors(t, update(t, nodes, cordoned, node))
	if cordoned.Status.Capacity == nil {
		t.Error("node update changed status")
	}
	_, f, _ := nodes.Strategy.GetAttrs(cordoned)
	if f["spec.unschedulable"] != "true" {
		t.Errorf("node fields = %v", f)
	}

	recidr := node.DeepCopy()
	recidr.Spec.PodCIDRs = []string{"10.245.0.0/24"}
	recidr.Spec.PodCIDR = "10.245.0.0/24"
	expectErrors(t, update(t, nodes, recidr, node), "FieldValueForbidden spec.podCIDRs")

	tainted := node.DeepCopy()
	tainted.Spec.Taints = []corev1.Taint{{Key: "k", Effect: "Sometimes"}}
	expectErrors(t, update(t, nodes, tainted, node), "FieldValueNotSupported spec.taints[0].effect")

	heartbeat := node.DeepCopy()
	heartbeat.Spec.Unschedulable = true
	heartbeat.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	expectErrors(t, updateStatus(t, nodes, heartbeat, node))
	if heartbeat.Spec.Unschedulable || len(heartbeat.Status.Conditions) != 1 {
		t.Errorf("node status update: unschedulable=%v conditions=%v", heartbeat.Spec.Unschedulable, heartbeat.Status.Conditions)
	}
}

func TestSmallCoreTypes(t *testing.T) {
	cases := []struct {
		name     string
		resource string
		obj      func() runtime.Object
		want     []string
	}{
		{"endpoints valid", "endpoints", func() runtime.Object {
			return &corev1.Endpoints{ObjectMeta: objectMeta("web"), Subsets: []corev1.EndpointSubset{{
				Addresses: []corev1.EndpointAddress{{IP: "10.1.0.4"}}, Ports: []corev1.EndpointPort{{Port: 80}},
			}}}
		}, nil},
		{"endpoints bad ip", "endpoints", func() runtime.Object {
			return &corev1.Endpoints{ObjectMeta: objectMeta("web"), Subsets: []corev1.EndpointSubset{{
				Addresses: []corev1.EndpointAddress{{IP: "nope"}}, Ports: []corev1.EndpointPort{{Port: 80}},
			}}}
		}, []string{"FieldValueInvalid subsets[0].addresses[0].ip"}},
		{"service account", "serviceaccounts", func() runtime.Object { return &corev1.ServiceAccount{ObjectMeta: objectMeta("builder")} }, nil},
		{"limit range min above max", "limitranges", func() runtime.Object {
			return &corev1.LimitRange{ObjectMeta: objectMeta("l"), Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{
				Type: corev1.LimitTypeContainer,
				Min:  corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")},
				Max:  corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")},
			}}}}
		}, []string{"FieldValueInvalid spec.limits[0].min[cpu]", "FieldValueInvalid spec.limits[0].defaultRequest[cpu]"}},
		{"quota negative", "resourcequotas", func() runtime.Object {
			return &corev1.ResourceQuota{ObjectMeta: objectMeta("q"), Spec: corev1.ResourceQuotaSpec{
				Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("-1")},
			}}
		}, []string{"FieldValueInvalid spec.hard[pods]"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			expectErrors(t, create(t, resourceFor(t, "", c.resource), c.obj()), c.want...)
		})
	}
	t.Run("endpoints port protocol default", func(t *testing.T) {
		ep := &corev1.Endpoints{ObjectMeta: objectMeta("web"), Subsets: []corev1.EndpointSubset{{
			Addresses: []corev1.EndpointAddress{{IP: "10.1.0.4"}}, Ports: []corev1.EndpointPort{{Port: 80}},
		}}}
		resourceFor(t, "", "endpoints").Strategy.Default(ep)
		if ep.Subsets[0].Ports[0].Protocol != corev1.ProtocolTCP {
			t.Errorf("protocol = %q", ep.Subsets[0].Ports[0].Protocol)
		}
	})
	t.Run("limit range defaults", func(t *testing.T) {
		lr := &corev1.LimitRange{ObjectMeta: objectMeta("l"), Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{
			Type: corev1.LimitTypeContainer,
			Max:  corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")},
		}}}}
		resourceFor(t, "", "limitranges").Strategy.Default(lr)
		item := lr.Spec.Limits[0]
		if item.Default.Memory().String() != "1Gi" || item.DefaultRequest.Memory().String() != "1Gi" {
			t.Errorf("limit range defaults: default=%v defaultRequest=%v", item.Default, item.DefaultRequest)
		}
	})
}
