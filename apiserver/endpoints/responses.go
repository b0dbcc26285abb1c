package endpoints

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"

	"tower.dev/tower/apiserver/printers"
	"tower.dev/tower/apiserver/storage"
)

var (
	statusGVK      = schema.GroupVersionKind{Version: "v1", Kind: "Status"}
	tableGVK       = metav1.SchemeGroupVersion.WithKind("Table")
	partialGVK     = metav1.SchemeGroupVersion.WithKind("PartialObjectMetadata")
	partialListGVK = metav1.SchemeGroupVersion.WithKind("PartialObjectMetadataList")
)

// writeObject encodes obj in the negotiated representation.
func writeObject(ctx context.Context, w http.ResponseWriter, r *http.Request, scope *Scope, out output, code int, obj runtime.Object) {
	codecs := scope.Codecs
	converted, err := represent(ctx, r, scope.Parameters, out.as, obj)
	if err != nil {
		writeError(w, r, codecs, err)
		return
	}
	encoder := responseEncoder(out, converted)
	var buf bytes.Buffer
	if err := encoder.Encode(converted, &buf); err != nil {
		writeError(w, r, codecs, apierrors.NewInternalError(fmt.Errorf("encode response: %w", err)))
		return
	}
	w.Header().Set("Content-Type", out.info.MediaType)
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// responseEncoder picks the encoder for obj in the negotiated media type.
func responseEncoder(out output, obj runtime.Object) runtime.Encoder {
	if out.pretty && out.info.PrettySerializer != nil {
		return out.info.PrettySerializer
	}
	// The JSON serializer hands a custom object to encoding/json, which
	// validates and compacts again all that the object's MarshalJSON wrote:
	// half the CPU of a custom resource LIST. The unstructured scheme writes
	// the same bytes once.
	if _, ok := obj.(runtime.Unstructured); ok && out.info.MediaType == runtime.ContentTypeJSON {
		return unstructured.UnstructuredJSONScheme
	}
	return out.info.Serializer
}

// represent turns obj into what the client asked for: the object itself, a
// Table, or metadata only.
func represent(ctx context.Context, r *http.Request, parameters runtime.ParameterCodec, as representation, obj runtime.Object) (runtime.Object, error) {
	if _, isStatus := obj.(*metav1.Status); isStatus {
		return obj, nil
	}
	switch as {
	case asTable:
		return toTable(ctx, r, parameters, obj)
	case asPartialObjectMetadata:
		if meta.IsListType(obj) {
			return nil, newStatusError(http.StatusNotAcceptable, metav1.StatusReasonNotAcceptable, "a list cannot be returned as PartialObjectMetadata")
		}
		return partialMetadata(obj)
	case asPartialObjectMetadataList:
		if !meta.IsListType(obj) {
			return nil, newStatusError(http.StatusNotAcceptable, metav1.StatusReasonNotAcceptable, "a single object cannot be returned as PartialObjectMetadataList")
		}
		return partialMetadataList(obj)
	}
	return obj, nil
}

func partialMetadata(obj runtime.Object) (*metav1.PartialObjectMetadata, error) {
	out := &metav1.PartialObjectMetadata{}
	if a, ok := obj.(metav1.ObjectMetaAccessor); ok {
		if om, ok := a.GetObjectMeta().(*metav1.ObjectMeta); ok {
			out.ObjectMeta = *om.DeepCopy()
		}
	}
	if out.UID == "" && out.Name == "" {
		m, err := meta.Accessor(obj)
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		out.ObjectMeta = metav1.ObjectMeta{
			Name: m.GetName(), GenerateName: m.GetGenerateName(), Namespace: m.GetNamespace(), UID: m.GetUID(),
			ResourceVersion: m.GetResourceVersion(), Generation: m.GetGeneration(),
			CreationTimestamp: m.GetCreationTimestamp(), DeletionTimestamp: m.GetDeletionTimestamp(),
			DeletionGracePeriodSeconds: m.GetDeletionGracePeriodSeconds(), Labels: m.GetLabels(),
			Annotations: m.GetAnnotations(), OwnerReferences: m.GetOwnerReferences(), Finalizers: m.GetFinalizers(),
			ManagedFields: m.GetManagedFields(),
		}
	}
	out.SetGroupVersionKind(partialGVK)
	return out, nil
}

func partialMetadataList(list runtime.Object) (*metav1.PartialObjectMetadataList, error) {
	out := &metav1.PartialObjectMetadataList{}
	out.SetGroupVersionKind(partialListGVK)
	if lm, err := meta.ListAccessor(list); err == nil {
		out.ResourceVersion = lm.GetResourceVersion()
		out.Continue = lm.GetContinue()
		out.RemainingItemCount = lm.GetRemainingItemCount()
	}
	err := meta.EachListItem(list, func(item runtime.Object) error {
		p, err := partialMetadata(item)
		if err != nil {
			return err
		}
		out.Items = append(out.Items, *p)
		return nil
	})
	return out, err
}

// toTable converts obj to a Table, embedding rows' objects as the client's
// includeObject asks (Metadata by default, as kube-apiserver).
func toTable(ctx context.Context, r *http.Request, parameters runtime.ParameterCodec, obj runtime.Object) (*metav1.Table, error) {
	opts := &metav1.TableOptions{}
	if err := parameters.DecodeParameters(r.URL.Query(), metav1.SchemeGroupVersion, opts); err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	table, err := printers.ConvertToTable(ctx, obj, opts)
	if err != nil {
		var apiStatus apierrors.APIStatus
		if errors.As(err, &apiStatus) {
			return nil, err
		}
		return nil, apierrors.NewInternalError(fmt.Errorf("convert to table: %w", err))
	}
	table.SetGroupVersionKind(tableGVK)
	for i := range table.Rows {
		row := &table.Rows[i]
		switch opts.IncludeObject {
		case metav1.IncludeNone:
			row.Object = runtime.RawExtension{}
		case metav1.IncludeObject:
		default:
			if row.Object.Object != nil {
				p, err := partialMetadata(row.Object.Object)
				if err != nil {
					return nil, err
				}
				row.Object = runtime.RawExtension{Object: p}
			}
		}
	}
	return table, nil
}

// writeError writes err as a metav1.Status in the client's encoding, JSON
// when negotiation itself failed.
func writeError(w http.ResponseWriter, r *http.Request, codecs serializer.CodecFactory, err error) {
	status := statusFor(err)
	status.SetGroupVersionKind(statusGVK)
	out, negErr := negotiateOutput(r, codecs)
	if negErr != nil || out.as != asObject && out.info.MediaType != runtime.ContentTypeJSON {
		out = jsonOutput(codecs)
	}
	var buf bytes.Buffer
	if encErr := out.info.Serializer.Encode(status, &buf); encErr != nil {
		http.Error(w, status.Message, int(status.Code))
		return
	}
	if status.Details != nil && status.Details.RetryAfterSeconds > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(status.Details.RetryAfterSeconds))
	}
	w.Header().Set("Content-Type", out.info.MediaType)
	w.WriteHeader(int(status.Code))
	_, _ = w.Write(buf.Bytes())
}

