package registry

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// Labels the API server puts on a Job's pod template so its pods, and only
// its pods, match the generated selector. The unprefixed ones are the legacy
// names still written for older consumers.
const (
	jobControllerUIDLabel       = batchv1.ControllerUidLabel
	jobNameLabel                = batchv1.JobNameLabel
	legacyJobControllerUIDLabel = "controller-uid"
	legacyJobNameLabel          = "job-name"

	maxIndexedJobCompletions = 100000
	maxCronJobNameLength     = 52
)

var (
	completionModes        = []batchv1.CompletionMode{batchv1.NonIndexedCompletion, batchv1.IndexedCompletion}
	podReplacementPolicies = []batchv1.PodReplacementPolicy{batchv1.Failed, batchv1.TerminatingOrFailed}
	concurrencyPolicies    = []batchv1.ConcurrencyPolicy{batchv1.AllowConcurrent, batchv1.ForbidConcurrent, batchv1.ReplaceConcurrent}
	jobRestartPolicies     = []corev1.RestartPolicy{corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever}
)

// jobStrategy: selectors are generated from the Job's UID unless the client
// asks for manualSelector; most of the spec is fixed once the Job exists.
type jobStrategy struct{ objectStrategy }

func (jobStrategy) Default(obj runtime.Object) {
	job := obj.(*batchv1.Job)
	defaultJobSpec(&job.Spec)
	if job.Spec.Template.Labels != nil && len(job.Labels) == 0 {
		job.Labels = job.Spec.Template.Labels
	}
}

// defaultJobSpec holds the Job-only defaults (a CronJob's job template gets
// just the pod template ones, as upstream).
func defaultJobSpec(spec *batchv1.JobSpec) {
	if spec.Completions == nil && spec.Parallelism == nil {
		spec.Completions = ptr.To[int32](1)
		spec.Parallelism = ptr.To[int32](1)
	}
	if spec.Parallelism == nil {
		spec.Parallelism = ptr.To[int32](1)
	}
	if spec.BackoffLimit == nil {
		if spec.BackoffLimitPerIndex != nil {
			spec.BackoffLimit = ptr.To[int32](math.MaxInt32)
		} else {
			spec.BackoffLimit = ptr.To[int32](6)
		}
	}
	if spec.CompletionMode == nil {
		spec.CompletionMode = ptr.To(batchv1.NonIndexedCompletion)
	}
	if spec.Suspend == nil {
		spec.Suspend = ptr.To(false)
	}
	if spec.PodReplacementPolicy == nil {
		if spec.PodFailurePolicy != nil {
			spec.PodReplacementPolicy = ptr.To(batchv1.Failed)
		} else {
			spec.PodReplacementPolicy = ptr.To(batchv1.TerminatingOrFailed)
		}
	}
	defaultPodTemplate(&spec.Template)
}

// PrepareForCreate needs metadata.name and metadata.uid already set: the
// generated selector and labels are built from them.
func (jobStrategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	job := obj.(*batchv1.Job)
	job.Status = batchv1.JobStatus{}
	job.Generation = 1
	if !ptr.Deref(job.Spec.ManualSelector, false) {
		generateJobSelector(job)
	}
}

func generateJobSelector(job *batchv1.Job) {
	tl := job.Spec.Template.Labels
	if tl == nil {
		tl = map[string]string{}
		job.Spec.Template.Labels = tl
	}
	// Labels the client already set are kept; validation rejects wrong ones.
	setIfAbsent := func(m map[string]string, k, v string) {
		if _, ok := m[k]; !ok {
			m[k] = v
		}
	}
	setIfAbsent(tl, jobNameLabel, job.Name)
	setIfAbsent(tl, legacyJobNameLabel, job.Name)
	setIfAbsent(tl, jobControllerUIDLabel, string(job.UID))
	setIfAbsent(tl, legacyJobControllerUIDLabel, string(job.UID))
	if job.Spec.Selector == nil {
		job.Spec.Selector = &metav1.LabelSelector{}
	}
	if job.Spec.Selector.MatchLabels == nil {
		job.Spec.Selector.MatchLabels = map[string]string{}
	}
	setIfAbsent(job.Spec.Selector.MatchLabels, jobControllerUIDLabel, string(job.UID))
}

