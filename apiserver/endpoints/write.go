package endpoints

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"tower.dev/tower/apiserver/admission"
	"tower.dev/tower/apiserver/audit"
	"tower.dev/tower/apiserver/storage"
)

// generateNameRetries bounds retries when a generated name is taken, as
// kube-apiserver's RetryGenerateName does.
const generateNameRetries = 7

func (q *request) create(ctx context.Context) {
	if q.info.Name != "" && q.info.Subresource == "" {
		q.fail(apierrors.NewMethodNotSupported(q.gr(), "create"))
		return
	}
	switch q.info.Subresource {
	case "binding":
		q.bind(ctx)
		return
	case "eviction":
		q.evict(ctx)
		return
	}
	if q.info.Subresource != "" {
		q.fail(apierrors.NewMethodNotSupported(q.gr(), "create "+q.info.Subresource))
		return
	}
	opts, err := q.createOptions()
	if err != nil {
		q.fail(err)
		return
	}
	obj, objMeta, err := q.decodeWrite(opts.validation)
	if err != nil {
		q.fail(err)
		return
	}
	generated := objMeta.GetName() == "" && objMeta.GetGenerateName() != ""
	for attempt := 0; ; attempt++ {
		if generated {
			objMeta.SetName(generateName(objMeta.GetGenerateName()))
		}
		out, err := q.createObject(ctx, obj, opts, false)
		if err != nil && generated && storage.IsExists(err) && attempt < generateNameRetries {
			continue
		}
		if err != nil {
			q.fail(apiError(err, q.gr(), objMeta.GetName()))
			return
		}
		q.respond(ctx, http.StatusCreated, out)
		return
	}
}

// createObject runs a create through defaulting, field management, the
// strategy, admission and validation, then stores it. tracked says the
// object's managedFields are already computed (server-side apply).
func (q *request) createObject(ctx context.Context, obj runtime.Object, opts writeOptions, tracked bool) (runtime.Object, error) {
	dryRun := opts.dryRun
	obj = obj.DeepCopyObject()
	q.Resource.Strategy.Default(obj)
	if !tracked {
		obj = q.track(q.Resource.New(), obj, opts)
	}
	objMeta, err := meta.Accessor(obj)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	objMeta.SetUID(uuid.NewUUID())
	objMeta.SetCreationTimestamp(metav1.Now())
	objMeta.SetResourceVersion("")
	objMeta.SetDeletionTimestamp(nil)
	objMeta.SetDeletionGracePeriodSeconds(nil)
	objMeta.SetGeneration(0)
	objMeta.SetSelfLink("")
	q.Resource.Strategy.PrepareForCreate(ctx, obj)
	attrs, err := q.admit(ctx, admission.Create, obj, nil, dryRun)
	if err != nil {
		return nil, err
	}
	if errs := q.Resource.Strategy.Validate(ctx, obj); len(errs) > 0 {
		return nil, apierrors.NewInvalid(q.Resource.GroupVersionKind().GroupKind(), objMeta.GetName(), errs)
	}
	if err := q.validateAdmission(ctx, attrs); err != nil {
		return nil, err
	}
	if dryRun {
		return obj, nil
	}
	out := q.Resource.New()
	if err := q.Store.Create(ctx, q.key(objMeta.GetName()), obj, out); err != nil {
		return nil, err
	}
	return out, nil
}

// admit runs the mutating half of admission; validateAdmission runs the
// validating half once the object passed validation. Both return the
// attributes so that the second half sees what the first changed.
func (q *request) admit(ctx context.Context, op admission.Operation, obj, old runtime.Object, dryRun bool) (*admission.Attributes, error) {
	name := q.info.Name
	if obj != nil {
		if m, err := meta.Accessor(obj); err == nil {
			name = m.GetName()
		}
	}
	attrs := &admission.Attributes{
		Operation:   op,
		Resource:    q.Resource,
		Subresource: q.info.Subresource,
		Namespace:   q.objectNamespace(),
		Name:        name,
		Object:      obj,
		OldObject:   old,
		DryRun:      dryRun,
	}
	if q.scope.Admission == nil || q.skipAdmission {
		return attrs, nil
	}
	err := q.scope.Admission.Admit(ctx, attrs)
	q.reportAdmission(ctx, attrs)
	return attrs, err
}

