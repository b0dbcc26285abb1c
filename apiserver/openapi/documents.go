package openapi

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kube-openapi/pkg/builder"
	"k8s.io/kube-openapi/pkg/builder3"
	"k8s.io/kube-openapi/pkg/cached"
	"k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/handler"
	"k8s.io/kube-openapi/pkg/handler3"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/validation/spec"

	"tower.dev/tower/apiserver/openapi/generated"
	"tower.dev/tower/apiserver/registry"
)

const (
	v2Path = "/openapi/v2"
	v3Path = "/openapi/v3"
)

// Documents serves /openapi/v2 and /openapi/v3 for a set of resources.
//
// New only describes the routes; the documents are built on first request
// and kept (with their JSON and protobuf encodings) by kube-openapi's
// handlers. The first /openapi/v3 request builds every group version's
// document, because the discovery document lists each with its hash.
type Documents struct {
	assembler *assembler
	// staticV2 is the built-in part of /openapi/v2, built once.
	staticV2 func() (*spec.Swagger, error)
	// v2Service serves v2Handler; custom resources swap its document.
	v2Service *handler.OpenAPIService
	v2        http.Handler
	v3        *handler3.OpenAPIService
	// builtinGroupVersions are the v3 documents of built-in resources;
	// custom holds those of custom resources and their definitions.
	builtinGroupVersions map[string]bool
	custom               atomic.Pointer[customResources]
	// updating serializes UpdateCustomResources.
	updating sync.Mutex
}

// New describes the OpenAPI documents of catalog's resources. scheme names
// the kinds behind the definitions (x-kubernetes-group-version-kind);
// version is the Kubernetes version the server reports ("v1.37.2").
func New(catalog *registry.Catalog, scheme *runtime.Scheme, version string) (*Documents, error) {
	params, err := newParameterSets()
	if err != nil {
		return nil, fmt.Errorf("openapi parameters: %w", err)
	}
	services, err := webServices(catalog, params)
	if err != nil {
		return nil, fmt.Errorf("openapi routes: %w", err)
	}
	namer, err := newDefinitionNamer(scheme)
	if err != nil {
		return nil, fmt.Errorf("openapi definition names: %w", err)
	}
	a := &assembler{services: services, namer: namer, version: version, kindModels: kindModels(services)}

	d := &Documents{assembler: a, v3: handler3.NewOpenAPIService(), builtinGroupVersions: map[string]bool{}}
	d.custom.Store(&customResources{})
	d.staticV2 = sync.OnceValues(func() (*spec.Swagger, error) {
		doc, _, err := a.swagger()
		return doc, err
	})
	d.v2Service = handler.NewOpenAPIServiceLazy(d.v2Document(d.custom.Load()))
	capture := &handlerCapture{}
	d.v2Service.RegisterOpenAPIVersionedService(v2Path, capture)
	d.v2 = capture.handler

	v3Docs := sync.OnceValues(a.openAPIV3)
	for _, ws := range services {
		name := ws.groupVersionName()
		d.builtinGroupVersions[name] = true
		d.v3.UpdateGroupVersionLazy(name, cached.Func(func() (*spec3.OpenAPI, string, error) {
			docs, err := v3Docs()
			if err != nil {
				return nil, "", err
			}
			return docs[name], builtOnce, nil
		}))
	}
	return d, nil
}

// builtOnce is the cache tag of documents that never change once built:
// kube-openapi's caches re-encode only when the tag changes.
const builtOnce = "built"

// ServeHTTP answers the OpenAPI paths and reports whether r was one of them.
func (d *Documents) ServeHTTP(w http.ResponseWriter, r *http.Request) bool {
	path := r.URL.Path
	switch {
	case path == v2Path:
		d.v2.ServeHTTP(w, r)
	case path == v3Path || path == v3Path+"/":
		d.v3.HandleDiscovery(w, r)
	case strings.HasPrefix(path, v3Path+"/"):
		name := strings.TrimPrefix(path, v3Path+"/")
		if _, custom := d.custom.Load().groupVersions[name]; !d.builtinGroupVersions[name] && !custom {
			http.NotFound(w, r)
			return true
		}
		d.v3.HandleGroupVersion(w, r)
	default:
		return false
	}
	return true
}

// handlerCapture receives the handler kube-openapi's v2 service registers.
type handlerCapture struct{ handler http.Handler }

var _ common.PathHandler = (*handlerCapture)(nil)

func (c *handlerCapture) Handle(_ string, h http.Handler) { c.handler = h }

// assembler builds the documents from the route descriptions and the
// generated definitions.
type assembler struct {
	services []*webService
	namer    *definitionNamer
	version  string
	// kindModels are the object and list definitions the routes serve.
	kindModels []string
	// building serializes builds: the builders write the kind extensions
	// into definitions' extension maps, which concurrent builds would share.
	building sync.Mutex
}

func (a *assembler) info() *spec.Info {
	return &spec.Info{InfoProps: spec.InfoProps{Title: "Kubernetes", Version: a.version}}
}

const bearerToken = "BearerToken"

func (a *assembler) operationIDAndTags(r common.Route) (string, []string, error) {
	rt, ok := r.(*route)
	if !ok {
		return "", nil, fmt.Errorf("route %s %s is not one of ours", r.Method(), r.Path())
	}
	return rt.operationID, rt.tags, nil
}

