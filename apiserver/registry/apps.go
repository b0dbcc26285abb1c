package registry

import (
	"context"
	"fmt"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

var (
	specPath                  = field.NewPath("spec")
	deploymentStrategyTypes   = []appsv1.DeploymentStrategyType{appsv1.RecreateDeploymentStrategyType, appsv1.RollingUpdateDeploymentStrategyType}
	daemonSetStrategyTypes    = []appsv1.DaemonSetUpdateStrategyType{appsv1.OnDeleteDaemonSetStrategyType, appsv1.RollingUpdateDaemonSetStrategyType}
	statefulSetStrategyTypes  = []appsv1.StatefulSetUpdateStrategyType{appsv1.OnDeleteStatefulSetStrategyType, appsv1.RollingUpdateStatefulSetStrategyType}
	pvcRetentionPolicyTypes   = []appsv1.PersistentVolumeClaimRetentionPolicyType{appsv1.DeletePersistentVolumeClaimRetentionPolicyType, appsv1.RetainPersistentVolumeClaimRetentionPolicyType}
	defaultRevisionHistory    = int32(10)
	defaultProgressDeadline   = int32(600)
	defaultRollingUpdateBound = "25%"
)

// deploymentStrategy: generation moves with spec and with annotations
// (rollbacks and pauses were once annotation-driven, and controllers still
// watch observedGeneration for them).
type deploymentStrategy struct{ objectStrategy }

func (deploymentStrategy) Default(obj runtime.Object) {
	d := obj.(*appsv1.Deployment)
	if d.Spec.Replicas == nil {
		d.Spec.Replicas = ptr.To[int32](1)
	}
	st := &d.Spec.Strategy
	if st.Type == "" {
		st.Type = appsv1.RollingUpdateDeploymentStrategyType
	}
	if st.Type == appsv1.RollingUpdateDeploymentStrategyType {
		if st.RollingUpdate == nil {
			st.RollingUpdate = &appsv1.RollingUpdateDeployment{}
		}
		if st.RollingUpdate.MaxUnavailable == nil {
			st.RollingUpdate.MaxUnavailable = intOrPercent(defaultRollingUpdateBound)
		}
		if st.RollingUpdate.MaxSurge == nil {
			st.RollingUpdate.MaxSurge = intOrPercent(defaultRollingUpdateBound)
		}
	}
	if d.Spec.RevisionHistoryLimit == nil {
		d.Spec.RevisionHistoryLimit = ptr.To(defaultRevisionHistory)
	}
	if d.Spec.ProgressDeadlineSeconds == nil {
		d.Spec.ProgressDeadlineSeconds = ptr.To(defaultProgressDeadline)
	}
	defaultPodTemplate(&d.Spec.Template)
}

func (deploymentStrategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	d := obj.(*appsv1.Deployment)
	d.Status = appsv1.DeploymentStatus{}
	d.Generation = 1
}

func (deploymentStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	d, oldD := obj.(*appsv1.Deployment), old.(*appsv1.Deployment)
	d.Status = oldD.Status
	changed := !equality.Semantic.DeepEqual(d.Spec, oldD.Spec) || !equality.Semantic.DeepEqual(d.Annotations, oldD.Annotations)
	bumpGeneration(d, oldD, changed)
}

func (s deploymentStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	d := obj.(*appsv1.Deployment)
	return append(s.validateMeta(&d.ObjectMeta), validateDeploymentSpec(&d.Spec)...)
}

func validateDeploymentSpec(spec *appsv1.DeploymentSpec) field.ErrorList {
	errs := validateNonNegativePtr(spec.Replicas, specPath.Child("replicas"))
	errs = append(errs, validateWorkloadSelector(spec.Selector, spec.Template.Labels, "deployment", specPath)...)
	errs = append(errs, validatePodTemplate(&spec.Template, specPath.Child("template"))...)
	errs = append(errs, validateAlwaysRestartTemplate(&spec.Template, "ReplicaSet", specPath.Child("template"))...)
	errs = append(errs, validateDeploymentStrategy(&spec.Strategy, specPath.Child("strategy"))...)
	errs = append(errs, validateNonNegative(int64(spec.MinReadySeconds), specPath.Child("minReadySeconds"))...)
	errs = append(errs, validateNonNegativePtr(spec.RevisionHistoryLimit, specPath.Child("revisionHistoryLimit"))...)
	if spec.ProgressDeadlineSeconds != nil {
		pp := specPath.Child("progressDeadlineSeconds")
		errs = append(errs, validateNonNegative(int64(*spec.ProgressDeadlineSeconds), pp)...)
		if *spec.ProgressDeadlineSeconds <= spec.MinReadySeconds {
			errs = append(errs, field.Invalid(pp, *spec.ProgressDeadlineSeconds, "must be greater than minReadySeconds"))
		}
	}
	return errs
}

func validateDeploymentStrategy(st *appsv1.DeploymentStrategy, p *field.Path) field.ErrorList {
	errs := validateEnum(st.Type, deploymentStrategyTypes, p.Child("type"))
	switch st.Type {
	case appsv1.RecreateDeploymentStrategyType:
		if st.RollingUpdate != nil {
			errs = append(errs, field.Forbidden(p.Child("rollingUpdate"), "may not be specified when strategy `type` is 'Recreate'"))
		}
	case appsv1.RollingUpdateDeploymentStrategyType:
		if st.RollingUpdate == nil {
			break
		}
		rp := p.Child("rollingUpdate")
		errs = append(errs, validateIntOrPercent(st.RollingUpdate.MaxUnavailable, rp.Child("maxUnavailable"))...)
		errs = append(errs, validateIntOrPercent(st.RollingUpdate.MaxSurge, rp.Child("maxSurge"))...)
		if isZeroIntOrPercent(st.RollingUpdate.MaxUnavailable) && isZeroIntOrPercent(st.RollingUpdate.MaxSurge) {
			errs = append(errs, field.Invalid(rp.Child("maxUnavailable"), st.RollingUpdate.MaxUnavailable, "may not be 0 when `maxSurge` is 0"))
		}
		errs = append(errs, validateNotOver100Percent(st.RollingUpdate.MaxUnavailable, rp.Child("maxUnavailable"))...)
	}
	return errs
}

func (s deploymentStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	d, oldD := obj.(*appsv1.Deployment), old.(*appsv1.Deployment)
	errs := s.validateMetaUpdate(&d.ObjectMeta, &oldD.ObjectMeta)
	errs = append(errs, validateDeploymentSpec(&d.Spec)...)
	return append(errs, validateImmutable(d.Spec.Selector, oldD.Spec.Selector, specPath.Child("selector"))...)
}

func (s deploymentStrategy) GetAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	d, ok := obj.(*appsv1.Deployment)
	if !ok {
		return nil, nil, fmt.Errorf("not a deployment: %T", obj)
	}
	return labels.Set(d.Labels), s.fieldsFor(&d.ObjectMeta, nil), nil
}

