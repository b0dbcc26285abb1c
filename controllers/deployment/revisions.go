package deployment

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"
	"sort"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"tower.dev/tower/controllers/internal/workload"
)

// The annotations the deployment controller and kubectl share.
const (
	RevisionAnnotation        = "deployment.kubernetes.io/revision"
	RevisionHistoryAnnotation = "deployment.kubernetes.io/revision-history"
	DesiredReplicasAnnotation = "deployment.kubernetes.io/desired-replicas"
	MaxReplicasAnnotation     = "deployment.kubernetes.io/max-replicas"
	lastAppliedAnnotation     = "kubectl.kubernetes.io/last-applied-configuration"
	rollbackToAnnotation      = "deprecated.deployment.rollback.to"
)

// DefaultLabelKey is the label that tells a ReplicaSet's pods from another
// template's.
const DefaultLabelKey = appsv1.DefaultDeploymentUniqueLabelKey

// skippedAnnotations stay on the Deployment and are not copied to its
// ReplicaSets.
var skippedAnnotations = map[string]bool{
	lastAppliedAnnotation:     true,
	RevisionAnnotation:        true,
	RevisionHistoryAnnotation: true,
	DesiredReplicasAnnotation: true,
	MaxReplicasAnnotation:     true,
	rollbackToAnnotation:      true,
}

// ComputeHash names a pod template: it changes whenever the template does,
// and with collisionCount when two templates happen to hash alike.
func ComputeHash(template *corev1.PodTemplateSpec, collisionCount *int32) string {
	h := fnv.New32a()
	encoded, err := json.Marshal(template)
	if err != nil {
		// A PodTemplateSpec always encodes; fall back to its printed form.
		encoded = fmt.Appendf(nil, "%#v", template)
	}
	h.Write(encoded)
	if collisionCount != nil {
		h.Write([]byte(strconv.FormatInt(int64(*collisionCount), 10)))
	}
	return rand.SafeEncodeString(strconv.FormatUint(uint64(h.Sum32()), 10))
}

// equalIgnoreHash compares two templates as if neither had the
// pod-template-hash label.
func equalIgnoreHash(a, b *corev1.PodTemplateSpec) bool {
	a, b = a.DeepCopy(), b.DeepCopy()
	delete(a.Labels, DefaultLabelKey)
	delete(b.Labels, DefaultLabelKey)
	if len(a.Labels) == 0 {
		a.Labels = nil
	}
	if len(b.Labels) == 0 {
		b.Labels = nil
	}
	return apiequality.Semantic.DeepEqual(a, b)
}

// findNewReplicaSet is the oldest ReplicaSet running d's current template.
func findNewReplicaSet(d *appsv1.Deployment, rsList []*appsv1.ReplicaSet) *appsv1.ReplicaSet {
	sorted := append([]*appsv1.ReplicaSet(nil), rsList...)
	sort.SliceStable(sorted, func(i, j int) bool { return olderFirst(sorted[i], sorted[j]) })
	for _, rs := range sorted {
		if equalIgnoreHash(&rs.Spec.Template, &d.Spec.Template) {
			return rs
		}
	}
	return nil
}

func olderFirst(a, b *appsv1.ReplicaSet) bool {
	if a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.Name < b.Name
	}
	return a.CreationTimestamp.Before(&b.CreationTimestamp)
}

// Revision reads an object's revision annotation (0 when absent).
func Revision(obj metav1.Object) int64 {
	v, err := strconv.ParseInt(obj.GetAnnotations()[RevisionAnnotation], 10, 64)
	if err != nil {
		return 0
	}
	return v
}