func jsonOutput(codecs serializer.CodecFactory) output {
	for _, info := range codecs.SupportedMediaTypes() {
		if info.MediaType == runtime.ContentTypeJSON {
			return output{info: info}
		}
	}
	panic("codec factory without JSON")
}

func statusFor(err error) *metav1.Status {
	var apiStatus apierrors.APIStatus
	if errors.As(err, &apiStatus) {
		s := apiStatus.Status()
		if s.Code == 0 {
			s.Code = http.StatusInternalServerError
		}
		return &s
	}
	return &apierrors.NewInternalError(err).ErrStatus
}

// conflictMessage is kube-apiserver's text for a lost optimistic update.
const conflictMessage = "the object has been modified; please apply your changes to the latest version and try again"

// apiError maps a storage error to the Status kube-apiserver returns.
func apiError(err error, gr schema.GroupResource, name string) error {
	var se *storage.Error
	if !errors.As(err, &se) {
		var apiStatus apierrors.APIStatus
		if errors.As(err, &apiStatus) {
			return err
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return apierrors.NewTimeoutError("request did not complete within the allowed duration", 0)
		}
		return apierrors.NewInternalError(err)
	}
	switch se.Code {
	case storage.ErrCodeKeyNotFound:
		return apierrors.NewNotFound(gr, name)
	case storage.ErrCodeKeyExists:
		return apierrors.NewAlreadyExists(gr, name)
	case storage.ErrCodeConflict:
		return apierrors.NewConflict(gr, name, errors.New(conflictMessage))
	case storage.ErrCodePreconditionFailed:
		return apierrors.NewConflict(gr, name, errors.New(se.Message))
	case storage.ErrCodeResourceVersionTooOld:
		return apierrors.NewResourceExpired(se.Message)
	case storage.ErrCodeInvalidContinue, storage.ErrCodeInvalidResourceVersion:
		return apierrors.NewBadRequest(se.Message)
	case storage.ErrCodeTimeout:
		e := apierrors.NewTimeoutError(se.Message, 1)
		e.ErrStatus.Details.Causes = []metav1.StatusCause{{Type: metav1.CauseTypeResourceVersionTooLarge, Message: "Too large resource version"}}
		return e
	}
	return apierrors.NewInternalError(err)
}
