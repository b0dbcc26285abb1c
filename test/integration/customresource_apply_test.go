package integration

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

const routeGroup = "apply.tower.dev"

// routeCRD has one list of each kind server-side apply distinguishes:
// backends is a map keyed by name, hosts a set, tags atomic.
func routeCRD() *apiextensionsv1.CustomResourceDefinition {
	str := apiextensionsv1.JSONSchemaProps{Type: "string"}
	spec := apiextensionsv1.JSONSchemaProps{Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
		"owner": str,
		"hosts": {Type: "array", Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &str}, XListType: ptr.To("set")},
		"tags":  {Type: "array", Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &str}, XListType: ptr.To("atomic")},
		"backends": {
			Type: "array", XListType: ptr.To("map"), XListMapKeys: []string{"name"},
			Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &apiextensionsv1.JSONSchemaProps{
				Type: "object", Required: []string{"name"},
				Properties: map[string]apiextensionsv1.JSONSchemaProps{"name": str, "weight": {Type: "integer"}},
			}},
		},
	}}
	status := apiextensionsv1.JSONSchemaProps{Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{"ready": {Type: "boolean"}}}
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "routes." + routeGroup},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: routeGroup,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "routes", Singular: "route", Kind: "Route", ListKind: "RouteList"},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{"spec": spec, "status": status},
				}},
				Subresources: &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}},
			}},
		},
	}
}

// route is an apply configuration of a Route with the given spec.
func route(name string, spec map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": routeGroup + "/v1", "kind": "Route", "metadata": map[string]any{"name": name}, "spec": spec,
	}}
}

