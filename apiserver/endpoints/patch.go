package endpoints

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/json"
)

// patchTypes are the patch media types served today; strategic merge and
// server-side apply arrive with the patch issue.
var patchTypes = []string{string(types.JSONPatchType), string(types.MergePatchType)}

func (q *request) patch(ctx context.Context) {
	contentType := q.r.Header.Get("Content-Type")
	mediaType, _, err := mime.ParseMediaType(contentType)
	if err != nil || (mediaType != string(types.JSONPatchType) && mediaType != string(types.MergePatchType)) {
		q.fail(newStatusError(http.StatusUnsupportedMediaType, metav1.StatusReasonUnsupportedMediaType,
			fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: %s, %s", patchTypes[0], patchTypes[1])))
		return
	}
	validation, dryRun, err := writeParams(q.r)
	if err != nil {
		q.fail(err)
		return
	}
	patch, err := q.readBody()
	if err != nil {
		q.fail(err)
		return
	}
	var jsonPatch jsonpatch.Patch
	if mediaType == string(types.JSONPatchType) {
		if jsonPatch, err = jsonpatch.DecodePatch(patch); err != nil {
			q.fail(apierrors.NewBadRequest(err.Error()))
			return
		}
	} else {
		var probe map[string]any
		if err := json.Unmarshal(patch, &probe); err != nil {
			q.fail(apierrors.NewBadRequest(fmt.Sprintf("error decoding patch: %v", err)))
			return
		}
	}
	var warnings []string
	applyPatch := func(current runtime.Object) (runtime.Object, error) {
		currentJSON, err := runtime.Encode(jsonOutput(q.scope.Codecs).info.Serializer, current)
		if err != nil {
			return nil, apierrors.NewInternalError(fmt.Errorf("encode current object: %w", err))
		}
		var patched []byte
		if jsonPatch != nil {
			patched, err = jsonPatch.Apply(currentJSON)
		} else {
			patched, err = jsonpatch.MergePatch(currentJSON, patch)
		}
		if err != nil {
			return nil, patchError(err)
		}
		obj, decodeWarnings, err := q.decodeWith(jsonOutput(q.scope.Codecs).info, patched, validation)
		if err != nil {
			return nil, err
		}
		warnings = decodeWarnings
		q.Resource.Strategy.Default(obj)
		return obj, nil
	}
	out, err := q.updateObject(ctx, applyPatch, dryRun)
	if err != nil {
		q.fail(apiError(err, q.gr(), q.info.Name))
		return
	}
	addWarnings(q.w, warnings)
	q.respond(ctx, http.StatusOK, out)
}

// patchError reports a patch that cannot be applied to the stored object:
// a malformed patch is a 400, one that does not fit the object a 422.
func patchError(err error) error {
	if errors.Is(err, jsonpatch.ErrBadJSONPatch) || errors.Is(err, jsonpatch.ErrBadJSONDoc) {
		return apierrors.NewBadRequest(err.Error())
	}
	return newStatusError(http.StatusUnprocessableEntity, metav1.StatusReasonInvalid, err.Error())
}
