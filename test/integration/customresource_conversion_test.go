package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/utils/ptr"

	"tower.dev/tower/test/framework"
)

const gadgetGroup = "conversion.tower.dev"

// gadgetCRD serves Gadgets in v1, whose spec names the field host, and in
// v2, which renamed it hostname; storage picks the storage version.
func gadgetCRD(storage string, conversion *apiextensionsv1.CustomResourceConversion) *apiextensionsv1.CustomResourceDefinition {
	version := func(name, field string) apiextensionsv1.CustomResourceDefinitionVersion {
		return apiextensionsv1.CustomResourceDefinitionVersion{
			Name: name, Served: true, Storage: name == storage,
			Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
				Type: "object",
				Properties: map[string]apiextensionsv1.JSONSchemaProps{
					"spec": {Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
						field:  {Type: "string"},
						"port": {Type: "integer"},
					}},
				},
			}},
		}
	}
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "gadgets." + gadgetGroup},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group:      gadgetGroup,
			Names:      apiextensionsv1.CustomResourceDefinitionNames{Plural: "gadgets", Singular: "gadget", Kind: "Gadget", ListKind: "GadgetList"},
			Scope:      apiextensionsv1.NamespaceScoped,
			Versions:   []apiextensionsv1.CustomResourceDefinitionVersion{version("v1", "host"), version("v2", "hostname")},
			Conversion: conversion,
		},
	}
}

// gadgetConverter is a conversion webhook for Gadgets: it renames
// spec.host (v1) to spec.hostname (v2) and back. It keeps the requests it
// was sent and fails every review with failWith's message while set.
type gadgetConverter struct {
	failWith atomic.Pointer[string]

	mu       sync.Mutex
	requests []apiextensionsv1.ConversionRequest
}

func (c *gadgetConverter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	review := &apiextensionsv1.ConversionReview{}
	if err := json.NewDecoder(r.Body).Decode(review); err != nil || review.Request == nil {
		http.Error(w, fmt.Sprintf("not a ConversionReview: %v", err), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	c.requests = append(c.requests, *review.Request)
	c.mu.Unlock()
	response := &apiextensionsv1.ConversionResponse{UID: review.Request.UID, Result: metav1.Status{Status: metav1.StatusSuccess}}
	if message := c.failWith.Load(); message != nil {
		response.Result = metav1.Status{Status: metav1.StatusFailure, Message: *message}
	} else {
		for _, raw := range review.Request.Objects {
			converted, err := convertGadget(raw.Raw, review.Request.DesiredAPIVersion)
			if err != nil {
				response.Result = metav1.Status{Status: metav1.StatusFailure, Message: err.Error()}
				response.ConvertedObjects = nil
				break
			}
			response.ConvertedObjects = append(response.ConvertedObjects, runtime.RawExtension{Raw: converted})
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(&apiextensionsv1.ConversionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "apiextensions.k8s.io/v1", Kind: "ConversionReview"},
		Response: response,
	})
}

// received returns the conversion requests seen so far.
func (c *gadgetConverter) received() []apiextensionsv1.ConversionRequest {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]apiextensionsv1.ConversionRequest(nil), c.requests...)
}

func convertGadget(raw []byte, desiredAPIVersion string) ([]byte, error) {
	obj := map[string]any{}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, err
	}
	from, to := "host", "hostname"
	if desiredAPIVersion == gadgetGroup+"/v1" {
		from, to = to, from
	}
	if spec, ok := obj["spec"].(map[string]any); ok {
		if value, ok := spec[from]; ok {
			spec[to] = value
			delete(spec, from)
		}
	}
	obj["apiVersion"] = desiredAPIVersion
	return json.Marshal(obj)
}

func gadget(version, name string, spec map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": gadgetGroup + "/" + version, "kind": "Gadget", "metadata": map[string]any{"name": name}, "spec": spec,
	}}
}

func specField(obj *unstructured.Unstructured, field string) string {
	value, _, _ := unstructured.NestedString(obj.Object, "spec", field)
	return value
}

// expectGadgetEvent reads w's next event and checks its type and that
// spec.field holds value.
func expectGadgetEvent(t *testing.T, w watch.Interface, eventType watch.EventType, name, field, value string) {
	t.Helper()
	event := nextEvent(t, w)
	obj, ok := event.Object.(*unstructured.Unstructured)
	if !ok || event.Type != eventType || obj.GetName() != name || specField(obj, field) != value {
		t.Fatalf("watch event %s %#v, want %s %s with spec.%s=%q", event.Type, event.Object, eventType, name, field, value)
	}
}

