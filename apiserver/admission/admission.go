// Package admission runs the checks and mutations that sit between a
// decoded, defaulted request and validation, in kube-apiserver's order.
package admission

import (
	"context"

	"k8s.io/apimachinery/pkg/runtime"

	"tower.dev/tower/apiserver/registry"
)

// Operation is the kind of write being admitted.
type Operation string

// The operations admission sees, named as in AdmissionReview.
const (
	Create Operation = "CREATE"
	Update Operation = "UPDATE"
	Delete Operation = "DELETE"
)

// Attributes describe one write.
type Attributes struct {
	Operation   Operation
	Resource    *registry.Resource
	Subresource string
	Namespace   string
	Name        string
	// Object is the new state (nil on delete); plugins may mutate it.
	Object runtime.Object
	// OldObject is the stored state (nil on create).
	OldObject runtime.Object
	DryRun    bool
}

// Interface admits or rejects a write. Errors should be API errors
// (apierrors.StatusError) carrying kube-apiserver's reason and code.
type Interface interface {
	Admit(ctx context.Context, a *Attributes) error
}

// Chain runs plugins in order and stops at the first rejection.
type Chain []Interface

// Admit implements Interface.
func (c Chain) Admit(ctx context.Context, a *Attributes) error {
	for _, p := range c {
		if err := p.Admit(ctx, a); err != nil {
			return err
		}
	}
	return nil
}
