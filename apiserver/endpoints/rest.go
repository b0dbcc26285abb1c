package endpoints

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/managedfields"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"tower.dev/tower/apiserver/admission"
	"tower.dev/tower/apiserver/authentication"
	"tower.dev/tower/apiserver/registry"
	"tower.dev/tower/apiserver/storage"
)

// Scope is what every resource handler shares.
type Scope struct {
	Codecs serializer.CodecFactory
	// MaxBodyBytes: larger request bodies are refused with 413.
	MaxBodyBytes int64
	// MinRequestTimeout: watches without timeoutSeconds last between this
	// and twice this, as in kube-apiserver.
	MinRequestTimeout time.Duration
	Admission         admission.Interface
	// Parameters decodes query parameters into option structs; the scheme
	// behind it must have metav1 registered in optionsVersion.
	Parameters runtime.ParameterCodec
	// Scheme converts and creates the served types for field management.
	Scheme *runtime.Scheme
	// TypeConverter knows the structure of every served kind (from the
	// OpenAPI schemas); it drives managedFields and server-side apply.
	// Without it writes record no managedFields and apply is refused.
	TypeConverter managedfields.TypeConverter
	// CustomResourceConvertor, when set, marks the scope's resources as
	// custom resources (unstructured objects the scheme does not know): it
	// converts them between their versions for field management, whose
	// managers then also accept fields the schema leaves open.
	CustomResourceConvertor runtime.ObjectConvertor
	// ServerUser is the API server's own identity (kube-apiserver's
	// loopback user): writes a handler makes to another resource on a
	// client's behalf, as pods/eviction's to the disruption budget, are
	// admitted as this user.
	ServerUser *authentication.User
}

// optionsVersion is where the server's scheme registers the meta option
// types (ListOptions, GetOptions, ...) with their url.Values conversions.
var optionsVersion = schema.GroupVersion{Version: "v1"}

// Endpoint serves one resource backed by one store.
type Endpoint struct {
	Resource *registry.Resource
	Store    storage.Interface
	// KeyPrefix is the resource's etcd key prefix with the server's
	// --etcd-prefix applied ("/registry/pods").
	KeyPrefix string
}

// Handler serves every resource request.
type Handler struct {
	scope     *Scope
	endpoints map[schema.GroupVersionResource]*Endpoint
	fields    map[schema.GroupVersionResource]*fieldManagers
}

// NewHandler builds the resource handler and the field managers of every
// endpoint.
func NewHandler(scope *Scope, endpoints []*Endpoint) (*Handler, error) {
	h := &Handler{
		scope:     scope,
		endpoints: map[schema.GroupVersionResource]*Endpoint{},
		fields:    map[schema.GroupVersionResource]*fieldManagers{},
	}
	for _, e := range endpoints {
		gvr := e.Resource.GroupVersionResource
		h.endpoints[gvr] = e
		managers, err := newFieldManagers(scope, e.Resource)
		if err != nil {
			return nil, err
		}
		h.fields[gvr] = managers
	}
	return h, nil
}

// request carries what every verb needs.
type request struct {
	*Endpoint
	scope *Scope
	// fields is nil when managedFields are not tracked for the resource.
	fields *fieldManagers
	info   *RequestInfo
	// peers are all served endpoints, for handlers that read or write
	// another resource (pods/eviction updates PodDisruptionBudgets), and
	// peerFields their field managers.
	peers      map[schema.GroupVersionResource]*Endpoint
	peerFields map[schema.GroupVersionResource]*fieldManagers
	// skipAdmission marks a write the server makes below the admission
	// layer (see inStorage).
	skipAdmission bool
	w             http.ResponseWriter
	r             *http.Request
}

// serverFieldManager names the API server in the managedFields of the
// objects it writes itself, as kube-apiserver's loopback client's user
// agent does.
const serverFieldManager = "kube-apiserver"

// asServer is a write the API server makes to another resource on behalf
// of q, as kube-apiserver does through its loopback client: the returned
// request takes the normal update path of that resource (strategy,
// validation, admission, managedFields) and ctx carries the server's own
// identity.
func (q *request) asServer(ctx context.Context, gvr schema.GroupVersionResource, namespace, name, subresource string) (*request, context.Context, bool) {
	peer, ok := q.peer(gvr, namespace, name, subresource)
	if !ok {
		return nil, ctx, false
	}
	peer.fields = q.peerFields[gvr]
	if q.scope.ServerUser != nil {
		ctx = authentication.WithUser(ctx, q.scope.ServerUser)
	}
	return peer, ctx, true
}