func (q *request) validateAdmission(ctx context.Context, attrs *admission.Attributes) error {
	if q.scope.Admission == nil || q.skipAdmission {
		return nil
	}
	err := q.scope.Admission.Validate(ctx, attrs)
	q.reportAdmission(ctx, attrs)
	return err
}

// reportAdmission passes the plugins' warnings to the client (once each,
// though an update's admission may run again on a conflict) and their
// annotations to the audit event.
func (q *request) reportAdmission(ctx context.Context, attrs *admission.Attributes) {
	sent := map[string]bool{}
	for _, h := range q.w.Header().Values("Warning") {
		sent[h] = true
	}
	for _, warning := range attrs.Warnings() {
		header, err := utilnet.NewWarningHeader(299, "-", warning)
		if err != nil || sent[header] {
			continue
		}
		sent[header] = true
		q.w.Header().Add("Warning", header)
	}
	audit.AddAnnotations(ctx, attrs.Annotations())
}

// decodeWrite decodes the body of a create or update, passes decoding
// warnings on, and reconciles the object's namespace with the URL's.
func (q *request) decodeWrite(validation string) (runtime.Object, metav1.Object, error) {
	obj, warnings, err := q.decodeBody(validation)
	if err != nil {
		return nil, nil, err
	}
	addWarnings(q.w, warnings)
	objMeta, err := meta.Accessor(obj)
	if err != nil {
		return nil, nil, apierrors.NewInternalError(err)
	}
	if err := q.checkNamespace(objMeta); err != nil {
		return nil, nil, err
	}
	return obj, objMeta, nil
}

// checkNamespace reconciles the object's namespace with the URL's.
func (q *request) checkNamespace(objMeta metav1.Object) error {
	if !q.Resource.Namespaced {
		objMeta.SetNamespace("")
		return nil
	}
	switch objMeta.GetNamespace() {
	case "":
		objMeta.SetNamespace(q.info.Namespace)
	case q.info.Namespace:
	default:
		return apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
	}
	return nil
}

// writeOptions are the query parameters every write shares.
type writeOptions struct {
	dryRun bool
	// validation is the effective fieldValidation directive.
	validation string
	// manager is who the write is recorded for in managedFields.
	manager string
	// fieldManager is the parameter as sent (required for apply).
	fieldManager string
	force        bool
}

var metaGroupVersion = metav1.SchemeGroupVersion

func (q *request) newWriteOptions(dryRun []string, validation, fieldManager string) writeOptions {
	if validation == "" {
		validation = metav1.FieldValidationWarn
	}
	return writeOptions{
		dryRun:       len(dryRun) > 0,
		validation:   validation,
		manager:      managerName(fieldManager, q.r.UserAgent()),
		fieldManager: fieldManager,
	}
}

// createOptions decodes and validates CreateOptions from the query.
func (q *request) createOptions() (writeOptions, error) {
	opts := &metav1.CreateOptions{}
	if err := q.scope.Parameters.DecodeParameters(q.r.URL.Query(), optionsVersion, opts); err != nil {
		return writeOptions{}, apierrors.NewBadRequest(err.Error())
	}
	if errs := metav1validation.ValidateCreateOptions(opts); len(errs) > 0 {
		return writeOptions{}, apierrors.NewInvalid(metaGroupVersion.WithKind("CreateOptions").GroupKind(), "", errs)
	}
	return q.newWriteOptions(opts.DryRun, opts.FieldValidation, opts.FieldManager), nil
}

// updateOptions decodes and validates UpdateOptions from the query.
func (q *request) updateOptions() (writeOptions, error) {
	opts := &metav1.UpdateOptions{}
	if err := q.scope.Parameters.DecodeParameters(q.r.URL.Query(), optionsVersion, opts); err != nil {
		return writeOptions{}, apierrors.NewBadRequest(err.Error())
	}
	if errs := metav1validation.ValidateUpdateOptions(opts); len(errs) > 0 {
		return writeOptions{}, apierrors.NewInvalid(metaGroupVersion.WithKind("UpdateOptions").GroupKind(), "", errs)
	}
	return q.newWriteOptions(opts.DryRun, opts.FieldValidation, opts.FieldManager), nil
}

