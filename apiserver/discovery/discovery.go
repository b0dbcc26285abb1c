// Package discovery serves the documents clients read to learn what the
// server offers: /api, /apis, the per-group and per-version lists, and the
// aggregated (apidiscovery.k8s.io/v2) form client-go prefers.
package discovery

import (
	"encoding/json"
	"mime"
	"net/http"
	"strings"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"tower.dev/tower/apiserver/registry"
)

// AggregatedContentType is the media type of aggregated discovery.
const AggregatedContentType = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

// Documents holds the discovery documents, built once from the catalog.
type Documents struct {
	legacyVersions   *metav1.APIVersions
	groups           *metav1.APIGroupList
	groupByName      map[string]*metav1.APIGroup
	resourceLists    map[schema.GroupVersion]*metav1.APIResourceList
	aggregatedLegacy *apidiscoveryv2.APIGroupDiscoveryList
	aggregatedGroups *apidiscoveryv2.APIGroupDiscoveryList
}

// subresourceVerbs are the verbs of each served subresource.
var subresourceVerbs = map[string][]string{
	"status":      {"get", "patch", "update"},
	"finalize":    {"update"},
	"binding":     {"create"},
	"eviction":    {"create"},
	"scale":       {"get", "patch", "update"},
	"log":         {"get"},
	"exec":        {"create", "get"},
	"attach":      {"create", "get"},
	"portforward": {"create", "get"},
}

// subresourceKinds are the kinds of subresources that do not return their
// parent's kind; an empty group and version mean the parent's.
var subresourceKinds = map[string]schema.GroupVersionKind{
	"binding":     {Kind: "Binding"},
	"eviction":    {Group: "policy", Version: "v1", Kind: "Eviction"},
	"exec":        {Kind: "PodExecOptions"},
	"attach":      {Kind: "PodAttachOptions"},
	"portforward": {Kind: "PodPortForwardOptions"},
	"scale":       {Group: "autoscaling", Version: "v1", Kind: "Scale"},
}

// New builds the documents for a catalog.
func New(catalog *registry.Catalog) *Documents {
	d := &Documents{
		legacyVersions: &metav1.APIVersions{TypeMeta: metav1.TypeMeta{Kind: "APIVersions"}},
		groups:         &metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"}},
		groupByName:    map[string]*metav1.APIGroup{},
		resourceLists:  map[schema.GroupVersion]*metav1.APIResourceList{},
		aggregatedLegacy: &apidiscoveryv2.APIGroupDiscoveryList{TypeMeta: metav1.TypeMeta{
			Kind: "APIGroupDiscoveryList", APIVersion: apidiscoveryv2.SchemeGroupVersion.String()}},
		aggregatedGroups: &apidiscoveryv2.APIGroupDiscoveryList{TypeMeta: metav1.TypeMeta{
			Kind: "APIGroupDiscoveryList", APIVersion: apidiscoveryv2.SchemeGroupVersion.String()}},
	}
	aggregated := map[schema.GroupVersion]*apidiscoveryv2.APIVersionDiscovery{}
	for _, gv := range catalog.GroupVersions() {
		d.resourceLists[gv] = &metav1.APIResourceList{
			TypeMeta:     metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"},
			GroupVersion: gv.String(),
		}
		if gv.Group == "" {
			d.legacyVersions.Versions = append(d.legacyVersions.Versions, gv.Version)
		} else {
			group, ok := d.groupByName[gv.Group]
			if !ok {
				preferred := metav1.GroupVersionForDiscovery{GroupVersion: gv.String(), Version: gv.Version}
				d.groups.Groups = append(d.groups.Groups, metav1.APIGroup{Name: gv.Group, PreferredVersion: preferred})
				group = &d.groups.Groups[len(d.groups.Groups)-1]
			}
			group.Versions = append(group.Versions, metav1.GroupVersionForDiscovery{GroupVersion: gv.String(), Version: gv.Version})
		}
		aggregated[gv] = &apidiscoveryv2.APIVersionDiscovery{Version: gv.Version, Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent}
	}
	for i := range d.groups.Groups {
		d.groupByName[d.groups.Groups[i].Name] = &d.groups.Groups[i]
	}
	for _, r := range catalog.Resources() {
		gv := r.GroupVersion()
		list := d.resourceLists[gv]
		list.APIResources = append(list.APIResources, metav1.APIResource{
			Name:         r.Resource,
			SingularName: r.SingularName,
			Namespaced:   r.Namespaced,
			Kind:         r.Kind,
			Verbs:        r.Verbs,
			ShortNames:   r.ShortNames,
			Categories:   r.Categories,
		})
		scope := apidiscoveryv2.ScopeCluster
		if r.Namespaced {
			scope = apidiscoveryv2.ScopeNamespace
		}
		gvk := r.GroupVersionKind()
		resource := apidiscoveryv2.APIResourceDiscovery{
			Resource:         r.Resource,
			ResponseKind:     &metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind},
			Scope:            scope,
			SingularResource: r.SingularName,
			Verbs:            r.Verbs,
			ShortNames:       r.ShortNames,
			Categories:       r.Categories,
		}
		for _, sub := range subresources(r) {
			kind, ownKind := subresourceKinds[sub]
			if !ownKind {
				kind.Kind = r.Kind
			}
			responseKind := metav1.GroupVersionKind{Group: kind.Group, Version: kind.Version, Kind: kind.Kind}
			if responseKind.Version == "" {
				responseKind.Group, responseKind.Version = gvk.Group, gvk.Version
			}
			list.APIResources = append(list.APIResources, metav1.APIResource{
				Name: r.Resource + "/" + sub, Namespaced: r.Namespaced, Group: kind.Group, Version: kind.Version,
				Kind: kind.Kind, Verbs: subresourceVerbs[sub],
			})
			resource.Subresources = append(resource.Subresources, apidiscoveryv2.APISubresourceDiscovery{
				Subresource:  sub,
				ResponseKind: &responseKind,
				Verbs:        subresourceVerbs[sub],
			})
		}
		version := aggregated[gv]
		version.Resources = append(version.Resources, resource)
	}
	groupIndex := map[string]int{}
	for _, gv := range catalog.GroupVersions() {
		target := d.aggregatedGroups
		if gv.Group == "" {
			target = d.aggregatedLegacy
		}
		i, ok := groupIndex[gv.Group]
		if !ok {
			target.Items = append(target.Items, apidiscoveryv2.APIGroupDiscovery{ObjectMeta: metav1.ObjectMeta{Name: gv.Group}})
			i = len(target.Items) - 1
			groupIndex[gv.Group] = i
		}
		target.Items[i].Versions = append(target.Items[i].Versions, *aggregated[gv])
	}
	return d
}