func validateDeploymentStatus(obj, _ runtime.Object) field.ErrorList {
	st := obj.(*appsv1.Deployment).Status
	return validateReplicaCounts(field.NewPath("status"), map[string]int32{
		"replicas": st.Replicas, "updatedReplicas": st.UpdatedReplicas, "readyReplicas": st.ReadyReplicas,
		"availableReplicas": st.AvailableReplicas, "unavailableReplicas": st.UnavailableReplicas,
	}, st.ObservedGeneration, st.CollisionCount)
}

// validateReplicaCounts checks the non-negative counters every workload
// status has.
func validateReplicaCounts(p *field.Path, counts map[string]int32, observedGeneration int64, collisionCount *int32) field.ErrorList {
	var errs field.ErrorList
	for name, v := range counts {
		errs = append(errs, validateNonNegative(int64(v), p.Child(name))...)
	}
	errs = append(errs, validateNonNegative(observedGeneration, p.Child("observedGeneration"))...)
	return append(errs, validateNonNegativePtr(collisionCount, p.Child("collisionCount"))...)
}

// replicaSetStrategy: generation follows spec; status.replicas is
// selectable (the deployment controller lists by it).
type replicaSetStrategy struct{ objectStrategy }

func (replicaSetStrategy) Default(obj runtime.Object) {
	rs := obj.(*appsv1.ReplicaSet)
	if rs.Spec.Replicas == nil {
		rs.Spec.Replicas = ptr.To[int32](1)
	}
	defaultPodTemplate(&rs.Spec.Template)
}