// inStorage is a write q's handler makes to its own object below the
// admission layer, as kube-apiserver's eviction handler writes and deletes
// the pod through its store: strategy, validation and preconditions apply;
// admission and managedFields, which belong to handlers, do not.
func (q *request) inStorage(subresource string) *request {
	peer, _ := q.peer(q.Resource.GroupVersionResource, q.info.Namespace, q.info.Name, subresource)
	peer.skipAdmission = true
	return peer
}

// peer is a request to a served resource made from within q's handler;
// its admission warnings are not the client's, so they are dropped.
func (q *request) peer(gvr schema.GroupVersionResource, namespace, name, subresource string) (*request, bool) {
	endpoint, ok := q.peers[gvr]
	if !ok {
		return nil, false
	}
	return &request{
		Endpoint: endpoint,
		scope:    q.scope,
		info: &RequestInfo{
			Verb: "update", APIPrefix: q.info.APIPrefix, GroupVersion: gvr.GroupVersion(),
			Namespace: namespace, Resource: gvr.Resource, Name: name, Subresource: subresource,
		},
		peers:      q.peers,
		peerFields: q.peerFields,
		w:          discardHeaders{header: http.Header{}},
		r:          q.r,
	}, true
}

// discardHeaders collects the headers of a write no client sees.
type discardHeaders struct{ header http.Header }

func (d discardHeaders) Header() http.Header       { return d.header }
func (discardHeaders) Write(b []byte) (int, error) { return len(b), nil }
func (discardHeaders) WriteHeader(int)             {}

func (q *request) gr() schema.GroupResource { return q.Resource.GroupResource() }

func (q *request) fail(err error) { writeError(q.w, q.r, q.scope.Codecs, err) }

func (q *request) respond(ctx context.Context, code int, obj runtime.Object) {
	out, err := negotiateOutput(q.r, q.scope.Codecs)
	if err != nil {
		q.fail(err)
		return
	}
	setKind(obj, q.Resource)
	writeObject(ctx, q.w, q.r, q.scope, out, code, obj)
}

// ServeHTTP dispatches a resource request to its verb. It answers 404 for
// resources that are not served.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	info, ok := ParseRequestInfo(r)
	if !ok {
		writeError(w, r, h.scope.Codecs, apierrors.NewNotFound(schema.GroupResource{}, ""))
		return
	}
	h.Serve(w, r, info)
}

// Serve handles a request whose RequestInfo was already parsed.
func (h *Handler) Serve(w http.ResponseWriter, r *http.Request, info *RequestInfo) {
	endpoint, ok := h.endpoints[info.GroupVersion.WithResource(info.Resource)]
	if !ok {
		writeError(w, r, h.scope.Codecs, newStatusError(http.StatusNotFound, metav1.StatusReasonNotFound, "the server could not find the requested resource"))
		return
	}
	q := &request{Endpoint: endpoint, scope: h.scope, fields: h.fields[endpoint.Resource.GroupVersionResource], info: info, peers: h.endpoints, peerFields: h.fields, w: w, r: r}
	res := endpoint.Resource
	if info.Namespace != "" && !res.Namespaced && info.Resource != "namespaces" {
		q.fail(newStatusError(http.StatusNotFound, metav1.StatusReasonNotFound, "the server could not find the requested resource"))
		return
	}
	if info.Subresource != "" && !q.servesSubresource(info.Subresource) {
		q.fail(newStatusError(http.StatusNotFound, metav1.StatusReasonNotFound, "the server could not find the requested resource"))
		return
	}
	ctx := r.Context()
	if info.Subresource == "scale" {
		q.serveScale(ctx)
		return
	}
	switch info.Verb {
	case "get":
		q.get(ctx)
	case "list":
		q.list(ctx)
	case "watch":
		q.watch(ctx)
	case "create":
		q.create(ctx)
	case "update":
		q.update(ctx)
	case "patch":
		q.patch(ctx)
	case "delete":
		q.delete(ctx)
	case "deletecollection":
		q.deleteCollection(ctx)
	default:
		q.fail(apierrors.NewMethodNotSupported(q.gr(), info.Verb))
	}
}

