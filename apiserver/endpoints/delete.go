package endpoints

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"tower.dev/tower/apiserver/admission"
	"tower.dev/tower/apiserver/registry"
	"tower.dev/tower/apiserver/storage"
)

func (q *request) delete(ctx context.Context) {
	options, err := q.deleteOptions()
	if err != nil {
		q.fail(err)
		return
	}
	out, deleted, err := q.deleteObject(ctx, q.info.Name, options)
	if err != nil {
		q.fail(apiError(err, q.gr(), q.info.Name))
		return
	}
	code := http.StatusOK
	//nolint:staticcheck // OrphanDependents still decides the status code upstream.
	if !deleted && options.OrphanDependents != nil && !*options.OrphanDependents {
		code = http.StatusAccepted
	}
	if deleted && !q.Resource.ReturnDeletedObject {
		m, _ := meta.Accessor(out)
		q.respond(ctx, code, &metav1.Status{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"},
			Status:   metav1.StatusSuccess,
			Details: &metav1.StatusDetails{
				Name:  q.info.Name,
				Group: q.Resource.Group,
				Kind:  q.Resource.Resource,
				UID:   m.GetUID(),
			},
		})
		return
	}
	q.respond(ctx, code, out)
}

// decodeForeignDeleteOptions decodes a JSON or YAML DeleteOptions labelled
// with the group version of the resource being deleted, which the scheme
// only knows for built-in groups: clients send it so for custom resources
// (controller-runtime does), and kube-apiserver registers the option types
// in every served group version.
func (q *request) decodeForeignDeleteOptions(info runtime.SerializerInfo, body []byte, options *metav1.DeleteOptions) error {
	var content map[string]any
	if err := yaml.Unmarshal(body, &content); err != nil {
		return err
	}
	if content["apiVersion"] != q.Resource.GroupVersion().String() || content["kind"] != "DeleteOptions" {
		return fmt.Errorf("no DeleteOptions in %v %v", content["apiVersion"], content["kind"])
	}
	content["apiVersion"] = metav1.SchemeGroupVersion.String()
	relabelled, err := json.Marshal(content)
	if err != nil {
		return err
	}
	gvk := metav1.SchemeGroupVersion.WithKind("DeleteOptions")
	_, _, err = info.Serializer.Decode(relabelled, &gvk, options)
	return err
}

// deleteOptions reads DeleteOptions from the body, or else from the query.
func (q *request) deleteOptions() (*metav1.DeleteOptions, error) {
	options := &metav1.DeleteOptions{}
	body, err := q.readBody()
	if err != nil {
		return nil, err
	}
	if len(body) > 0 {
		info, err := negotiateInput(q.r, q.scope.Codecs)
		if err != nil {
			return nil, err
		}
		gvk := metav1.SchemeGroupVersion.WithKind("DeleteOptions")
		_, _, err = info.Serializer.Decode(body, &gvk, options)
		if runtime.IsNotRegisteredError(err) {
			err = q.decodeForeignDeleteOptions(info, body, options)
		}
		if err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("decode DeleteOptions: %v", err))
		}
	} else if err := q.scope.Parameters.DecodeParameters(q.r.URL.Query(), optionsVersion, options); err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	for _, v := range options.DryRun {
		if v != metav1.DryRunAll {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("unsupported dryRun value %q", v))
		}
	}
	if options.GracePeriodSeconds != nil && *options.GracePeriodSeconds < 0 {
		options.GracePeriodSeconds = new(int64)
	}
	if p := options.PropagationPolicy; p != nil {
		switch *p {
		case metav1.DeletePropagationOrphan, metav1.DeletePropagationBackground, metav1.DeletePropagationForeground:
		default:
			return nil, apierrors.NewBadRequest(fmt.Sprintf("propagationPolicy %q is not supported: use one of Orphan, Foreground, Background", *p))
		}
		//nolint:staticcheck // the deprecated field still conflicts upstream.
		if options.OrphanDependents != nil {
			return nil, apierrors.NewBadRequest("orphanDependents and propagationPolicy cannot both be set")
		}
	}
	return options, nil
}

// errDeleteNow ends the update phase of a delete: nothing holds the object
// back, so it is removed at the revision that was read.
type errDeleteNow struct{ rv string }