// replicaSets splits d's ReplicaSets into the one running the current
// template (created when missing and create is set) and the rest, and
// keeps revision annotations on both the new ReplicaSet and d in step.
func (r *Reconciler) replicaSets(ctx context.Context, d *appsv1.Deployment, rsList []*appsv1.ReplicaSet, create bool) (*appsv1.ReplicaSet, []*appsv1.ReplicaSet, error) {
	newRS := findNewReplicaSet(d, rsList)
	var oldRSs []*appsv1.ReplicaSet
	var maxOldRevision int64
	for _, rs := range rsList {
		if newRS != nil && rs.UID == newRS.UID {
			continue
		}
		oldRSs = append(oldRSs, rs)
		maxOldRevision = max(maxOldRevision, Revision(rs))
	}
	newRevision := strconv.FormatInt(maxOldRevision+1, 10)

	var err error
	switch {
	case newRS != nil:
		newRS, err = r.syncNewReplicaSet(ctx, d, newRS, newRevision)
	case create:
		newRS, err = r.createNewReplicaSet(ctx, d, oldRSs, newRevision)
	}
	if err != nil || newRS == nil {
		return newRS, oldRSs, err
	}
	if d.Annotations[RevisionAnnotation] != newRS.Annotations[RevisionAnnotation] {
		if d.Annotations == nil {
			d.Annotations = map[string]string{}
		}
		d.Annotations[RevisionAnnotation] = newRS.Annotations[RevisionAnnotation]
		if err := r.Client.Update(ctx, d); err != nil {
			return nil, nil, fmt.Errorf("recording revision on deployment: %w", err)
		}
	}
	return newRS, oldRSs, nil
}

// syncNewReplicaSet brings an existing ReplicaSet for the current template
// up to date: newest revision, d's annotations, minReadySeconds.
func (r *Reconciler) syncNewReplicaSet(ctx context.Context, d *appsv1.Deployment, rs *appsv1.ReplicaSet, newRevision string) (*appsv1.ReplicaSet, error) {
	updated := rs.DeepCopy()
	changed := setNewReplicaSetAnnotations(d, updated, newRevision, true)
	if updated.Spec.MinReadySeconds != d.Spec.MinReadySeconds {
		updated.Spec.MinReadySeconds = d.Spec.MinReadySeconds
		changed = true
	}
	if !changed {
		return rs, nil
	}
	if err := r.Client.Update(ctx, updated); err != nil {
		return nil, fmt.Errorf("updating replicaset %s: %w", rs.Name, err)
	}
	if cond := getCondition(d.Status, appsv1.DeploymentProgressing); cond == nil && hasProgressDeadline(d) {
		msg := fmt.Sprintf("Found new replica set %q", rs.Name)
		setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, foundNewRSReason, msg, r.now()))
		if err := r.Client.Status().Update(ctx, d); err != nil {
			return nil, fmt.Errorf("updating deployment status: %w", err)
		}
	}
	return updated, nil
}