func (jobStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	job, oldJob := obj.(*batchv1.Job), old.(*batchv1.Job)
	job.Status = oldJob.Status
	bumpGeneration(job, oldJob, !equality.Semantic.DeepEqual(job.Spec, oldJob.Spec))
}

func (s jobStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	job := obj.(*batchv1.Job)
	errs := s.validateMeta(&job.ObjectMeta)
	errs = append(errs, validateGeneratedSelector(job, true)...)
	return append(errs, validateJobSpec(&job.Spec, specPath)...)
}

// validateGeneratedSelector: unless manualSelector, the template carries
// the generated labels and the selector is exactly the generated one.
func validateGeneratedSelector(job *batchv1.Job, requireBatchLabels bool) field.ErrorList {
	if ptr.Deref(job.Spec.ManualSelector, false) || job.Spec.Selector == nil {
		return nil
	}
	var errs field.ErrorList
	if job.UID == "" {
		errs = append(errs, field.Required(metadataPath.Child("uid"), ""))
	}
	tp := specPath.Child("template", "metadata")
	errs = append(errs, validateHasLabel(job.Spec.Template.Labels, legacyJobControllerUIDLabel, string(job.UID), tp)...)
	errs = append(errs, validateHasLabel(job.Spec.Template.Labels, legacyJobNameLabel, job.Name, tp)...)
	want := map[string]string{legacyJobControllerUIDLabel: string(job.UID)}
	if requireBatchLabels {
		errs = append(errs, validateHasLabel(job.Spec.Template.Labels, jobControllerUIDLabel, string(job.UID), tp)...)
		errs = append(errs, validateHasLabel(job.Spec.Template.Labels, jobNameLabel, job.Name, tp)...)
		want = map[string]string{jobControllerUIDLabel: string(job.UID)}
	}
	if !equality.Semantic.DeepEqual(job.Spec.Selector, &metav1.LabelSelector{MatchLabels: want}) {
		errs = append(errs, field.Invalid(specPath.Child("selector"), job.Spec.Selector, "`selector` not auto-generated"))
	}
	return errs
}

func validateHasLabel(labels map[string]string, key, want string, metaPath *field.Path) field.ErrorList {
	p := metaPath.Child("labels").Key(key)
	got, ok := labels[key]
	if !ok {
		return field.ErrorList{field.Required(p, fmt.Sprintf("must be '%s'", want))}
	}
	if got != want {
		return field.ErrorList{field.Invalid(p, got, fmt.Sprintf("must be '%s'", want))}
	}
	return nil
}

// validateJobSpec checks a Job's spec; the selector rules apply to Jobs,
// not to CronJob job templates (whose selectors are always generated).
func validateJobSpec(spec *batchv1.JobSpec, p *field.Path) field.ErrorList {
	errs := validateJobTemplateSpec(spec, p)
	if spec.Selector == nil {
		errs = append(errs, field.Required(p.Child("selector"), ""))
		return errs
	}
	errs = append(errs, metav1validation.ValidateLabelSelector(spec.Selector, metav1validation.LabelSelectorValidationOptions{}, p.Child("selector"))...)
	if sel, err := metav1.LabelSelectorAsSelector(spec.Selector); err == nil && !sel.Matches(labels.Set(spec.Template.Labels)) {
		errs = append(errs, field.Invalid(p.Child("template", "metadata", "labels"), spec.Template.Labels, msgSelectorMismatch))
	}
	return errs
}

