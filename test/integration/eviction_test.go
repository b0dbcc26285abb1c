package integration

import (
	"context"
	"net/http"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	policyv1beta1 "k8s.io/api/policy/v1beta1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// evictionFixture creates pods in phase/readiness of choice and budgets
// whose status is set by hand, standing in for the disruption controller.
type evictionFixture struct {
	t         *testing.T
	ctx       context.Context
	ns        string
	clientset *kubernetes.Clientset
}

func (f *evictionFixture) pod(name string, labels map[string]string, phase corev1.PodPhase, ready bool) *corev1.Pod {
	f.t.Helper()
	pods := f.clientset.CoreV1().Pods(f.ns)
	pod, err := pods.Create(f.ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: corev1.PodSpec{
			NodeName:   "node-1",
			Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		f.t.Fatalf("create pod %s: %v", name, err)
	}
	readiness := corev1.ConditionFalse
	if ready {
		readiness = corev1.ConditionTrue
	}
	pod.Status.Phase = phase
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: readiness}}
	pod, err = pods.UpdateStatus(f.ctx, pod, metav1.UpdateOptions{})
	if err != nil {
		f.t.Fatalf("set status of pod %s: %v", name, err)
	}
	return pod
}

func (f *evictionFixture) budget(name string, labels map[string]string, status policyv1.PodDisruptionBudgetStatus) *policyv1.PodDisruptionBudget {
	f.t.Helper()
	pdbs := f.clientset.PolicyV1().PodDisruptionBudgets(f.ns)
	pdb, err := pdbs.Create(f.ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: ptr.To(intstr.FromInt32(status.DesiredHealthy)),
			Selector:     &metav1.LabelSelector{MatchLabels: labels},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		f.t.Fatalf("create pdb %s: %v", name, err)
	}
	pdb.Status = status
	pdb, err = pdbs.UpdateStatus(f.ctx, pdb, metav1.UpdateOptions{})
	if err != nil {
		f.t.Fatalf("set status of pdb %s: %v", name, err)
	}
	return pdb
}

func (f *evictionFixture) evict(name string, options *metav1.DeleteOptions) error {
	return f.clientset.PolicyV1().Evictions(f.ns).Evict(f.ctx, &policyv1.Eviction{
		ObjectMeta:    metav1.ObjectMeta{Name: name, Namespace: f.ns},
		DeleteOptions: options,
	})
}

func (f *evictionFixture) getPod(name string) (*corev1.Pod, error) {
	return f.clientset.CoreV1().Pods(f.ns).Get(f.ctx, name, metav1.GetOptions{})
}

func (f *evictionFixture) getBudget(name string) *policyv1.PodDisruptionBudget {
	f.t.Helper()
	pdb, err := f.clientset.PolicyV1().PodDisruptionBudgets(f.ns).Get(f.ctx, name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatalf("get pdb %s: %v", name, err)
	}
	return pdb
}

func newEvictionFixture(t *testing.T) *evictionFixture {
	return &evictionFixture{t: t, ctx: t.Context(), ns: controlPlane.CreateNamespace(t), clientset: controlPlane.Clientset()}
}

func expectBudgetViolation(t *testing.T, err error, cause string) {
	t.Helper()
	status, ok := err.(apierrors.APIStatus)
	if !ok || !apierrors.IsTooManyRequests(err) {
		t.Fatalf("eviction error = %v, want 429 TooManyRequests", err)
	}
	s := status.Status()
	if s.Message != "Cannot evict pod as it would violate the pod's disruption budget." {
		t.Errorf("message = %q", s.Message)
	}
	if s.Details == nil || len(s.Details.Causes) != 1 || s.Details.Causes[0].Type != policyv1.DisruptionBudgetCause || s.Details.Causes[0].Message != cause {
		t.Errorf("details = %+v, want one DisruptionBudget cause %q", s.Details, cause)
	}
}

