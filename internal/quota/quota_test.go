package quota

import (
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
)

func TestUsage(t *testing.T) {
	now := time.Now()
	q := resource.MustParse
	sized := &corev1.Pod{Spec: corev1.PodSpec{
		Containers: []corev1.Container{
			{Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: q("100m")}, Limits: corev1.ResourceList{corev1.ResourceMemory: q("64Mi")}}},
			{Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: q("200m")}}},
		},
		InitContainers: []corev1.Container{{Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: q("500m")}}}},
	}}
	finished := &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodSucceeded}}
	pastGrace := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: &metav1.Time{Time: now.Add(-time.Minute)}, DeletionGracePeriodSeconds: ptr.To[int64](30)}}
	tests := []struct {
		name string
		gr   schema.GroupResource
		obj  any
		want string
	}{
		{"pod: init container max wins", pods, sized, "count/pods=1,cpu=500m,limits.memory=64Mi,pods=1,requests.cpu=500m"},
		{"finished pod keeps only its object count", pods, finished, "count/pods=1"},
		{"pod past its grace period", pods, pastGrace, "count/pods=1"},
		{"node port service", services, &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Ports: []corev1.ServicePort{{}, {}}}},
			"count/services=1,services=1,services.nodeports=2"},
		{"configmap has a legacy count", schema.GroupResource{Resource: "configmaps"}, &corev1.ConfigMap{}, "configmaps=1,count/configmaps=1"},
		{"grouped resource", schema.GroupResource{Group: "apps", Resource: "deployments"}, nil, "count/deployments.apps=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := String(Usage(tt.gr, tt.obj, now)); got != tt.want {
				t.Errorf("usage = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestResourcesFor(t *testing.T) {
	got := ResourcesFor([]corev1.ResourceName{"requests.cpu", "pods", "count/deployments.apps", "services.nodeports", "secrets", "count/configmaps"})
	want := []schema.GroupResource{pods, {Group: "apps", Resource: "deployments"}, services, {Resource: "secrets"}, {Resource: "configmaps"}}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestMatches(t *testing.T) {
	deadline := &corev1.Pod{Spec: corev1.PodSpec{ActiveDeadlineSeconds: ptr.To[int64](10), PriorityClassName: "high"}}
	plain := &corev1.Pod{}
	scoped := func(scopes ...corev1.ResourceQuotaScope) *corev1.ResourceQuota {
		return &corev1.ResourceQuota{Spec: corev1.ResourceQuotaSpec{Scopes: scopes}}
	}
	priority := &corev1.ResourceQuota{Spec: corev1.ResourceQuotaSpec{ScopeSelector: &corev1.ScopeSelector{MatchExpressions: []corev1.ScopedResourceSelectorRequirement{
		{ScopeName: corev1.ResourceQuotaScopePriorityClass, Operator: corev1.ScopeSelectorOpIn, Values: []string{"high"}},
	}}}}
	tests := []struct {
		name string
		rq   *corev1.ResourceQuota
		gr   schema.GroupResource
		obj  any
		want bool
	}{
		{"unscoped covers anything", scoped(), schema.GroupResource{Resource: "configmaps"}, &corev1.ConfigMap{}, true},
		{"scoped never covers non-pods", scoped(corev1.ResourceQuotaScopeBestEffort), schema.GroupResource{Resource: "configmaps"}, &corev1.ConfigMap{}, false},
		{"terminating", scoped(corev1.ResourceQuotaScopeTerminating), pods, deadline, true},
		{"not terminating", scoped(corev1.ResourceQuotaScopeNotTerminating), pods, deadline, false},
		{"best effort", scoped(corev1.ResourceQuotaScopeBestEffort), pods, plain, true},
		{"priority class in", priority, pods, deadline, true},
		{"priority class not in", priority, pods, plain, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Matches(tt.rq, tt.gr, tt.obj); got != tt.want {
				t.Errorf("Matches = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPodConstraints(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{
		{Name: "a", Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}}},
		{Name: "b"},
	}}}
	err := PodConstraints([]corev1.ResourceName{"requests.cpu", "limits.memory", "pods"}, pod)
	want := "must specify limits.memory for: a,b; requests.cpu for: b"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
	if err := PodConstraints([]corev1.ResourceName{"pods", "count/pods"}, &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "a"}}}}); err != nil {
		t.Errorf("object counts need no stated resources: %v", err)
	}
}