func (q *request) servesSubresource(name string) bool {
	switch name {
	case "status":
		return q.Resource.Status != nil
	case "finalize":
		return q.Resource.Resource == "namespaces"
	case "binding", "eviction":
		return q.Resource.Resource == "pods" && q.Resource.Group == ""
	case "scale":
		return q.Resource.Scale != nil
	}
	return false
}

// serveScale dispatches the verbs of the scale subresource.
func (q *request) serveScale(ctx context.Context) {
	switch q.info.Verb {
	case "get":
		q.getScale(ctx)
	case "update":
		q.updateScale(ctx)
	case "patch":
		q.patchScale(ctx)
	default:
		q.fail(apierrors.NewMethodNotSupported(q.gr(), q.info.Verb))
	}
}

// objectNamespace is the namespace part of the object's key.
func (q *request) objectNamespace() string {
	if q.Resource.Namespaced {
		return q.info.Namespace
	}
	return ""
}

func (q *request) key(name string) string {
	if ns := q.objectNamespace(); ns != "" {
		return q.KeyPrefix + "/" + ns + "/" + name
	}
	return q.KeyPrefix + "/" + name
}

func (q *request) listKey() string {
	if ns := q.objectNamespace(); ns != "" {
		return q.KeyPrefix + "/" + ns + "/"
	}
	return q.KeyPrefix + "/"
}

func (q *request) get(ctx context.Context) {
	opts := metav1.GetOptions{}
	if err := q.scope.Parameters.DecodeParameters(q.r.URL.Query(), optionsVersion, &opts); err != nil {
		q.fail(apierrors.NewBadRequest(err.Error()))
		return
	}
	obj := q.Resource.New()
	if err := q.Store.Get(ctx, q.key(q.info.Name), storage.GetOptions{ResourceVersion: opts.ResourceVersion}, obj); err != nil {
		q.fail(apiError(err, q.gr(), q.info.Name))
		return
	}
	q.respond(ctx, http.StatusOK, obj)
}

func (q *request) list(ctx context.Context) {
	opts, pred, err := q.listOptions()
	if err != nil {
		q.fail(err)
		return
	}
	list := q.Resource.NewList()
	err = q.Store.GetList(ctx, q.listKey(), storage.ListOptions{
		ResourceVersion:      opts.ResourceVersion,
		ResourceVersionMatch: opts.ResourceVersionMatch,
		Predicate:            pred,
		Recursive:            true,
	}, list)
	if err != nil {
		var se *storage.Error
		if errors.As(err, &se) && se.Code == storage.ErrCodeResourceVersionTooOld && opts.Continue != "" {
			q.fail(expiredContinue(se))
			return
		}
		q.fail(apiError(err, q.gr(), ""))
		return
	}
	q.respond(ctx, http.StatusOK, list)
}

// expiredContinue is kube-apiserver's 410 for a continue token whose
// snapshot was compacted; it carries a fresh token that resumes the list
// inconsistently, as upstream's does.
func expiredContinue(se *storage.Error) error {
	err := apierrors.NewResourceExpired(se.Message)
	err.ErrStatus.ListMeta.Continue = se.Continue
	return err
}

// listOptions decodes and checks list/watch query parameters.
func (q *request) listOptions() (*metav1.ListOptions, storage.SelectionPredicate, error) {
	opts := &metav1.ListOptions{}
	if err := q.scope.Parameters.DecodeParameters(q.r.URL.Query(), optionsVersion, opts); err != nil {
		return nil, storage.SelectionPredicate{}, apierrors.NewBadRequest(err.Error())
	}
	if errs := validateListOptions(opts, q.info.Verb == "watch"); len(errs) > 0 {
		return nil, storage.SelectionPredicate{}, apierrors.NewInvalid(schema.GroupKind{Group: metav1.GroupName, Kind: "ListOptions"}, "", errs)
	}
	pred, err := selectionPredicate(opts, q.Resource)
	if err != nil {
		return nil, storage.SelectionPredicate{}, err
	}
	return opts, pred, nil
}

