// Package history keeps the apps/v1 ControllerRevisions of DaemonSets and
// StatefulSets as kube-controller-manager does: one revision per distinct
// pod template, holding the strategic merge patch that restores that
// template (the same bytes kubectl compares and applies in
// `rollout history|undo`), named <owner>-<hash>, labelled with the
// template's labels and controller-revision-hash, controlled by its owner.
package history

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"tower.dev/tower/controllers/internal/workload"
)

// HashLabel is the label carrying a revision's hash.
const HashLabel = appsv1.ControllerRevisionHashLabelKey

// maxPrefixLen keeps <prefix>-<hash> within a name's 253 characters, as
// upstream truncates.
const maxPrefixLen = 223

// DefaultHistoryLimit is revisionHistoryLimit when the spec leaves it out.
const DefaultHistoryLimit = 10

// Patch is the data a revision of obj stores: a strategic merge patch that
// replaces spec.template wholesale. obj is encoded exactly as kubectl
// encodes it before comparing, so equal templates give equal bytes.
func Patch(obj runtime.Object) ([]byte, error) {
	encoded, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encoding %T: %w", obj, err)
	}
	var raw map[string]any
	if err := json.Unmarshal(encoded, &raw); err != nil {
		return nil, fmt.Errorf("decoding %T: %w", obj, err)
	}
	spec, _ := raw["spec"].(map[string]any)
	template, ok := spec["template"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%T has no spec.template", obj)
	}
	template["$patch"] = "replace"
	return json.Marshal(map[string]any{"spec": map[string]any{"template": template}})
}

// Template is the pod template revision cr restores when applied to obj.
func Template(obj runtime.Object, cr *appsv1.ControllerRevision) (*corev1.PodTemplateSpec, error) {
	encoded, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encoding %T: %w", obj, err)
	}
	patched, err := strategicpatch.StrategicMergePatch(encoded, cr.Data.Raw, obj)
	if err != nil {
		return nil, fmt.Errorf("applying revision %s: %w", cr.Name, err)
	}
	var restored struct {
		Spec struct {
			Template corev1.PodTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(patched, &restored); err != nil {
		return nil, fmt.Errorf("decoding revision %s: %w", cr.Name, err)
	}
	return &restored.Spec.Template, nil
}

// Hash names revision data; collisionCount changes it when two different
// revisions happen to hash alike.
func Hash(data []byte, collisionCount *int32) string {
	h := fnv.New32a()
	h.Write(data)
	if collisionCount != nil {
		h.Write([]byte(strconv.FormatInt(int64(*collisionCount), 10)))
	}
	return rand.SafeEncodeString(strconv.FormatUint(uint64(h.Sum32()), 10))
}

// Name is the name of owner's revision with the given hash.
func Name(owner, hash string) string {
	if len(owner) > maxPrefixLen {
		owner = owner[:maxPrefixLen]
	}
	return owner + "-" + hash
}

// Sort orders revisions by revision number, then age, then name.
func Sort(revisions []*appsv1.ControllerRevision) {
	sort.SliceStable(revisions, func(i, j int) bool {
		a, b := revisions[i], revisions[j]
		if a.Revision != b.Revision {
			return a.Revision < b.Revision
		}
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.CreationTimestamp.Before(&b.CreationTimestamp)
		}
		return a.Name < b.Name
	})
}

// Next is the revision number after the newest of revisions.
func Next(revisions []*appsv1.ControllerRevision) int64 {
	var highest int64
	for _, cr := range revisions {
		highest = max(highest, cr.Revision)
	}
	return highest + 1
}

// FindEqual returns the revisions holding data, oldest first.
func FindEqual(revisions []*appsv1.ControllerRevision, data []byte) []*appsv1.ControllerRevision {
	var equal []*appsv1.ControllerRevision
	for _, cr := range revisions {
		if bytes.Equal(cr.Data.Raw, data) {
			equal = append(equal, cr)
		}
	}
	return equal
}

// Store reads and writes one kind of owner's revisions through the API.
type Store struct {
	Client client.Client
	// Kind is the owners' kind, for the controller references.
	Kind schema.GroupVersionKind
	// APIReader reads the owner past the cache, to check it still exists
	// and is not being deleted before adopting an orphan.
	APIReader client.Reader
	// NewOwner returns an empty object of the owners' type.
	NewOwner func() client.Object
}

// Claim returns the revisions owner controls, after adopting orphans its
// selector matches and releasing owned ones it no longer matches, as
// upstream's ControllerRefManager does.
func (s Store) Claim(ctx context.Context, owner client.Object, selector labels.Selector) ([]*appsv1.ControllerRevision, error) {
	var list appsv1.ControllerRevisionList
	if err := s.Client.List(ctx, &list, client.InNamespace(owner.GetNamespace())); err != nil {
		return nil, fmt.Errorf("listing controllerrevisions: %w", err)
	}
	var owned []*appsv1.ControllerRevision
	checkedOwner := false
	for i := range list.Items {
		cr := &list.Items[i]
		ref := workload.ControllerRef(cr)
		matches := selector.Matches(labels.Set(cr.Labels))
		switch {
		case ref != nil && ref.UID == owner.GetUID() && matches:
			owned = append(owned, cr)
		case ref != nil && ref.UID == owner.GetUID():
			if owner.GetDeletionTimestamp() != nil {
				continue
			}
			if err := s.patchOwnerRefs(ctx, cr, map[string]any{"$patch": "delete", "uid": owner.GetUID()}); err != nil {
				return nil, fmt.Errorf("releasing controllerrevision %s: %w", cr.Name, err)
			}
		case ref == nil && matches && cr.DeletionTimestamp == nil && owner.GetDeletionTimestamp() == nil:
			if !checkedOwner {
				fresh := s.NewOwner()
				if err := s.APIReader.Get(ctx, client.ObjectKeyFromObject(owner), fresh); err != nil {
					return nil, fmt.Errorf("rechecking %s before adoption: %w", s.Kind.Kind, err)
				}
				if fresh.GetUID() != owner.GetUID() || fresh.GetDeletionTimestamp() != nil {
					return owned, nil
				}
				checkedOwner = true
			}
			ref := workload.NewControllerRef(owner, s.Kind.GroupVersion().String(), s.Kind.Kind)
			if err := s.patchOwnerRefs(ctx, cr, ref); err != nil {
				return nil, fmt.Errorf("adopting controllerrevision %s: %w", cr.Name, err)
			}
			cr.OwnerReferences = append(cr.OwnerReferences, *ref)
			owned = append(owned, cr)
		}
	}
	return owned, nil
}