func validateJobTemplateSpec(spec *batchv1.JobSpec, p *field.Path) field.ErrorList {
	errs := validateNonNegativePtr(spec.Parallelism, p.Child("parallelism"))
	errs = append(errs, validateNonNegativePtr(spec.Completions, p.Child("completions"))...)
	errs = append(errs, validateNonNegativePtr(spec.ActiveDeadlineSeconds, p.Child("activeDeadlineSeconds"))...)
	errs = append(errs, validateNonNegativePtr(spec.BackoffLimit, p.Child("backoffLimit"))...)
	errs = append(errs, validateNonNegativePtr(spec.TTLSecondsAfterFinished, p.Child("ttlSecondsAfterFinished"))...)
	errs = append(errs, validateNonNegativePtr(spec.BackoffLimitPerIndex, p.Child("backoffLimitPerIndex"))...)
	errs = append(errs, validateNonNegativePtr(spec.MaxFailedIndexes, p.Child("maxFailedIndexes"))...)
	if spec.CompletionMode != nil {
		errs = append(errs, validateEnum(*spec.CompletionMode, completionModes, p.Child("completionMode"))...)
		if *spec.CompletionMode == batchv1.IndexedCompletion {
			if spec.Completions == nil {
				errs = append(errs, field.Required(p.Child("completions"), fmt.Sprintf("when completion mode is %s", batchv1.IndexedCompletion)))
			} else if *spec.Completions > maxIndexedJobCompletions {
				errs = append(errs, field.Invalid(p.Child("completions"), *spec.Completions, fmt.Sprintf("must be less than or equal to %d when completion mode is %s", maxIndexedJobCompletions, batchv1.IndexedCompletion)))
			}
			if spec.Parallelism != nil && *spec.Parallelism > maxIndexedJobCompletions {
				errs = append(errs, field.Invalid(p.Child("parallelism"), *spec.Parallelism, fmt.Sprintf("must be less than or equal to %d when completion mode is %s", maxIndexedJobCompletions, batchv1.IndexedCompletion)))
			}
		}
	}
	indexed := spec.CompletionMode != nil && *spec.CompletionMode == batchv1.IndexedCompletion
	if spec.BackoffLimitPerIndex != nil && !indexed {
		errs = append(errs, field.Forbidden(p.Child("backoffLimitPerIndex"), "requires indexed completion mode"))
	}
	if spec.MaxFailedIndexes != nil && spec.BackoffLimitPerIndex == nil {
		errs = append(errs, field.Required(p.Child("backoffLimitPerIndex"), "when maxFailedIndexes is specified"))
	}
	if spec.PodReplacementPolicy != nil {
		errs = append(errs, validateEnum(*spec.PodReplacementPolicy, podReplacementPolicies, p.Child("podReplacementPolicy"))...)
		if spec.PodFailurePolicy != nil && *spec.PodReplacementPolicy != batchv1.Failed {
			errs = append(errs, field.NotSupported(p.Child("podReplacementPolicy"), *spec.PodReplacementPolicy, []batchv1.PodReplacementPolicy{batchv1.Failed}))
		}
	}
	tp := p.Child("template")
	errs = append(errs, validatePodTemplate(&spec.Template, tp)...)
	if !containsRestartPolicy(jobRestartPolicies, spec.Template.Spec.RestartPolicy) {
		errs = append(errs, field.NotSupported(tp.Child("spec", "restartPolicy"), spec.Template.Spec.RestartPolicy, jobRestartPolicies))
	} else if spec.PodFailurePolicy != nil && spec.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
		errs = append(errs, field.Invalid(tp.Child("spec", "restartPolicy"), spec.Template.Spec.RestartPolicy, fmt.Sprintf("only %q is supported when podFailurePolicy is specified", corev1.RestartPolicyNever)))
	}
	return errs
}

func containsRestartPolicy(list []corev1.RestartPolicy, v corev1.RestartPolicy) bool {
	for _, p := range list {
		if p == v {
			return true
		}
	}
	return false
}

func (s jobStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	job, oldJob := obj.(*batchv1.Job), old.(*batchv1.Job)
	errs := s.validateMetaUpdate(&job.ObjectMeta, &oldJob.ObjectMeta)
	_, oldHasBatchLabels := oldJob.Spec.Template.Labels[jobControllerUIDLabel]
	errs = append(errs, validateGeneratedSelector(job, oldHasBatchLabels)...)
	errs = append(errs, validateJobSpec(&job.Spec, specPath)...)
	return append(errs, validateJobSpecUpdate(job, oldJob)...)
}

