package endpoints

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	policyv1beta1 "k8s.io/api/policy/v1beta1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"tower.dev/tower/apiserver/admission"
	"tower.dev/tower/apiserver/storage"
)

// maxDisruptedPods bounds status.disruptedPods: evictions the disruption
// controller has not yet confirmed. Beyond it evictions are refused, as
// kube-apiserver's MaxDisruptedPodSize does.
const maxDisruptedPods = 2000

// Upstream's reason and message for pods that carry a DisruptionTarget
// condition because of the eviction API.
const (
	evictionConditionReason  = "EvictionByEvictionAPI"
	evictionConditionMessage = "Eviction API: evicting"
	msgBudgetViolated        = "Cannot evict pod as it would violate the pod's disruption budget."
)

var podDisruptionBudgets = policyv1.SchemeGroupVersion.WithResource("poddisruptionbudgets")

// evict serves POST pods/{name}/eviction (policy/v1 Eviction) as
// kube-apiserver's EvictionREST does: a pod that has already disrupted its
// budget (terminal, pending, terminating) or that no budget covers is
// deleted; otherwise the one matching PodDisruptionBudget must allow a
// disruption, which is taken from status.disruptionsAllowed with a
// compare-and-swap on the budget and recorded in status.disruptedPods before
// the pod is deleted with the eviction's deleteOptions.
func (q *request) evict(ctx context.Context) {
	eviction, err := q.decodeEviction()
	if err != nil {
		q.fail(err)
		return
	}
	if eviction.Name != q.info.Name {
		q.fail(apierrors.NewBadRequest("name in URL does not match name in Eviction object"))
		return
	}
	options, err := q.evictionDeleteOptions(eviction)
	if err != nil {
		q.fail(err)
		return
	}
	dryRun := len(options.DryRun) > 0
	attrs, err := q.admit(ctx, admission.Create, eviction, nil, dryRun)
	if err == nil {
		err = q.validateAdmission(ctx, attrs)
	}
	if err != nil {
		q.fail(apiError(err, q.gr(), q.info.Name))
		return
	}
	if err := q.evictPod(ctx, options); err != nil {
		var status evictionStatus
		if errors.As(err, &status) {
			q.respond(ctx, int(status.Code), status.Status)
			return
		}
		q.fail(apiError(err, q.gr(), q.info.Name))
		return
	}
	q.respond(ctx, http.StatusCreated, createdStatus())
}

// decodeEviction reads the body as a policy/v1 Eviction, or as a
// policy/v1beta1 one, which kube-apiserver still accepts on pods/eviction
// (older clients, kubectl drain against old servers, send it).
func (q *request) decodeEviction() (*policyv1.Eviction, error) {
	gvk := policyv1.SchemeGroupVersion.WithKind("Eviction")
	obj, err := q.decodeBodyAs(gvk, nil)
	if err != nil {
		return nil, err
	}
	switch e := obj.(type) {
	case *policyv1.Eviction:
		return e, nil
	case *policyv1beta1.Eviction:
		return &policyv1.Eviction{ObjectMeta: e.ObjectMeta, DeleteOptions: e.DeleteOptions}, nil
	}
	return nil, cannotHandle(gvk, fmt.Errorf("the body is a %s", obj.GetObjectKind().GroupVersionKind()))
}

// evictionDeleteOptions are the eviction's deleteOptions with the request's
// dryRun parameter carried into them, as upstream's propagateDryRun does.
func (q *request) evictionDeleteOptions(eviction *policyv1.Eviction) (*metav1.DeleteOptions, error) {
	options := &metav1.DeleteOptions{}
	if eviction.DeleteOptions != nil {
		options = eviction.DeleteOptions.DeepCopy()
	}
	create, err := q.createOptions()
	if err != nil {
		return nil, err
	}
	if create.dryRun && len(options.DryRun) == 0 {
		options.DryRun = []string{metav1.DryRunAll}
	}
	for _, v := range options.DryRun {
		if v != metav1.DryRunAll {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("unsupported dryRun value %q", v))
		}
	}
	if options.GracePeriodSeconds != nil && *options.GracePeriodSeconds < 0 {
		options.GracePeriodSeconds = new(int64)
	}
	return options, nil
}

// evictionStatus is an answer other than success or an API error: upstream
// reports a pod under several budgets as a Failure status with code 500.
type evictionStatus struct{ *metav1.Status }

func (e evictionStatus) Error() string { return e.Message }

