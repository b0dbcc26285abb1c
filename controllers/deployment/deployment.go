// Package deployment rolls Deployments out through ReplicaSets, as
// kube-controller-manager's deployment controller does: one ReplicaSet per
// pod template (named by its pod-template-hash), RollingUpdate within
// maxSurge/maxUnavailable or Recreate, revisions in annotations so that
// `kubectl rollout history|undo` work, proportional scaling, pause and
// resume, revisionHistoryLimit, and the Progressing/Available conditions.
package deployment

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"tower.dev/tower/controllers/internal/workload"
)

// Name is the controller's name in --controllers.
const Name = "deployment"

var controllerKind = appsv1.SchemeGroupVersion.WithKind("Deployment")

// Reconciler is the Deployment controller.
type Reconciler struct {
	Client   client.Client
	Recorder recorder.EventRecorder
	// now is the clock for conditions and deadlines.
	now func() time.Time
}

// SetupWithManager registers the controller with mgr.
func SetupWithManager(mgr ctrl.Manager) error {
	r := &Reconciler{
		Client:   mgr.GetClient(),
		Recorder: mgr.GetEventRecorder("deployment-controller"),
		now:      time.Now,
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("deployment").
		For(&appsv1.Deployment{}).
		Owns(&appsv1.ReplicaSet{}).
		Watches(&appsv1.ReplicaSet{}, workload.EnqueueAdopters(mgr.GetClient(), &appsv1.DeploymentList{}, func(d *appsv1.Deployment) *metav1.LabelSelector { return d.Spec.Selector })).
		WithOptions(controller.Options{MaxConcurrentReconciles: 5}).
		Complete(r)
}

// Reconcile syncs one Deployment.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	d := &appsv1.Deployment{}
	if err := r.Client.Get(ctx, req.NamespacedName, d); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if d.DeletionTimestamp != nil {
		return reconcile.Result{}, nil
	}
	selector, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || selector.Empty() {
		r.Recorder.Eventf(d, nil, corev1.EventTypeWarning, "SelectingAll", "Sync", "This deployment is selecting all pods. A non-empty selector is required.")
		return reconcile.Result{}, nil
	}
	rsList, err := r.claimReplicaSets(ctx, d, selector)
	if err != nil {
		return reconcile.Result{}, err
	}
	if err := r.checkPausedConditions(ctx, d); err != nil {
		return reconcile.Result{}, err
	}
	if d.Spec.Paused || r.isScalingEvent(d, rsList) {
		return r.sync(ctx, d, rsList)
	}
	if d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		return r.rolloutRecreate(ctx, d, rsList)
	}
	return r.rolloutRolling(ctx, d, rsList)
}

// claimReplicaSets returns the ReplicaSets d controls after adopting
// matching orphans and releasing owned ones that no longer match.
func (r *Reconciler) claimReplicaSets(ctx context.Context, d *appsv1.Deployment, selector labels.Selector) ([]*appsv1.ReplicaSet, error) {
	var list appsv1.ReplicaSetList
	if err := r.Client.List(ctx, &list, client.InNamespace(d.Namespace)); err != nil {
		return nil, fmt.Errorf("listing replicasets: %w", err)
	}
	var owned []*appsv1.ReplicaSet
	for i := range list.Items {
		rs := &list.Items[i]
		ref := workload.ControllerRef(rs)
		matches := selector.Matches(labels.Set(rs.Labels))
		switch {
		case ref != nil && ref.UID == d.UID && matches:
			owned = append(owned, rs)
		case ref != nil && ref.UID == d.UID:
			if err := r.patchOwnerRefs(ctx, rs, map[string]any{"$patch": "delete", "uid": d.UID}); err != nil {
				return nil, fmt.Errorf("releasing replicaset %s: %w", rs.Name, err)
			}
		case ref == nil && matches && rs.DeletionTimestamp == nil:
			fresh := &appsv1.Deployment{}
			if err := r.Client.Get(ctx, client.ObjectKeyFromObject(d), fresh); err != nil {
				return nil, fmt.Errorf("rechecking deployment before adoption: %w", err)
			}
			if fresh.UID != d.UID || fresh.DeletionTimestamp != nil {
				continue
			}
			ref := workload.NewControllerRef(d, controllerKind.GroupVersion().String(), controllerKind.Kind)
			if err := r.patchOwnerRefs(ctx, rs, ref); err != nil {
				return nil, fmt.Errorf("adopting replicaset %s: %w", rs.Name, err)
			}
			rs.OwnerReferences = append(rs.OwnerReferences, *ref)
			owned = append(owned, rs)
		}
	}
	return owned, nil
}

func (r *Reconciler) patchOwnerRefs(ctx context.Context, rs *appsv1.ReplicaSet, ref any) error {
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"ownerReferences": []any{ref}, "uid": rs.UID},
	})
	if err != nil {
		return err
	}
	err = r.Client.Patch(ctx, rs, client.RawPatch(types.StrategicMergePatchType, patch))
	if apierrors.IsNotFound(err) || apierrors.IsInvalid(err) {
		return nil
	}
	return err
}
