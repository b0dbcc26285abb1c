package openapi

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/cli-runtime/pkg/resource"
	"k8s.io/client-go/discovery"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/openapi3"
	"k8s.io/client-go/rest"
	"k8s.io/kube-openapi/pkg/handler3"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/util/proto"
	"k8s.io/kube-openapi/pkg/validation/spec"
	explainv2 "k8s.io/kubectl/pkg/explain/v2"

	"tower.dev/tower/apiserver/registry"
)

// testScheme registers what the API server's scheme registers.
func testScheme(t testing.TB) *runtime.Scheme {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	metav1.AddToGroupVersion(scheme, schema.GroupVersion{Version: "v1"})
	return scheme
}

func newTestDocuments(t testing.TB) *Documents {
	t.Helper()
	docs, err := New(registry.Builtins(registry.BuiltinOptions{}), testScheme(t), "v1.37.2")
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return docs
}

// newTestServer serves the documents and answers 404 for anything else, as
// the API server's mux would for a path nobody claims.
func newTestServer(t testing.TB) *httptest.Server {
	t.Helper()
	docs := newTestDocuments(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !docs.ServeHTTP(w, r) {
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string, header map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

func readBody(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// v3Document fetches a group version's document the way clients do: through
// the discovery document's hashed URL.
func v3Document(t *testing.T, srv *httptest.Server, name string) *spec3.OpenAPI {
	t.Helper()
	resp := get(t, srv.URL+"/openapi/v3", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /openapi/v3: %s", resp.Status)
	}
	var disc handler3.OpenAPIV3Discovery
	if err := json.Unmarshal(readBody(t, resp), &disc); err != nil {
		t.Fatalf("decode discovery: %v", err)
	}
	entry, ok := disc.Paths[name]
	if !ok {
		t.Fatalf("discovery lacks %q: %v", name, disc.Paths)
	}
	resp = get(t, srv.URL+entry.ServerRelativeURL, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", entry.ServerRelativeURL, resp.Status)
	}
	doc := &spec3.OpenAPI{}
	if err := doc.UnmarshalJSON(readBody(t, resp)); err != nil {
		t.Fatalf("decode %s: %v", name, err)
	}
	return doc
}

func TestV3DiscoveryListsServedGroupVersions(t *testing.T) {
	srv := newTestServer(t)
	resp := get(t, srv.URL+"/openapi/v3", nil)
	var disc handler3.OpenAPIV3Discovery
	if err := json.Unmarshal(readBody(t, resp), &disc); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"api", "api/v1", "apis", "apis/apps", "apis/apps/v1", "apis/batch/v1", "apis/events.k8s.io/v1", "version"} {
		entry, ok := disc.Paths[name]
		if !ok {
			t.Errorf("discovery lacks %q", name)
			continue
		}
		if !strings.HasPrefix(entry.ServerRelativeURL, "/openapi/v3/"+name+"?hash=") {
			t.Errorf("%s: serverRelativeURL %q", name, entry.ServerRelativeURL)
		}
	}
}

func TestV3DeploymentPatchAcceptsFieldValidation(t *testing.T) {
	srv := newTestServer(t)
	doc := v3Document(t, srv, "apis/apps/v1")
	path, ok := doc.Paths.Paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
	if !ok || path.Patch == nil {
		t.Fatalf("no patch operation on the deployment item path")
	}
	patch := path.Patch
	if patch.OperationId != "patchAppsV1NamespacedDeployment" {
		t.Errorf("operationId = %q", patch.OperationId)
	}
	var gvk map[string]string
	if err := patch.Extensions.GetObject(extensionGVK, &gvk); err != nil {
		t.Fatalf("%s: %v", extensionGVK, err)
	}
	if want := (map[string]string{"group": "apps", "version": "v1", "kind": "Deployment"}); !equalMaps(gvk, want) {
		t.Errorf("%s = %v, want %v", extensionGVK, gvk, want)
	}
	if action, _ := patch.Extensions.GetString(extensionAction); action != "patch" {
		t.Errorf("%s = %q", extensionAction, action)
	}
	params := map[string]bool{}
	for _, p := range patch.Parameters {
		if p.In == "query" {
			params[p.Name] = true
		}
	}
	for _, name := range []string{"fieldValidation", "dryRun", "fieldManager", "force"} {
		if !params[name] {
			t.Errorf("patch lacks query parameter %q (has %v)", name, params)
		}
	}
	if patch.RequestBody == nil || patch.RequestBody.Content["application/strategic-merge-patch+json"] == nil {
		t.Errorf("patch request body does not accept strategic merge patches")
	}
	// Strategic merge and server-side apply read the merge keys from here.
	containers := doc.Components.Schemas["io.k8s.api.core.v1.PodSpec"].Properties["containers"]
	if key, _ := containers.Extensions.GetString("x-kubernetes-patch-merge-key"); key != "name" {
		t.Errorf("PodSpec.containers patch merge key = %q", key)
	}
	if listType, _ := containers.Extensions.GetString("x-kubernetes-list-type"); listType != "map" {
		t.Errorf("PodSpec.containers list type = %q", listType)
	}
	deployment := doc.Components.Schemas["io.k8s.api.apps.v1.Deployment"]
	var kinds []map[string]string
	if err := deployment.Extensions.GetObject(extensionGVK, &kinds); err != nil || len(kinds) != 1 || kinds[0]["kind"] != "Deployment" {
		t.Errorf("Deployment definition kinds = %v (%v)", kinds, err)
	}
	var deleteKinds []map[string]string
	if err := doc.Components.Schemas["io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"].Extensions.GetObject(extensionGVK, &deleteKinds); err != nil {
		t.Fatal(err)
	}
	if len(deleteKinds) != 2 {
		t.Errorf("DeleteOptions kinds in apps/v1 = %v, want only core/v1 and apps/v1", deleteKinds)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func restConfig(srv *httptest.Server) *rest.Config {
	return &rest.Config{Host: srv.URL}
}

// kubectl create/apply --validate=strict asks this verifier whether the
// server validates fields itself.
func TestQueryParamVerifierV3SupportsFieldValidation(t *testing.T) {
	srv := newTestServer(t)
	client, err := discovery.NewDiscoveryClientForConfig(restConfig(srv))
	if err != nil {
		t.Fatal(err)
	}
	// The verifier lists CRDs only for kinds the documents do not describe.
	crds := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
		{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}: "CustomResourceDefinitionList",
	})
	verifier := resource.NewQueryParamVerifierV3(crds, client.OpenAPIV3(), resource.QueryParamFieldValidation)
	for _, gvk := range []schema.GroupVersionKind{
		{Group: "apps", Version: "v1", Kind: "Deployment"},
		{Version: "v1", Kind: "ConfigMap"},
		{Version: "v1", Kind: "Namespace"},
		{Group: "batch", Version: "v1", Kind: "Job"},
	} {
		if err := verifier.HasSupport(gvk); err != nil {
			t.Errorf("HasSupport(%s): %v", gvk, err)
		}
	}
	if err := verifier.HasSupport(schema.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "Widget"}); err == nil {
		t.Errorf("HasSupport of an unserved kind succeeded")
	}
	gvs, err := openapi3.NewRoot(client.OpenAPIV3()).GroupVersions()
	if err != nil {
		t.Fatal(err)
	}
	if len(gvs) != len(registry.Builtins(registry.BuiltinOptions{}).GroupVersions()) {
		t.Errorf("openapi3 root group versions = %v", gvs)
	}
}

// kubectl explain and client-side validation read /openapi/v2 as protobuf
// through the discovery client and parse it with util/proto.
func TestV2ExplainPodSpecContainers(t *testing.T) {
	srv := newTestServer(t)
	client, err := discovery.NewDiscoveryClientForConfig(restConfig(srv))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := client.OpenAPISchema()
	if err != nil {
		t.Fatalf("OpenAPISchema: %v", err)
	}
	models, err := proto.NewOpenAPIData(doc)
	if err != nil {
		t.Fatalf("parse v2 document: %v", err)
	}
	podSpec, ok := models.LookupModel("io.k8s.api.core.v1.PodSpec").(*proto.Kind)
	if !ok {
		t.Fatalf("io.k8s.api.core.v1.PodSpec is not a kind model")
	}
	containers, ok := podSpec.Fields["containers"]
	if !ok {
		t.Fatalf("PodSpec has no containers field")
	}
	if !strings.Contains(containers.GetDescription(), "containers belonging to the pod") {
		t.Errorf("containers description = %q", containers.GetDescription())
	}
	if _, ok := containers.(*proto.Array); !ok {
		t.Errorf("containers is %T, want an array", containers)
	}
	if ext := containers.GetExtensions()["x-kubernetes-patch-strategy"]; ext != "merge" {
		t.Errorf("containers patch strategy = %v", ext)
	}
	deployment := models.LookupModel("io.k8s.api.apps.v1.Deployment")
	if deployment == nil {
		t.Fatalf("no Deployment model")
	}
	gvks, _ := deployment.GetExtensions()[extensionGVK].([]interface{})
	if len(gvks) != 1 {
		t.Errorf("Deployment kinds = %v", gvks)
	}
}

func TestV2Operations(t *testing.T) {
	srv := newTestServer(t)
	resp := get(t, srv.URL+"/openapi/v2", map[string]string{"Accept": "application/json"})
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q", ct)
	}
	var doc spec.Swagger
	if err := json.Unmarshal(readBody(t, resp), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Info.Title != "Kubernetes" || doc.Info.Version != "v1.37.2" {
		t.Errorf("info = %+v", doc.Info.InfoProps)
	}
	operation := func(path, method string) *spec.Operation {
		item, ok := doc.Paths.Paths[path]
		if !ok {
			return nil
		}
		switch method {
		case http.MethodGet:
			return item.Get
		case http.MethodPost:
			return item.Post
		case http.MethodPut:
			return item.Put
		case http.MethodPatch:
			return item.Patch
		case http.MethodDelete:
			return item.Delete
		}
		return nil
	}
	tests := []struct {
		path, method, id, action string
	}{
		{"/apis/apps/v1/namespaces/{namespace}/deployments", http.MethodPost, "createAppsV1NamespacedDeployment", "post"},
		{"/apis/apps/v1/namespaces/{namespace}/deployments", http.MethodGet, "listAppsV1NamespacedDeployment", "list"},
		{"/apis/apps/v1/namespaces/{namespace}/deployments", http.MethodDelete, "deleteAppsV1CollectionNamespacedDeployment", "deletecollection"},
		{"/apis/apps/v1/namespaces/{namespace}/deployments/{name}", http.MethodGet, "readAppsV1NamespacedDeployment", "get"},
		{"/apis/apps/v1/namespaces/{namespace}/deployments/{name}", http.MethodPut, "replaceAppsV1NamespacedDeployment", "put"},
		{"/apis/apps/v1/namespaces/{namespace}/deployments/{name}", http.MethodDelete, "deleteAppsV1NamespacedDeployment", "delete"},
		{"/apis/apps/v1/namespaces/{namespace}/deployments/{name}/status", http.MethodPatch, "patchAppsV1NamespacedDeploymentStatus", "patch"},
		{"/apis/apps/v1/deployments", http.MethodGet, "listAppsV1DeploymentForAllNamespaces", "list"},
		{"/apis/apps/v1/watch/deployments", http.MethodGet, "watchAppsV1DeploymentListForAllNamespaces", "watchlist"},
		{"/apis/apps/v1/watch/namespaces/{namespace}/deployments", http.MethodGet, "watchAppsV1NamespacedDeploymentList", "watchlist"},
		{"/apis/apps/v1/watch/namespaces/{namespace}/deployments/{name}", http.MethodGet, "watchAppsV1NamespacedDeployment", "watch"},
		{"/api/v1/nodes", http.MethodGet, "listCoreV1Node", "list"},
		{"/api/v1/nodes/{name}/status", http.MethodPut, "replaceCoreV1NodeStatus", "put"},
		{"/api/v1/namespaces/{name}", http.MethodPatch, "patchCoreV1Namespace", "patch"},
		{"/api/v1/watch/namespaces/{name}", http.MethodGet, "watchCoreV1Namespace", "watch"},
		{"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}", http.MethodPut, "replaceCoordinationV1NamespacedLease", "put"},
		{"/apis/events.k8s.io/v1/namespaces/{namespace}/events", http.MethodPost, "createEventsV1NamespacedEvent", "post"},
		{"/api/v1/", http.MethodGet, "getCoreV1APIResources", ""},
		{"/apis/apps/", http.MethodGet, "getAppsAPIGroup", ""},
		{"/version/", http.MethodGet, "getCodeVersion", ""},
	}
	for _, tt := range tests {
		op := operation(tt.path, tt.method)
		if op == nil {
			t.Errorf("%s %s: missing", tt.method, tt.path)
			continue
		}
		if op.ID != tt.id {
			t.Errorf("%s %s: operationId %q, want %q", tt.method, tt.path, op.ID, tt.id)
		}
		if action, _ := op.Extensions.GetString(extensionAction); action != tt.action {
			t.Errorf("%s %s: %s %q, want %q", tt.method, tt.path, extensionAction, action, tt.action)
		}
	}
	// Namespaces are not deleted as a collection.
	if op := operation("/api/v1/namespaces", http.MethodDelete); op != nil {
		t.Errorf("namespaces offer %s", op.ID)
	}
	if _, ok := doc.Paths.Paths["/api/v1/namespaces/{namespace}/configmaps/{name}/status"]; ok {
		t.Errorf("configmaps offer a status subresource")
	}
}

func TestCaching(t *testing.T) {
	srv := newTestServer(t)
	tests := []struct {
		name   string
		accept string
		want   string
	}{
		{"v2 json", "application/json", "application/json"},
		{"v2 protobuf", "application/com.github.proto-openapi.spec.v2@v1.0+protobuf", "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := get(t, srv.URL+"/openapi/v2", map[string]string{"Accept": tt.accept})
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != tt.want {
				t.Fatalf("GET: %s, Content-Type %q", resp.Status, resp.Header.Get("Content-Type"))
			}
			etag := resp.Header.Get("Etag")
			if etag == "" {
				t.Fatal("no ETag")
			}
			resp = get(t, srv.URL+"/openapi/v2", map[string]string{"Accept": tt.accept, "If-None-Match": etag})
			if resp.StatusCode != http.StatusNotModified {
				t.Errorf("conditional GET: %s, want 304", resp.Status)
			}
		})
	}

	t.Run("v3 hash", func(t *testing.T) {
		resp := get(t, srv.URL+"/openapi/v3/apis/apps/v1?hash=stale", nil)
		if resp.StatusCode != http.StatusMovedPermanently {
			t.Fatalf("stale hash: %s, want 301", resp.Status)
		}
		current := resp.Header.Get("Location")
		resp = get(t, srv.URL+current, map[string]string{"Accept": "application/com.github.proto-openapi.spec.v3@v1.0+protobuf"})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s", current, resp.Status)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "public, immutable" {
			t.Errorf("Cache-Control = %q", cc)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/com.github.proto-openapi.spec.v3.v1.0+protobuf" {
			t.Errorf("Content-Type = %q", ct)
		}
	})
}

