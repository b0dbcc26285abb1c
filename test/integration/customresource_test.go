package integration

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/utils/ptr"
)

const widgetGroup = "crd-test.tower.dev"

// widgetCRD is a namespaced CRD with two served versions, a schema with
// defaults, enums, ranges and a CEL rule, status and scale subresources and
// a printer column.
func widgetCRD() *apiextensionsv1.CustomResourceDefinition {
	schema := &apiextensionsv1.JSONSchemaProps{
		Type: "object",
		Properties: map[string]apiextensionsv1.JSONSchemaProps{
			"spec": {
				Type: "object",
				Properties: map[string]apiextensionsv1.JSONSchemaProps{
					"replicas": {Type: "integer", Minimum: ptr.To(0.0)},
					"size":     {Type: "string", Enum: []apiextensionsv1.JSON{{Raw: []byte(`"small"`)}, {Raw: []byte(`"large"`)}}},
					"color":    {Type: "string", Default: &apiextensionsv1.JSON{Raw: []byte(`"blue"`)}},
					"selector": {Type: "string"},
				},
				XValidations: apiextensionsv1.ValidationRules{{
					Rule:              "!has(self.replicas) || self.replicas <= 10",
					MessageExpression: `"replicas must be at most 10"`,
				}},
			},
			"status": {
				Type: "object",
				Properties: map[string]apiextensionsv1.JSONSchemaProps{
					"replicas": {Type: "integer"},
					"phase":    {Type: "string"},
				},
			},
		},
	}
	version := func(name string, storage bool) apiextensionsv1.CustomResourceDefinitionVersion {
		return apiextensionsv1.CustomResourceDefinitionVersion{
			Name: name, Served: true, Storage: storage,
			Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: schema.DeepCopy()},
			Subresources: &apiextensionsv1.CustomResourceSubresources{
				Status: &apiextensionsv1.CustomResourceSubresourceStatus{},
				Scale: &apiextensionsv1.CustomResourceSubresourceScale{
					SpecReplicasPath: ".spec.replicas", StatusReplicasPath: ".status.replicas", LabelSelectorPath: ptr.To(".spec.selector"),
				},
			},
			AdditionalPrinterColumns: []apiextensionsv1.CustomResourceColumnDefinition{
				{Name: "Size", Type: "string", JSONPath: ".spec.size"},
			},
		}
	}
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "widgets." + widgetGroup},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: widgetGroup,
			Names: apiextensionsv1.CustomResourceDefinitionNames{
				Plural: "widgets", Singular: "widget", Kind: "Widget", ListKind: "WidgetList",
				ShortNames: []string{"wdg"}, Categories: []string{"all"},
			},
			Scope:    apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{version("v1", true), version("v1beta1", false)},
		},
	}
}

