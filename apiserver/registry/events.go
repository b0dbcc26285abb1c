package registry

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Limits from the events API.
const (
	reportingInstanceMaxLen = 128
	actionMaxLen            = 128
	reasonMaxLen            = 128
	noteMaxLen              = 1024
)

// eventStrategy serves core/v1 events. Validation is the lenient legacy
// one; events.k8s.io/v1 writes add the strict rules (eventsV1Strategy).
type eventStrategy struct {
	objectStrategy
	// strict: the rules events.k8s.io/v1 requests must also pass.
	strict bool
}

func newEventStrategy(strict bool) eventStrategy {
	nameFn := validatePathSegmentName
	if strict {
		nameFn = apimachineryvalidation.NameIsDNSSubdomain
	}
	return eventStrategy{objectStrategy: objectStrategy{namespaced: true, nameFn: nameFn}, strict: strict}
}

func (eventStrategy) PrepareForCreate(context.Context, runtime.Object)                 {}
func (eventStrategy) PrepareForUpdate(context.Context, runtime.Object, runtime.Object) {}

func (s eventStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	ev := obj.(*corev1.Event)
	errs := s.validateMeta(&ev.ObjectMeta)
	errs = append(errs, validateLegacyEvent(ev)...)
	if !s.strict {
		return errs
	}
	errs = append(errs, validateEventSeries(ev)...)
	if ev.EventTime.IsZero() {
		errs = append(errs, field.Required(field.NewPath("eventTime"), ""))
	}
	if ev.Type != corev1.EventTypeNormal && ev.Type != corev1.EventTypeWarning {
		errs = append(errs, field.Invalid(field.NewPath("type"), "", fmt.Sprintf("has invalid value: %v", ev.Type)))
	}
	for name, unset := range map[string]bool{
		"firstTimestamp": ev.FirstTimestamp.IsZero(),
		"lastTimestamp":  ev.LastTimestamp.IsZero(),
		"count":          ev.Count == 0,
		"source":         ev.Source.Component == "" && ev.Source.Host == "",
	} {
		if !unset {
			errs = append(errs, field.Invalid(field.NewPath(name), "", "needs to be unset"))
		}
	}
	return errs
}

func (s eventStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	ev, oldEv := obj.(*corev1.Event), old.(*corev1.Event)
	errs := validateMetaAccessorUpdate(ev, oldEv)
	errs = append(errs, s.validateMeta(&ev.ObjectMeta)...)
	errs = append(errs, validateLegacyEvent(ev)...)
	if !s.strict {
		return errs
	}
	if !equality.Semantic.DeepEqual(ev.Series, oldEv.Series) {
		errs = append(errs, validateEventSeries(ev)...)
	}
	for _, f := range []struct {
		name     string
		new, old any
	}{
		{"involvedObject", ev.InvolvedObject, oldEv.InvolvedObject},
		{"reason", ev.Reason, oldEv.Reason},
		{"message", ev.Message, oldEv.Message},
		{"source", ev.Source, oldEv.Source},
		{"firstTimestamp", ev.FirstTimestamp, oldEv.FirstTimestamp},
		{"lastTimestamp", ev.LastTimestamp, oldEv.LastTimestamp},
		{"count", ev.Count, oldEv.Count},
		{"type", ev.Type, oldEv.Type},
		{"eventTime", ev.EventTime, oldEv.EventTime},
		{"action", ev.Action, oldEv.Action},
		{"related", ev.Related, oldEv.Related},
		{"reportingController", ev.ReportingController, oldEv.ReportingController},
		{"reportingInstance", ev.ReportingInstance, oldEv.ReportingInstance},
	} {
		errs = append(errs, validateImmutable(f.new, f.old, field.NewPath(f.name))...)
	}
	return errs
}