func (r *Reconciler) createNewReplicaSet(ctx context.Context, d *appsv1.Deployment, oldRSs []*appsv1.ReplicaSet, newRevision string) (*appsv1.ReplicaSet, error) {
	hash := ComputeHash(&d.Spec.Template, d.Status.CollisionCount)
	template := d.Spec.Template.DeepCopy()
	template.Labels = withLabel(template.Labels, DefaultLabelKey, hash)
	selector := d.Spec.Selector.DeepCopy()
	selector.MatchLabels = withLabel(selector.MatchLabels, DefaultLabelKey, hash)

	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name:            d.Name + "-" + hash,
			Namespace:       d.Namespace,
			OwnerReferences: []metav1.OwnerReference{*workload.NewControllerRef(d, controllerKind.GroupVersion().String(), controllerKind.Kind)},
			Labels:          template.Labels,
		},
		Spec: appsv1.ReplicaSetSpec{
			Replicas:        new(int32),
			MinReadySeconds: d.Spec.MinReadySeconds,
			Selector:        selector,
			Template:        *template,
		},
	}
	allRSs := append(append([]*appsv1.ReplicaSet(nil), oldRSs...), rs)
	replicas := newReplicasForRollout(d, allRSs, rs)
	if !allSettled(oldRSs) {
		// Old pods the cache has not caught up with may still count
		// against maxSurge: start empty and grow on a later sync.
		replicas = 0
	}
	rs.Spec.Replicas = &replicas
	setNewReplicaSetAnnotations(d, rs, newRevision, false)
	setReplicasAnnotations(rs, replicasOf(d), replicasOf(d)+maxSurge(d))

	err := r.Client.Create(ctx, rs)
	if apierrors.IsAlreadyExists(err) {
		existing := &appsv1.ReplicaSet{}
		if getErr := r.Client.Get(ctx, client.ObjectKeyFromObject(rs), existing); getErr != nil {
			return nil, fmt.Errorf("reading replicaset %s after a name clash: %w", rs.Name, getErr)
		}
		if ref := workload.ControllerRef(existing); ref != nil && ref.UID == d.UID && equalIgnoreHash(&existing.Spec.Template, &d.Spec.Template) {
			return existing, nil
		}
		// Another template took this hash: bump the collision count so
		// the next sync picks another name.
		count := int32(0)
		if d.Status.CollisionCount != nil {
			count = *d.Status.CollisionCount
		}
		count++
		d.Status.CollisionCount = &count
		if updErr := r.Client.Status().Update(ctx, d); updErr != nil {
			return nil, fmt.Errorf("recording hash collision: %w", updErr)
		}
		return nil, fmt.Errorf("replicaset name %s is taken by another template; retrying with collision count %d", rs.Name, count)
	}
	if err != nil {
		msg := fmt.Sprintf("Failed to create new replica set %q: %v", rs.Name, err)
		r.Recorder.Eventf(d, nil, corev1.EventTypeWarning, failedRSCreateReason, "Create", "%s", msg)
		return nil, fmt.Errorf("creating replicaset %s: %w", rs.Name, err)
	}
	if replicas > 0 {
		r.Recorder.Eventf(d, rs, corev1.EventTypeNormal, "ScalingReplicaSet", "Scale", "Scaled up replica set %s from 0 to %d", rs.Name, replicas)
	}
	if hasProgressDeadline(d) {
		msg := fmt.Sprintf("Created new replica set %q", rs.Name)
		setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, newRSCreatedReason, msg, r.now()))
		if err := r.Client.Status().Update(ctx, d); err != nil {
			return nil, fmt.Errorf("updating deployment status: %w", err)
		}
	}
	return rs, nil
}

func withLabel(in map[string]string, key, value string) map[string]string {
	out := maps.Clone(in)
	if out == nil {
		out = map[string]string{}
	}
	out[key] = value
	return out
}

// setNewReplicaSetAnnotations copies d's annotations to rs and moves rs to
// newRevision when it is behind, remembering its earlier revisions. It
// reports whether anything changed.
func setNewReplicaSetAnnotations(d *appsv1.Deployment, rs *appsv1.ReplicaSet, newRevision string, exists bool) bool {
	changed := false
	if rs.Annotations == nil {
		rs.Annotations = map[string]string{}
	}
	for k, v := range d.Annotations {
		if skippedAnnotations[k] || rs.Annotations[k] == v {
			continue
		}
		rs.Annotations[k] = v
		changed = true
	}
	oldRevision := rs.Annotations[RevisionAnnotation]
	oldNum, _ := strconv.ParseInt(oldRevision, 10, 64)
	newNum, _ := strconv.ParseInt(newRevision, 10, 64)
	if oldRevision == "" || oldNum < newNum {
		rs.Annotations[RevisionAnnotation] = newRevision
		changed = true
		if exists && oldRevision != "" {
			history := rs.Annotations[RevisionHistoryAnnotation]
			if history == "" {
				history = oldRevision
			} else {
				history = strings.Join([]string{history, oldRevision}, ",")
			}
			rs.Annotations[RevisionHistoryAnnotation] = history
		}
	}
	return changed
}

// setReplicasAnnotations records the deployment size rs was last scaled
// for, which is how a later sync tells a scaling event from a rollout.
func setReplicasAnnotations(rs *appsv1.ReplicaSet, desired, maxReplicas int32) bool {
	if rs.Annotations == nil {
		rs.Annotations = map[string]string{}
	}
	d, m := strconv.Itoa(int(desired)), strconv.Itoa(int(maxReplicas))
	if rs.Annotations[DesiredReplicasAnnotation] == d && rs.Annotations[MaxReplicasAnnotation] == m {
		return false
	}
	rs.Annotations[DesiredReplicasAnnotation] = d
	rs.Annotations[MaxReplicasAnnotation] = m
	return true
}