func waitEstablished(t *testing.T, client apiextensionsclient.Interface, name string) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	var crd *apiextensionsv1.CustomResourceDefinition
	eventually(t, 5*time.Second, name+" established", func(ctx context.Context) (bool, error) {
		var err error
		crd, err = client.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range crd.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	return crd
}

func TestCustomResources(t *testing.T) {
	ctx := t.Context()
	crdClient := apiextensionsclient.NewForConfigOrDie(controlPlane.Config)
	dyn := dynamic.NewForConfigOrDie(controlPlane.Config)
	ns := controlPlane.CreateNamespace(t)

	start := time.Now()
	created, err := crdClient.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, widgetCRD(), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create CRD: %v", err)
	}
	t.Cleanup(func() {
		_ = crdClient.ApiextensionsV1().CustomResourceDefinitions().Delete(context.Background(), created.Name, metav1.DeleteOptions{})
	})
	crd := waitEstablished(t, crdClient, created.Name)
	// How fast is a benchmark figure (test/bench), not a test's verdict.
	t.Logf("CRD established after %v", time.Since(start))
	if crd.Status.AcceptedNames.Kind != "Widget" || len(crd.Status.StoredVersions) != 1 || crd.Status.StoredVersions[0] != "v1" {
		t.Errorf("status = %+v, want accepted names and storedVersions [v1]", crd.Status)
	}

	resources, err := controlPlane.Clientset().Discovery().ServerResourcesForGroupVersion(widgetGroup + "/v1")
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	found := map[string]bool{}
	for _, r := range resources.APIResources {
		found[r.Name] = true
	}
	if !found["widgets"] || !found["widgets/status"] || !found["widgets/scale"] {
		t.Errorf("discovery lists %v, want widgets with status and scale", found)
	}

	widgets := dyn.Resource(schema.GroupVersionResource{Group: widgetGroup, Version: "v1", Resource: "widgets"}).Namespace(ns)
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": widgetGroup + "/v1", "kind": "Widget",
		"metadata": map[string]any{"name": "w1"},
		"spec":     map[string]any{"replicas": int64(2), "size": "small", "unknown": "dropped", "selector": "app=w1"},
		"status":   map[string]any{"phase": "ignored on create"},
	}}
	w1, err := widgets.Create(ctx, obj, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create widget: %v", err)
	}
	spec, _, _ := unstructured.NestedMap(w1.Object, "spec")
	if spec["color"] != "blue" || spec["unknown"] != nil || w1.Object["status"] != nil || w1.GetGeneration() != 1 {
		t.Errorf("created widget = %v, want defaulted color, pruned unknown field, no status, generation 1", w1.Object)
	}

	for name, spec := range map[string]map[string]any{
		"enum":  {"size": "medium"},
		"range": {"replicas": int64(-1)},
		"cel":   {"replicas": int64(11)},
	} {
		bad := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": widgetGroup + "/v1", "kind": "Widget", "metadata": map[string]any{"name": "bad-" + name}, "spec": spec,
		}}
		_, err := widgets.Create(ctx, bad, metav1.CreateOptions{})
		if !apierrors.IsInvalid(err) {
			t.Errorf("%s: create error = %v, want Invalid", name, err)
			continue
		}
		var status apierrors.APIStatus
		if errors.As(err, &status) && (status.Status().Details == nil || len(status.Status().Details.Causes) == 0 || status.Status().Details.Causes[0].Field == "") {
			t.Errorf("%s: error %v carries no field path", name, err)
		}
	}

	w1.Object["status"] = map[string]any{"replicas": int64(2), "phase": "Ready"}
	withStatus, err := widgets.UpdateStatus(ctx, w1, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("update status: %v", err)
	}
	if withStatus.GetGeneration() != 1 {
		t.Errorf("status update changed generation to %d", withStatus.GetGeneration())
	}
	patched, err := widgets.Patch(ctx, "w1", types.MergePatchType, []byte(`{"spec":{"size":"large"}}`), metav1.PatchOptions{})
	if err != nil {
		t.Fatalf("merge patch: %v", err)
	}
	if patched.GetGeneration() != 2 {
		t.Errorf("spec patch left generation at %d, want 2", patched.GetGeneration())
	}
	if phase, _, _ := unstructured.NestedString(patched.Object, "status", "phase"); phase != "Ready" {
		t.Errorf("spec patch lost status: %v", patched.Object["status"])
	}
	if _, err := widgets.Patch(ctx, "w1", types.StrategicMergePatchType, []byte(`{"spec":{"size":"small"}}`), metav1.PatchOptions{}); !apierrors.IsUnsupportedMediaType(err) {
		t.Errorf("strategic merge patch error = %v, want 415", err)
	}

	beta, err := dyn.Resource(schema.GroupVersionResource{Group: widgetGroup, Version: "v1beta1", Resource: "widgets"}).Namespace(ns).Get(ctx, "w1", metav1.GetOptions{})
	if err != nil || beta.GetAPIVersion() != widgetGroup+"/v1beta1" {
		t.Errorf("get through v1beta1 = %v, %v; want apiVersion v1beta1", beta, err)
	}

	scale, err := controlPlane.Clientset().RESTClient().Get().AbsPath("/apis", widgetGroup, "v1", "namespaces", ns, "widgets", "w1", "scale").DoRaw(ctx)
	if err != nil {
		t.Fatalf("get scale: %v", err)
	}
	t.Logf("scale: %s", scale)

	table, err := controlPlane.Clientset().RESTClient().Get().AbsPath("/apis", widgetGroup, "v1", "namespaces", ns, "widgets").
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(ctx)
	if err != nil {
		t.Fatalf("table: %v", err)
	}
	if !strings.Contains(string(table), `"name":"Size"`) || !strings.Contains(string(table), `"large"`) {
		t.Errorf("table %s lacks the Size column", table)
	}

	watcher, err := widgets.Watch(ctx, metav1.ListOptions{ResourceVersion: patched.GetResourceVersion()})
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	defer watcher.Stop()
	obj2 := &unstructured.Unstructured{Object: map[string]any{"apiVersion": widgetGroup + "/v1", "kind": "Widget", "metadata": map[string]any{"name": "w2"}}}
	if _, err := widgets.Create(ctx, obj2, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create w2: %v", err)
	}
	select {
	case event := <-watcher.ResultChan():
		if event.Type != watch.Added || event.Object.(*unstructured.Unstructured).GetName() != "w2" {
			t.Errorf("watch event = %v %v, want ADDED w2", event.Type, event.Object)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no watch event for w2")
	}

	if err := crdClient.ApiextensionsV1().CustomResourceDefinitions().Delete(ctx, created.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete CRD: %v", err)
	}
	eventually(t, 10*time.Second, "CRD and its objects gone", func(ctx context.Context) (bool, error) {
		_, err := crdClient.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, created.Name, metav1.GetOptions{})
		if !apierrors.IsNotFound(err) {
			return false, nil
		}
		keys, err := controlPlane.EtcdClient.Get(ctx, "/registry/"+widgetGroup+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			return false, err
		}
		return keys.Count == 0, nil
	})
	if _, err := widgets.Get(ctx, "w1", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("get after CRD deletion = %v, want NotFound", err)
	}
}

func TestCustomResourceDefinitionNameConflict(t *testing.T) {
	ctx := t.Context()
	crdClient := apiextensionsclient.NewForConfigOrDie(controlPlane.Config)
	first := widgetCRD()
	first.Name, first.Spec.Group = "widgets.conflict.tower.dev", "conflict.tower.dev"
	second := widgetCRD()
	second.Name, second.Spec.Group = "gizmos.conflict.tower.dev", "conflict.tower.dev"
	second.Spec.Names.Plural, second.Spec.Names.Singular, second.Spec.Names.ShortNames = "gizmos", "gizmo", nil
	for _, crd := range []*apiextensionsv1.CustomResourceDefinition{first, second} {
		if _, err := crdClient.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create %s: %v", crd.Name, err)
		}
		t.Cleanup(func() {
			_ = crdClient.ApiextensionsV1().CustomResourceDefinitions().Delete(context.Background(), crd.Name, metav1.DeleteOptions{})
		})
		if crd == first {
			waitEstablished(t, crdClient, crd.Name)
		}
	}
	eventually(t, 5*time.Second, "KindConflict on the second CRD", func(ctx context.Context) (bool, error) {
		crd, err := crdClient.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, second.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range crd.Status.Conditions {
			if c.Type == apiextensionsv1.NamesAccepted && c.Status == apiextensionsv1.ConditionFalse && c.Reason == "KindConflict" {
				return true, nil
			}
		}
		return false, nil
	})
}