// validateLegacyEvent: the namespace must agree with the involved object,
// and events with eventTime (the new API's) carry reporting fields.
func validateLegacyEvent(ev *corev1.Event) field.ErrorList {
	var errs field.ErrorList
	nsPath := field.NewPath("involvedObject", "namespace")
	mismatch := field.Invalid(nsPath, ev.InvolvedObject.Namespace, "does not match event.namespace")
	if ev.EventTime.IsZero() {
		if ev.InvolvedObject.Namespace == "" {
			if ev.Namespace != metav1.NamespaceNone && ev.Namespace != metav1.NamespaceDefault {
				errs = append(errs, mismatch)
			}
		} else if ev.Namespace != ev.InvolvedObject.Namespace {
			errs = append(errs, mismatch)
		}
	} else {
		if ev.InvolvedObject.Namespace == "" && ev.Namespace != metav1.NamespaceDefault && ev.Namespace != metav1.NamespaceSystem {
			errs = append(errs, mismatch)
		}
		if ev.ReportingController == "" {
			errs = append(errs, field.Required(field.NewPath("reportingController"), ""))
		}
		errs = append(errs, invalidEach(field.NewPath("reportingController"), ev.ReportingController, validation.IsQualifiedName(ev.ReportingController))...)
		errs = append(errs, requiredMaxLen(ev.ReportingInstance, reportingInstanceMaxLen, field.NewPath("reportingInstance"))...)
		errs = append(errs, requiredMaxLen(ev.Action, actionMaxLen, field.NewPath("action"))...)
		errs = append(errs, requiredMaxLen(ev.Reason, reasonMaxLen, field.NewPath("reason"))...)
		if len(ev.Message) > noteMaxLen {
			errs = append(errs, field.Invalid(field.NewPath("message"), "", fmt.Sprintf("can have at most %v characters", noteMaxLen)))
		}
	}
	errs = append(errs, invalidEach(field.NewPath("namespace"), ev.Namespace, validation.IsDNS1123Subdomain(ev.Namespace))...)
	return errs
}

func requiredMaxLen(v string, maxLen int, p *field.Path) field.ErrorList {
	if v == "" {
		return field.ErrorList{field.Required(p, "")}
	}
	if len(v) > maxLen {
		return field.ErrorList{field.Invalid(p, "", fmt.Sprintf("can have at most %v characters", maxLen))}
	}
	return nil
}

func validateEventSeries(ev *corev1.Event) field.ErrorList {
	if ev.Series == nil {
		return nil
	}
	var errs field.ErrorList
	if ev.Series.Count < 2 {
		errs = append(errs, field.Invalid(field.NewPath("series.count"), "", "should be at least 2"))
	}
	if ev.Series.LastObservedTime.IsZero() {
		errs = append(errs, field.Required(field.NewPath("series.lastObservedTime"), ""))
	}
	return errs
}

func (s eventStrategy) GetAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	ev, ok := obj.(*corev1.Event)
	if !ok {
		return nil, nil, fmt.Errorf("not an event: %T", obj)
	}
	return labels.Set(ev.Labels), eventFields(ev, s.objectStrategy), nil
}

func eventFields(ev *corev1.Event, s objectStrategy) fields.Set {
	return s.fieldsFor(&ev.ObjectMeta, fields.Set{
		"involvedObject.kind":            ev.InvolvedObject.Kind,
		"involvedObject.namespace":       ev.InvolvedObject.Namespace,
		"involvedObject.name":            ev.InvolvedObject.Name,
		"involvedObject.uid":             string(ev.InvolvedObject.UID),
		"involvedObject.apiVersion":      ev.InvolvedObject.APIVersion,
		"involvedObject.resourceVersion": ev.InvolvedObject.ResourceVersion,
		"involvedObject.fieldPath":       ev.InvolvedObject.FieldPath,
		"reason":                         ev.Reason,
		"reportingComponent":             ev.ReportingController,
		"source":                         ev.Source.Component,
		"type":                           ev.Type,
	})
}

// eventsV1Strategy serves events.k8s.io/v1 events. It accepts either the
// served type or the stored core/v1 type, converting to core/v1 so both
// APIs share one set of rules (and report the same field paths, as
// kube-apiserver does).
type eventsV1Strategy struct{ core eventStrategy }

func newEventsV1Strategy() eventsV1Strategy { return eventsV1Strategy{core: newEventStrategy(true)} }

func (eventsV1Strategy) Default(runtime.Object)                                           {}
func (eventsV1Strategy) PrepareForCreate(context.Context, runtime.Object)                 {}
func (eventsV1Strategy) PrepareForUpdate(context.Context, runtime.Object, runtime.Object) {}

