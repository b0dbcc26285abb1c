package endpoints

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strings"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/mergepatch"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/util/validation/field"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"tower.dev/tower/apiserver/storage"
)

// maxJSONPatchOperations bounds one JSON patch, as kube-apiserver does.
const maxJSONPatchOperations = 10000

// patchTypes lists the patch media types a resource accepts, in
// kube-apiserver's order. Strategic merge needs a Go struct with patch
// tags, so typed resources accept it and unstructured ones do not.
func (q *request) patchTypes() []string {
	accepted := []string{string(types.JSONPatchType), string(types.MergePatchType)}
	if q.typed() {
		accepted = append(accepted, string(types.StrategicMergePatchType))
	}
	if q.fields.forSubresource(q.info.Subresource) != nil && q.info.Subresource != "scale" {
		accepted = append(accepted, string(types.ApplyYAMLPatchType))
	}
	return accepted
}

func (q *request) typed() bool {
	_, isUnstructured := q.Resource.New().(*unstructured.Unstructured)
	return !isUnstructured
}

// patchRequest is a decoded PATCH: its type, body and options.
type patchRequest struct {
	patchType types.PatchType
	body      []byte
	opts      writeOptions
	jsonPatch jsonpatch.Patch
	// strictErrors are unknown or duplicate fields found in the patch body.
	strictErrors []error
}

// readPatch checks the media type and options and parses the body once.
func (q *request) readPatch() (*patchRequest, error) {
	mediaType, _, err := mime.ParseMediaType(q.r.Header.Get("Content-Type"))
	accepted := q.patchTypes()
	if err != nil || !slices.Contains(accepted, mediaType) {
		return nil, newStatusError(http.StatusUnsupportedMediaType, metav1.StatusReasonUnsupportedMediaType,
			fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: %s", strings.Join(accepted, ", ")))
	}
	p := &patchRequest{patchType: types.PatchType(mediaType)}
	if p.opts, err = q.patchOptions(p.patchType); err != nil {
		return nil, err
	}
	if p.body, err = q.readBody(); err != nil {
		return nil, err
	}
	if err := p.parse(); err != nil {
		return nil, err
	}
	return p, nil
}

// jsonPatchOperation is one RFC 6902 operation, for finding unknown fields.
type jsonPatchOperation struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	From  string `json:"from"`
	Value any    `json:"value"`
}

// parse validates the body as kube-apiserver does before touching the
// stored object: malformed patches are 400s.
func (p *patchRequest) parse() error {
	checkStrict := p.opts.validation != metav1.FieldValidationIgnore
	switch p.patchType {
	case types.JSONPatchType:
		if checkStrict {
			var ops []jsonPatchOperation
			strictErrs, err := kjson.UnmarshalStrict(p.body, &ops)
			if err != nil {
				return apierrors.NewBadRequest(fmt.Sprintf("error decoding patch: %v", err))
			}
			for _, e := range strictErrs {
				p.strictErrors = append(p.strictErrors, fmt.Errorf("json patch %w", e))
			}
		}
		decoded, err := jsonpatch.DecodePatch(p.body)
		if err != nil {
			return apierrors.NewBadRequest(err.Error())
		}
		if len(decoded) > maxJSONPatchOperations {
			return apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("The allowed maximum operations in a JSON patch is %d, got %d",
				maxJSONPatchOperations, len(decoded)))
		}
		p.jsonPatch = decoded
	case types.MergePatchType, types.StrategicMergePatchType:
		patchMap := map[string]any{}
		if checkStrict {
			strictErrs, err := kjson.UnmarshalStrict(p.body, &patchMap)
			if err != nil {
				return apierrors.NewBadRequest(fmt.Sprintf("error decoding patch: %v", err))
			}
			p.strictErrors = strictErrs
		} else if err := kjson.UnmarshalCaseSensitivePreserveInts(p.body, &patchMap); err != nil {
			return apierrors.NewBadRequest(fmt.Sprintf("error decoding patch: %v", err))
		}
	case types.ApplyYAMLPatchType:
		if _, err := yaml.YAMLToJSON(p.body); err != nil {
			return apierrors.NewBadRequest(fmt.Sprintf("error decoding patch: %v", err))
		}
	}
	return nil
}