func subresources(r *registry.Resource) []string {
	var out []string
	if r.Status != nil {
		out = append(out, "status")
	}
	if r.Resource == "namespaces" && r.Group == "" {
		out = append(out, "finalize")
	}
	if r.Resource == "pods" && r.Group == "" {
		out = append(out, "attach", "binding", "eviction", "exec", "log", "portforward")
	}
	if r.Scale != nil {
		out = append(out, "scale")
	}
	return out
}

// ServeHTTP answers discovery paths and returns false for any other path.
func (d *Documents) ServeHTTP(w http.ResponseWriter, r *http.Request) bool {
	path := strings.TrimSuffix(r.URL.Path, "/")
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	switch {
	case path == "/api":
		if wantsAggregated(r) {
			writeJSON(w, AggregatedContentType, d.aggregatedLegacy)
			return true
		}
		versions := *d.legacyVersions
		versions.ServerAddressByClientCIDRs = []metav1.ServerAddressByClientCIDR{{ClientCIDR: "0.0.0.0/0", ServerAddress: r.Host}}
		writeJSON(w, "application/json", &versions)
		return true
	case path == "/apis":
		if wantsAggregated(r) {
			writeJSON(w, AggregatedContentType, d.aggregatedGroups)
			return true
		}
		writeJSON(w, "application/json", d.groups)
		return true
	case len(parts) == 2 && parts[0] == "api":
		if list, ok := d.resourceLists[schema.GroupVersion{Version: parts[1]}]; ok {
			writeJSON(w, "application/json", list)
			return true
		}
	case len(parts) == 2 && parts[0] == "apis":
		if group, ok := d.groupByName[parts[1]]; ok {
			out := *group
			out.TypeMeta = metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"}
			writeJSON(w, "application/json", &out)
			return true
		}
	case len(parts) == 3 && parts[0] == "apis":
		if list, ok := d.resourceLists[schema.GroupVersion{Group: parts[1], Version: parts[2]}]; ok {
			writeJSON(w, "application/json", list)
			return true
		}
	}
	return false
}

// wantsAggregated reports whether the Accept header asks for aggregated
// discovery v2 before any plain JSON.
func wantsAggregated(r *http.Request) bool {
	for _, clause := range strings.Split(r.Header.Get("Accept"), ",") {
		mediaType, params, err := mime.ParseMediaType(strings.TrimSpace(clause))
		if err != nil {
			continue
		}
		if params["as"] == "APIGroupDiscoveryList" {
			if params["g"] == "apidiscovery.k8s.io" && params["v"] == "v2" && (mediaType == "application/json" || mediaType == "*/*") {
				return true
			}
			continue
		}
		return false
	}
	return false
}

func writeJSON(w http.ResponseWriter, contentType string, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentType)
	_, _ = w.Write(body)
}
