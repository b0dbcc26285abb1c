package integration

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
)

// aggregatedDiscoveryAccept is what client-go sends to ask for aggregated
// discovery, falling back to the per-group documents.
const aggregatedDiscoveryAccept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;q=0.9"

// TestDiscovery: client-go's discovery client (which uses aggregated
// discovery) finds the built-in resources with their verbs and subresources.
func TestDiscovery(t *testing.T) {
	client, err := discovery.NewDiscoveryClientForConfig(controlPlane.Config)
	if err != nil {
		t.Fatalf("discovery client: %v", err)
	}
	_, resourceLists, err := client.ServerGroupsAndResources()
	if err != nil {
		t.Fatalf("ServerGroupsAndResources: %v", err)
	}
	resources := map[string]metav1.APIResource{}
	for _, list := range resourceLists {
		for _, r := range list.APIResources {
			resources[list.GroupVersion+"/"+r.Name] = r
		}
	}

	cases := []struct {
		resource   string
		kind       string
		namespaced bool
		verbs      []string
	}{
		{"v1/configmaps", "ConfigMap", true, []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}},
		{"v1/namespaces", "Namespace", false, []string{"create", "delete", "get", "list", "patch", "update", "watch"}},
		{"v1/pods", "Pod", true, []string{"create", "delete", "get", "list", "patch", "update", "watch"}},
		{"v1/pods/status", "Pod", true, []string{"get", "patch", "update"}},
		{"apps/v1/deployments", "Deployment", true, []string{"create", "delete", "get", "list", "patch", "update", "watch"}},
		{"apps/v1/deployments/status", "Deployment", true, []string{"get", "patch", "update"}},
		{"apps/v1/deployments/scale", "Scale", true, []string{"get", "patch", "update"}},
		{"batch/v1/jobs", "Job", true, []string{"create", "get", "list", "watch"}},
		{"coordination.k8s.io/v1/leases", "Lease", true, []string{"create", "get", "list", "watch"}},
	}
	for _, tc := range cases {
		t.Run(tc.resource, func(t *testing.T) {
			r, ok := resources[tc.resource]
			if !ok {
				t.Fatalf("%s not discovered", tc.resource)
			}
			if r.Kind != tc.kind {
				t.Errorf("kind = %q, want %q", r.Kind, tc.kind)
			}
			if r.Namespaced != tc.namespaced {
				t.Errorf("namespaced = %v, want %v", r.Namespaced, tc.namespaced)
			}
			for _, verb := range tc.verbs {
				if !slices.Contains(r.Verbs, verb) {
					t.Errorf("verbs %v lack %q", r.Verbs, verb)
				}
			}
		})
	}
}

// TestAggregatedDiscovery: /api and /apis answer the aggregated discovery
// media type client-go asks for with an APIGroupDiscoveryList.
func TestAggregatedDiscovery(t *testing.T) {
	cases := []struct {
		path       string
		wantGroup  string
		wantVer    string
		wantSample string
	}{
		{"/api", "", "v1", "configmaps"},
		{"/apis", "apps", "v1", "deployments"},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			result := controlPlane.Clientset().Discovery().RESTClient().Get().AbsPath(tc.path).
				SetHeader("Accept", aggregatedDiscoveryAccept).Do(t.Context())
			body, err := result.Raw()
			if err != nil {
				t.Fatalf("GET %s: %v", tc.path, err)
			}
			var contentType string
			result.ContentType(&contentType)
			if !strings.Contains(contentType, "as=APIGroupDiscoveryList") {
				t.Fatalf("Content-Type %q, want the aggregated discovery type", contentType)
			}
			var list apidiscoveryv2.APIGroupDiscoveryList
			if err := json.Unmarshal(body, &list); err != nil {
				t.Fatalf("decoding APIGroupDiscoveryList: %v", err)
			}
			if list.Kind != "APIGroupDiscoveryList" {
				t.Errorf("kind = %q, want APIGroupDiscoveryList", list.Kind)
			}
			if !discoveryHasResource(list, tc.wantGroup, tc.wantVer, tc.wantSample) {
				t.Errorf("%s does not list %s/%s %s", tc.path, tc.wantGroup, tc.wantVer, tc.wantSample)
			}
		})
	}
}

func discoveryHasResource(list apidiscoveryv2.APIGroupDiscoveryList, group, version, resource string) bool {
	for _, g := range list.Items {
		if g.Name != group {
			continue
		}
		for _, v := range g.Versions {
			if v.Version != version {
				continue
			}
			for _, r := range v.Resources {
				if r.Resource == resource {
					return true
				}
			}
		}
	}
	return false
}