func (q *request) patch(ctx context.Context) {
	p, err := q.readPatch()
	if err != nil {
		q.fail(err)
		return
	}
	var warnings []string
	newState := func(current runtime.Object) (runtime.Object, error) {
		var obj runtime.Object
		var err error
		if p.patchType == types.ApplyYAMLPatchType {
			obj, warnings, err = q.applyConfiguration(current, p)
		} else {
			obj, warnings, err = p.patchObject(q.scope, current, q.Resource.New)
			if err == nil {
				q.Resource.Strategy.Default(obj)
				obj = q.track(current, obj, p.opts)
			}
		}
		if err != nil {
			return nil, err
		}
		return obj, q.checkPatchedIdentity(obj)
	}
	out, err := q.updateObject(ctx, newState, p.opts.dryRun)
	code := http.StatusOK
	if storage.IsNotFound(err) && p.patchType == types.ApplyYAMLPatchType && q.info.Subresource == "" {
		code = http.StatusCreated
		out, err = q.createByApply(ctx, p, &warnings)
	}
	if err != nil {
		q.fail(apiError(err, q.gr(), q.info.Name))
		return
	}
	addWarnings(q.w, warnings)
	q.respond(ctx, code, out)
}

// createByApply serves an apply to a missing object: the configuration
// applied to an empty object is created.
func (q *request) createByApply(ctx context.Context, p *patchRequest, warnings *[]string) (runtime.Object, error) {
	obj, applyWarnings, err := q.applyConfiguration(q.Resource.New(), p)
	if err != nil {
		return nil, err
	}
	*warnings = applyWarnings
	objMeta, err := meta.Accessor(obj)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if uid := objMeta.GetUID(); uid != "" {
		return nil, apierrors.NewConflict(q.gr(), q.info.Name, fmt.Errorf("uid mismatch: the provided object specified uid %s, and no existing object was found", uid))
	}
	if err := q.checkPatchedIdentity(obj); err != nil {
		return nil, err
	}
	return q.createObject(ctx, obj, p.opts, true)
}

// checkPatchedIdentity refuses a patch result that names another object.
func (q *request) checkPatchedIdentity(obj runtime.Object) error {
	objMeta, err := meta.Accessor(obj)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	if err := q.checkNamespace(objMeta); err != nil {
		return err
	}
	if objMeta.GetName() != q.info.Name {
		return apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", objMeta.GetName(), q.info.Name))
	}
	return nil
}

// applyConfiguration merges a server-side apply configuration into current
// with the field manager, which also records ownership and reports
// conflicts with other managers.
func (q *request) applyConfiguration(current runtime.Object, p *patchRequest) (runtime.Object, []string, error) {
	fm := q.fields.forSubresource(q.info.Subresource)
	if fm == nil {
		return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("server-side apply is not supported for %s", q.gr()))
	}
	applied := &unstructured.Unstructured{Object: map[string]any{}}
	if err := yaml.Unmarshal(p.body, &applied.Object); err != nil {
		return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("error decoding patch: %v", err))
	}
	obj, err := fm.Apply(current, applied, p.opts.fieldManager, p.opts.force)
	if err != nil {
		return nil, nil, err
	}
	var warnings []string
	if p.opts.validation != metav1.FieldValidationIgnore {
		if err := yaml.UnmarshalStrict(p.body, &map[string]any{}); err != nil {
			if p.opts.validation == metav1.FieldValidationStrict {
				return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("error strict decoding patch: %v", err))
			}
			warnings = append(warnings, err.Error())
		}
	}
	return obj, warnings, nil
}

// patchObject applies a JSON, merge or strategic merge patch to current and
// decodes the result into a new object from newObj, applying the
// fieldValidation directive to unknown and duplicate fields.
func (p *patchRequest) patchObject(scope *Scope, current runtime.Object, newObj func() runtime.Object) (runtime.Object, []string, error) {
	if p.patchType == types.StrategicMergePatchType {
		return p.strategicPatch(current, newObj)
	}
	codec := jsonOutput(scope.Codecs).info
	currentJSON, err := runtime.Encode(codec.Serializer, current)
	if err != nil {
		return nil, nil, apierrors.NewInternalError(fmt.Errorf("encode current object: %w", err))
	}
	var patched []byte
	if p.jsonPatch != nil {
		patched, err = p.jsonPatch.Apply(currentJSON)
		if err != nil {
			return nil, nil, newStatusError(http.StatusUnprocessableEntity, metav1.StatusReasonInvalid, err.Error())
		}
	} else {
		patched, err = jsonpatch.MergePatch(currentJSON, p.body)
		if err != nil {
			return nil, nil, mergePatchError(err)
		}
	}
	decoder := codec.Serializer
	if p.opts.validation != metav1.FieldValidationIgnore {
		decoder = codec.StrictSerializer
	}
	into := newObj()
	obj, _, err := decoder.Decode(patched, nil, into)
	var decodeStrict []error
	if err != nil {
		strictErr, isStrict := runtime.AsStrictDecodingError(err)
		if !isStrict || obj == nil {
			return nil, nil, invalidPatch(string(patched), err.Error())
		}
		decodeStrict = strictErr.Errors()
	}
	if obj != into {
		return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("the patched object is of type %T, not %T", obj, into))
	}
	warnings, err := p.strictOutcome(string(patched), append(slices.Clone(p.strictErrors), decodeStrict...))
	return obj, warnings, err
}

