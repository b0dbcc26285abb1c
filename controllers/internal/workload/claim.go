package workload

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ClaimPods returns the pods owner controls, deciding as
// kube-controller-manager's pod controller-ref manager does: pods it
// controls that match selector stay; those that no longer match are
// released (unless owner is being deleted); orphans that match selector
// and adoptable, and are not being deleted themselves, are adopted, once a read of owner from the API server (not
// the cache; apiReader) shows it still exists and is not being deleted.
// kind is owner's kind, for the owner reference. pods may be the cache's
// own objects (listed with client.UnsafeDisableDeepCopy): they are never
// modified, and an adopted pod is returned as the patch answered it.
func ClaimPods(ctx context.Context, c client.Client, apiReader client.Reader, owner client.Object, kind schema.GroupVersionKind, selector labels.Selector, pods []corev1.Pod, adoptable func(*corev1.Pod) bool) ([]*corev1.Pod, error) {
	var owned []*corev1.Pod
	var canAdopt *bool
	for i := range pods {
		pod := &pods[i]
		ref := ControllerRef(pod)
		matches := selector.Matches(labels.Set(pod.Labels))
		switch {
		case ref != nil && ref.UID == owner.GetUID() && matches:
			owned = append(owned, pod)
		case ref != nil && ref.UID == owner.GetUID():
			if owner.GetDeletionTimestamp() == nil {
				if err := releasePod(ctx, c, pod, owner.GetUID()); err != nil {
					return nil, err
				}
			}
		case ref == nil && matches && pod.DeletionTimestamp == nil && owner.GetDeletionTimestamp() == nil && (adoptable == nil || adoptable(pod)):
			if canAdopt == nil {
				ok, err := stillAdopting(ctx, apiReader, owner)
				if err != nil {
					return nil, err
				}
				canAdopt = &ok
			}
			if !*canAdopt {
				continue
			}
			adopted, err := adoptPod(ctx, c, owner, kind, pod)
			if err != nil {
				return nil, err
			}
			if adopted != nil {
				owned = append(owned, adopted)
			}
		}
	}
	return owned, nil
}

// stillAdopting reads owner afresh: a cached copy may miss that it was
// deleted, or deleted and created again under the same name.
func stillAdopting(ctx context.Context, apiReader client.Reader, owner client.Object) (bool, error) {
	fresh, ok := owner.DeepCopyObject().(client.Object)
	if !ok {
		return false, fmt.Errorf("%T is not a client.Object", owner)
	}
	if err := apiReader.Get(ctx, client.ObjectKeyFromObject(owner), fresh); err != nil {
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("rechecking %s before adoption: %w", owner.GetName(), err)
	}
	return fresh.GetUID() == owner.GetUID() && fresh.GetDeletionTimestamp() == nil, nil
}

// adoptPod makes owner the controller of an orphan and returns the pod as
// patched, or nil when it is gone. The patch names the pod's UID, so a pod
// deleted and recreated meanwhile is not adopted.
func adoptPod(ctx context.Context, c client.Client, owner client.Object, kind schema.GroupVersionKind, pod *corev1.Pod) (*corev1.Pod, error) {
	ref := NewControllerRef(owner, kind.GroupVersion().String(), kind.Kind)
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"ownerReferences": []any{ref}, "uid": pod.UID},
	})
	if err != nil {
		return nil, err
	}
	// Patch writes the answer into the object it is given: not the
	// caller's, which may be the cache's.
	adopted := pod.DeepCopy()
	if err := c.Patch(ctx, adopted, client.RawPatch(types.StrategicMergePatchType, patch)); err != nil {
		if apierrors.IsNotFound(err) || apierrors.IsInvalid(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("adopting pod %s: %w", pod.Name, err)
	}
	return adopted, nil
}

// releasePod removes the owner reference to ownerUID from pod.
func releasePod(ctx context.Context, c client.Client, pod *corev1.Pod, ownerUID types.UID) error {
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{
			"ownerReferences": []any{map[string]any{"$patch": "delete", "uid": ownerUID}},
			"uid":             pod.UID,
		},
	})
	if err != nil {
		return err
	}
	if err := c.Patch(ctx, pod.DeepCopy(), client.RawPatch(types.StrategicMergePatchType, patch)); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsInvalid(err) {
		return fmt.Errorf("releasing pod %s: %w", pod.Name, err)
	}
	return nil
}