// validateJobSpecUpdate: parallelism, suspend, activeDeadlineSeconds,
// backoffLimit and TTL may change; completions only for elastic indexed
// Jobs; the pod template only while a suspended Job has never started.
func validateJobSpecUpdate(job, oldJob *batchv1.Job) field.ErrorList {
	spec, oldSpec := &job.Spec, &oldJob.Spec
	errs := validateImmutable(spec.Selector, oldSpec.Selector, specPath.Child("selector"))
	errs = append(errs, validateImmutable(spec.CompletionMode, oldSpec.CompletionMode, specPath.Child("completionMode"))...)
	errs = append(errs, validateImmutable(spec.PodFailurePolicy, oldSpec.PodFailurePolicy, specPath.Child("podFailurePolicy"))...)
	errs = append(errs, validateImmutable(spec.BackoffLimitPerIndex, oldSpec.BackoffLimitPerIndex, specPath.Child("backoffLimitPerIndex"))...)
	errs = append(errs, validateImmutable(spec.SuccessPolicy, oldSpec.SuccessPolicy, specPath.Child("successPolicy"))...)
	errs = append(errs, validateImmutable(spec.ManagedBy, oldSpec.ManagedBy, specPath.Child("managedBy"))...)
	elastic := spec.CompletionMode != nil && *spec.CompletionMode == batchv1.IndexedCompletion &&
		spec.Completions != nil && spec.Parallelism != nil && *spec.Completions == *spec.Parallelism
	if !elastic {
		errs = append(errs, validateImmutable(spec.Completions, oldSpec.Completions, specPath.Child("completions"))...)
	}
	neverStarted := ptr.Deref(oldSpec.Suspend, false) && oldJob.Status.StartTime == nil
	if !neverStarted {
		return append(errs, validateImmutable(spec.Template, oldSpec.Template, specPath.Child("template"))...)
	}
	// A suspended Job that never ran may be re-targeted: scheduling
	// directives and template metadata can change, nothing else.
	munged := spec.Template.DeepCopy()
	munged.Labels = oldSpec.Template.Labels
	munged.Annotations = oldSpec.Template.Annotations
	munged.Spec.NodeSelector = oldSpec.Template.Spec.NodeSelector
	munged.Spec.Tolerations = oldSpec.Template.Spec.Tolerations
	munged.Spec.Affinity = oldSpec.Template.Spec.Affinity
	munged.Spec.SchedulingGates = oldSpec.Template.Spec.SchedulingGates
	if !equality.Semantic.DeepEqual(*munged, oldSpec.Template) {
		errs = append(errs, field.Invalid(specPath.Child("template"), spec.Template, msgImmutable))
	}
	return errs
}

func (s jobStrategy) GetAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	job, ok := obj.(*batchv1.Job)
	if !ok {
		return nil, nil, fmt.Errorf("not a job: %T", obj)
	}
	return labels.Set(job.Labels), s.fieldsFor(&job.ObjectMeta, fields.Set{
		"status.successful": strconv.Itoa(int(job.Status.Succeeded)),
	}), nil
}

func validateJobStatus(obj, _ runtime.Object) field.ErrorList {
	st := obj.(*batchv1.Job).Status
	sp := field.NewPath("status")
	errs := validateNonNegative(int64(st.Active), sp.Child("active"))
	errs = append(errs, validateNonNegative(int64(st.Succeeded), sp.Child("succeeded"))...)
	errs = append(errs, validateNonNegative(int64(st.Failed), sp.Child("failed"))...)
	errs = append(errs, validateNonNegativePtr(st.Ready, sp.Child("ready"))...)
	errs = append(errs, validateNonNegativePtr(st.Terminating, sp.Child("terminating"))...)
	if st.CompletionTime != nil && st.StartTime != nil && st.CompletionTime.Before(st.StartTime) {
		errs = append(errs, field.Invalid(sp.Child("completionTime"), st.CompletionTime, "completionTime cannot be set before startTime"))
	}
	return errs
}

// cronJobStrategy: generation follows spec; schedules are checked with
// the syntax the CronJob controller understands.
type cronJobStrategy struct{ objectStrategy }

