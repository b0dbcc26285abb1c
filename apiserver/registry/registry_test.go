package registry

import (
	"context"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// TestCatalogStrategies checks every served resource has a strategy that
// accepts its own empty object without panicking, and that GetAttrs always
// yields the metadata fields.
func TestCatalogStrategies(t *testing.T) {
	for _, r := range Builtins(BuiltinOptions{}).Resources() {
		t.Run(r.GroupVersionResource.String(), func(t *testing.T) {
			if r.Strategy == nil {
				t.Fatal("no strategy")
			}
			obj := r.New()
			mustMeta(t, obj).SetName("x")
			if r.Namespaced {
				mustMeta(t, obj).SetNamespace("default")
			}
			r.Strategy.Default(obj)
			r.Strategy.PrepareForCreate(context.Background(), obj)
			r.Strategy.Validate(context.Background(), obj)
			_, f, err := r.Strategy.GetAttrs(obj)
			if err != nil {
				t.Fatal(err)
			}
			if f["metadata.name"] != "x" {
				t.Errorf("metadata.name = %q", f["metadata.name"])
			}
			if _, ok := f["metadata.namespace"]; ok != r.Namespaced {
				t.Errorf("metadata.namespace present=%v, namespaced=%v", ok, r.Namespaced)
			}
		})
	}
}

func TestStatusSubresources(t *testing.T) {
	want := map[string]bool{
		"namespaces": true, "pods": true, "services": true, "nodes": true, "resourcequotas": true,
		"deployments": true, "replicasets": true, "statefulsets": true, "daemonsets": true,
		"jobs": true, "cronjobs": true, "poddisruptionbudgets": true, "validatingadmissionpolicies": true,
	}
	for _, r := range Builtins(BuiltinOptions{}).Resources() {
		if got := r.Status != nil; got != want[r.Resource] {
			t.Errorf("%s: status subresource = %v, want %v", r.GroupVersionResource, got, want[r.Resource])
		}
	}
	if _, ok := resourceFor(t, "", "pods").Strategy.(GracefulDeleter); !ok {
		t.Error("pods must delete gracefully")
	}
}

func newCoreEvent() *corev1.Event {
	now := metav1.NewMicroTime(time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC))
	return &corev1.Event{
		ObjectMeta:          objectMeta("web.1"),
		InvolvedObject:      corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "web", UID: "u1", APIVersion: "v1", FieldPath: "spec.containers{app}"},
		Reason:              "Started",
		Message:             "Started container app",
		Type:                corev1.EventTypeNormal,
		EventTime:           now,
		Series:              &corev1.EventSeries{Count: 2, LastObservedTime: now},
		Action:              "Start",
		Related:             &corev1.ObjectReference{Kind: "Node", Name: "n1"},
		ReportingController: "tower.dev/node",
		ReportingInstance:   "n1",
	}
}

func TestEventsV1View(t *testing.T) {
	view := resourceFor(t, "events.k8s.io", "events").StoredAs
	if view == nil || view.Resource.GroupVersionResource != resourceFor(t, "", "events").GroupVersionResource {
		t.Fatalf("events.k8s.io/v1 events must be stored as core/v1 events, got %+v", view)
	}
	core := newCoreEvent()
	served, err := view.FromStorage(core)
	if err != nil {
		t.Fatal(err)
	}
	ev := served.(*eventsv1.Event)
	if ev.Regarding.Name != "web" || ev.Note != core.Message || ev.ReportingController != "tower.dev/node" ||
		ev.Series.Count != 2 || ev.Related.Name != "n1" || ev.Kind != "Event" || ev.APIVersion != "events.k8s.io/v1" {
		t.Errorf("FromStorage mapping wrong: %+v", ev)
	}
	back, err := view.ToStorage(ev)
	if err != nil {
		t.Fatal(err)
	}
	backCore := back.(*corev1.Event)
	backCore.TypeMeta = core.TypeMeta
	if !equality.Semantic.DeepEqual(backCore, core) {
		t.Errorf("round trip changed the event:\n got %+v\nwant %+v", backCore, core)
	}
	if _, err := view.ToStorage(core); err == nil {
		t.Error("ToStorage must refuse a core/v1 event")
	}

	legacy := &corev1.Event{ObjectMeta: objectMeta("web.2"), InvolvedObject: corev1.ObjectReference{Namespace: "default"},
		Source: corev1.EventSource{Component: "kubelet"}, Count: 1}
	fromLegacy, _ := view.FromStorage(legacy)
	if got := fromLegacy.(*eventsv1.Event); got.DeprecatedSource.Component != "kubelet" || got.DeprecatedCount != 1 {
		t.Errorf("deprecated fields not mapped: %+v", got)
	}
}