func (errDeleteNow) Error() string { return "delete now" }

// deleteObject deletes one object as kube-apiserver does: preconditions,
// graceful deletion, propagation finalizers and existing finalizers first
// mark the object (deletionTimestamp); otherwise it is removed. It returns
// the last state and whether the object is gone.
func (q *request) deleteObject(ctx context.Context, name string, options *metav1.DeleteOptions) (runtime.Object, bool, error) {
	dryRun := len(options.DryRun) > 0
	key := q.key(name)
	out := q.Resource.New()
	var marked runtime.Object
	mark := func(current runtime.Object) (runtime.Object, error) {
		if err := checkPreconditions(current, options.Preconditions); err != nil {
			return nil, err
		}
		attrs, err := q.admit(ctx, admission.Delete, nil, current, dryRun)
		if err != nil {
			return nil, err
		}
		if err := q.validateAdmission(ctx, attrs); err != nil {
			return nil, err
		}
		obj := current.DeepCopyObject()
		m, err := meta.Accessor(obj)
		if err != nil {
			return nil, err
		}
		pending := markForDeletion(ctx, q.Resource, obj, m, options)
		if !pending {
			return nil, errDeleteNow{rv: m.GetResourceVersion()}
		}
		if dryRun {
			marked = obj
			return nil, errDryRun{obj: obj}
		}
		return obj, nil
	}
	err := q.Store.GuaranteedUpdate(ctx, key, out, false, nil, mark, nil)
	var now errDeleteNow
	var dry errDryRun
	switch {
	case errors.As(err, &dry):
		return marked, false, nil
	case errors.As(err, &now):
		if dryRun {
			current := q.Resource.New()
			if err := q.Store.Get(ctx, key, storage.GetOptions{}, current); err != nil {
				return nil, false, err
			}
			return current, true, nil
		}
		err = q.Store.Delete(ctx, key, out, &storage.Preconditions{ResourceVersion: &now.rv}, nil, nil)
		if storage.CodeOf(err) == storage.ErrCodePreconditionFailed {
			// Someone wrote in between; decide again on the new state.
			return q.deleteObject(ctx, name, options)
		}
		if err != nil {
			return nil, false, err
		}
		return out, true, nil
	case err != nil:
		return nil, false, err
	}
	return out, false, nil
}

func checkPreconditions(current runtime.Object, p *metav1.Preconditions) error {
	if p == nil {
		return nil
	}
	m, err := meta.Accessor(current)
	if err != nil {
		return err
	}
	if p.UID != nil && *p.UID != m.GetUID() {
		return storage.NewError(storage.ErrCodePreconditionFailed, m.GetName(),
			"Precondition failed: UID in precondition: %v, UID in object meta: %v", *p.UID, m.GetUID())
	}
	if p.ResourceVersion != nil && *p.ResourceVersion != m.GetResourceVersion() {
		return storage.NewError(storage.ErrCodePreconditionFailed, m.GetName(),
			"Precondition failed: ResourceVersion in precondition: %v, ResourceVersion in object meta: %v", *p.ResourceVersion, m.GetResourceVersion())
	}
	return nil
}

// markForDeletion applies grace periods and finalizers to obj and reports
// whether the object must stay (deletion pending) rather than go now.
func markForDeletion(ctx context.Context, res *registry.Resource, obj runtime.Object, m metav1.Object, options *metav1.DeleteOptions) bool {
	changedFinalizers := applyPropagation(m, options)
	graceful := false
	if gd, ok := res.Strategy.(registry.GracefulDeleter); ok {
		graceful = gd.CheckGracefulDelete(ctx, obj, options)
	}
	now := metav1.Now()
	if m.GetDeletionTimestamp() == nil && m.GetGeneration() > 0 {
		// Upstream records the start of deletion as a change of intent.
		defer func() {
			if m.GetDeletionTimestamp() != nil {
				m.SetGeneration(m.GetGeneration() + 1)
			}
		}()
	}
	if graceful && options.GracePeriodSeconds != nil && *options.GracePeriodSeconds > 0 {
		grace := *options.GracePeriodSeconds
		if existing := m.GetDeletionGracePeriodSeconds(); m.GetDeletionTimestamp() != nil && existing != nil && *existing <= grace {
			return true
		}
		deadline := metav1.NewTime(now.Add(time.Duration(grace) * time.Second))
		m.SetDeletionTimestamp(&deadline)
		m.SetDeletionGracePeriodSeconds(&grace)
		return true
	}
	if len(m.GetFinalizers()) == 0 && len(namespaceFinalizers(obj)) == 0 {
		return false
	}
	if m.GetDeletionTimestamp() == nil {
		m.SetDeletionTimestamp(&now)
		m.SetDeletionGracePeriodSeconds(new(int64))
	} else if !changedFinalizers {
		zero := int64(0)
		if g := m.GetDeletionGracePeriodSeconds(); g == nil || *g != 0 {
			m.SetDeletionGracePeriodSeconds(&zero)
		}
	}
	startNamespaceTermination(obj)
	return true
}