// TestEvictionHonoursBudget: an eviction takes one disruption from the
// matching budget with a write to its status, records the pod in
// disruptedPods, marks the pod DisruptionTarget and deletes it; once the
// budget is spent the next eviction is a 429 naming the budget.
func TestEvictionHonoursBudget(t *testing.T) {
	f := newEvictionFixture(t)
	web := map[string]string{"app": "web"}
	for _, name := range []string{"web-1", "web-2", "web-3"} {
		f.pod(name, web, corev1.PodRunning, true)
	}
	f.budget("web", web, policyv1.PodDisruptionBudgetStatus{
		ObservedGeneration: 1, DisruptionsAllowed: 1, CurrentHealthy: 3, DesiredHealthy: 2, ExpectedPods: 3,
	})

	if err := f.evict("web-1", &metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](30)}); err != nil {
		t.Fatalf("first eviction: %v", err)
	}
	pod, err := f.getPod("web-1")
	if err != nil {
		t.Fatalf("evicted pod: %v", err)
	}
	if pod.DeletionTimestamp == nil || pod.DeletionGracePeriodSeconds == nil || *pod.DeletionGracePeriodSeconds != 30 {
		t.Errorf("evicted pod deletion = %v grace %v, want marked with the eviction's 30 s", pod.DeletionTimestamp, pod.DeletionGracePeriodSeconds)
	}
	if c := podCondition(pod, corev1.DisruptionTarget); c == nil || c.Status != corev1.ConditionTrue || c.Reason != "EvictionByEvictionAPI" {
		t.Errorf("DisruptionTarget condition = %+v", c)
	}
	pdb := f.getBudget("web")
	if pdb.Status.DisruptionsAllowed != 0 {
		t.Errorf("disruptionsAllowed = %d, want 0", pdb.Status.DisruptionsAllowed)
	}
	if _, ok := pdb.Status.DisruptedPods["web-1"]; !ok || len(pdb.Status.DisruptedPods) != 1 {
		t.Errorf("disruptedPods = %v, want web-1", pdb.Status.DisruptedPods)
	}
	if len(pdb.Status.Conditions) != 1 || pdb.Status.Conditions[0].Reason != policyv1.InsufficientPodsReason || pdb.Status.Conditions[0].Status != metav1.ConditionFalse {
		t.Errorf("conditions = %+v, want DisruptionAllowed=False InsufficientPods", pdb.Status.Conditions)
	}
	// The budget was written through its status subresource by the
	// server itself, as kube-apiserver's loopback client writes it.
	var serverEntry *metav1.ManagedFieldsEntry
	for i, e := range pdb.ManagedFields {
		if e.Manager == "kube-apiserver" {
			serverEntry = &pdb.ManagedFields[i]
		}
	}
	if serverEntry == nil || serverEntry.Subresource != "status" || serverEntry.Operation != metav1.ManagedFieldsOperationUpdate ||
		!strings.Contains(string(serverEntry.FieldsV1.Raw), `"f:disruptedPods"`) {
		t.Errorf("managedFields = %+v, want kube-apiserver's status update owning disruptedPods", pdb.ManagedFields)
	}

	expectBudgetViolation(t, f.evict("web-2", nil), "The disruption budget web needs 2 healthy pods and has 3 currently")
	if pod, err := f.getPod("web-2"); err != nil || pod.DeletionTimestamp != nil {
		t.Errorf("refused eviction touched web-2: %v %v", err, pod.DeletionTimestamp)
	}

	// A changed spec the controller has not seen yet: no disruption is
	// trusted until observedGeneration catches up.
	pdb.Spec.MinAvailable = ptr.To(intstr.FromInt32(1))
	if _, err := f.clientset.PolicyV1().PodDisruptionBudgets(f.ns).Update(f.ctx, pdb, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update pdb spec: %v", err)
	}
	expectBudgetViolation(t, f.evict("web-2", nil), "The disruption budget web is still being processed by the server.")
}