// expectConversionFailure checks err is what kube-apiserver answers when
// a conversion webhook fails: a 500 with no reason and the converter's
// message.
func expectConversionFailure(t *testing.T, err error, message string) {
	t.Helper()
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		t.Fatalf("got %v, want a conversion failure %q", err, message)
	}
	s := status.Status()
	if s.Code != http.StatusInternalServerError || s.Reason != metav1.StatusReasonUnknown || !strings.HasPrefix(s.Message, message) {
		t.Fatalf("got status code=%d reason=%q message=%q, want 500, no reason and %q", s.Code, s.Reason, s.Message, message)
	}
}

// TestCustomResourceConversionWebhook: a CRD served in two versions whose
// conversion webhook sits behind a Service. Objects are stored in the
// storage version, and every read, list and watch sees them in the version
// it asked for; writes through either version land converted;
// server-side apply compares ownership across versions; storedVersions
// keeps each storage version used; a failing or unreachable webhook gives
// kube-apiserver's error and leaves the stored object as it was.
func TestCustomResourceConversionWebhook(t *testing.T) {
	ctx := t.Context()
	ns := controlPlane.CreateNamespace(t)
	crdClient := apiextensionsclient.NewForConfigOrDie(controlPlane.Config)
	dyn := dynamic.NewForConfigOrDie(controlPlane.Config)

	converter := &gadgetConverter{}
	server := framework.StartWebhookServer(t, converter, "gadget-converter."+ns+".svc")
	exposeAsService(t, ns, "gadget-converter", server)
	crd, err := crdClient.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, gadgetCRD("v2", &apiextensionsv1.CustomResourceConversion{
		Strategy: apiextensionsv1.WebhookConverter,
		Webhook: &apiextensionsv1.WebhookConversion{
			ClientConfig: &apiextensionsv1.WebhookClientConfig{
				Service:  &apiextensionsv1.ServiceReference{Namespace: ns, Name: "gadget-converter", Path: ptr.To("/convert")},
				CABundle: server.CABundle,
			},
			ConversionReviewVersions: []string{"v1"},
		},
	}), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create CRD: %v", err)
	}
	t.Cleanup(func() {
		_ = crdClient.ApiextensionsV1().CustomResourceDefinitions().Delete(context.Background(), crd.Name, metav1.DeleteOptions{})
	})
	waitEstablished(t, crdClient, crd.Name)
	gadgets := func(version string) dynamic.ResourceInterface {
		return dyn.Resource(schema.GroupVersionResource{Group: gadgetGroup, Version: version, Resource: "gadgets"}).Namespace(ns)
	}
	v1, v2 := gadgets("v1"), gadgets("v2")
	var listed *unstructured.UnstructuredList
	eventually(t, 5*time.Second, "both versions served", func(ctx context.Context) (bool, error) {
		if _, err := v1.List(ctx, metav1.ListOptions{}); err != nil {
			return false, nil
		}
		listed, err = v2.List(ctx, metav1.ListOptions{})
		return err == nil, nil
	})
	watch1, err := v1.Watch(ctx, metav1.ListOptions{ResourceVersion: listed.GetResourceVersion()})
	if err != nil {
		t.Fatalf("watch v1: %v", err)
	}
	defer watch1.Stop()
	watch2, err := v2.Watch(ctx, metav1.ListOptions{ResourceVersion: listed.GetResourceVersion()})
	if err != nil {
		t.Fatalf("watch v2: %v", err)
	}
	defer watch2.Stop()

	// Created in v1: the webhook converts it to v2 to store it. The first
	// attempts may fail until the server's informers know the Service.
	var created *unstructured.Unstructured
	eventually(t, 10*time.Second, "create through v1", func(ctx context.Context) (bool, error) {
		created, err = v1.Create(ctx, gadget("v1", "g1", map[string]any{"host": "a.example", "port": int64(80)}), metav1.CreateOptions{})
		return err == nil, nil
	})
	if specField(created, "host") != "a.example" || created.GetAPIVersion() != gadgetGroup+"/v1" {
		t.Errorf("create answered %v, want a v1 Gadget with spec.host", created.Object)
	}
	stored, err := controlPlane.EtcdClient.Get(ctx, "/registry/"+gadgetGroup+"/gadgets/"+ns+"/g1")
	if err != nil || len(stored.Kvs) != 1 {
		t.Fatalf("read stored gadget: %v", err)
	}
	if got := string(stored.Kvs[0].Value); !strings.Contains(got, `"apiVersion":"`+gadgetGroup+`/v2"`) || !strings.Contains(got, `"hostname":"a.example"`) || strings.Contains(got, `"host":`) {
		t.Errorf("stored %s, want the v2 form", got)
	}

	for _, read := range []struct {
		version, field string
		client         dynamic.ResourceInterface
	}{{"v1", "host", v1}, {"v2", "hostname", v2}} {
		got, err := read.client.Get(ctx, "g1", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get %s: %v", read.version, err)
		}
		if got.GetAPIVersion() != gadgetGroup+"/"+read.version || specField(got, read.field) != "a.example" || len(got.Object["spec"].(map[string]any)) != 2 {
			t.Errorf("get %s = %v, want spec.%s and port only", read.version, got.Object, read.field)
		}
		list, err := read.client.List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatalf("list %s: %v", read.version, err)
		}
		if len(list.Items) != 1 || list.Items[0].GetAPIVersion() != gadgetGroup+"/"+read.version || specField(&list.Items[0], read.field) != "a.example" {
			t.Errorf("list %s = %v, want g1 with spec.%s", read.version, list.Items, read.field)
		}
	}
	expectGadgetEvent(t, watch1, watch.Added, "g1", "host", "a.example")
	expectGadgetEvent(t, watch2, watch.Added, "g1", "hostname", "a.example")

	// Each review carries the objects and the version wanted, with a UID.
	desired := map[string]bool{}
	for _, request := range converter.received() {
		if request.UID == "" || len(request.Objects) == 0 {
			t.Errorf("conversion request %+v lacks a UID or objects", request)
		}
		for _, raw := range request.Objects {
			obj := &unstructured.Unstructured{}
			if err := obj.UnmarshalJSON(raw.Raw); err != nil || obj.GetAPIVersion() == request.DesiredAPIVersion {
				t.Errorf("asked to convert %s to %s (%v)", raw.Raw, request.DesiredAPIVersion, err)
			}
		}
		desired[request.DesiredAPIVersion] = true
	}
	if !desired[gadgetGroup+"/v1"] || !desired[gadgetGroup+"/v2"] {
		t.Errorf("webhook was asked for %v, want both versions", desired)
	}

	// What a conversion costs a read, for the record (never asserted):
	// a consistent get reads etcd, and through v1 also calls the webhook.
	for _, read := range []struct {
		version string
		client  dynamic.ResourceInterface
	}{{"v2 (storage version)", v2}, {"v1 (webhook conversion)", v1}} {
		const reads = 50
		start := time.Now()
		for range reads {
			if _, err := read.client.Get(ctx, "g1", metav1.GetOptions{}); err != nil {
				t.Fatalf("get %s: %v", read.version, err)
			}
		}
		t.Logf("get through %s: %v per read over %d reads", read.version, time.Since(start)/reads, reads)
	}

	// Updated through v2: both watchers see the change in their version.
	current, err := v2.Get(ctx, "g1", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get v2: %v", err)
	}
	if err := unstructured.SetNestedField(current.Object, "b.example", "spec", "hostname"); err != nil {
		t.Fatal(err)
	}
	if _, err := v2.Update(ctx, current, metav1.UpdateOptions{FieldManager: "updater"}); err != nil {
		t.Fatalf("update through v2: %v", err)
	}
	expectGadgetEvent(t, watch1, watch.Modified, "g1", "host", "b.example")
	expectGadgetEvent(t, watch2, watch.Modified, "g1", "hostname", "b.example")

	// Server-side apply through v1, then through v2: v2's change is
	// converted to each manager's version, so it conflicts with
	// v1-applier's host, named as v1 names it (as structured-merge-diff
	// reports conflicts in the conflicting manager's version).
	if _, err := v1.Apply(ctx, "g2", gadget("v1", "g2", map[string]any{"host": "c.example"}), metav1.ApplyOptions{FieldManager: "v1-applier"}); err != nil {
		t.Fatalf("apply through v1: %v", err)
	}
	_, err = v2.Apply(ctx, "g2", gadget("v2", "g2", map[string]any{"hostname": "d.example"}), metav1.ApplyOptions{FieldManager: "v2-applier"})
	if !apierrors.IsConflict(err) || !strings.Contains(err.Error(), `conflict with "v1-applier"`) || !strings.HasSuffix(err.Error(), ": .spec.host") {
		t.Fatalf("apply through v2 answered %v, want a conflict with v1-applier on .spec.host", err)
	}
	if _, err := v2.Apply(ctx, "g2", gadget("v2", "g2", map[string]any{"hostname": "d.example"}), metav1.ApplyOptions{FieldManager: "v2-applier", Force: true}); err != nil {
		t.Fatalf("forced apply through v2: %v", err)
	}
	applied, err := v1.Get(ctx, "g2", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get g2: %v", err)
	}
	if specField(applied, "host") != "d.example" {
		t.Errorf("g2 through v1 = %v, want spec.host d.example", applied.Object)
	}
	for _, entry := range applied.GetManagedFields() {
		if entry.Manager == "v1-applier" && entry.FieldsV1 != nil && strings.Contains(string(entry.FieldsV1.Raw), "f:host") {
			t.Errorf("v1-applier still owns spec.host after the forced apply: %s", entry.FieldsV1.Raw)
		}
	}

	// A webhook that refuses: reads and writes needing conversion fail
	// with its message, and the stored object stays as it was.
	before, err := v2.Get(ctx, "g1", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get v2: %v", err)
	}
	converter.failWith.Store(ptr.To("conversion refused by test"))
	_, err = v1.Get(ctx, "g1", metav1.GetOptions{})
	expectConversionFailure(t, err, "conversion webhook for "+gadgetGroup+"/v2, Kind=Gadget failed: conversion refused by test")
	rewrite := gadget("v1", "g1", map[string]any{"host": "refused.example"})
	rewrite.SetResourceVersion(before.GetResourceVersion())
	_, err = v1.Update(ctx, rewrite, metav1.UpdateOptions{})
	expectConversionFailure(t, err, "conversion webhook for "+gadgetGroup+"/v1, Kind=Gadget failed: conversion refused by test")
	converter.failWith.Store(nil)
	after, err := v2.Get(ctx, "g1", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get v2 after the refusals: %v", err)
	}
	if after.GetResourceVersion() != before.GetResourceVersion() || specField(after, "hostname") != "b.example" {
		t.Errorf("after refused conversions g1 = %v, want it unchanged", after.Object)
	}

	// v1 becomes the storage version: storedVersions keeps v2, new writes
	// are stored as v1, and objects stored as v2 still read in both.
	eventually(t, 5*time.Second, "v1 as storage version", func(ctx context.Context) (bool, error) {
		latest, err := crdClient.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for i := range latest.Spec.Versions {
			latest.Spec.Versions[i].Storage = latest.Spec.Versions[i].Name == "v1"
		}
		updated, err := crdClient.ApiextensionsV1().CustomResourceDefinitions().Update(ctx, latest, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if got := updated.Status.StoredVersions; len(got) != 2 || got[0] != "v2" || got[1] != "v1" {
			t.Errorf("storedVersions = %v, want [v2 v1]", got)
		}
		return true, nil
	})
	eventually(t, 5*time.Second, "new objects stored as v1", func(ctx context.Context) (bool, error) {
		name := fmt.Sprintf("g3-%d", time.Now().UnixNano())
		if _, err := v2.Create(ctx, gadget("v2", name, map[string]any{"hostname": "e.example"}), metav1.CreateOptions{}); err != nil {
			return false, err
		}
		stored, err := controlPlane.EtcdClient.Get(ctx, "/registry/"+gadgetGroup+"/gadgets/"+ns+"/"+name)
		if err != nil || len(stored.Kvs) != 1 {
			return false, err
		}
		return strings.Contains(string(stored.Kvs[0].Value), `"host":"e.example"`), nil
	})
	if got, err := v1.Get(ctx, "g1", metav1.GetOptions{}); err != nil || specField(got, "host") != "b.example" {
		t.Errorf("g1 stored as v2, read through v1 = %v, %v; want spec.host b.example", got, err)
	}

	// An unreachable webhook: the write needing conversion fails with the
	// client's error in kube-apiserver's message and stores nothing.
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "https://" + closed.Addr().String() + "/convert"
	_ = closed.Close()
	eventually(t, 5*time.Second, "webhook moved to a closed port", func(ctx context.Context) (bool, error) {
		latest, err := crdClient.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		latest.Spec.Conversion.Webhook.ClientConfig = &apiextensionsv1.WebhookClientConfig{URL: &deadURL, CABundle: server.CABundle}
		_, err = crdClient.ApiextensionsV1().CustomResourceDefinitions().Update(ctx, latest, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			return false, nil
		}
		return err == nil, err
	})
	var createErr error
	// accepted counts the creates made before the change took effect.
	accepted := int64(0)
	eventually(t, 5*time.Second, "create through v2 to fail", func(ctx context.Context) (bool, error) {
		name := fmt.Sprintf("g4-%d", time.Now().UnixNano())
		_, createErr = v2.Create(ctx, gadget("v2", name, map[string]any{"hostname": "f.example"}), metav1.CreateOptions{})
		if createErr == nil {
			accepted++
		}
		return createErr != nil, nil
	})
	expectConversionFailure(t, createErr, "conversion webhook for "+gadgetGroup+"/v2, Kind=Gadget failed: Post \""+deadURL)
	if !strings.Contains(createErr.Error(), "connection refused") {
		t.Errorf("create answered %v, want the connection refusal", createErr)
	}
	refused, err := controlPlane.EtcdClient.Get(ctx, "/registry/"+gadgetGroup+"/gadgets/"+ns+"/g4-", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatalf("read stored gadgets: %v", err)
	}
	if refused.Count != accepted {
		t.Errorf("%d objects stored after %d accepted creates: the refused one was stored", refused.Count, accepted)
	}
}