func (s Store) patchOwnerRefs(ctx context.Context, cr *appsv1.ControllerRevision, ref any) error {
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"ownerReferences": []any{ref}, "uid": cr.UID},
	})
	if err != nil {
		return err
	}
	err = s.Client.Patch(ctx, cr, client.RawPatch(types.StrategicMergePatchType, patch))
	if apierrors.IsNotFound(err) || apierrors.IsInvalid(err) {
		return nil
	}
	return err
}

// New is owner's revision holding data with the given number, named and
// labelled for collisionCount.
func (s Store) New(owner client.Object, templateLabels map[string]string, data []byte, revision int64, collisionCount *int32) *appsv1.ControllerRevision {
	lbls := make(map[string]string, len(templateLabels)+1)
	for k, v := range templateLabels {
		lbls[k] = v
	}
	cr := &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:       owner.GetNamespace(),
			Labels:          lbls,
			Annotations:     owner.GetAnnotations(),
			OwnerReferences: []metav1.OwnerReference{*workload.NewControllerRef(owner, s.Kind.GroupVersion().String(), s.Kind.Kind)},
		},
		Data:     runtime.RawExtension{Raw: data},
		Revision: revision,
	}
	setName(cr, owner.GetName(), collisionCount)
	return cr
}

func setName(cr *appsv1.ControllerRevision, owner string, collisionCount *int32) {
	hash := Hash(cr.Data.Raw, collisionCount)
	cr.Name = Name(owner, hash)
	cr.Labels[HashLabel] = hash
}

// Create stores cr. When its name is taken by a revision with the same
// data, that one is returned; when by different data, *collisionCount
// goes up and the next name is tried, so the caller must write the count
// back to the owner's status.
func (s Store) Create(ctx context.Context, owner client.Object, cr *appsv1.ControllerRevision, collisionCount *int32) (*appsv1.ControllerRevision, error) {
	for {
		setName(cr, owner.GetName(), collisionCount)
		attempt := cr.DeepCopy()
		err := s.Client.Create(ctx, attempt)
		if err == nil {
			return attempt, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("creating controllerrevision %s: %w", cr.Name, err)
		}
		existing := &appsv1.ControllerRevision{}
		if err := s.Client.Get(ctx, client.ObjectKeyFromObject(cr), existing); err != nil {
			return nil, fmt.Errorf("reading controllerrevision %s: %w", cr.Name, err)
		}
		if ref := workload.ControllerRef(existing); bytes.Equal(existing.Data.Raw, cr.Data.Raw) && ref != nil && ref.UID == owner.GetUID() {
			return existing, nil
		}
		*collisionCount++
	}
}

// Renumber gives cr a new revision number: a rollback to an older template
// makes its revision the newest again.
func (s Store) Renumber(ctx context.Context, cr *appsv1.ControllerRevision, revision int64) (*appsv1.ControllerRevision, error) {
	if cr.Revision == revision {
		return cr, nil
	}
	updated := cr.DeepCopy()
	updated.Revision = revision
	if err := s.Client.Update(ctx, updated); err != nil {
		return nil, fmt.Errorf("renumbering controllerrevision %s to %d: %w", cr.Name, revision, err)
	}
	return updated, nil
}

// Truncate deletes the oldest revisions that are not live until at most
// limit non-live ones remain, as upstream's revisionHistoryLimit.
func (s Store) Truncate(ctx context.Context, revisions []*appsv1.ControllerRevision, live map[string]bool, limit int) error {
	var history []*appsv1.ControllerRevision
	for _, cr := range revisions {
		if !live[cr.Name] {
			history = append(history, cr)
		}
	}
	if len(history) <= limit {
		return nil
	}
	Sort(history)
	for _, cr := range history[:len(history)-limit] {
		uid := cr.UID
		if err := s.Client.Delete(ctx, cr, client.Preconditions{UID: &uid}); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("deleting controllerrevision %s: %w", cr.Name, err)
		}
	}
	return nil
}

// Sync returns owner's revision for data, making it the newest: an
// existing revision with the same data is renumbered if it is not the
// newest already (a rollback), otherwise a new one is created. revisions
// must be owner's claimed revisions.
func (s Store) Sync(ctx context.Context, owner client.Object, templateLabels map[string]string, data []byte, revisions []*appsv1.ControllerRevision, collisionCount *int32) (*appsv1.ControllerRevision, error) {
	Sort(revisions)
	equal := FindEqual(revisions, data)
	if n := len(equal); n > 0 {
		newest := equal[n-1]
		if newest == revisions[len(revisions)-1] {
			return newest, nil
		}
		return s.Renumber(ctx, newest, Next(revisions))
	}
	return s.Create(ctx, owner, s.New(owner, templateLabels, data, Next(revisions), collisionCount), collisionCount)
}