func (s replicaSetStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	rs := obj.(*appsv1.ReplicaSet)
	return append(s.validateMeta(&rs.ObjectMeta), validateReplicaSetSpec(&rs.Spec)...)
}

func validateReplicaSetSpec(spec *appsv1.ReplicaSetSpec) field.ErrorList {
	errs := validateNonNegativePtr(spec.Replicas, specPath.Child("replicas"))
	errs = append(errs, validateNonNegative(int64(spec.MinReadySeconds), specPath.Child("minReadySeconds"))...)
	// Upstream reports an empty ReplicaSet selector with the deployment wording.
	errs = append(errs, validateWorkloadSelector(spec.Selector, spec.Template.Labels, "deployment", specPath)...)
	errs = append(errs, validatePodTemplate(&spec.Template, specPath.Child("template"))...)
	return append(errs, validateAlwaysRestartTemplate(&spec.Template, "ReplicaSet", specPath.Child("template"))...)
}

func (s replicaSetStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	rs, oldRS := obj.(*appsv1.ReplicaSet), old.(*appsv1.ReplicaSet)
	errs := s.validateMetaUpdate(&rs.ObjectMeta, &oldRS.ObjectMeta)
	errs = append(errs, validateReplicaSetSpec(&rs.Spec)...)
	return append(errs, validateImmutable(rs.Spec.Selector, oldRS.Spec.Selector, specPath.Child("selector"))...)
}

func (s replicaSetStrategy) GetAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	rs, ok := obj.(*appsv1.ReplicaSet)
	if !ok {
		return nil, nil, fmt.Errorf("not a replicaset: %T", obj)
	}
	return labels.Set(rs.Labels), s.fieldsFor(&rs.ObjectMeta, fields.Set{
		"status.replicas": strconv.Itoa(int(rs.Status.Replicas)),
	}), nil
}

func validateReplicaSetStatus(obj, _ runtime.Object) field.ErrorList {
	st := obj.(*appsv1.ReplicaSet).Status
	errs := validateReplicaCounts(field.NewPath("status"), map[string]int32{
		"replicas": st.Replicas, "fullyLabeledReplicas": st.FullyLabeledReplicas,
		"readyReplicas": st.ReadyReplicas, "availableReplicas": st.AvailableReplicas,
	}, st.ObservedGeneration, nil)
	if st.ReadyReplicas > st.Replicas {
		errs = append(errs, field.Invalid(field.NewPath("status", "readyReplicas"), st.ReadyReplicas, "cannot be greater than status.replicas"))
	}
	if st.AvailableReplicas > st.ReadyReplicas {
		errs = append(errs, field.Invalid(field.NewPath("status", "availableReplicas"), st.AvailableReplicas, "cannot be greater than readyReplicas"))
	}
	return errs
}

// statefulSetStrategy: most of the spec is fixed after creation.
type statefulSetStrategy struct{ objectStrategy }

func (statefulSetStrategy) Default(obj runtime.Object) {
	ss := obj.(*appsv1.StatefulSet)
	if ss.Spec.Replicas == nil {
		ss.Spec.Replicas = ptr.To[int32](1)
	}
	if ss.Spec.PodManagementPolicy == "" {
		ss.Spec.PodManagementPolicy = appsv1.OrderedReadyPodManagement
	}
	us := &ss.Spec.UpdateStrategy
	if us.Type == "" {
		us.Type = appsv1.RollingUpdateStatefulSetStrategyType
	}
	if us.Type == appsv1.RollingUpdateStatefulSetStrategyType {
		if us.RollingUpdate == nil {
			us.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{}
		}
		if us.RollingUpdate.Partition == nil {
			us.RollingUpdate.Partition = ptr.To[int32](0)
		}
		// MaxUnavailableStatefulSet is on by default since 1.35.
		if us.RollingUpdate.MaxUnavailable == nil {
			us.RollingUpdate.MaxUnavailable = intOrInt(1)
		}
	}
	if ss.Spec.RevisionHistoryLimit == nil {
		ss.Spec.RevisionHistoryLimit = ptr.To(defaultRevisionHistory)
	}
	if ss.Spec.PersistentVolumeClaimRetentionPolicy == nil {
		ss.Spec.PersistentVolumeClaimRetentionPolicy = &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{}
	}
	rp := ss.Spec.PersistentVolumeClaimRetentionPolicy
	if rp.WhenDeleted == "" {
		rp.WhenDeleted = appsv1.RetainPersistentVolumeClaimRetentionPolicyType
	}
	if rp.WhenScaled == "" {
		rp.WhenScaled = appsv1.RetainPersistentVolumeClaimRetentionPolicyType
	}
	for i := range ss.Spec.VolumeClaimTemplates {
		pvc := &ss.Spec.VolumeClaimTemplates[i]
		defaultPVCSpec(&pvc.Spec)
		if pvc.Status.Phase == "" {
			pvc.Status.Phase = corev1.ClaimPending
		}
	}
	defaultPodTemplate(&ss.Spec.Template)
}

