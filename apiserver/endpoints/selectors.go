package endpoints

import (
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"

	"tower.dev/tower/apiserver/registry"
	"tower.dev/tower/apiserver/storage"
)

// selectionPredicate parses the label and field selectors of a list or
// watch; a field the resource does not support is a 400 as upstream.
func selectionPredicate(opts *metav1.ListOptions, res *registry.Resource) (storage.SelectionPredicate, error) {
	pred := storage.SelectionPredicate{
		Label:    labels.Everything(),
		Field:    fields.Everything(),
		GetAttrs: res.Strategy.GetAttrs,
		Limit:    opts.Limit,
		Continue: opts.Continue,
	}
	if opts.LabelSelector != "" {
		sel, err := labels.Parse(opts.LabelSelector)
		if err != nil {
			return pred, apierrors.NewBadRequest(fmt.Sprintf("unable to parse requirement: %v", err))
		}
		pred.Label = sel
	}
	if opts.FieldSelector != "" {
		sel, err := fields.ParseSelector(opts.FieldSelector)
		if err != nil {
			return pred, apierrors.NewBadRequest(fmt.Sprintf("invalid field selector: %v", err))
		}
		_, supported, err := res.Strategy.GetAttrs(res.New())
		if err != nil {
			return pred, apierrors.NewInternalError(err)
		}
		for _, req := range sel.Requirements() {
			if _, ok := supported[req.Field]; !ok {
				return pred, apierrors.NewBadRequest(fmt.Sprintf("field label not supported: %s", req.Field))
			}
		}
		pred.Field = sel
	}
	return pred, nil
}
