package admission

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"tower.dev/tower/apiserver/storage"
	"tower.dev/tower/internal/quota"
)

// Lister lists the stored objects of any served resource in a namespace
// with a consistent read.
type Lister func(ctx context.Context, gr schema.GroupResource, namespace string) ([]runtime.Object, error)

// ResourceQuota charges every new object against the quotas of its
// namespace and refuses it when a quota's hard limit would be exceeded.
// The charge is a compare-and-swap on each quota's status.used, so
// concurrent creates never admit more than the quota allows. A quota's
// usage is computed from the stored objects when the quota is written (or
// its status lacks a limited resource); the resourcequota controller
// recomputes it after deletions.
type ResourceQuota struct {
	Quotas Objects
	List   Lister
	// Now is the clock pod usage is judged by (time.Now when nil).
	Now    func() time.Time
	lookup liveLookup
}

// Admit implements Mutator: a quota being written gets its status.
func (r *ResourceQuota) Admit(ctx context.Context, a *Attributes) error {
	if a.Resource.Group != "" || a.Resource.Resource != "resourcequotas" || a.Subresource != "" || (a.Operation != Create && a.Operation != Update) {
		return nil
	}
	rq, ok := a.Object.(*corev1.ResourceQuota)
	if !ok {
		return nil
	}
	if a.Operation == Update {
		if old, ok := a.OldObject.(*corev1.ResourceQuota); ok && quota.Equal(old.Spec.Hard, rq.Spec.Hard) && quota.Equal(old.Status.Hard, rq.Spec.Hard) {
			return nil
		}
	}
	return r.recompute(ctx, rq)
}

// recompute sets status.hard from spec and status.used from the stored
// objects.
func (r *ResourceQuota) recompute(ctx context.Context, rq *corev1.ResourceQuota) error {
	used, err := quota.Used(rq, r.now(), func(gr schema.GroupResource) ([]any, error) {
		objs, err := r.List(ctx, gr, rq.Namespace)
		out := make([]any, len(objs))
		for i, obj := range objs {
			out[i] = obj
		}
		return out, err
	})
	if err != nil {
		return apierrors.NewInternalError(fmt.Errorf("compute usage of quota %s/%s: %w", rq.Namespace, rq.Name, err))
	}
	rq.Status.Hard = rq.Spec.DeepCopy().Hard
	rq.Status.Used = used
	return nil
}

func (r *ResourceQuota) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Validate implements Validator: the charge for a new object.
func (r *ResourceQuota) Validate(ctx context.Context, a *Attributes) error {
	if a.Operation != Create || a.Subresource != "" || !a.Resource.Namespaced || a.Object == nil {
		return nil
	}
	gr := a.Resource.GroupResource()
	usage := quota.Usage(gr, a.Object, r.now())
	list := &corev1.ResourceQuotaList{}
	if err := r.lookup.list(ctx, r.Quotas, a.Namespace, list); err != nil {
		return err
	}
	var charged []chargedQuota
	for i := range list.Items {
		rq := &list.Items[i]
		limited := limitedBy(rq, gr)
		if len(limited) == 0 || !quota.Matches(rq, gr, a.Object) {
			continue
		}
		if pod, ok := a.Object.(*corev1.Pod); ok {
			if err := quota.PodConstraints(limited, pod); err != nil {
				r.release(ctx, charged)
				return forbidden(a, fmt.Sprintf("failed quota: %s: %v", rq.Name, err))
			}
		}
		requested := quota.Mask(usage, limited)
		if len(requested) == 0 {
			continue
		}
		if err := r.charge(ctx, a, rq.Name, requested); err != nil {
			r.release(ctx, charged)
			return err
		}
		charged = append(charged, chargedQuota{name: rq.Name, namespace: a.Namespace, requested: requested})
	}
	return nil
}

// limitedBy names the resources the quota limits that objects of gr use.
func limitedBy(rq *corev1.ResourceQuota, gr schema.GroupResource) []corev1.ResourceName {
	var out []corev1.ResourceName
	for _, name := range quota.Names(rq.Spec.Hard) {
		if slices.Contains(quota.ResourcesFor([]corev1.ResourceName{name}), gr) {
			out = append(out, name)
		}
	}
	return out
}

type chargedQuota struct {
	name, namespace string
	requested       corev1.ResourceList
}

// errExceeded carries a refusal out of the quota update.
type errExceeded struct{ err error }

func (e errExceeded) Error() string { return e.err.Error() }

// errDryRunFits ends the quota update of a dry run that fits, unwritten.
type errDryRunFits struct{}

func (errDryRunFits) Error() string { return "dry run fits the quota" }

// charge adds requested to the quota's status.used unless that exceeds
// status.hard; the update retries on concurrent writers, re-checking each
// time against the state it replaces.
func (r *ResourceQuota) charge(ctx context.Context, a *Attributes, name string, requested corev1.ResourceList) error {
	out := &corev1.ResourceQuota{}
	err := r.Quotas.Store.GuaranteedUpdate(ctx, r.Quotas.key(a.Namespace, name), out, false, nil, func(current runtime.Object) (runtime.Object, error) {
		rq := current.(*corev1.ResourceQuota).DeepCopy()
		if !quota.Equal(rq.Status.Hard, rq.Spec.Hard) || !hasUsage(rq) {
			if err := r.recompute(ctx, rq); err != nil {
				return nil, err
			}
		}
		used := rq.Status.Used.DeepCopy()
		quota.Add(used, requested)
		if exceeded := quota.Exceeded(quota.Mask(used, quota.Names(requested)), rq.Status.Hard); len(exceeded) > 0 {
			return nil, errExceeded{forbidden(a, fmt.Sprintf("exceeded quota: %s, requested: %s, used: %s, limited: %s", rq.Name,
				quota.String(quota.Mask(requested, exceeded)), quota.String(quota.Mask(rq.Status.Used, exceeded)), quota.String(quota.Mask(rq.Status.Hard, exceeded))))}
		}
		if a.DryRun {
			return nil, errDryRunFits{}
		}
		rq.Status.Used = used
		return rq, nil
	}, nil)
	var exceeded errExceeded
	switch {
	case errors.As(err, &exceeded):
		return exceeded.err
	case errors.As(err, &errDryRunFits{}):
		return nil
	case storage.IsNotFound(err):
		// The quota went away since it was listed: nothing to charge.
		return nil
	case err != nil:
		var status apierrors.APIStatus
		if errors.As(err, &status) {
			return err
		}
		return apierrors.NewInternalError(fmt.Errorf("charge quota %s/%s: %w", a.Namespace, name, err))
	}
	return nil
}

// hasUsage: status.used names every limited resource.
func hasUsage(rq *corev1.ResourceQuota) bool {
	for name := range rq.Spec.Hard {
		if _, ok := rq.Status.Used[name]; !ok {
			return false
		}
	}
	return true
}

// release gives back charges when a later quota refuses the object (or
// the write is a dry run).
func (r *ResourceQuota) release(ctx context.Context, charged []chargedQuota) {
	for _, c := range slices.Backward(charged) {
		out := &corev1.ResourceQuota{}
		_ = r.Quotas.Store.GuaranteedUpdate(ctx, r.Quotas.key(c.namespace, c.name), out, true, nil, func(current runtime.Object) (runtime.Object, error) {
			rq := current.(*corev1.ResourceQuota).DeepCopy()
			quota.Subtract(rq.Status.Used, c.requested)
			return rq, nil
		}, nil)
	}
}