func TestEventValidation(t *testing.T) {
	coreEvents := resourceFor(t, "", "events")
	v1Events := resourceFor(t, "events.k8s.io", "events")
	toV1 := func(e *corev1.Event) *eventsv1.Event { return eventFromCore(e) }

	expectErrors(t, create(t, coreEvents, newCoreEvent()))
	expectErrors(t, create(t, v1Events, toV1(newCoreEvent())))

	// Legacy core/v1 events without eventTime only need a matching namespace.
	legacy := &corev1.Event{ObjectMeta: objectMeta("web.3"), InvolvedObject: corev1.ObjectReference{Namespace: "other"}, Count: 3}
	expectErrors(t, create(t, coreEvents, legacy), "FieldValueInvalid involvedObject.namespace")

	missing := newCoreEvent()
	missing.ReportingController = ""
	missing.Action = ""
	// As upstream, an empty reportingController also fails the name syntax.
	expectErrors(t, create(t, coreEvents, missing), "FieldValueRequired reportingController", "FieldValueRequired action",
		"FieldValueInvalid reportingController", "FieldValueInvalid reportingController")

	strict := newCoreEvent()
	strict.Type = "Info"
	strict.Count = 4
	expectErrors(t, create(t, v1Events, toV1(strict)), "FieldValueInvalid type", "FieldValueInvalid count")

	old := newCoreEvent()
	changed := toV1(old)
	changed.Note = "different"
	expectErrors(t, update(t, v1Events, changed, toV1(old)), "FieldValueInvalid message")
	relaxed := old.DeepCopy()
	relaxed.Message = "different"
	expectErrors(t, update(t, coreEvents, relaxed, old))

	_, f, err := v1Events.Strategy.GetAttrs(toV1(newCoreEvent()))
	if err != nil || f["involvedObject.name"] != "web" || f["reportingComponent"] != "tower.dev/node" || f["type"] != "Normal" {
		t.Errorf("event fields = %v, %v", f, err)
	}
	_, f, _ = coreEvents.Strategy.GetAttrs(legacy)
	if _, ok := f["source"]; !ok {
		t.Errorf("core event fields lack source: %v", f)
	}
}

func TestEndpointSliceAndLease(t *testing.T) {
	slices := resourceFor(t, "discovery.k8s.io", "endpointslices")
	eps := &discoveryv1.EndpointSlice{
		ObjectMeta:  objectMeta("web-abc"),
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.1.0.4"}}},
		Ports:       []discoveryv1.EndpointPort{{Port: ptr.To[int32](80)}},
	}
	old := stored(t, slices, eps)
	if *old.Ports[0].Protocol != corev1.ProtocolTCP || *old.Ports[0].Name != "" || old.Generation != 1 {
		t.Errorf("endpointslice defaults: %+v generation=%d", old.Ports[0], old.Generation)
	}
	relabeled := old.DeepCopy()
	relabeled.Labels = map[string]string{"kubernetes.io/service-name": "web"}
	expectErrors(t, update(t, slices, relabeled, old))
	annotated := old.DeepCopy()
	annotated.Annotations = map[string]string{"a": "b"}
	expectErrors(t, update(t, slices, annotated, old))
	if relabeled.Generation != 2 || annotated.Generation != 1 {
		t.Errorf("generation: labels %d, annotations %d", relabeled.Generation, annotated.Generation)
	}
	v6 := old.DeepCopy()
	v6.AddressType = discoveryv1.AddressTypeIPv6
	expectErrors(t, update(t, slices, v6, old), "FieldValueInvalid addressType", "FieldValueInvalid endpoints[0].addresses[0]")

	leases := resourceFor(t, "coordination.k8s.io", "leases")
	lease := &coordinationv1.Lease{ObjectMeta: objectMeta("n1"), Spec: coordinationv1.LeaseSpec{
		HolderIdentity: ptr.To("n1"), LeaseDurationSeconds: ptr.To[int32](40),
	}}
	expectErrors(t, create(t, leases, lease))
	lease.Spec.LeaseDurationSeconds = ptr.To[int32](0)
	expectErrors(t, create(t, leases, lease), "FieldValueInvalid spec.leaseDurationSeconds")
}