// swagger builds the whole /openapi/v2 document.
func (a *assembler) swagger() (*spec.Swagger, string, error) {
	a.building.Lock()
	defer a.building.Unlock()
	containers := make([]common.RouteContainer, 0, len(a.services))
	for _, ws := range a.services {
		containers = append(containers, ws)
	}
	doc, err := builder.BuildOpenAPISpecFromRoutes(containers, &common.Config{
		Info:                           a.info(),
		ProtocolList:                   []string{"https"},
		GetDefinitions:                 generated.GetOpenAPIDefinitions,
		GetDefinitionName:              a.namer.definitionName,
		GetOperationIDAndTagsFromRoute: a.operationIDAndTags,
		CommonResponses: map[int]spec.Response{
			http.StatusUnauthorized: {ResponseProps: spec.ResponseProps{Description: "Unauthorized"}},
		},
		SecurityDefinitions: &spec.SecurityDefinitions{bearerToken: bearerTokenScheme()},
		DefaultSecurity:     []map[string][]string{{bearerToken: {}}},
	})
	if err != nil {
		return nil, "", fmt.Errorf("build OpenAPI v2 document: %w", err)
	}
	// Defaults are left out of v2, which cannot express them next to a
	// $ref; kubectl's v2 readers never needed them.
	doc.Definitions = handler.PruneDefaults(doc.Definitions)
	return doc, builtOnce, nil
}

func bearerTokenScheme() *spec.SecurityScheme {
	return &spec.SecurityScheme{SecuritySchemeProps: spec.SecuritySchemeProps{
		Type: "apiKey", Name: "authorization", In: "header", Description: "Bearer Token authentication",
	}}
}

// v3Config configures builder3 with the generated definitions, computed
// once per call so they are dropped when the caller is done.
func (a *assembler) v3Config() *common.OpenAPIV3Config {
	config := &common.OpenAPIV3Config{
		Info:                           a.info(),
		GetDefinitionName:              a.namer.definitionName,
		GetOperationIDAndTagsFromRoute: a.operationIDAndTags,
		CommonResponses: map[int]*spec3.Response{
			http.StatusUnauthorized: {ResponseProps: spec3.ResponseProps{Description: "Unauthorized"}},
		},
		SecuritySchemes: spec3.SecuritySchemes{bearerToken: &spec3.SecurityScheme{SecuritySchemeProps: spec3.SecuritySchemeProps{
			Type: "apiKey", Name: "authorization", In: "header", Description: "Bearer Token authentication",
		}}},
		DefaultSecurity: []map[string][]string{{bearerToken: {}}},
	}
	config.Definitions = generated.GetOpenAPIDefinitions(func(name string) spec.Ref {
		defName, _ := a.namer.definitionName(name)
		return spec.MustCreateRef("#/components/schemas/" + common.EscapeJsonPointer(defName))
	})
	return config
}

// openAPIV3 builds every /openapi/v3 document, keyed by its discovery name.
func (a *assembler) openAPIV3() (map[string]*spec3.OpenAPI, error) {
	a.building.Lock()
	defer a.building.Unlock()
	config := a.v3Config()
	docs := make(map[string]*spec3.OpenAPI, len(a.services))
	for _, ws := range a.services {
		doc, err := builder3.BuildOpenAPISpecFromRoutes([]common.RouteContainer{ws}, config)
		if err != nil {
			return nil, fmt.Errorf("build OpenAPI v3 document %s: %w", ws.groupVersionName(), err)
		}
		if gv, ok := groupVersionOf(ws.groupVersionName()); ok {
			narrowCrossRegisteredKinds(doc, gv)
		}
		docs[ws.groupVersionName()] = doc
	}
	return docs, nil
}

// TypeSchemas returns the OpenAPI v3 schemas of every served kind and of
// the types they refer to, keyed by definition name and marked with
// x-kubernetes-group-version-kind: what managedfields.NewTypeConverter
// needs for server-side apply. It builds them on each call; callers keep
// the result (or the converter) rather than call it per request.
func (d *Documents) TypeSchemas() (map[string]*spec.Schema, error) {
	a := d.assembler
	a.building.Lock()
	defer a.building.Unlock()
	schemas, err := builder3.BuildOpenAPIDefinitionsForResources(a.v3Config(), a.kindModels...)
	if err != nil {
		return nil, fmt.Errorf("build type schemas: %w", err)
	}
	return schemas, nil
}

// kindModels lists the models of served objects: request bodies and
// responses, minus the meta types every group version shares.
func kindModels(services []*webService) []string {
	shared := map[modelName]bool{statusModel: true, deleteModel: true, patchModel: true, watchEventModel: true}
	seen := map[modelName]bool{}
	var names []string
	note := func(m modelName) {
		if m != "" && !shared[m] && !seen[m] {
			seen[m] = true
			names = append(names, string(m))
		}
	}
	for _, ws := range services {
		for _, r := range ws.routes {
			rt := r.(*route)
			note(rt.body)
			for _, resp := range rt.responses {
				note(resp.(response).model)
			}
		}
	}
	return names
}

// groupVersionOf parses "api/v1" and "apis/<group>/<version>".
func groupVersionOf(name string) (schema.GroupVersion, bool) {
	parts := strings.Split(name, "/")
	switch {
	case len(parts) == 2 && parts[0] == "api":
		return schema.GroupVersion{Version: parts[1]}, true
	case len(parts) == 3 && parts[0] == "apis":
		return schema.GroupVersion{Group: parts[1], Version: parts[2]}, true
	default:
		return schema.GroupVersion{}, false
	}
}