func (q *request) evictPod(ctx context.Context, options *metav1.DeleteOptions) error {
	pod := &corev1.Pod{}
	if err := q.Store.Get(ctx, q.key(q.info.Name), storage.GetOptions{}, pod); err != nil {
		return err
	}
	if disruptedAlready(pod) {
		if !terminalOrTerminating(pod) && resourceVersionUnset(options) {
			// A pending pod must not become ready between this read and
			// the delete without its budget being consulted.
			options = withResourceVersion(options, pod.ResourceVersion)
		}
		return q.disruptAndDelete(ctx, options)
	}
	pdbs, err := q.budgetsFor(ctx, pod)
	if err != nil {
		return err
	}
	if len(pdbs) > 1 {
		return evictionStatus{&metav1.Status{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"},
			Status:   metav1.StatusFailure,
			Message:  "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
			Code:     http.StatusInternalServerError,
		}}
	}
	if len(pdbs) == 0 {
		return q.disruptAndDelete(ctx, options)
	}
	pdb := &pdbs[0]
	if unhealthyEvictable(pod, pdb) {
		// The pod does not count towards the budget's healthy pods, so its
		// eviction takes nothing from the budget as long as it stays
		// unhealthy: the delete is conditional on the state just read.
		original := options
		if resourceVersionUnset(options) {
			options = withResourceVersion(options, pod.ResourceVersion)
		}
		err := q.disruptAndDelete(ctx, options)
		if err != nil && apierrors.IsConflict(apiError(err, q.gr(), q.info.Name)) && resourceVersionUnset(original) {
			return budgetViolated(fmt.Sprintf("The disruption budget %s is still being processed by the server.", pdb.Name))
		}
		return err
	}
	if err := q.takeDisruption(ctx, pdb, pod.Name, len(options.DryRun) > 0); err != nil {
		return err
	}
	return q.disruptAndDelete(ctx, options)
}

// disruptedAlready: evicting a pod that is terminal, not yet running, or
// already terminating costs its budget nothing more.
func disruptedAlready(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodPending || terminalOrTerminating(pod)
}

func terminalOrTerminating(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed || pod.DeletionTimestamp != nil
}

// unhealthyEvictable: an unready pod may go without a disruption when its
// budget says AlwaysAllow, or (IfHealthyBudget, the default) when the budget
// is met without it.
func unhealthyEvictable(pod *corev1.Pod, pdb *policyv1.PodDisruptionBudget) bool {
	if podReady(pod) {
		return false
	}
	if p := pdb.Spec.UnhealthyPodEvictionPolicy; p != nil && *p == policyv1.AlwaysAllow {
		return true
	}
	return pdb.Status.DesiredHealthy > 0 && pdb.Status.CurrentHealthy >= pdb.Status.DesiredHealthy
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func resourceVersionUnset(options *metav1.DeleteOptions) bool {
	return options.Preconditions == nil || options.Preconditions.ResourceVersion == nil
}

func withResourceVersion(options *metav1.DeleteOptions, rv string) *metav1.DeleteOptions {
	options = options.DeepCopy()
	if options.Preconditions == nil {
		options.Preconditions = &metav1.Preconditions{}
	}
	options.Preconditions.ResourceVersion = &rv
	return options
}

// budgetsFor lists the PodDisruptionBudgets of the pod's namespace whose
// selector matches the pod. A budget with an invalid or empty selector
// covers nothing, as upstream.
func (q *request) budgetsFor(ctx context.Context, pod *corev1.Pod) ([]policyv1.PodDisruptionBudget, error) {
	budgets, ok := q.peers[podDisruptionBudgets]
	if !ok {
		return nil, nil
	}
	list := &policyv1.PodDisruptionBudgetList{}
	err := budgets.Store.GetList(ctx, budgets.KeyPrefix+"/"+pod.Namespace+"/", storage.ListOptions{
		Predicate: storage.SelectionPredicate{Label: labels.Everything(), Field: fields.Everything(), GetAttrs: budgets.Resource.Strategy.GetAttrs},
		Recursive: true,
	}, list)
	if err != nil {
		return nil, fmt.Errorf("list poddisruptionbudgets of %s: %w", pod.Namespace, err)
	}
	var out []policyv1.PodDisruptionBudget
	for _, pdb := range list.Items {
		selector, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || selector.Empty() || !selector.Matches(labels.Set(pod.Labels)) {
			continue
		}
		out = append(out, pdb)
	}
	return out, nil
}

// takeDisruption takes one disruption from the budget's status through
// poddisruptionbudgets/status, as kube-apiserver's eviction handler does
// through its loopback client: the status strategy, validation, admission
// (as the server) and managedFields apply, and the compare-and-swap
// re-decides on the newest budget when another eviction or the disruption
// controller wrote in between.
func (q *request) takeDisruption(ctx context.Context, pdb *policyv1.PodDisruptionBudget, podName string, dryRun bool) error {
	budget, ctx, ok := q.asServer(ctx, podDisruptionBudgets, pdb.Namespace, pdb.Name, "status")
	if !ok {
		return fmt.Errorf("poddisruptionbudgets are not served")
	}
	opts := writeOptions{dryRun: dryRun, validation: metav1.FieldValidationIgnore, manager: serverFieldManager}
	_, err := budget.updateObject(ctx, func(current runtime.Object) (runtime.Object, error) {
		stored, ok := current.(*policyv1.PodDisruptionBudget)
		if !ok {
			return nil, fmt.Errorf("poddisruptionbudget %s/%s is a %T", pdb.Namespace, pdb.Name, current)
		}
		if err := checkDisruptionAllowed(stored); err != nil {
			return nil, err
		}
		updated := stored.DeepCopy()
		updated.Status.DisruptionsAllowed--
		if updated.Status.DisruptionsAllowed == 0 {
			setDisruptionAllowedCondition(updated)
		}
		if updated.Status.DisruptedPods == nil {
			updated.Status.DisruptedPods = map[string]metav1.Time{}
		}
		updated.Status.DisruptedPods[podName] = metav1.NewTime(time.Now())
		return budget.track(current, updated, opts), nil
	}, dryRun)
	if err != nil {
		return apiError(err, budget.gr(), pdb.Name)
	}
	return nil
}

// checkDisruptionAllowed refuses an eviction the budget's status does not
// allow, with kube-apiserver's errors: 429 with a DisruptionBudget cause
// while the status is stale or the budget is exhausted, 403 when the status
// is inconsistent.
func checkDisruptionAllowed(pdb *policyv1.PodDisruptionBudget) error {
	budgetResource := policyv1.Resource("poddisruptionbudget")
	switch {
	case pdb.Status.ObservedGeneration < pdb.Generation:
		return budgetViolated(fmt.Sprintf("The disruption budget %s is still being processed by the server.", pdb.Name))
	case pdb.Status.DisruptionsAllowed < 0:
		return apierrors.NewForbidden(budgetResource, pdb.Name, errors.New("pdb disruptions allowed is negative"))
	case len(pdb.Status.DisruptedPods) > maxDisruptedPods:
		return apierrors.NewForbidden(budgetResource, pdb.Name, errors.New("DisruptedPods map too big - too many evictions not confirmed by PDB controller"))
	case pdb.Status.DisruptionsAllowed == 0:
		return budgetViolated(fmt.Sprintf("The disruption budget %s needs %d healthy pods and has %d currently",
			pdb.Name, pdb.Status.DesiredHealthy, pdb.Status.CurrentHealthy))
	}
	return nil
}

func budgetViolated(cause string) error {
	err := apierrors.NewTooManyRequests(msgBudgetViolated, 0)
	err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes, metav1.StatusCause{
		Type: policyv1.DisruptionBudgetCause, Message: cause,
	})
	return err
}