// strategicPatch applies a strategic merge patch, the Go type of the
// object giving the merge keys and strategies of its lists.
func (p *patchRequest) strategicPatch(current runtime.Object, newObj func() runtime.Object) (runtime.Object, []string, error) {
	original, err := runtime.DefaultUnstructuredConverter.ToUnstructured(current)
	if err != nil {
		return nil, nil, apierrors.NewInternalError(fmt.Errorf("convert current object: %w", err))
	}
	patchMap := map[string]any{}
	if err := kjson.UnmarshalCaseSensitivePreserveInts(p.body, &patchMap); err != nil {
		return nil, nil, apierrors.NewBadRequest(err.Error())
	}
	schemaObj := newObj()
	patched, err := strategicpatch.StrategicMergeMapPatch(original, patchMap, schemaObj)
	if err != nil {
		return nil, nil, strategicPatchError(err)
	}
	obj := newObj()
	checkUnknown := p.opts.validation != metav1.FieldValidationIgnore
	var decodeStrict []error
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(patched, obj, checkUnknown); err != nil {
		strictErr, isStrict := runtime.AsStrictDecodingError(err)
		if !isStrict {
			return nil, nil, invalidPatch(fmt.Sprintf("%+v", patchMap), err.Error())
		}
		decodeStrict = strictErr.Errors()
	}
	warnings, err := p.strictOutcome(fmt.Sprintf("%+v", patchMap), append(slices.Clone(p.strictErrors), decodeStrict...))
	return obj, warnings, err
}

// strictOutcome turns unknown and duplicate fields into warnings (Warn) or
// a 422 naming the patch (Strict), as kube-apiserver does for patches.
func (p *patchRequest) strictOutcome(shown string, strictErrs []error) ([]string, error) {
	if len(strictErrs) == 0 || p.opts.validation == metav1.FieldValidationIgnore {
		return nil, nil
	}
	if p.opts.validation == metav1.FieldValidationStrict {
		return nil, invalidPatch(shown, runtime.NewStrictDecodingError(strictErrs).Error())
	}
	warnings := make([]string, 0, len(strictErrs))
	for _, e := range strictErrs {
		warnings = append(warnings, e.Error())
	}
	return warnings, nil
}

func invalidPatch(shown, detail string) error {
	return apierrors.NewInvalid(schema.GroupKind{}, "", field.ErrorList{field.Invalid(field.NewPath("patch"), shown, detail)})
}

// mergePatchError: a patch that is not a JSON object is a 400.
func mergePatchError(err error) error {
	if errors.Is(err, jsonpatch.ErrBadJSONPatch) || errors.Is(err, jsonpatch.ErrBadJSONDoc) {
		return apierrors.NewBadRequest(err.Error())
	}
	return newStatusError(http.StatusUnprocessableEntity, metav1.StatusReasonInvalid, err.Error())
}

// strategicPatchError maps strategic merge failures: a malformed patch is a
// 400, one that does not fit the object's lists a 422.
func strategicPatchError(err error) error {
	switch {
	case errors.Is(err, mergepatch.ErrBadJSONDoc), errors.Is(err, mergepatch.ErrBadPatchFormatForPrimitiveList),
		errors.Is(err, mergepatch.ErrBadPatchFormatForRetainKeys), errors.Is(err, mergepatch.ErrBadPatchFormatForSetElementOrderList),
		errors.Is(err, mergepatch.ErrUnsupportedStrategicMergePatchFormat):
		return apierrors.NewBadRequest(err.Error())
	case errors.Is(err, mergepatch.ErrNoListOfLists), errors.Is(err, mergepatch.ErrPatchContentNotMatchRetainKeys):
		return newStatusError(http.StatusUnprocessableEntity, metav1.StatusReasonInvalid, err.Error())
	}
	return err
}
