package endpoints

import (
	"mime"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
)

// representation is what a response carries besides the media type.
type representation int

const (
	asObject representation = iota
	asTable
	asPartialObjectMetadata
	asPartialObjectMetadataList
)

// output is the negotiated response encoding.
type output struct {
	info   runtime.SerializerInfo
	as     representation
	pretty bool
}

// serves reports whether a media type is one the server encodes; CBOR is
// left out, as kube-apiserver serves it only behind a feature gate.
func serves(info runtime.SerializerInfo) bool {
	return info.MediaType != "application/cbor"
}

// negotiateOutput picks the response encoding from the Accept header.
func negotiateOutput(r *http.Request, codecs serializer.CodecFactory) (output, error) {
	accept := r.Header.Get("Accept")
	pretty := isTrue(r.URL.Query().Get("pretty"))
	if accept == "" {
		accept = "application/json"
	}
	for _, clause := range strings.Split(accept, ",") {
		mediaType, params, err := mime.ParseMediaType(strings.TrimSpace(clause))
		if err != nil {
			continue
		}
		as, ok := representationFor(params)
		if !ok {
			continue
		}
		for _, info := range codecs.SupportedMediaTypes() {
			if !serves(info) || !mediaTypeMatches(mediaType, info.MediaType) {
				continue
			}
			return output{info: info, as: as, pretty: pretty}, nil
		}
	}
	return output{}, newStatusError(http.StatusNotAcceptable, metav1.StatusReasonNotAcceptable,
		"only the following media types are accepted: "+strings.Join(supportedMediaTypes(codecs), ", "))
}

func mediaTypeMatches(requested, offered string) bool {
	switch requested {
	case "*/*":
		return offered == runtime.ContentTypeJSON
	case "application/*":
		return offered == runtime.ContentTypeJSON
	}
	return requested == offered
}

// representationFor reads the as/g/v parameters of an Accept clause.
func representationFor(params map[string]string) (representation, bool) {
	as := params["as"]
	if as == "" {
		return asObject, true
	}
	if params["g"] != "meta.k8s.io" || params["v"] != "v1" {
		return 0, false
	}
	switch as {
	case "Table":
		return asTable, true
	case "PartialObjectMetadata":
		return asPartialObjectMetadata, true
	case "PartialObjectMetadataList":
		return asPartialObjectMetadataList, true
	}
	return 0, false
}

func supportedMediaTypes(codecs serializer.CodecFactory) []string {
	var out []string
	for _, info := range codecs.SupportedMediaTypes() {
		if serves(info) {
			out = append(out, info.MediaType)
		}
	}
	return out
}

// negotiateInput finds the decoder for the request's Content-Type.
func negotiateInput(r *http.Request, codecs serializer.CodecFactory) (runtime.SerializerInfo, error) {
	contentType := r.Header.Get("Content-Type")
	if contentType == "" {
		contentType = runtime.ContentTypeJSON
	}
	mediaType, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return runtime.SerializerInfo{}, unsupportedMediaType(codecs)
	}
	for _, info := range codecs.SupportedMediaTypes() {
		if serves(info) && info.MediaType == mediaType {
			return info, nil
		}
	}
	return runtime.SerializerInfo{}, unsupportedMediaType(codecs)
}

func unsupportedMediaType(codecs serializer.CodecFactory) error {
	return newStatusError(http.StatusUnsupportedMediaType, metav1.StatusReasonUnsupportedMediaType,
		"the body of the request was in an unknown format - accepted media types include: "+strings.Join(supportedMediaTypes(codecs), ", "))
}

func newStatusError(code int32, reason metav1.StatusReason, message string) *apierrors.StatusError {
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status: metav1.StatusFailure, Code: code, Reason: reason, Message: message,
	}}
}