// validateListOptions enforces the combinations kube-apiserver refuses.
func validateListOptions(opts *metav1.ListOptions, isWatch bool) field.ErrorList {
	var errs field.ErrorList
	if opts.ResourceVersionMatch != "" {
		if isWatch {
			if opts.ResourceVersionMatch != metav1.ResourceVersionMatchNotOlderThan || opts.SendInitialEvents == nil {
				errs = append(errs, field.Forbidden(field.NewPath("resourceVersionMatch"), "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"))
			}
		} else {
			switch opts.ResourceVersionMatch {
			case metav1.ResourceVersionMatchExact, metav1.ResourceVersionMatchNotOlderThan:
			default:
				errs = append(errs, field.NotSupported(field.NewPath("resourceVersionMatch"), opts.ResourceVersionMatch,
					[]string{string(metav1.ResourceVersionMatchExact), string(metav1.ResourceVersionMatchNotOlderThan), ""}))
			}
			if opts.ResourceVersion == "" {
				errs = append(errs, field.Forbidden(field.NewPath("resourceVersionMatch"), "resourceVersionMatch is forbidden unless resourceVersion is provided"))
			}
			if opts.Continue != "" {
				errs = append(errs, field.Forbidden(field.NewPath("resourceVersionMatch"), "resourceVersionMatch is forbidden when continue is provided"))
			}
			if opts.ResourceVersionMatch == metav1.ResourceVersionMatchExact && opts.ResourceVersion == "0" {
				errs = append(errs, field.Forbidden(field.NewPath("resourceVersionMatch"), "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\""))
			}
		}
	}
	if opts.SendInitialEvents != nil {
		if !isWatch {
			errs = append(errs, field.Forbidden(field.NewPath("sendInitialEvents"), "sendInitialEvents is forbidden for list"))
		} else {
			if opts.ResourceVersionMatch != metav1.ResourceVersionMatchNotOlderThan {
				errs = append(errs, field.Forbidden(field.NewPath("resourceVersionMatch"), "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"))
			}
			if !opts.AllowWatchBookmarks {
				errs = append(errs, field.Forbidden(field.NewPath("allowWatchBookmarks"), "sendInitialEvents requires setting allowWatchBookmarks to true"))
			}
		}
	}
	if opts.Continue != "" && opts.ResourceVersion != "" && opts.ResourceVersion != "0" {
		errs = append(errs, field.Forbidden(field.NewPath("resourceVersion"), "specifying resource version is not allowed when using continue"))
	}
	return errs
}

// decodeBody reads and decodes a request body into a new object of the
// resource's type, honouring fieldValidation for unknown and duplicate
// fields.
func (q *request) decodeBody(validation string) (runtime.Object, []string, error) {
	body, err := q.readBody()
	if err != nil {
		return nil, nil, err
	}
	return q.decode(body, validation)
}

// decodeBodyInto decodes the body as a fixed kind (a subresource's Scale
// or Binding), with kube-apiserver's 400 for a body that is not one.
func (q *request) decodeBodyInto(gvk schema.GroupVersionKind, into runtime.Object) error {
	_, err := q.decodeBodyAs(gvk, into)
	return err
}

// decodeBodyAs decodes the body with gvk filling in what it leaves out:
// into the given object, or into a new one of the body's own kind when
// into is nil.
func (q *request) decodeBodyAs(gvk schema.GroupVersionKind, into runtime.Object) (runtime.Object, error) {
	body, err := q.readBody()
	if err != nil {
		return nil, err
	}
	info, err := negotiateInput(q.r, q.scope.Codecs)
	if err != nil {
		return nil, err
	}
	obj, _, err := info.Serializer.Decode(body, &gvk, into)
	if err != nil {
		return nil, cannotHandle(gvk, err)
	}
	return obj, nil
}

// cannotHandle is kube-apiserver's 400 for a body that is not a gvk.
func cannotHandle(gvk schema.GroupVersionKind, err error) error {
	return apierrors.NewBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: %v", gvk.Kind, gvk.Version, gvk.Kind, err))
}

func (q *request) readBody() ([]byte, error) {
	limit := q.scope.MaxBodyBytes
	body, err := io.ReadAll(io.LimitReader(q.r.Body, limit+1))
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("read request body: %v", err))
	}
	if int64(len(body)) > limit {
		return nil, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("limit is %d", limit))
	}
	return body, nil
}

