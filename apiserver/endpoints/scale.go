package endpoints

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"tower.dev/tower/apiserver/registry"
	"tower.dev/tower/apiserver/storage"
)

var scaleGVK = autoscalingv1.SchemeGroupVersion.WithKind("Scale")

// jsonPath splits ".spec.replicas" into its fields.
func jsonPath(path string) []string {
	return strings.Split(strings.TrimPrefix(path, "."), ".")
}

// scaleOf shows obj as an autoscaling/v1 Scale, reading the paths the
// resource's scale description names.
func scaleOf(desc *registry.ScaleSubresource, obj runtime.Object) (*autoscalingv1.Scale, error) {
	content, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, fmt.Errorf("convert %T for scale: %w", obj, err)
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	scale := &autoscalingv1.Scale{
		ObjectMeta: metav1.ObjectMeta{
			Name: m.GetName(), Namespace: m.GetNamespace(), UID: m.GetUID(),
			ResourceVersion: m.GetResourceVersion(), CreationTimestamp: m.GetCreationTimestamp(),
		},
	}
	scale.SetGroupVersionKind(scaleGVK)
	if replicas, found, err := unstructured.NestedInt64(content, jsonPath(desc.SpecReplicasPath)...); err == nil && found {
		scale.Spec.Replicas = int32(replicas)
	}
	if replicas, found, err := unstructured.NestedInt64(content, jsonPath(desc.StatusReplicasPath)...); err == nil && found {
		scale.Status.Replicas = int32(replicas)
	}
	if desc.LabelSelectorPath != "" {
		if scale.Status.Selector, err = selectorString(content, desc.LabelSelectorPath); err != nil {
			return nil, err
		}
	}
	return scale, nil
}

// selectorString reads a selector kept as a LabelSelector or as its string
// form and returns the string form.
func selectorString(content map[string]any, path string) (string, error) {
	value, found, err := unstructured.NestedFieldNoCopy(content, jsonPath(path)...)
	if err != nil || !found || value == nil {
		return "", nil
	}
	switch v := value.(type) {
	case string:
		return v, nil
	case map[string]any:
		selector := &metav1.LabelSelector{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(v, selector); err != nil {
			return "", fmt.Errorf("read selector at %s: %w", path, err)
		}
		parsed, err := metav1.LabelSelectorAsSelector(selector)
		if err != nil {
			return "", fmt.Errorf("parse selector at %s: %w", path, err)
		}
		return parsed.String(), nil
	}
	return "", nil
}

// withReplicas returns a copy of obj whose desired replica count is the
// Scale's.
func (q *request) withReplicas(obj runtime.Object, scale *autoscalingv1.Scale) (runtime.Object, error) {
	content, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, fmt.Errorf("convert %T for scale: %w", obj, err)
	}
	if err := unstructured.SetNestedField(content, int64(scale.Spec.Replicas), jsonPath(q.Resource.Scale.SpecReplicasPath)...); err != nil {
		return nil, fmt.Errorf("set replicas: %w", err)
	}
	out := q.Resource.New()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(content, out); err != nil {
		return nil, fmt.Errorf("convert scaled object: %w", err)
	}
	return out, nil
}

func validateScale(scale *autoscalingv1.Scale) field.ErrorList {
	var errs field.ErrorList
	if scale.Spec.Replicas < 0 {
		errs = append(errs, field.Invalid(field.NewPath("spec", "replicas"), scale.Spec.Replicas, "must be greater than or equal to 0"))
	}
	return errs
}

func (q *request) getScale(ctx context.Context) {
	obj := q.Resource.New()
	if err := q.Store.Get(ctx, q.key(q.info.Name), storage.GetOptions{}, obj); err != nil {
		q.fail(apiError(err, q.gr(), q.info.Name))
		return
	}
	q.respondScale(ctx, http.StatusOK, obj)
}

func (q *request) respondScale(ctx context.Context, code int, obj runtime.Object) {
	scale, err := scaleOf(q.Resource.Scale, obj)
	if err != nil {
		q.fail(apierrors.NewInternalError(err))
		return
	}
	out, err := negotiateOutput(q.r, q.scope.Codecs)
	if err != nil {
		q.fail(err)
		return
	}
	writeObject(ctx, q.w, q.r, q.scope, out, code, scale)
}

func (q *request) updateScale(ctx context.Context) {
	opts, err := q.updateOptions()
	if err != nil {
		q.fail(err)
		return
	}
	requested := &autoscalingv1.Scale{}
	if err := q.decodeBodyInto(scaleGVK, requested); err != nil {
		q.fail(err)
		return
	}
	q.scaleTo(ctx, opts, func(*autoscalingv1.Scale) (*autoscalingv1.Scale, []string, error) { return requested, nil, nil })
}

func (q *request) patchScale(ctx context.Context) {
	p, err := q.readPatch()
	if err != nil {
		q.fail(err)
		return
	}
	q.scaleTo(ctx, p.opts, func(current *autoscalingv1.Scale) (*autoscalingv1.Scale, []string, error) {
		patched, warnings, err := p.patchObject(q.scope, current, func() runtime.Object { return &autoscalingv1.Scale{} })
		if err != nil {
			return nil, nil, err
		}
		return patched.(*autoscalingv1.Scale), warnings, nil
	})
}

// scaleTo writes the replica count of the Scale that newScale computes from
// the current one to the parent object and answers with the new Scale.
func (q *request) scaleTo(ctx context.Context, opts writeOptions, newScale func(current *autoscalingv1.Scale) (*autoscalingv1.Scale, []string, error)) {
	var warnings []string
	newState := func(current runtime.Object) (runtime.Object, error) {
		currentScale, err := scaleOf(q.Resource.Scale, current)
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		scale, scaleWarnings, err := newScale(currentScale)
		if err != nil {
			return nil, err
		}
		warnings = scaleWarnings
		if scale.Name != "" && scale.Name != q.info.Name {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", scale.Name, q.info.Name))
		}
		if errs := validateScale(scale); len(errs) > 0 {
			return nil, apierrors.NewInvalid(scaleGVK.GroupKind(), q.info.Name, errs)
		}
		obj, err := q.withReplicas(current, scale)
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		objMeta, err := meta.Accessor(obj)
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		objMeta.SetResourceVersion(scale.ResourceVersion)
		if scale.UID != "" {
			objMeta.SetUID(scale.UID)
		}
		return q.track(current, obj, opts), nil
	}
	out, err := q.updateObject(ctx, newState, opts.dryRun)
	if err != nil {
		q.fail(apiError(err, q.gr(), q.info.Name))
		return
	}
	addWarnings(q.w, warnings)
	q.respondScale(ctx, http.StatusOK, out)
}