// setDisruptionAllowedCondition records that the budget allows no more
// disruptions, as the eviction handler does upstream when it takes the last.
func setDisruptionAllowedCondition(pdb *policyv1.PodDisruptionBudget) {
	apimeta.SetStatusCondition(&pdb.Status.Conditions, metav1.Condition{
		Type:               policyv1.DisruptionAllowedCondition,
		Status:             metav1.ConditionFalse,
		Reason:             policyv1.InsufficientPodsReason,
		ObservedGeneration: pdb.Status.ObservedGeneration,
	})
}

// disruptAndDelete marks the pod with the DisruptionTarget condition
// through pods/status and deletes it with the eviction's options, both
// below admission as upstream's eviction handler writes them through its
// store. The condition update honours the options' preconditions, and a
// resourceVersion precondition moves to the revision that update wrote.
func (q *request) disruptAndDelete(ctx context.Context, options *metav1.DeleteOptions) error {
	if len(options.DryRun) == 0 {
		status := q.inStorage("status")
		out, err := status.updateObject(ctx, func(current runtime.Object) (runtime.Object, error) {
			if err := checkPreconditions(current, options.Preconditions); err != nil {
				return nil, err
			}
			pod, ok := current.(*corev1.Pod)
			if !ok {
				return nil, fmt.Errorf("eviction of %T", current)
			}
			pod = pod.DeepCopy()
			setDisruptionTarget(pod)
			return pod, nil
		}, false)
		if err != nil {
			return err
		}
		if !resourceVersionUnset(options) {
			m, err := apimeta.Accessor(out)
			if err != nil {
				return err
			}
			options = withResourceVersion(options, m.GetResourceVersion())
		}
	}
	_, _, err := q.inStorage("").deleteObject(ctx, q.info.Name, options)
	return err
}

func setDisruptionTarget(pod *corev1.Pod) {
	cond := corev1.PodCondition{
		Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue,
		Reason: evictionConditionReason, Message: evictionConditionMessage, LastTransitionTime: metav1.Now(),
	}
	for i, c := range pod.Status.Conditions {
		if c.Type == cond.Type {
			if c.Status == cond.Status {
				cond.LastTransitionTime = c.LastTransitionTime
			}
			pod.Status.Conditions[i] = cond
			return
		}
	}
	pod.Status.Conditions = append(pod.Status.Conditions, cond)
}
