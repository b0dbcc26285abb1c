package openapi

import (
	"k8s.io/kube-openapi/pkg/common"
)

// The kube-openapi builders read routes through the common.Route family of
// interfaces (normally adapted from go-restful). Tower has no go-restful
// web services, so these small value types describe its routes directly.

// webService is one root path: a v3 document of its own ("api/v1",
// "apis/apps", "version"...) and a slice of the v2 document.
type webService struct {
	rootPath string
	routes   []common.Route
}

var _ common.RouteContainer = (*webService)(nil)

func (w *webService) RootPath() string                   { return w.rootPath }
func (w *webService) PathParameters() []common.Parameter { return nil }
func (w *webService) Routes() []common.Route             { return w.routes }

// groupVersionName is the key of the service in the /openapi/v3 discovery
// document: the root path without its leading slash.
func (w *webService) groupVersionName() string { return w.rootPath[1:] }

// route is one operation (method + path).
type route struct {
	method      string
	path        string
	operationID string
	tags        []string
	description string
	params      []common.Parameter
	consumes    []string
	produces    []string
	extensions  map[string]interface{}
	// body is the request payload model, nil when the operation takes none.
	body      modelName
	responses []common.StatusCodeResponse
}

var _ common.Route = (*route)(nil)

func (r *route) Method() string                                   { return r.method }
func (r *route) Path() string                                     { return r.path }
func (r *route) OperationName() string                            { return r.operationID }
func (r *route) Parameters() []common.Parameter                   { return r.params }
func (r *route) Description() string                              { return r.description }
func (r *route) Consumes() []string                               { return r.consumes }
func (r *route) Produces() []string                               { return r.produces }
func (r *route) Metadata() map[string]interface{}                 { return r.extensions }
func (r *route) ResponsePayloadSample() interface{}               { return nil }
func (r *route) StatusCodeResponses() []common.StatusCodeResponse { return r.responses }

// RequestPayloadSample must be an untyped nil when there is no body: the
// builders test the interface against nil.
func (r *route) RequestPayloadSample() interface{} {
	if r.body == "" {
		return nil
	}
	return r.body
}

// modelName stands in for a Go sample object: the builders name a model by
// util.GetCanonicalTypeName, which asks OpenAPIModelName first. Routes can
// therefore point at any definition by name, including ones without a Go
// type (custom resources).
type modelName string

func (m modelName) OpenAPIModelName() string { return string(m) }

// response is one status code of an operation.
type response struct {
	code    int
	message string
	model   modelName
}

var _ common.StatusCodeResponse = response{}

func (r response) Code() int          { return r.code }
func (r response) Message() string    { return r.message }
func (r response) Model() interface{} { return r.model }

// parameter is a path, query or body parameter.
type parameter struct {
	name        string
	description string
	kind        common.ParameterKind
	required    bool
	// dataType is "string", "integer" or "boolean" (the builders map it to
	// an OpenAPI type without a format, as kube-apiserver's parameters have).
	dataType string
}

var _ common.Parameter = parameter{}

func (p parameter) Name() string               { return p.name }
func (p parameter) Description() string        { return p.description }
func (p parameter) Required() bool             { return p.required }
func (p parameter) Kind() common.ParameterKind { return p.kind }
func (p parameter) DataType() string           { return p.dataType }

// AllowMultiple is false for every kube-apiserver parameter, even dryRun:
// the documents mark them all uniqueItems.
func (p parameter) AllowMultiple() bool { return false }
