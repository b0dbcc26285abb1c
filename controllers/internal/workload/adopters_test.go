package workload

import (
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

func TestEnqueueAdopters(t *testing.T) {
	replicaSet := func(ns, name string, selector *metav1.LabelSelector) *appsv1.ReplicaSet {
		return &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: appsv1.ReplicaSetSpec{Selector: selector}}
	}
	c := fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).WithObjects(
		replicaSet("ns", "web", &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}),
		replicaSet("ns", "web-canary", &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"web"}}}}),
		replicaSet("ns", "db", &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}),
		replicaSet("ns", "empty", &metav1.LabelSelector{}),
		replicaSet("other", "web", &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}),
	).Build()
	h := EnqueueAdopters(c, &appsv1.ReplicaSetList{}, func(rs *appsv1.ReplicaSet) *metav1.LabelSelector { return rs.Spec.Selector })

	pod := func(rv string, labels map[string]string, mutate ...func(*corev1.Pod)) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", ResourceVersion: rv, Labels: labels}}
		for _, m := range mutate {
			m(p)
		}
		return p
	}
	controlled := func(p *corev1.Pod) {
		p.OwnerReferences = []metav1.OwnerReference{*NewControllerRef(&appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web", UID: "u"}}, "apps/v1", "ReplicaSet")}
	}
	deleting := func(p *corev1.Pod) { p.DeletionTimestamp = &metav1.Time{} }
	web := map[string]string{"app": "web"}
	db := map[string]string{"app": "db"}
	both := []string{"ns/web", "ns/web-canary"}

	tests := []struct {
		name     string
		create   *corev1.Pod
		old, cur *corev1.Pod
		want     []string
	}{
		{name: "new orphan wakes every matching owner of its namespace", create: pod("1", web), want: both},
		{name: "new orphan without labels wakes nobody", create: pod("1", nil)},
		{name: "new orphan being deleted wakes nobody", create: pod("1", web, deleting)},
		{name: "new controlled pod is not an orphan", create: pod("1", web, controlled)},
		{name: "relabelled orphan wakes its new matches", old: pod("1", web), cur: pod("2", db), want: []string{"ns/db"}},
		{name: "released pod wakes its matches", old: pod("1", web, controlled), cur: pod("2", web), want: both},
		{name: "orphan with unchanged labels wakes nobody", old: pod("1", web), cur: pod("2", web)},
		{name: "resync wakes nobody", old: pod("1", db), cur: pod("1", web)},
		{name: "orphan relabelled while being deleted wakes nobody", old: pod("1", db), cur: pod("2", web, deleting)},
		{name: "adopted pod wakes nobody here", old: pod("1", web), cur: pod("2", db, controlled)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
			defer q.ShutDown()
			if tt.create != nil {
				h.Create(t.Context(), event.CreateEvent{Object: tt.create}, q)
			} else {
				h.Update(t.Context(), event.UpdateEvent{ObjectOld: tt.old, ObjectNew: tt.cur}, q)
			}
			var got []string
			for q.Len() > 0 {
				req, _ := q.Get()
				got = append(got, req.String())
				q.Done(req)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("enqueued %v, want %v", got, tt.want)
			}
		})
	}
	// Deletions never wake an owner: none adopts a pod that is gone.
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
	defer q.ShutDown()
	h.Delete(t.Context(), event.DeleteEvent{Object: pod("1", web)}, q)
	if q.Len() != 0 {
		t.Errorf("deleting an orphan enqueued %d owners, want none", q.Len())
	}
}
