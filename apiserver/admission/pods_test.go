package admission

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"tower.dev/tower/apiserver/registry"
)

func TestServiceAccountPlugin(t *testing.T) {
	accounts := newObjects("/sa", corev1.Resource("serviceaccounts"),
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: "ns"}, ImagePullSecrets: []corev1.LocalObjectReference{{Name: "pull"}}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "quiet", Namespace: "ns"}, AutomountServiceAccountToken: ptr.To(false)},
	)
	plugin := &ServiceAccount{ServiceAccounts: accounts}
	tests := []struct {
		name        string
		pod         func(p *corev1.Pod)
		wantMounted bool
		wantErr     string
	}{
		{name: "default account, mounted", wantMounted: true},
		{name: "pod opts out", pod: func(p *corev1.Pod) { p.Spec.AutomountServiceAccountToken = ptr.To(false) }},
		{name: "account opts out", pod: func(p *corev1.Pod) { p.Spec.ServiceAccountName = "quiet" }},
		{name: "pod opts in over its account", wantMounted: true, pod: func(p *corev1.Pod) {
			p.Spec.ServiceAccountName = "quiet"
			p.Spec.AutomountServiceAccountToken = ptr.To(true)
		}},
		{name: "missing account", pod: func(p *corev1.Pod) { p.Spec.ServiceAccountName = "nobody" },
			wantErr: `pods "p" is forbidden: error looking up service account ns/nobody: serviceaccount "nobody" not found`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := testPod()
			if tt.pod != nil {
				tt.pod(pod)
			}
			err := plugin.Admit(context.Background(), podAttributes(Create, pod, nil))
			if !checkErr(t, err, tt.wantErr) {
				return
			}
			mounted := len(pod.Spec.Volumes) == 1 && strings.HasPrefix(pod.Spec.Volumes[0].Name, "kube-api-access-") &&
				len(pod.Spec.Containers[0].VolumeMounts) == 1
			if mounted != tt.wantMounted {
				t.Errorf("mounted = %v (volumes %v), want %v", mounted, pod.Spec.Volumes, tt.wantMounted)
			}
		})
	}
}

func TestMountAPICredentialsKeepsExistingMounts(t *testing.T) {
	pod := testPod(
		corev1.Container{Name: "own", VolumeMounts: []corev1.VolumeMount{{Name: "mine", MountPath: ServiceAccountTokenMountPath}}},
		corev1.Container{Name: "plain"},
	)
	mountAPICredentials(pod)
	if len(pod.Spec.Containers[0].VolumeMounts) != 1 || pod.Spec.Containers[0].VolumeMounts[0].Name != "mine" {
		t.Errorf("container with its own mount got %v", pod.Spec.Containers[0].VolumeMounts)
	}
	if len(pod.Spec.Containers[1].VolumeMounts) != 1 || len(pod.Spec.Volumes) != 1 {
		t.Errorf("plain container mounts %v, volumes %v", pod.Spec.Containers[1].VolumeMounts, pod.Spec.Volumes)
	}
	again := pod.DeepCopy()
	again.Spec.Containers = append(again.Spec.Containers, corev1.Container{Name: "late"})
	mountAPICredentials(again)
	if len(again.Spec.Volumes) != 1 || again.Spec.Containers[2].VolumeMounts[0].Name != pod.Spec.Volumes[0].Name {
		t.Errorf("existing kube-api-access volume not reused: %v", again.Spec.Volumes)
	}
}

func TestDefaultTolerationSecondsPlugin(t *testing.T) {
	tests := []struct {
		name        string
		tolerations []corev1.Toleration
		wantAdded   int
	}{
		{name: "none", wantAdded: 2},
		{name: "tolerates everything", tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}}},
		{name: "tolerates not-ready NoExecute", wantAdded: 1,
			tolerations: []corev1.Toleration{{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute}}},
		{name: "NoSchedule does not count", wantAdded: 2,
			tolerations: []corev1.Toleration{{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := testPod()
			pod.Spec.Tolerations = tt.tolerations
			if err := (DefaultTolerationSeconds{}).Admit(context.Background(), podAttributes(Create, pod, nil)); err != nil {
				t.Fatal(err)
			}
			added := pod.Spec.Tolerations[len(tt.tolerations):]
			if len(added) != tt.wantAdded {
				t.Fatalf("added %v, want %d", added, tt.wantAdded)
			}
			for _, tol := range added {
				if *tol.TolerationSeconds != 300 || tol.Effect != corev1.TaintEffectNoExecute {
					t.Errorf("added %v", tol)
				}
			}
		})
	}
}