func (s statefulSetStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	ss := obj.(*appsv1.StatefulSet)
	return append(s.validateMeta(&ss.ObjectMeta), validateStatefulSetSpec(&ss.Spec)...)
}

func validateStatefulSetSpec(spec *appsv1.StatefulSetSpec) field.ErrorList {
	var errs field.ErrorList
	switch spec.PodManagementPolicy {
	case "":
		errs = append(errs, field.Required(specPath.Child("podManagementPolicy"), ""))
	case appsv1.OrderedReadyPodManagement, appsv1.ParallelPodManagement:
	default:
		errs = append(errs, field.Invalid(specPath.Child("podManagementPolicy"), spec.PodManagementPolicy,
			fmt.Sprintf("must be '%s' or '%s'", appsv1.OrderedReadyPodManagement, appsv1.ParallelPodManagement)))
	}
	up := specPath.Child("updateStrategy")
	errs = append(errs, validateEnum(spec.UpdateStrategy.Type, statefulSetStrategyTypes, up.Child("type"))...)
	if spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType && spec.UpdateStrategy.RollingUpdate != nil {
		errs = append(errs, field.Invalid(up.Child("rollingUpdate"), spec.UpdateStrategy.RollingUpdate,
			fmt.Sprintf("only allowed for updateStrategy '%s'", appsv1.RollingUpdateStatefulSetStrategyType)))
	}
	if ru := spec.UpdateStrategy.RollingUpdate; ru != nil {
		errs = append(errs, validateNonNegativePtr(ru.Partition, up.Child("rollingUpdate", "partition"))...)
		if ru.MaxUnavailable != nil {
			errs = append(errs, validateIntOrPercent(ru.MaxUnavailable, up.Child("rollingUpdate", "maxUnavailable"))...)
			if isZeroIntOrPercent(ru.MaxUnavailable) {
				errs = append(errs, field.Invalid(up.Child("rollingUpdate", "maxUnavailable"), ru.MaxUnavailable, "cannot be 0"))
			}
		}
	}
	if rp := spec.PersistentVolumeClaimRetentionPolicy; rp != nil {
		pp := specPath.Child("persistentVolumeClaimRetentionPolicy")
		errs = append(errs, validateEnum(rp.WhenDeleted, pvcRetentionPolicyTypes, pp.Child("whenDeleted"))...)
		errs = append(errs, validateEnum(rp.WhenScaled, pvcRetentionPolicyTypes, pp.Child("whenScaled"))...)
	}
	if spec.Ordinals != nil {
		errs = append(errs, validateNonNegative(int64(spec.Ordinals.Start), specPath.Child("ordinals", "start"))...)
	}
	if spec.ServiceName != "" {
		errs = append(errs, validateDNSLabel(spec.ServiceName, specPath.Child("serviceName"))...)
	}
	errs = append(errs, validateNonNegativePtr(spec.Replicas, specPath.Child("replicas"))...)
	errs = append(errs, validateNonNegative(int64(spec.MinReadySeconds), specPath.Child("minReadySeconds"))...)
	errs = append(errs, validateNonNegativePtr(spec.RevisionHistoryLimit, specPath.Child("revisionHistoryLimit"))...)
	errs = append(errs, validateWorkloadSelector(spec.Selector, spec.Template.Labels, "statefulset", specPath)...)
	errs = append(errs, validatePodTemplate(&spec.Template, specPath.Child("template"))...)
	errs = append(errs, validateAlwaysRestartTemplate(&spec.Template, "StatefulSet", specPath.Child("template"))...)
	for i, pvc := range spec.VolumeClaimTemplates {
		vp := specPath.Child("volumeClaimTemplates").Index(i)
		if pvc.Name == "" {
			errs = append(errs, field.Required(vp.Child("metadata", "name"), ""))
		} else {
			errs = append(errs, validateDNSSubdomain(pvc.Name, vp.Child("metadata", "name"))...)
		}
		if len(pvc.Spec.AccessModes) == 0 {
			errs = append(errs, field.Required(vp.Child("spec", "accessModes"), "at least 1 access mode is required"))
		}
	}
	return errs
}