func (s eventsV1Strategy) Validate(ctx context.Context, obj runtime.Object) field.ErrorList {
	ev, err := asCoreEvent(obj)
	if err != nil {
		return field.ErrorList{field.InternalError(nil, err)}
	}
	return s.core.Validate(ctx, ev)
}

func (s eventsV1Strategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	ev, err := asCoreEvent(obj)
	if err != nil {
		return field.ErrorList{field.InternalError(nil, err)}
	}
	oldEv, err := asCoreEvent(old)
	if err != nil {
		return field.ErrorList{field.InternalError(nil, err)}
	}
	return s.core.ValidateUpdate(ctx, ev, oldEv)
}

func (s eventsV1Strategy) GetAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	ev, err := asCoreEvent(obj)
	if err != nil {
		return nil, nil, err
	}
	return s.core.GetAttrs(ev)
}

func asCoreEvent(obj runtime.Object) (*corev1.Event, error) {
	switch ev := obj.(type) {
	case *corev1.Event:
		return ev, nil
	case *eventsv1.Event:
		return eventToCore(ev), nil
	}
	return nil, fmt.Errorf("not an event: %T", obj)
}

// eventsV1View is the storage view of events.k8s.io/v1 onto core/v1 events.
func eventsV1View(owner *Resource) *StorageView {
	return &StorageView{
		Resource: owner,
		ToStorage: func(obj runtime.Object) (runtime.Object, error) {
			ev, ok := obj.(*eventsv1.Event)
			if !ok {
				return nil, fmt.Errorf("converting to core/v1 event: unexpected %T", obj)
			}
			return eventToCore(ev), nil
		},
		FromStorage: func(stored runtime.Object) (runtime.Object, error) {
			ev, ok := stored.(*corev1.Event)
			if !ok {
				return nil, fmt.Errorf("converting to events.k8s.io/v1 event: unexpected %T", stored)
			}
			return eventFromCore(ev), nil
		},
	}
}

// eventToCore maps an events.k8s.io/v1 Event onto the stored core/v1 shape.
func eventToCore(in *eventsv1.Event) *corev1.Event {
	out := &corev1.Event{
		TypeMeta:            metav1.TypeMeta{APIVersion: "v1", Kind: "Event"},
		ObjectMeta:          *in.ObjectMeta.DeepCopy(),
		InvolvedObject:      in.Regarding,
		Reason:              in.Reason,
		Message:             in.Note,
		Source:              in.DeprecatedSource,
		FirstTimestamp:      in.DeprecatedFirstTimestamp,
		LastTimestamp:       in.DeprecatedLastTimestamp,
		Count:               in.DeprecatedCount,
		Type:                in.Type,
		EventTime:           in.EventTime,
		Action:              in.Action,
		ReportingController: in.ReportingController,
		ReportingInstance:   in.ReportingInstance,
	}
	if in.Series != nil {
		out.Series = &corev1.EventSeries{Count: in.Series.Count, LastObservedTime: in.Series.LastObservedTime}
	}
	if in.Related != nil {
		related := *in.Related
		out.Related = &related
	}
	return out
}

// eventFromCore is the inverse of eventToCore.
func eventFromCore(in *corev1.Event) *eventsv1.Event {
	out := &eventsv1.Event{
		TypeMeta:                 metav1.TypeMeta{APIVersion: eventsv1.SchemeGroupVersion.String(), Kind: "Event"},
		ObjectMeta:               *in.ObjectMeta.DeepCopy(),
		EventTime:                in.EventTime,
		ReportingController:      in.ReportingController,
		ReportingInstance:        in.ReportingInstance,
		Action:                   in.Action,
		Reason:                   in.Reason,
		Regarding:                in.InvolvedObject,
		Note:                     in.Message,
		Type:                     in.Type,
		DeprecatedSource:         in.Source,
		DeprecatedFirstTimestamp: in.FirstTimestamp,
		DeprecatedLastTimestamp:  in.LastTimestamp,
		DeprecatedCount:          in.Count,
	}
	if in.Series != nil {
		out.Series = &eventsv1.EventSeries{Count: in.Series.Count, LastObservedTime: in.Series.LastObservedTime}
	}
	if in.Related != nil {
		related := *in.Related
		out.Related = &related
	}
	return out
}
