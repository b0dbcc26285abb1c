package openapi

import (
	"fmt"
	"net/http"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/util"

	"tower.dev/tower/apiserver/registry"
)

// Extensions kubectl and client generators read on operations.
const (
	extensionAction = "x-kubernetes-action"
	extensionGVK    = "x-kubernetes-group-version-kind"
)

// Media types, in the order kube-apiserver lists them.
var (
	objectMediaTypes = []string{"application/json", "application/yaml", "application/vnd.kubernetes.protobuf"}
	watchMediaTypes  = append(slices.Clone(objectMediaTypes), "application/json;stream=watch", "application/vnd.kubernetes.protobuf;stream=watch")
	anyMediaType     = []string{"*/*"}
	patchMediaTypes  = []string{"application/json-patch+json", "application/merge-patch+json", "application/strategic-merge-patch+json", "application/apply-patch+yaml"}
)

// Models shared by every group version.
var (
	statusModel     = model(&metav1.Status{})
	deleteModel     = model(&metav1.DeleteOptions{})
	patchModel      = model(&metav1.Patch{})
	watchEventModel = model(&metav1.WatchEvent{})
)

func model(sample interface{}) modelName { return modelName(util.GetCanonicalTypeName(sample)) }

// webServices describes every served path, one service per v3 document, in
// a stable order: /api, /api/v1, /apis, then each group and its versions,
// then /version.
func webServices(catalog *registry.Catalog, params *parameterSets) ([]*webService, error) {
	byGroupVersion := map[schema.GroupVersion][]*registry.Resource{}
	for _, res := range catalog.Resources() {
		gv := res.GroupVersion()
		byGroupVersion[gv] = append(byGroupVersion[gv], res)
	}

	services := []*webService{{
		rootPath: "/api",
		routes:   []common.Route{discoveryRoute("/api/", "getCoreAPIVersions", "core", "get available API versions", model(&metav1.APIVersions{}))},
	}}
	var groupServices []*webService
	seenGroups := map[string]bool{}
	for _, gv := range catalog.GroupVersions() {
		if gv.Group != "" && !seenGroups[gv.Group] {
			seenGroups[gv.Group] = true
			groupServices = append(groupServices, &webService{
				rootPath: "/apis/" + gv.Group,
				routes: []common.Route{discoveryRoute("/apis/"+gv.Group+"/", "get"+identifier(groupIdentifier(gv.Group), true)+"APIGroup",
					groupIdentifier(gv.Group), "get information of a group", model(&metav1.APIGroup{}))},
			})
		}
		ws, err := groupVersionService(gv, byGroupVersion[gv], params)
		if err != nil {
			return nil, err
		}
		if gv.Group == "" {
			services = append(services, ws)
		} else {
			groupServices = append(groupServices, ws)
		}
	}
	services = append(services, &webService{
		rootPath: "/apis",
		routes:   []common.Route{discoveryRoute("/apis/", "getAPIVersions", "apis", "get available API versions", model(&metav1.APIGroupList{}))},
	})
	services = append(services, groupServices...)
	services = append(services, &webService{
		rootPath: "/version",
		routes: []common.Route{&route{
			method: http.MethodGet, path: "/version/", operationID: "getCodeVersion", tags: []string{"version"},
			description: "get the version information for this server",
			consumes:    []string{"application/json"}, produces: []string{"application/json"},
			responses: []common.StatusCodeResponse{response{code: http.StatusOK, message: "OK", model: model(&version.Info{})}},
		}},
	})
	return services, nil
}

func discoveryRoute(path, operationID, tag, description string, m modelName) common.Route {
	return &route{
		method: http.MethodGet, path: path, operationID: operationID, tags: []string{tag}, description: description,
		consumes: objectMediaTypes, produces: objectMediaTypes,
		responses: []common.StatusCodeResponse{response{code: http.StatusOK, message: "OK", model: m}},
	}
}