// patchOptions decodes and validates PatchOptions from the query.
func (q *request) patchOptions(patchType types.PatchType) (writeOptions, error) {
	opts := &metav1.PatchOptions{}
	if err := q.scope.Parameters.DecodeParameters(q.r.URL.Query(), optionsVersion, opts); err != nil {
		return writeOptions{}, apierrors.NewBadRequest(err.Error())
	}
	if errs := metav1validation.ValidatePatchOptions(opts, patchType); len(errs) > 0 {
		return writeOptions{}, apierrors.NewInvalid(metaGroupVersion.WithKind("PatchOptions").GroupKind(), "", errs)
	}
	out := q.newWriteOptions(opts.DryRun, opts.FieldValidation, opts.FieldManager)
	out.force = opts.Force != nil && *opts.Force
	return out, nil
}

// track records in obj's managedFields what the write changes relative to
// live, for the manager the write is made by.
func (q *request) track(live, obj runtime.Object, opts writeOptions) runtime.Object {
	fm := q.fields.forSubresource(q.info.Subresource)
	if fm == nil {
		return obj
	}
	return fm.UpdateNoErrors(live, obj, opts.manager)
}

const generatedSuffixChars = "bcdfghjklmnpqrstvwxz2456789"

// generateName appends five random characters to base, trimming base so the
// result stays a valid 63-character name.
func generateName(base string) string {
	const maxBase = 63 - 5
	if len(base) > maxBase {
		base = base[:maxBase]
	}
	suffix := make([]byte, 5)
	for i := range suffix {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(generatedSuffixChars))))
		if err != nil {
			panic(fmt.Sprintf("crypto/rand failed: %v", err))
		}
		suffix[i] = generatedSuffixChars[n.Int64()]
	}
	return base + string(suffix)
}