func (cronJobStrategy) Default(obj runtime.Object) {
	cj := obj.(*batchv1.CronJob)
	if cj.Spec.ConcurrencyPolicy == "" {
		cj.Spec.ConcurrencyPolicy = batchv1.AllowConcurrent
	}
	if cj.Spec.Suspend == nil {
		cj.Spec.Suspend = ptr.To(false)
	}
	if cj.Spec.SuccessfulJobsHistoryLimit == nil {
		cj.Spec.SuccessfulJobsHistoryLimit = ptr.To[int32](3)
	}
	if cj.Spec.FailedJobsHistoryLimit == nil {
		cj.Spec.FailedJobsHistoryLimit = ptr.To[int32](1)
	}
	defaultPodTemplate(&cj.Spec.JobTemplate.Spec.Template)
}

func (s cronJobStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	cj := obj.(*batchv1.CronJob)
	errs := s.validateMeta(&cj.ObjectMeta)
	if len(cj.Name) > maxCronJobNameLength {
		errs = append(errs, field.Invalid(metadataPath.Child("name"), cj.Name, fmt.Sprintf("must be no more than %d characters", maxCronJobNameLength)))
	}
	return append(errs, validateCronJobSpec(&cj.Spec)...)
}

func validateCronJobSpec(spec *batchv1.CronJobSpec) field.ErrorList {
	var errs field.ErrorList
	sp := specPath.Child("schedule")
	switch {
	case spec.Schedule == "":
		errs = append(errs, field.Required(sp, ""))
	case strings.Contains(spec.Schedule, "TZ"):
		errs = append(errs, field.Invalid(sp, spec.Schedule, "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"))
	default:
		if err := parseCronSchedule(spec.Schedule); err != nil {
			errs = append(errs, field.Invalid(sp, spec.Schedule, err.Error()))
		}
	}
	if tz := spec.TimeZone; tz != nil {
		tzp := specPath.Child("timeZone")
		if *tz == "" || strings.EqualFold(*tz, "local") {
			errs = append(errs, field.Invalid(tzp, *tz, "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"))
		} else if _, err := time.LoadLocation(*tz); err != nil {
			errs = append(errs, field.Invalid(tzp, *tz, fmt.Sprintf("unknown time zone %s", *tz)))
		}
	}
	errs = append(errs, validateEnum(spec.ConcurrencyPolicy, concurrencyPolicies, specPath.Child("concurrencyPolicy"))...)
	errs = append(errs, validateNonNegativePtr(spec.StartingDeadlineSeconds, specPath.Child("startingDeadlineSeconds"))...)
	errs = append(errs, validateNonNegativePtr(spec.SuccessfulJobsHistoryLimit, specPath.Child("successfulJobsHistoryLimit"))...)
	errs = append(errs, validateNonNegativePtr(spec.FailedJobsHistoryLimit, specPath.Child("failedJobsHistoryLimit"))...)

	jt := specPath.Child("jobTemplate")
	errs = append(errs, metav1validation.ValidateLabels(spec.JobTemplate.Labels, jt.Child("metadata", "labels"))...)
	errs = append(errs, apimachineryvalidation.ValidateAnnotations(spec.JobTemplate.Annotations, jt.Child("metadata", "annotations"))...)
	jsp := jt.Child("spec")
	errs = append(errs, validateJobTemplateSpec(&spec.JobTemplate.Spec, jsp)...)
	if spec.JobTemplate.Spec.Selector != nil {
		errs = append(errs, field.Invalid(jsp.Child("selector"), spec.JobTemplate.Spec.Selector, "`selector` will be auto-generated"))
	}
	if ptr.Deref(spec.JobTemplate.Spec.ManualSelector, false) {
		errs = append(errs, field.NotSupported(jsp.Child("manualSelector"), spec.JobTemplate.Spec.ManualSelector, []string{"nil", "false"}))
	}
	return errs
}

func (s cronJobStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	cj, oldCJ := obj.(*batchv1.CronJob), old.(*batchv1.CronJob)
	errs := apimachineryvalidation.ValidateObjectMetaUpdate(&cj.ObjectMeta, &oldCJ.ObjectMeta, metadataPath)
	return append(errs, s.Validate(ctx, obj)...)
}

func (s cronJobStrategy) GetAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	cj, ok := obj.(*batchv1.CronJob)
	if !ok {
		return nil, nil, fmt.Errorf("not a cronjob: %T", obj)
	}
	return labels.Set(cj.Labels), s.fieldsFor(&cj.ObjectMeta, nil), nil
}