func groupVersionService(gv schema.GroupVersion, resources []*registry.Resource, params *parameterSets) (*webService, error) {
	root := "/apis/" + gv.Group + "/" + gv.Version
	discoveryID := "get" + identifier(groupIdentifier(gv.Group), true) + identifier(gv.Version, true) + "APIResources"
	if gv.Group == "" {
		root = "/api/" + gv.Version
	}
	ws := &webService{rootPath: root, routes: []common.Route{
		discoveryRoute(root+"/", discoveryID, groupVersionTag(gv), "get available resources", model(&metav1.APIResourceList{})),
	}}
	for _, res := range resources {
		m, err := builtinModels(res)
		if err != nil {
			return nil, fmt.Errorf("describe %s: %w", res.GroupVersionResource, err)
		}
		ws.routes = append(ws.routes, resourceRoutes(root, res, m, params)...)
	}
	return ws, nil
}

// models names the definitions a resource's operations refer to. Built-in
// resources take them from their Go types; a custom resource would name the
// definitions generated from its schema.
type models struct {
	object, list modelName
}

func builtinModels(res *registry.Resource) (models, error) {
	if res.New == nil || res.NewList == nil {
		return models{}, fmt.Errorf("no object or list constructor")
	}
	return models{object: model(res.New()), list: model(res.NewList())}, nil
}

