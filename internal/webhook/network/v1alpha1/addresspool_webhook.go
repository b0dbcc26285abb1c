// Package v1alpha1 holds the admission webhooks of network.tower.dev/v1alpha1.
package v1alpha1

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	networkv1alpha1 "tower.dev/tower/apis/network/v1alpha1"
)

// SetupAddressPoolWebhookWithManager registers the AddressPool validator
// with the manager's webhook server. It reads other pools through the
// manager's API reader, not its cache, so a pool created a moment ago is
// seen.
func SetupAddressPoolWebhookWithManager(mgr ctrl.Manager) error {
	return ctrl.NewWebhookManagedBy(mgr, &networkv1alpha1.AddressPool{}).
		WithValidator(&AddressPoolValidator{Reader: mgr.GetAPIReader()}).
		Complete()
}

// +kubebuilder:webhook:path=/validate-network-tower-dev-v1alpha1-addresspool,mutating=false,failurePolicy=fail,sideEffects=None,groups=network.tower.dev,resources=addresspools,verbs=create;update,versions=v1alpha1,name=vaddresspool-v1alpha1.network.tower.dev,admissionReviewVersions=v1

// AddressPoolValidator refuses pools whose blocks are malformed, overlap
// each other or overlap another pool's: an address must belong to one
// pool only.
type AddressPoolValidator struct {
	Reader client.Reader
}

var _ admission.Validator[*networkv1alpha1.AddressPool] = (*AddressPoolValidator)(nil)

// ValidateCreate checks a new pool.
func (v *AddressPoolValidator) ValidateCreate(ctx context.Context, pool *networkv1alpha1.AddressPool) (admission.Warnings, error) {
	return nil, v.validate(ctx, pool)
}

// ValidateUpdate checks a changed pool.
func (v *AddressPoolValidator) ValidateUpdate(ctx context.Context, _, pool *networkv1alpha1.AddressPool) (admission.Warnings, error) {
	return nil, v.validate(ctx, pool)
}

// ValidateDelete allows every deletion.
func (v *AddressPoolValidator) ValidateDelete(context.Context, *networkv1alpha1.AddressPool) (admission.Warnings, error) {
	return nil, nil
}

func (v *AddressPoolValidator) validate(ctx context.Context, pool *networkv1alpha1.AddressPool) error {
	var others networkv1alpha1.AddressPoolList
	if err := v.Reader.List(ctx, &others); err != nil {
		return apierrors.NewInternalError(fmt.Errorf("list address pools: %w", err))
	}
	type block struct {
		pool   string
		text   networkv1alpha1.AddressRange
		bounds networkv1alpha1.AddressBounds
	}
	var taken []block
	for _, other := range others.Items {
		if other.Name == pool.Name {
			continue
		}
		for _, r := range other.Spec.Addresses {
			if bounds, err := r.Bounds(); err == nil {
				taken = append(taken, block{pool: other.Name, text: r, bounds: bounds})
			}
		}
	}
	var errs field.ErrorList
	path := field.NewPath("spec", "addresses")
	var own []block
	for i, r := range pool.Spec.Addresses {
		bounds, err := r.Bounds()
		if err != nil {
			errs = append(errs, field.Invalid(path.Index(i), r, err.Error()))
			continue
		}
		for _, b := range own {
			if b.bounds.Overlaps(bounds) {
				errs = append(errs, field.Invalid(path.Index(i), r, fmt.Sprintf("overlaps %s of this pool", b.text)))
			}
		}
		for _, b := range taken {
			if b.bounds.Overlaps(bounds) {
				errs = append(errs, field.Invalid(path.Index(i), r, fmt.Sprintf("overlaps %s of AddressPool %s", b.text, b.pool)))
			}
		}
		own = append(own, block{text: r, bounds: bounds})
	}
	if len(errs) == 0 {
		return nil
	}
	return apierrors.NewInvalid(networkv1alpha1.GroupVersion.WithKind("AddressPool").GroupKind(), pool.Name, errs)
}