const statefulSetUpdateForbidden = "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"

func (s statefulSetStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	ss, oldSS := obj.(*appsv1.StatefulSet), old.(*appsv1.StatefulSet)
	errs := s.validateMetaUpdate(&ss.ObjectMeta, &oldSS.ObjectMeta)
	errs = append(errs, validateStatefulSetSpec(&ss.Spec)...)
	// Compare with the mutable fields neutralised.
	mutable := oldSS.Spec.DeepCopy()
	mutable.Replicas = ss.Spec.Replicas
	mutable.Ordinals = ss.Spec.Ordinals
	mutable.Template = ss.Spec.Template
	mutable.UpdateStrategy = ss.Spec.UpdateStrategy
	mutable.RevisionHistoryLimit = ss.Spec.RevisionHistoryLimit
	mutable.PersistentVolumeClaimRetentionPolicy = ss.Spec.PersistentVolumeClaimRetentionPolicy
	mutable.MinReadySeconds = ss.Spec.MinReadySeconds
	if !equality.Semantic.DeepEqual(mutable, &ss.Spec) {
		errs = append(errs, field.Forbidden(specPath, statefulSetUpdateForbidden))
	}
	return errs
}

func (s statefulSetStrategy) GetAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	ss, ok := obj.(*appsv1.StatefulSet)
	if !ok {
		return nil, nil, fmt.Errorf("not a statefulset: %T", obj)
	}
	return labels.Set(ss.Labels), s.fieldsFor(&ss.ObjectMeta, nil), nil
}

func validateStatefulSetStatus(obj, _ runtime.Object) field.ErrorList {
	st := obj.(*appsv1.StatefulSet).Status
	return validateReplicaCounts(field.NewPath("status"), map[string]int32{
		"replicas": st.Replicas, "readyReplicas": st.ReadyReplicas, "currentReplicas": st.CurrentReplicas,
		"updatedReplicas": st.UpdatedReplicas, "availableReplicas": st.AvailableReplicas,
	}, st.ObservedGeneration, st.CollisionCount)
}

// daemonSetStrategy: generation follows spec; the selector is immutable.
type daemonSetStrategy struct{ objectStrategy }

func (daemonSetStrategy) Default(obj runtime.Object) {
	ds := obj.(*appsv1.DaemonSet)
	us := &ds.Spec.UpdateStrategy
	if us.Type == "" {
		us.Type = appsv1.RollingUpdateDaemonSetStrategyType
	}
	if us.Type == appsv1.RollingUpdateDaemonSetStrategyType {
		if us.RollingUpdate == nil {
			us.RollingUpdate = &appsv1.RollingUpdateDaemonSet{}
		}
		if us.RollingUpdate.MaxUnavailable == nil {
			us.RollingUpdate.MaxUnavailable = intOrInt(1)
		}
		if us.RollingUpdate.MaxSurge == nil {
			us.RollingUpdate.MaxSurge = intOrInt(0)
		}
	}
	if ds.Spec.RevisionHistoryLimit == nil {
		ds.Spec.RevisionHistoryLimit = ptr.To(defaultRevisionHistory)
	}
	defaultPodTemplate(&ds.Spec.Template)
}

func (s daemonSetStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	ds := obj.(*appsv1.DaemonSet)
	return append(s.validateMeta(&ds.ObjectMeta), validateDaemonSetSpec(&ds.Spec)...)
}