// TestCustomResourceNoneConversion: with the None strategy objects move
// between versions by their apiVersion alone; what the storage version's
// schema does not know is not stored, what the read version's schema does
// not know is not shown, and a write answers with what was stored, as
// kube-apiserver does.
func TestCustomResourceNoneConversion(t *testing.T) {
	ctx := t.Context()
	ns := controlPlane.CreateNamespace(t)
	crdClient := apiextensionsclient.NewForConfigOrDie(controlPlane.Config)
	dyn := dynamic.NewForConfigOrDie(controlPlane.Config)
	const group = "none.tower.dev"
	crd := gadgetCRD("v2", &apiextensionsv1.CustomResourceConversion{Strategy: apiextensionsv1.NoneConverter})
	crd.Name, crd.Spec.Group = "gadgets."+group, group
	if _, err := crdClient.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create CRD: %v", err)
	}
	t.Cleanup(func() {
		_ = crdClient.ApiextensionsV1().CustomResourceDefinitions().Delete(context.Background(), crd.Name, metav1.DeleteOptions{})
	})
	if got := waitEstablished(t, crdClient, crd.Name).Status.StoredVersions; len(got) != 1 || got[0] != "v2" {
		t.Errorf("storedVersions = %v, want [v2]", got)
	}
	gadgets := func(version string) dynamic.ResourceInterface {
		return dyn.Resource(schema.GroupVersionResource{Group: group, Version: version, Resource: "gadgets"}).Namespace(ns)
	}
	v1, v2 := gadgets("v1"), gadgets("v2")
	withSpec := func(version, name string, spec map[string]any) *unstructured.Unstructured {
		obj := gadget(version, name, spec)
		obj.SetAPIVersion(group + "/" + version)
		return obj
	}

	var created *unstructured.Unstructured
	eventually(t, 5*time.Second, "create through v1", func(ctx context.Context) (bool, error) {
		var err error
		created, err = v1.Create(ctx, withSpec("v1", "n1", map[string]any{"host": "a.example", "port": int64(80)}), metav1.CreateOptions{})
		return err == nil, nil
	})
	wantSpec := map[string]any{"port": int64(80)}
	if created.GetAPIVersion() != group+"/v1" || !equality.Semantic.DeepEqual(created.Object["spec"], wantSpec) {
		t.Errorf("create answered %v, want v1 with spec %v: host is not in the storage version", created.Object, wantSpec)
	}
	stored, err := controlPlane.EtcdClient.Get(ctx, "/registry/"+group+"/gadgets/"+ns+"/n1")
	if err != nil || len(stored.Kvs) != 1 {
		t.Fatalf("read stored gadget: %v", err)
	}
	if got := string(stored.Kvs[0].Value); !strings.Contains(got, `"apiVersion":"`+group+`/v2"`) || !strings.Contains(got, `"spec":{"port":80}`) {
		t.Errorf("stored %s, want v2 without host", got)
	}
	if got, err := v2.Get(ctx, "n1", metav1.GetOptions{}); err != nil || !equality.Semantic.DeepEqual(got.Object["spec"], wantSpec) {
		t.Errorf("get v2 = %v, %v; want spec %v", got, err, wantSpec)
	}

	if _, err := v2.Create(ctx, withSpec("v2", "n2", map[string]any{"hostname": "b.example", "port": int64(81)}), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create through v2: %v", err)
	}
	got, err := v1.Get(ctx, "n2", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get v1: %v", err)
	}
	if want := map[string]any{"port": int64(81)}; got.GetAPIVersion() != group+"/v1" || !equality.Semantic.DeepEqual(got.Object["spec"], want) {
		t.Errorf("get v1 = %v, want v1 with spec %v: hostname is not in v1", got.Object, want)
	}
}