func TestServeHTTPClaimsOnlyOpenAPIPaths(t *testing.T) {
	docs := newTestDocuments(t)
	tests := []struct {
		path    string
		claimed bool
		status  int
	}{
		{"/openapi/v3/apis/example.com/v1", true, http.StatusNotFound},
		{"/openapi/v3/apis/apps", true, http.StatusOK},
		{"/openapi/v2", true, http.StatusOK},
		{"/api/v1", false, 0},
		{"/openapi/v4", false, 0},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		claimed := docs.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))
		if claimed != tt.claimed {
			t.Errorf("%s: claimed %v, want %v", tt.path, claimed, tt.claimed)
		}
		if claimed && rec.Code != tt.status {
			t.Errorf("%s: status %d, want %d", tt.path, rec.Code, tt.status)
		}
	}
}

// kubectl explain renders from the v3 document of the resource's group
// version.
func TestExplainDeploymentContainers(t *testing.T) {
	srv := newTestServer(t)
	client, err := discovery.NewDiscoveryClientForConfig(restConfig(srv))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	deployments := schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	if err := explainv2.PrintModelDescription([]string{"spec", "template", "spec", "containers"}, &out, client.OpenAPIV3(), deployments, false, 0, "plaintext"); err != nil {
		t.Fatalf("explain: %v", err)
	}
	for _, want := range []string{"GROUP:      apps", "KIND:       Deployment", "VERSION:    v1", "FIELD: containers <[]Container>", "containers belonging to the pod", "image\t<string>"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("explain output lacks %q:\n%s", want, out.String())
		}
	}
}

// Server-side apply builds its type converter from these schemas.
func TestTypeSchemasFeedServerSideApply(t *testing.T) {
	docs := newTestDocuments(t)
	schemas, err := docs.TypeSchemas()
	if err != nil {
		t.Fatal(err)
	}
	converter, err := managedfields.NewTypeConverter(schemas, false)
	if err != nil {
		t.Fatalf("NewTypeConverter: %v", err)
	}
	deployment := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "web", Image: "nginx"}},
		}}},
	}
	typed, err := converter.ObjectToTyped(deployment)
	if err != nil {
		t.Fatalf("ObjectToTyped(Deployment): %v", err)
	}
	fields, err := typed.ToFieldSet()
	if err != nil {
		t.Fatal(err)
	}
	// Containers are a map keyed by name: the set names the element by key.
	if want := `.spec.template.spec.containers[name="web"].image`; !strings.Contains(fields.String(), want) {
		t.Errorf("field set lacks %s:\n%s", want, fields)
	}
}