// TestCustomResourceServerSideApply: managedFields and server-side apply on
// custom resources follow the CRD's schema: map lists merge by key, sets
// by value, atomic lists are owned whole, and conflicts name the manager
// as for built-in kinds.
func TestCustomResourceServerSideApply(t *testing.T) {
	ctx := t.Context()
	crdClient := apiextensionsclient.NewForConfigOrDie(controlPlane.Config)
	ns := controlPlane.CreateNamespace(t)
	crd, err := crdClient.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, routeCRD(), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create CRD: %v", err)
	}
	t.Cleanup(func() {
		_ = crdClient.ApiextensionsV1().CustomResourceDefinitions().Delete(context.Background(), crd.Name, metav1.DeleteOptions{})
	})
	waitEstablished(t, crdClient, crd.Name)
	routes := dynamic.NewForConfigOrDie(controlPlane.Config).Resource(schema.GroupVersionResource{Group: routeGroup, Version: "v1", Resource: "routes"}).Namespace(ns)

	created, err := routes.Create(ctx, route("web", map[string]any{"owner": "ops"}), metav1.CreateOptions{FieldManager: "creator"})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if got := managers(created.GetManagedFields()); !slices.Equal(got, []string{"creator/Update/"}) {
		t.Errorf("managers after create = %v, want creator/Update/", got)
	}

	apply := func(manager string, force bool, spec map[string]any) (*unstructured.Unstructured, error) {
		return routes.Apply(ctx, "web", route("web", spec), metav1.ApplyOptions{FieldManager: manager, Force: force})
	}
	if _, err := apply("alice", false, map[string]any{
		"hosts": []any{"a.example"}, "tags": []any{"blue"},
		"backends": []any{map[string]any{"name": "a", "weight": int64(1)}},
	}); err != nil {
		t.Fatalf("alice's apply: %v", err)
	}
	merged, err := apply("bob", false, map[string]any{
		"hosts": []any{"b.example"}, "backends": []any{map[string]any{"name": "b", "weight": int64(2)}},
	})
	if err != nil {
		t.Fatalf("bob's apply: %v", err)
	}
	hosts, _, _ := unstructured.NestedStringSlice(merged.Object, "spec", "hosts")
	backends, _, _ := unstructured.NestedSlice(merged.Object, "spec", "backends")
	if !slices.Equal(hosts, []string{"a.example", "b.example"}) || len(backends) != 2 {
		t.Errorf("after two appliers: hosts %v, backends %v; want both hosts (set) and both backends (map by name)", hosts, backends)
	}
	if owned := ownedBy(merged.GetManagedFields(), "alice"); !strings.Contains(owned, `"k:{\"name\":\"a\"}"`) || !strings.Contains(owned, `"v:\"a.example\""`) {
		t.Errorf("alice owns %s, want backend a by key and host a.example by value", owned)
	}

	for _, conflict := range []struct {
		spec map[string]any
		want string
	}{
		{map[string]any{"tags": []any{"green"}}, `Apply failed with 1 conflict: conflict with "alice": .spec.tags`},
		{map[string]any{"backends": []any{map[string]any{"name": "a", "weight": int64(5)}}}, `Apply failed with 1 conflict: conflict with "alice": .spec.backends[name="a"].weight`},
		{map[string]any{"owner": "bob"}, `Apply failed with 1 conflict: conflict with "creator" using ` + routeGroup + `/v1: .spec.owner`},
	} {
		_, err := apply("bob", false, conflict.spec)
		if !apierrors.IsConflict(err) || err.(apierrors.APIStatus).Status().Message != conflict.want {
			t.Errorf("bob applying %v: %v, want 409 %q", conflict.spec, err, conflict.want)
		}
	}
	forced, err := apply("bob", true, map[string]any{"backends": []any{map[string]any{"name": "a", "weight": int64(5)}}})
	if err != nil {
		t.Fatalf("forced apply: %v", err)
	}
	// bob took a's weight and no longer applies backend b or host
	// b.example, which only he owned: they go.
	backends, _, _ = unstructured.NestedSlice(forced.Object, "spec", "backends")
	hosts, _, _ = unstructured.NestedStringSlice(forced.Object, "spec", "hosts")
	if len(backends) != 1 || backends[0].(map[string]any)["weight"] != int64(5) || !slices.Equal(hosts, []string{"a.example"}) {
		t.Errorf("after the forced apply: backends %v, hosts %v; want only a with weight 5 and a.example", backends, hosts)
	}

	status := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": routeGroup + "/v1", "kind": "Route", "metadata": map[string]any{"name": "web"}, "status": map[string]any{"ready": true},
	}}
	withStatus, err := routes.ApplyStatus(ctx, "web", status, metav1.ApplyOptions{FieldManager: "route-controller"})
	if err != nil {
		t.Fatalf("apply status: %v", err)
	}
	if ready, _, _ := unstructured.NestedBool(withStatus.Object, "status", "ready"); !ready || !slices.Contains(managers(withStatus.GetManagedFields()), "route-controller/Apply/status") {
		t.Errorf("after the status apply: ready %v, managers %v", ready, managers(withStatus.GetManagedFields()))
	}

	// controller-runtime's unstructured client applies through the same path.
	c, err := client.New(controlPlane.Config, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	carol := route("web", map[string]any{"backends": []any{map[string]any{"name": "c", "weight": int64(3)}}})
	carol.SetNamespace(ns)
	if err := c.Patch(ctx, carol, client.Apply, client.FieldOwner("carol")); err != nil {
		t.Fatalf("controller-runtime apply: %v", err)
	}
	list := &unstructured.UnstructuredList{}
	list.SetAPIVersion(routeGroup + "/v1")
	list.SetKind("RouteList")
	if err := c.List(ctx, list, client.InNamespace(ns)); err != nil || len(list.Items) != 1 {
		t.Fatalf("controller-runtime list: %v, %d items", err, len(list.Items))
	}
	if backends, _, _ := unstructured.NestedSlice(list.Items[0].Object, "spec", "backends"); len(backends) != 2 {
		t.Errorf("backends after carol's apply = %v, want a and c", backends)
	}

	// A schema change applies to the next write without a restart.
	eventually(t, 5*time.Second, "maxItems on hosts enforced", func(ctx context.Context) (bool, error) {
		current, err := crdClient.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		hosts := current.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["hosts"]
		if hosts.MaxItems == nil {
			hosts.MaxItems = ptr.To[int64](2)
			current.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["hosts"] = hosts
			if _, err := crdClient.ApiextensionsV1().CustomResourceDefinitions().Update(ctx, current, metav1.UpdateOptions{}); err != nil {
				return false, nil
			}
		}
		_, err = apply("dave", false, map[string]any{"hosts": []any{"1.example", "2.example", "3.example"}})
		return apierrors.IsInvalid(err), nil
	})
}