func TestPriorityPlugin(t *testing.T) {
	never := corev1.PreemptNever
	lower := corev1.PreemptLowerPriority
	classes := func(objs ...*schedulingv1.PriorityClass) Objects {
		o := newObjects("/pc", schedulingv1.Resource("priorityclasses"))
		for _, pc := range objs {
			o.Store.(*memoryStore).objects[o.key("", pc.Name)] = pc
		}
		return o
	}
	high := &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: "high"}, Value: 1000, PreemptionPolicy: &lower}
	defaultLow := &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: "low"}, Value: 10, GlobalDefault: true, PreemptionPolicy: &never}
	tests := []struct {
		name      string
		classes   Objects
		className string
		priority  *int32
		wantClass string
		want      int32
		wantPol   corev1.PreemptionPolicy
		wantErr   string
	}{
		{name: "no classes", classes: classes(), want: 0, wantPol: lower},
		{name: "global default", classes: classes(high, defaultLow), wantClass: "low", want: 10, wantPol: never},
		{name: "named class", classes: classes(high, defaultLow), className: "high", wantClass: "high", want: 1000, wantPol: lower},
		{name: "unknown class", classes: classes(high), className: "nope", wantErr: `pods "p" is forbidden: no PriorityClass with name nope was found`},
		{name: "priority disagrees", classes: classes(high), className: "high", priority: ptr.To[int32](1),
			wantErr: `pods "p" is forbidden: the integer value of priority (1) must not be provided in pod spec; priority admission controller computed 1000 from the given PriorityClass name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := testPod()
			pod.Spec.PriorityClassName = tt.className
			pod.Spec.Priority = tt.priority
			err := (&Priority{PriorityClasses: tt.classes}).Admit(context.Background(), podAttributes(Create, pod, nil))
			if !checkErr(t, err, tt.wantErr) {
				return
			}
			if pod.Spec.PriorityClassName != tt.wantClass || *pod.Spec.Priority != tt.want || *pod.Spec.PreemptionPolicy != tt.wantPol {
				t.Errorf("class %q priority %d policy %s, want %q %d %s", pod.Spec.PriorityClassName, *pod.Spec.Priority, *pod.Spec.PreemptionPolicy, tt.wantClass, tt.want, tt.wantPol)
			}
		})
	}
}

func TestLimitRangerPlugin(t *testing.T) {
	q := resource.MustParse
	podItem := corev1.LimitRangeItem{Type: corev1.LimitTypePod, Max: corev1.ResourceList{corev1.ResourceMemory: q("1Gi")}}
	containerItem := corev1.LimitRangeItem{
		Type:           corev1.LimitTypeContainer,
		Default:        corev1.ResourceList{corev1.ResourceMemory: q("512Mi")},
		DefaultRequest: corev1.ResourceList{corev1.ResourceMemory: q("256Mi")},
	}
	ranges := newObjects("/lr", corev1.Resource("limitranges"),
		&corev1.LimitRange{ObjectMeta: metav1.ObjectMeta{Name: "lr", Namespace: "ns"}, Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{containerItem, podItem}}})
	plugin := &LimitRanger{LimitRanges: ranges}
	mem := func(limit string) corev1.Container {
		return corev1.Container{Name: "c" + limit, Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: q(limit)}, Requests: corev1.ResourceList{corev1.ResourceMemory: q("1Mi")}}}
	}
	tests := []struct {
		name       string
		containers []corev1.Container
		wantErr    string
	}{
		{name: "defaults fit", containers: []corev1.Container{{Name: "a"}}},
		{name: "two defaulted containers exceed the pod max", containers: []corev1.Container{{Name: "a"}, {Name: "b"}, {Name: "c"}},
			wantErr: `pods "p" is forbidden: maximum memory usage per Pod is 1Gi, but limit is 1536Mi`},
		{name: "explicit limits sum under max", containers: []corev1.Container{mem("300Mi"), mem("300Mi")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := testPod(tt.containers...)
			a := podAttributes(Create, pod, nil)
			err := plugin.Admit(context.Background(), a)
			if err == nil {
				err = plugin.Validate(context.Background(), a)
			}
			if !checkErr(t, err, tt.wantErr) {
				return
			}
		})
	}
}

func TestLimitConstraintMessages(t *testing.T) {
	q := resource.MustParse
	list := func(cpu string) corev1.ResourceList {
		if cpu == "" {
			return nil
		}
		return corev1.ResourceList{corev1.ResourceCPU: q(cpu)}
	}
	tests := []struct {
		name              string
		check             func(corev1.LimitType, corev1.ResourceName, resource.Quantity, corev1.ResourceList, corev1.ResourceList) error
		bound, req, limit string
		want              string
	}{
		{"min no request", minConstraint, "100m", "", "1", "minimum cpu usage per Container is 100m.  No request is specified"},
		{"min request low", minConstraint, "100m", "50m", "1", "minimum cpu usage per Container is 100m, but request is 50m"},
		{"min ok", minConstraint, "100m", "100m", "1", ""},
		{"max no limit", maxConstraint, "1", "100m", "", "maximum cpu usage per Container is 1.  No limit is specified"},
		{"max limit high", maxConstraint, "1", "100m", "1500m", "maximum cpu usage per Container is 1, but limit is 1500m"},
		{"ratio no request", limitRequestRatioConstraint, "2", "", "1", "cpu max limit to request ratio per Container is 2, but no request is specified or request is 0"},
		{"ratio exceeded", limitRequestRatioConstraint, "2", "100m", "300m", "cpu max limit to request ratio per Container is 2, but provided ratio is 3.000000"},
		{"ratio ok", limitRequestRatioConstraint, "2", "100m", "200m", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.check(corev1.LimitTypeContainer, corev1.ResourceCPU, q(tt.bound), list(tt.req), list(tt.limit))
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTaintNodesByCondition(t *testing.T) {
	notReady := corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoSchedule}
	dedicated := corev1.Taint{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoSchedule}
	nodes := &registry.Resource{GroupVersionResource: corev1.SchemeGroupVersion.WithResource("nodes"), Kind: "Node"}
	tests := []struct {
		name        string
		op          Operation
		subresource string
		taints      []corev1.Taint
		want        []corev1.Taint
	}{
		{name: "create adds the taint", op: Create, want: []corev1.Taint{notReady}},
		{name: "other taints are kept", op: Create, taints: []corev1.Taint{dedicated}, want: []corev1.Taint{dedicated, notReady}},
		{name: "no second copy", op: Create, taints: []corev1.Taint{{Key: corev1.TaintNodeNotReady, Value: "x", Effect: corev1.TaintEffectNoSchedule}},
			want: []corev1.Taint{{Key: corev1.TaintNodeNotReady, Value: "x", Effect: corev1.TaintEffectNoSchedule}}},
		{name: "a NoExecute one is another taint", op: Create, taints: []corev1.Taint{{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoExecute}},
			want: []corev1.Taint{{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoExecute}, notReady}},
		{name: "updates are left alone", op: Update},
		{name: "status writes are left alone", op: Create, subresource: "status"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n"}, Spec: corev1.NodeSpec{Taints: tt.taints}}
			a := &Attributes{Operation: tt.op, Resource: nodes, Subresource: tt.subresource, Name: "n", Object: node}
			if err := (TaintNodesByCondition{}).Admit(context.Background(), a); err != nil {
				t.Fatal(err)
			}
			if !apiequality.Semantic.DeepEqual(node.Spec.Taints, tt.want) {
				t.Errorf("taints %v, want %v", node.Spec.Taints, tt.want)
			}
		})
	}
}