func (q *request) update(ctx context.Context) {
	opts, err := q.updateOptions()
	if err != nil {
		q.fail(err)
		return
	}
	obj, objMeta, err := q.decodeWrite(opts.validation)
	if err != nil {
		q.fail(err)
		return
	}
	if objMeta.GetName() != q.info.Name {
		q.fail(apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", objMeta.GetName(), q.info.Name)))
		return
	}
	q.Resource.Strategy.Default(obj)
	newState := func(current runtime.Object) (runtime.Object, error) {
		return q.track(current, obj.DeepCopyObject(), opts), nil
	}
	out, err := q.updateObject(ctx, newState, opts.dryRun)
	if storage.IsNotFound(err) && q.Resource.AllowCreateOnUpdate && q.info.Subresource == "" {
		out, err = q.createObject(ctx, obj, opts, false)
		if err == nil {
			q.respond(ctx, http.StatusCreated, out)
			return
		}
	}
	if err != nil {
		q.fail(apiError(err, q.gr(), q.info.Name))
		return
	}
	q.respond(ctx, http.StatusOK, out)
}

// newStateFunc computes the requested new state from the stored one.
type newStateFunc func(current runtime.Object) (runtime.Object, error)

// updateObject applies an update (PUT or PATCH) to the main resource or a
// subresource: server-owned metadata is kept, the strategy and admission
// run, the result is validated and written with compare-and-swap.
func (q *request) updateObject(ctx context.Context, newState newStateFunc, dryRun bool) (runtime.Object, error) {
	out := q.Resource.New()
	tryUpdate := func(current runtime.Object) (runtime.Object, error) {
		curMeta, err := meta.Accessor(current)
		if err != nil {
			return nil, err
		}
		obj, err := newState(current)
		if err != nil {
			return nil, err
		}
		objMeta, err := meta.Accessor(obj)
		if err != nil {
			return nil, err
		}
		if rv := objMeta.GetResourceVersion(); rv != "" && rv != curMeta.GetResourceVersion() {
			return nil, storage.NewError(storage.ErrCodeConflict, q.key(q.info.Name), "resourceVersion %s, stored %s", rv, curMeta.GetResourceVersion())
		}
		if uid := objMeta.GetUID(); uid != "" && uid != curMeta.GetUID() {
			return nil, storage.NewError(storage.ErrCodePreconditionFailed, q.key(q.info.Name),
				"Precondition failed: UID in precondition: %v, UID in object meta: %v", uid, curMeta.GetUID())
		}
		keepServerMetadata(objMeta, curMeta)
		switch q.info.Subresource {
		case "status":
			q.Resource.Status.PrepareForUpdate(ctx, obj, current)
		case "finalize":
			finalizeOnly(obj, current)
		default:
			q.Resource.Strategy.PrepareForUpdate(ctx, obj, current)
		}
		attrs, err := q.admit(ctx, admission.Update, obj, current, dryRun)
		if err != nil {
			return nil, err
		}
		var errs field.ErrorList
		if q.info.Subresource == "status" {
			errs = q.Resource.Status.ValidateUpdate(ctx, obj, current)
		} else {
			errs = q.Resource.Strategy.ValidateUpdate(ctx, obj, current)
		}
		if len(errs) > 0 {
			return nil, apierrors.NewInvalid(q.Resource.GroupVersionKind().GroupKind(), q.info.Name, errs)
		}
		if err := q.validateAdmission(ctx, attrs); err != nil {
			return nil, err
		}
		if dryRun {
			return nil, errDryRun{obj: obj}
		}
		return obj, nil
	}
	err := q.Store.GuaranteedUpdate(ctx, q.key(q.info.Name), out, false, nil, tryUpdate, nil)
	var dry errDryRun
	if errors.As(err, &dry) {
		return dry.obj, nil
	}
	if err != nil {
		return nil, err
	}
	if deleted, err := q.deleteIfFinalized(ctx, out); err != nil || deleted != nil {
		return deleted, err
	}
	return out, nil
}

// errDryRun stops a dry-run update after validation with the would-be result.
type errDryRun struct{ obj runtime.Object }

func (errDryRun) Error() string { return "dry run" }

// keepServerMetadata copies the metadata a client may not change on update.
func keepServerMetadata(obj, current metav1.Object) {
	obj.SetUID(current.GetUID())
	obj.SetCreationTimestamp(current.GetCreationTimestamp())
	obj.SetDeletionTimestamp(current.GetDeletionTimestamp())
	obj.SetDeletionGracePeriodSeconds(current.GetDeletionGracePeriodSeconds())
	obj.SetGeneration(current.GetGeneration())
	obj.SetResourceVersion(current.GetResourceVersion())
	obj.SetSelfLink("")
	if current.GetDeletionTimestamp() != nil {
		// Once deleting, finalizers may only be removed, never added.
		obj.SetFinalizers(onlyExisting(obj.GetFinalizers(), current.GetFinalizers()))
	}
}

func onlyExisting(requested, existing []string) []string {
	have := map[string]bool{}
	for _, f := range existing {
		have[f] = true
	}
	var out []string
	for _, f := range requested {
		if have[f] {
			out = append(out, f)
		}
	}
	return out
}

// deleteIfFinalized removes an object whose deletion was pending and whose
// last finalizer an update just dropped, as kube-apiserver does.
func (q *request) deleteIfFinalized(ctx context.Context, obj runtime.Object) (runtime.Object, error) {
	m, err := meta.Accessor(obj)
	if err != nil || m.GetDeletionTimestamp() == nil || len(m.GetFinalizers()) > 0 {
		return nil, err
	}
	if g := m.GetDeletionGracePeriodSeconds(); g != nil && *g > 0 {
		return nil, nil
	}
	if len(namespaceFinalizers(obj)) > 0 {
		return nil, nil
	}
	rv := m.GetResourceVersion()
	out := q.Resource.New()
	err = q.Store.Delete(ctx, q.key(m.GetName()), out, &storage.Preconditions{ResourceVersion: &rv}, nil, nil)
	if storage.IsNotFound(err) || storage.CodeOf(err) == storage.ErrCodePreconditionFailed {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}