func (q *request) decode(body []byte, validation string) (runtime.Object, []string, error) {
	info, err := negotiateInput(q.r, q.scope.Codecs)
	if err != nil {
		return nil, nil, err
	}
	return q.decodeWith(info, body, validation)
}

func (q *request) decodeWith(info runtime.SerializerInfo, body []byte, validation string) (runtime.Object, []string, error) {
	gvk := q.Resource.GroupVersionKind()
	into := q.Resource.New()
	decoder := info.Serializer
	if info.StrictSerializer != nil && validation != metav1.FieldValidationIgnore {
		decoder = info.StrictSerializer
	}
	obj, actual, err := decoder.Decode(body, &gvk, into)
	err = q.withUnknownFields(obj, err, validation)
	var warnings []string
	if err != nil && validation == metav1.FieldValidationIgnore && runtime.IsStrictDecodingError(err) && obj != nil {
		// The server's codecs are strict; Ignore drops what they found.
		err = nil
	}
	if err != nil {
		if !runtime.IsStrictDecodingError(err) || obj == nil {
			return nil, nil, apierrors.NewBadRequest(decodeErrorMessage(err, gvk, actual))
		}
		if validation == metav1.FieldValidationStrict {
			return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: %v", gvk.Kind, gvk.Version, gvk.Kind, err))
		}
		if strictErr, ok := runtime.AsStrictDecodingError(err); ok {
			for _, e := range strictErr.Errors() {
				warnings = append(warnings, e.Error())
			}
		}
	}
	if obj != into {
		return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("the object provided is unrecognized (must be of type %s): %v", gvk.Kind, actual))
	}
	if actual != nil && (actual.Kind != gvk.Kind || actual.GroupVersion() != gvk.GroupVersion()) {
		return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("the API version in the data (%s) does not match the expected API version (%s)", actual.GroupVersion(), gvk.GroupVersion()))
	}
	return obj, warnings, nil
}

// withUnknownFields adds the unknown fields a schema-driven strategy finds
// in a decoded object to the strict decoding errors, so that Strict and
// Warn treat them as they treat unknown fields of built-in types.
func (q *request) withUnknownFields(obj runtime.Object, decodeErr error, validation string) error {
	reporter, ok := q.Resource.Strategy.(registry.UnknownFieldsReporter)
	if !ok || obj == nil || validation == metav1.FieldValidationIgnore {
		return decodeErr
	}
	if decodeErr != nil && !runtime.IsStrictDecodingError(decodeErr) {
		return decodeErr
	}
	var unknown []error
	if strictErr, ok := runtime.AsStrictDecodingError(decodeErr); ok {
		unknown = strictErr.Errors()
	}
	for _, path := range reporter.UnknownFields(obj) {
		unknown = append(unknown, fmt.Errorf("unknown field %q", path))
	}
	if len(unknown) == 0 {
		return decodeErr
	}
	return runtime.NewStrictDecodingError(unknown)
}

func decodeErrorMessage(err error, gvk schema.GroupVersionKind, actual *schema.GroupVersionKind) string {
	if actual != nil && actual.Kind != "" && actual.Kind != gvk.Kind {
		return fmt.Sprintf("the object provided is unrecognized (must be of type %s): %v", gvk.Kind, err)
	}
	return fmt.Sprintf("%s in version %q cannot be handled as a %s: %v", gvk.Kind, gvk.Version, gvk.Kind, err)
}

// addWarnings sends warnings to the client as kube-apiserver does: a
// warning that cannot be a header value (it spans lines) is dropped.
func addWarnings(w http.ResponseWriter, warnings []string) {
	for _, warning := range warnings {
		header, err := utilnet.NewWarningHeader(299, "-", warning)
		if err != nil {
			continue
		}
		w.Header().Add("Warning", header)
	}
}

// setKind fills apiVersion and kind on an object or list about to be sent.
func setKind(obj runtime.Object, res *registry.Resource) {
	switch obj.(type) {
	case *metav1.Status, *metav1.Table, *metav1.PartialObjectMetadata, *metav1.PartialObjectMetadataList:
		return
	}
	gvk := res.GroupVersionKind()
	if meta.IsListType(obj) {
		gvk.Kind += "List"
	}
	if obj.GetObjectKind().GroupVersionKind() != gvk {
		obj.GetObjectKind().SetGroupVersionKind(gvk)
	}
}