// resourceRoutes lists the operations kube-apiserver installs for one
// resource: the collection (list, create, delete collection), the item
// (read, replace, patch, delete), the status subresource, the cluster-wide
// list of a namespaced resource and the deprecated watch paths, each only
// for the verbs the resource serves.
func resourceRoutes(root string, res *registry.Resource, m models, params *parameterSets) []common.Route {
	object, list := m.object, m.list
	gv := res.GroupVersion()
	kind := res.Kind
	gvk := map[string]interface{}{"group": gv.Group, "version": gv.Version, "kind": kind}
	verbs := map[string]bool{}
	for _, v := range res.Verbs {
		verbs[v] = true
	}

	scope, scoped := "", ""
	collection := root + "/" + res.Resource
	watchCollection := root + "/watch/" + res.Resource
	scopeParams := []common.Parameter{prettyParameter}
	if res.Namespaced {
		scope = "Namespaced"
		scoped = "/namespaces/{namespace}/" + res.Resource
		collection = root + scoped
		watchCollection = root + "/watch" + scoped
		scopeParams = append(scopeParams, namespaceParameter)
	}
	item := collection + "/{name}"
	itemParams := slices.Concat(scopeParams, []common.Parameter{pathParameter("name", "name of the "+kind)})

	op := func(method, path, action, verb, object, description string, params []common.Parameter) *route {
		return &route{
			method: method, path: path, operationID: operationID(verb, gv, object),
			tags: []string{groupVersionTag(gv)}, description: description,
			params: params, consumes: anyMediaType, produces: objectMediaTypes,
			extensions: map[string]interface{}{extensionAction: action, extensionGVK: gvk},
		}
	}
	okResponse := func(m modelName) common.StatusCodeResponse {
		return response{code: http.StatusOK, message: "OK", model: m}
	}
	createdResponse := func(m modelName) common.StatusCodeResponse {
		return response{code: http.StatusCreated, message: "Created", model: m}
	}
	acceptedResponse := func(m modelName) common.StatusCodeResponse {
		return response{code: http.StatusAccepted, message: "Accepted", model: m}
	}
	requiredBody := []common.Parameter{bodyParameter(true)}
	optionalBody := []common.Parameter{bodyParameter(false)}
	clusterParams := []common.Parameter{prettyParameter}

	var routes []common.Route
	add := func(r *route, responses ...common.StatusCodeResponse) {
		r.responses = responses
		routes = append(routes, r)
	}

	if verbs["list"] {
		r := op(http.MethodGet, collection, "list", "list", scope+kind, "list or watch objects of kind "+kind, slices.Concat(scopeParams, params.list))
		r.produces = watchMediaTypes
		add(r, okResponse(list))
		if res.Namespaced {
			r := op(http.MethodGet, root+"/"+res.Resource, "list", "list", kind+"ForAllNamespaces", "list or watch objects of kind "+kind+" in all namespaces", slices.Concat(clusterParams, params.list))
			r.produces = watchMediaTypes
			add(r, okResponse(list))
		}
	}
	if verbs["create"] {
		r := op(http.MethodPost, collection, "post", "create", scope+kind, "create a "+kind, slices.Concat(scopeParams, requiredBody, params.create))
		r.body = object
		add(r, okResponse(object), createdResponse(object), acceptedResponse(object))
	}
	if verbs["deletecollection"] {
		r := op(http.MethodDelete, collection, "deletecollection", "delete", "Collection"+scope+kind, "delete a collection of "+kind, slices.Concat(scopeParams, optionalBody, params.deleteCollection))
		r.body = deleteModel
		add(r, okResponse(statusModel))
	}
	if verbs["get"] {
		add(op(http.MethodGet, item, "get", "read", scope+kind, "read the specified "+kind, itemParams), okResponse(object))
	}
	if verbs["update"] {
		r := op(http.MethodPut, item, "put", "replace", scope+kind, "replace the specified "+kind, slices.Concat(itemParams, requiredBody, params.update))
		r.body = object
		add(r, okResponse(object), createdResponse(object))
	}
	if verbs["patch"] {
		r := op(http.MethodPatch, item, "patch", "patch", scope+kind, "partially update the specified "+kind, slices.Concat(itemParams, requiredBody, params.patch))
		r.body, r.consumes = patchModel, patchMediaTypes
		add(r, okResponse(object), createdResponse(object))
	}
	if verbs["delete"] {
		deleted := statusModel
		if res.ReturnDeletedObject {
			deleted = object
		}
		r := op(http.MethodDelete, item, "delete", "delete", scope+kind, "delete a "+kind, slices.Concat(itemParams, optionalBody, params.delete))
		r.body = deleteModel
		add(r, okResponse(deleted), acceptedResponse(deleted))
	}
	if res.Status != nil {
		status := item + "/status"
		if verbs["get"] {
			add(op(http.MethodGet, status, "get", "read", scope+kind+"Status", "read status of the specified "+kind, itemParams), okResponse(object))
		}
		if verbs["update"] {
			r := op(http.MethodPut, status, "put", "replace", scope+kind+"Status", "replace status of the specified "+kind, slices.Concat(itemParams, requiredBody, params.update))
			r.body = object
			add(r, okResponse(object), createdResponse(object))
		}
		if verbs["patch"] {
			r := op(http.MethodPatch, status, "patch", "patch", scope+kind+"Status", "partially update status of the specified "+kind, slices.Concat(itemParams, requiredBody, params.patch))
			r.body, r.consumes = patchModel, patchMediaTypes
			add(r, okResponse(object), createdResponse(object))
		}
	}
	if verbs["watch"] {
		const deprecated = " Deprecated: use the 'watch' parameter with a list operation"
		watchList := func(path, object, description string, params []common.Parameter) {
			r := op(http.MethodGet, path, "watchlist", "watch", object, description+deprecated+" instead.", params)
			r.produces = watchMediaTypes
			add(r, okResponse(watchEventModel))
		}
		watchList(watchCollection, scope+kind+"List", "watch changes to a list of "+kind+".", slices.Concat(scopeParams, params.list))
		if res.Namespaced {
			watchList(root+"/watch/"+res.Resource, kind+"ListForAllNamespaces", "watch changes to a list of "+kind+" in all namespaces.", slices.Concat(clusterParams, params.list))
		}
		r := op(http.MethodGet, watchCollection+"/{name}", "watch", "watch", scope+kind, "watch changes to an object of kind "+kind+"."+deprecated+", filtered to a single item with the 'fieldSelector' parameter.", slices.Concat(itemParams, params.list))
		r.produces = watchMediaTypes
		add(r, okResponse(watchEventModel))
	}
	return routes
}
