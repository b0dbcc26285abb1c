package endpoints

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"tower.dev/tower/apiserver/storage"
)

// bind serves POST pods/{name}/binding: the scheduler's way to set
// spec.nodeName once, as kube-apiserver's BindingREST does.
func (q *request) bind(ctx context.Context) {
	binding := &corev1.Binding{}
	gvk := corev1.SchemeGroupVersion.WithKind("Binding")
	if err := q.decodeBodyInto(gvk, binding); err != nil {
		q.fail(err)
		return
	}
	if binding.Name == "" {
		binding.Name = q.info.Name
	}
	if errs := validateBinding(binding, q.info.Name); len(errs) > 0 {
		q.fail(apierrors.NewInvalid(gvk.GroupKind(), binding.Name, errs))
		return
	}
	opts, err := q.createOptions()
	if err != nil {
		q.fail(err)
		return
	}
	bindingGR := q.gr()
	bindingGR.Resource += "/binding"
	out := q.Resource.New()
	err = q.Store.GuaranteedUpdate(ctx, q.key(q.info.Name), out, false, nil, func(current runtime.Object) (runtime.Object, error) {
		pod, ok := current.(*corev1.Pod)
		if !ok {
			return nil, fmt.Errorf("binding of %T", current)
		}
		if binding.UID != "" && binding.UID != pod.UID {
			return nil, storage.NewError(storage.ErrCodePreconditionFailed, q.info.Name,
				"Precondition failed: UID in precondition: %v, UID in object meta: %v", binding.UID, pod.UID)
		}
		if pod.DeletionTimestamp != nil {
			return nil, apierrors.NewConflict(bindingGR, q.info.Name, fmt.Errorf("pod %s is being deleted, cannot be assigned to a host", pod.Name))
		}
		if pod.Spec.NodeName != "" {
			return nil, apierrors.NewConflict(bindingGR, q.info.Name, fmt.Errorf("pod %s is already assigned to node %q", pod.Name, pod.Spec.NodeName))
		}
		pod.Spec.NodeName = binding.Target.Name
		for k, v := range binding.Annotations {
			if pod.Annotations == nil {
				pod.Annotations = map[string]string{}
			}
			pod.Annotations[k] = v
		}
		setPodScheduled(pod)
		if opts.dryRun {
			return nil, errDryRun{obj: pod}
		}
		return pod, nil
	}, nil)
	var dry errDryRun
	if err != nil && !errors.As(err, &dry) {
		q.fail(apiError(err, q.gr(), q.info.Name))
		return
	}
	q.respond(ctx, http.StatusCreated, createdStatus())
}

// createdStatus answers a subresource create that returns no object.
func createdStatus() *metav1.Status {
	return &metav1.Status{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"},
		Status:   metav1.StatusSuccess,
		Code:     http.StatusCreated,
	}
}

func validateBinding(b *corev1.Binding, podName string) field.ErrorList {
	var errs field.ErrorList
	if b.Name != podName {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), b.Name, "must match the pod name"))
	}
	if b.Target.Kind != "" && b.Target.Kind != "Node" {
		errs = append(errs, field.NotSupported(field.NewPath("target", "kind"), b.Target.Kind, []string{"Node", "<empty>"}))
	}
	if b.Target.Name == "" {
		errs = append(errs, field.Required(field.NewPath("target", "name"), ""))
	}
	return errs
}

// setPodScheduled records PodScheduled=True as the binding does upstream.
func setPodScheduled(pod *corev1.Pod) {
	now := metav1.Now()
	for i := range pod.Status.Conditions {
		c := &pod.Status.Conditions[i]
		if c.Type == corev1.PodScheduled {
			if c.Status != corev1.ConditionTrue {
				c.Status, c.LastTransitionTime, c.Reason, c.Message = corev1.ConditionTrue, now, "", ""
			}
			return
		}
	}
	pod.Status.Conditions = append(pod.Status.Conditions, corev1.PodCondition{
		Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now,
	})
}
