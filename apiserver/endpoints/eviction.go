package endpoints

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
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
	eviction := &policyv1.Eviction{}
	if err := q.decodeBodyInto(policyv1.SchemeGroupVersion.WithKind("Eviction"), eviction); err != nil {
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

// takeDisruption takes one disruption from the budget's status with a
// compare-and-swap on the stored budget, re-deciding on its newest state
// when another eviction or the disruption controller wrote in between.
func (q *request) takeDisruption(ctx context.Context, pdb *policyv1.PodDisruptionBudget, podName string, dryRun bool) error {
	budgets := q.peers[podDisruptionBudgets]
	key := budgets.KeyPrefix + "/" + pdb.Namespace + "/" + pdb.Name
	err := budgets.Store.GuaranteedUpdate(ctx, key, &policyv1.PodDisruptionBudget{}, false, nil, func(current runtime.Object) (runtime.Object, error) {
		pdb, ok := current.(*policyv1.PodDisruptionBudget)
		if !ok {
			return nil, fmt.Errorf("poddisruptionbudget %s is a %T", key, current)
		}
		pdb = pdb.DeepCopy()
		if err := checkDisruptionAllowed(pdb); err != nil {
			return nil, err
		}
		pdb.Status.DisruptionsAllowed--
		if pdb.Status.DisruptionsAllowed == 0 {
			setDisruptionAllowedCondition(pdb)
		}
		if dryRun {
			return nil, errDryRun{obj: pdb}
		}
		if pdb.Status.DisruptedPods == nil {
			pdb.Status.DisruptedPods = map[string]metav1.Time{}
		}
		pdb.Status.DisruptedPods[podName] = metav1.NewTime(time.Now())
		return pdb, nil
	}, nil)
	var dry errDryRun
	if errors.As(err, &dry) {
		return nil
	}
	if err != nil {
		return apiError(err, budgets.Resource.GroupResource(), pdb.Name)
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

// disruptAndDelete marks the pod with the DisruptionTarget condition and
// deletes it with the eviction's options. The condition update honours the
// options' preconditions, and a resourceVersion precondition moves to the
// revision that update wrote.
func (q *request) disruptAndDelete(ctx context.Context, options *metav1.DeleteOptions) error {
	if len(options.DryRun) == 0 {
		out := &corev1.Pod{}
		err := q.Store.GuaranteedUpdate(ctx, q.key(q.info.Name), out, false, nil, func(current runtime.Object) (runtime.Object, error) {
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
		}, nil)
		if err != nil {
			return err
		}
		if !resourceVersionUnset(options) {
			options = withResourceVersion(options, out.ResourceVersion)
		}
	}
	_, _, err := q.deleteObject(ctx, q.info.Name, options)
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