func validateDaemonSetSpec(spec *appsv1.DaemonSetSpec) field.ErrorList {
	errs := validateWorkloadSelector(spec.Selector, spec.Template.Labels, "daemonset", specPath)
	errs = append(errs, validatePodTemplate(&spec.Template, specPath.Child("template"))...)
	errs = append(errs, validateAlwaysRestartTemplate(&spec.Template, "DaemonSet", specPath.Child("template"))...)
	errs = append(errs, validateNonNegative(int64(spec.MinReadySeconds), specPath.Child("minReadySeconds"))...)
	errs = append(errs, validateNonNegativePtr(spec.RevisionHistoryLimit, specPath.Child("revisionHistoryLimit"))...)
	up := specPath.Child("updateStrategy")
	errs = append(errs, validateEnum(spec.UpdateStrategy.Type, daemonSetStrategyTypes, up.Child("type"))...)
	if ru := spec.UpdateStrategy.RollingUpdate; spec.UpdateStrategy.Type == appsv1.RollingUpdateDaemonSetStrategyType && ru != nil {
		rp := up.Child("rollingUpdate")
		errs = append(errs, validateIntOrPercent(ru.MaxUnavailable, rp.Child("maxUnavailable"))...)
		errs = append(errs, validateIntOrPercent(ru.MaxSurge, rp.Child("maxSurge"))...)
		if isZeroIntOrPercent(ru.MaxUnavailable) && isZeroIntOrPercent(ru.MaxSurge) {
			errs = append(errs, field.Invalid(rp.Child("maxUnavailable"), ru.MaxUnavailable, "may not be 0 when `maxSurge` is 0"))
		}
		if !isZeroIntOrPercent(ru.MaxUnavailable) && !isZeroIntOrPercent(ru.MaxSurge) {
			errs = append(errs, field.Invalid(rp.Child("maxSurge"), ru.MaxSurge, "may not be set when maxUnavailable is non-zero"))
		}
		errs = append(errs, validateNotOver100Percent(ru.MaxUnavailable, rp.Child("maxUnavailable"))...)
	}
	return errs
}

func (s daemonSetStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	ds, oldDS := obj.(*appsv1.DaemonSet), old.(*appsv1.DaemonSet)
	errs := s.validateMetaUpdate(&ds.ObjectMeta, &oldDS.ObjectMeta)
	errs = append(errs, validateDaemonSetSpec(&ds.Spec)...)
	return append(errs, validateImmutable(ds.Spec.Selector, oldDS.Spec.Selector, specPath.Child("selector"))...)
}

func (s daemonSetStrategy) GetAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	ds, ok := obj.(*appsv1.DaemonSet)
	if !ok {
		return nil, nil, fmt.Errorf("not a daemonset: %T", obj)
	}
	return labels.Set(ds.Labels), s.fieldsFor(&ds.ObjectMeta, nil), nil
}

func validateDaemonSetStatus(obj, _ runtime.Object) field.ErrorList {
	st := obj.(*appsv1.DaemonSet).Status
	return validateReplicaCounts(field.NewPath("status"), map[string]int32{
		"currentNumberScheduled": st.CurrentNumberScheduled, "numberMisscheduled": st.NumberMisscheduled,
		"desiredNumberScheduled": st.DesiredNumberScheduled, "numberReady": st.NumberReady,
		"updatedNumberScheduled": st.UpdatedNumberScheduled, "numberAvailable": st.NumberAvailable,
		"numberUnavailable": st.NumberUnavailable,
	}, st.ObservedGeneration, st.CollisionCount)
}

// controllerRevisionStrategy: a revision's data is a snapshot and never
// changes.
type controllerRevisionStrategy struct{ objectStrategy }

func (controllerRevisionStrategy) PrepareForCreate(context.Context, runtime.Object)                 {}
func (controllerRevisionStrategy) PrepareForUpdate(context.Context, runtime.Object, runtime.Object) {}

func (s controllerRevisionStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	cr := obj.(*appsv1.ControllerRevision)
	errs := s.validateMeta(&cr.ObjectMeta)
	if cr.Data.Raw == nil && cr.Data.Object == nil {
		errs = append(errs, field.Required(field.NewPath("data"), "data is mandatory"))
	}
	return append(errs, validateNonNegative(cr.Revision, field.NewPath("revision"))...)
}

func (s controllerRevisionStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	cr, oldCR := obj.(*appsv1.ControllerRevision), old.(*appsv1.ControllerRevision)
	errs := append(validateMetaAccessorUpdate(cr, oldCR), s.Validate(ctx, obj)...)
	if string(cr.Data.Raw) != string(oldCR.Data.Raw) {
		errs = append(errs, field.Invalid(field.NewPath("data"), "<omitted>", msgImmutable))
	}
	return errs
}