// applyPropagation adds or removes the orphan and foregroundDeletion
// finalizers that carry the propagation policy to the garbage collector.
func applyPropagation(m metav1.Object, options *metav1.DeleteOptions) bool {
	policy := options.PropagationPolicy
	//nolint:staticcheck // the deprecated field maps onto the policy upstream.
	if policy == nil && options.OrphanDependents != nil {
		p := metav1.DeletePropagationBackground
		if *options.OrphanDependents {
			p = metav1.DeletePropagationOrphan
		}
		policy = &p
	}
	if policy == nil {
		return false
	}
	before := slices.Clone(m.GetFinalizers())
	finalizers := slices.DeleteFunc(slices.Clone(before), func(f string) bool {
		return f == metav1.FinalizerOrphanDependents || f == metav1.FinalizerDeleteDependents
	})
	switch *policy {
	case metav1.DeletePropagationOrphan:
		finalizers = append(finalizers, metav1.FinalizerOrphanDependents)
	case metav1.DeletePropagationForeground:
		finalizers = append(finalizers, metav1.FinalizerDeleteDependents)
	}
	if slices.Equal(before, finalizers) {
		return false
	}
	m.SetFinalizers(finalizers)
	return true
}

// namespaceFinalizers returns spec.finalizers of a Namespace: the namespace
// controller must clear them before the namespace can go.
func namespaceFinalizers(obj runtime.Object) []corev1.FinalizerName {
	if ns, ok := obj.(*corev1.Namespace); ok {
		return ns.Spec.Finalizers
	}
	return nil
}

// startNamespaceTermination moves a namespace being deleted to Terminating.
func startNamespaceTermination(obj runtime.Object) {
	if ns, ok := obj.(*corev1.Namespace); ok {
		ns.Status.Phase = corev1.NamespaceTerminating
	}
}

// finalizeOnly applies a namespaces/finalize update: only spec.finalizers
// change.
func finalizeOnly(obj, current runtime.Object) {
	ns, ok := obj.(*corev1.Namespace)
	cur, ok2 := current.(*corev1.Namespace)
	if !ok || !ok2 {
		return
	}
	finalizers := ns.Spec.Finalizers
	*ns = *cur.DeepCopy()
	ns.Spec.Finalizers = finalizers
}

func (q *request) deleteCollection(ctx context.Context) {
	options, err := q.deleteOptions()
	if err != nil {
		q.fail(err)
		return
	}
	listOpts, pred, err := q.listOptions()
	if err != nil {
		q.fail(err)
		return
	}
	list := q.Resource.NewList()
	if err := q.Store.GetList(ctx, q.listKey(), storage.ListOptions{
		ResourceVersion: listOpts.ResourceVersion, Predicate: pred, Recursive: true,
	}, list); err != nil {
		q.fail(apiError(err, q.gr(), ""))
		return
	}
	var deleted []runtime.Object
	err = meta.EachListItem(list, func(item runtime.Object) error {
		m, err := meta.Accessor(item)
		if err != nil {
			return err
		}
		out, _, err := q.deleteObject(ctx, m.GetName(), options)
		if storage.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return apiError(err, q.gr(), m.GetName())
		}
		deleted = append(deleted, out)
		return nil
	})
	if err != nil {
		q.fail(err)
		return
	}
	result := q.Resource.NewList()
	if err := meta.SetList(result, deleted); err != nil {
		q.fail(apierrors.NewInternalError(err))
		return
	}
	q.respond(ctx, http.StatusOK, result)
}