// TestEvictionWithoutBudget covers the cases that need no disruption: pods
// no budget selects, pods not yet running, unready pods of a budget that is
// met without them; dry runs change nothing; two budgets are refused.
func TestEvictionWithoutBudget(t *testing.T) {
	f := newEvictionFixture(t)
	web := map[string]string{"app": "web"}
	f.pod("web-ready", web, corev1.PodRunning, true)
	f.pod("web-pending", web, corev1.PodPending, false)
	f.pod("web-unready", web, corev1.PodRunning, false)
	f.pod("loner", map[string]string{"app": "loner"}, corev1.PodRunning, true)
	f.budget("web", web, policyv1.PodDisruptionBudgetStatus{ObservedGeneration: 1, CurrentHealthy: 1, DesiredHealthy: 1, ExpectedPods: 3})

	for _, name := range []string{"loner", "web-pending", "web-unready"} {
		if err := f.evict(name, nil); err != nil {
			t.Errorf("evict %s: %v", name, err)
			continue
		}
		if pod, err := f.getPod(name); err == nil && pod.DeletionTimestamp == nil {
			t.Errorf("%s not deleted by its eviction", name)
		}
	}
	if pdb := f.getBudget("web"); len(pdb.Status.DisruptedPods) != 0 {
		t.Errorf("evictions that need no disruption recorded %v", pdb.Status.DisruptedPods)
	}

	f.budget("spare", web, policyv1.PodDisruptionBudgetStatus{ObservedGeneration: 1, DisruptionsAllowed: 5, CurrentHealthy: 1, DesiredHealthy: 1})
	err := f.evict("web-ready", nil)
	if status, ok := err.(apierrors.APIStatus); !ok || status.Status().Code != http.StatusInternalServerError ||
		status.Status().Message != "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support." {
		t.Errorf("eviction under two budgets: %v", err)
	}

	f.budget("solo", map[string]string{"app": "solo"}, policyv1.PodDisruptionBudgetStatus{ObservedGeneration: 1, DisruptionsAllowed: 1, CurrentHealthy: 1, DesiredHealthy: 0})
	f.pod("solo", map[string]string{"app": "solo"}, corev1.PodRunning, true)
	if err := f.evict("solo", &metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Fatalf("dry-run eviction: %v", err)
	}
	if pod, err := f.getPod("solo"); err != nil || pod.DeletionTimestamp != nil || podCondition(pod, corev1.DisruptionTarget) != nil {
		t.Errorf("dry-run eviction changed the pod: %v", err)
	}
	if pdb := f.getBudget("solo"); pdb.Status.DisruptionsAllowed != 1 {
		t.Errorf("dry-run eviction took a disruption: %d left", pdb.Status.DisruptionsAllowed)
	}

	err = f.clientset.PolicyV1().Evictions(f.ns).Evict(f.ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: f.ns}})
	if !apierrors.IsNotFound(err) {
		t.Errorf("eviction of a missing pod: %v, want NotFound", err)
	}
}

// TestEvictionV1beta1Body: pods/eviction takes a policy/v1beta1 Eviction
// as kube-apiserver does, and refuses a body of another kind with a 400.
func TestEvictionV1beta1Body(t *testing.T) {
	f := newEvictionFixture(t)
	f.pod("old-client", map[string]string{"app": "old"}, corev1.PodRunning, true)
	err := f.clientset.PolicyV1beta1().Evictions(f.ns).Evict(f.ctx, &policyv1beta1.Eviction{
		ObjectMeta:    metav1.ObjectMeta{Name: "old-client", Namespace: f.ns},
		DeleteOptions: &metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](7)},
	})
	if err != nil {
		t.Fatalf("policy/v1beta1 eviction: %v", err)
	}
	pod, err := f.getPod("old-client")
	if err != nil || pod.DeletionTimestamp == nil || pod.DeletionGracePeriodSeconds == nil || *pod.DeletionGracePeriodSeconds != 7 {
		t.Fatalf("pod after a policy/v1beta1 eviction with a 7 s grace period: %v %+v", err, pod)
	}

	body := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"old-client"}}`
	err = f.clientset.CoreV1().RESTClient().Post().Namespace(f.ns).Resource("pods").Name("old-client").SubResource("eviction").
		SetHeader("Content-Type", "application/json").Body([]byte(body)).Do(f.ctx).Error()
	if !apierrors.IsBadRequest(err) {
		t.Errorf("eviction with a Pod body: %v, want 400", err)
	}
}

func podCondition(pod *corev1.Pod, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == t {
			return &pod.Status.Conditions[i]
		}
	}
	return nil
}
