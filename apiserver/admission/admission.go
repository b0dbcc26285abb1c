// Package admission runs the checks and mutations that sit around
// validation, in kube-apiserver's order: every mutating plugin before the
// object is validated, every validating plugin after.
package admission

import (
	"context"
	"fmt"

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
	// Object is the new state (nil on delete); mutating plugins may change it.
	Object runtime.Object
	// OldObject is the stored state (nil on create).
	OldObject runtime.Object
	DryRun    bool

	warnings    []string
	annotations map[string]string
}

// AddWarning queues a warning for the client (a Warning response header).
func (a *Attributes) AddWarning(msg string) {
	a.warnings = append(a.warnings, msg)
}

// Warnings are the warnings plugins added, in order.
func (a *Attributes) Warnings() []string { return a.warnings }

// AddAnnotation records an audit annotation for the request's audit event.
func (a *Attributes) AddAnnotation(key, value string) {
	if a.annotations == nil {
		a.annotations = map[string]string{}
	}
	a.annotations[key] = value
}

// Annotations are the audit annotations plugins added.
func (a *Attributes) Annotations() map[string]string { return a.annotations }

// isPod reports whether the write is to a pod itself (not a
// subresource), the case most pod plugins look at.
func (a *Attributes) isPod() bool {
	return a.Resource.Group == "" && a.Resource.Resource == "pods" && a.Subresource == ""
}

// Mutator may change (or refuse) a write before the object is validated.
// Errors should be API errors (apierrors.StatusError) carrying
// kube-apiserver's reason and code.
type Mutator interface {
	Admit(ctx context.Context, a *Attributes) error
}

// Validator may refuse a write after the object passed validation; it
// never changes the object.
type Validator interface {
	Validate(ctx context.Context, a *Attributes) error
}

// Interface is the whole chain as the request handlers use it: Admit
// before validating an object, Validate after.
type Interface interface {
	Mutator
	Validator
}

// Plugin is one step of the chain; Impl implements Mutator, Validator or
// both.
type Plugin struct {
	// Name is the plugin's kube-apiserver name, which the
	// --enable-admission-plugins and --disable-admission-plugins flags use.
	Name string
	// DefaultOff plugins run only when enabled by name.
	DefaultOff bool
	// Builtin steps are what kube-apiserver does in its storage layer
	// rather than in a plugin (RBAC escalation checks, Service IP
	// allocation): they always run and have no flag name.
	Builtin bool
	Impl    any
}

// Chain runs plugins in order and stops at the first rejection: Admit
// calls the mutators, Validate the validators.
type Chain []Plugin

// Admit implements Mutator.
func (c Chain) Admit(ctx context.Context, a *Attributes) error {
	for _, p := range c {
		if m, ok := p.Impl.(Mutator); ok {
			if err := m.Admit(ctx, a); err != nil {
				return err
			}
		}
	}
	return nil
}

// Validate implements Validator.
func (c Chain) Validate(ctx context.Context, a *Attributes) error {
	for _, p := range c {
		if v, ok := p.Impl.(Validator); ok {
			if err := v.Validate(ctx, a); err != nil {
				return err
			}
		}
	}
	return nil
}

// Select keeps, in the chain's order, the builtin steps and the plugins
// that are on by default or enabled, minus the disabled ones, as
// kube-apiserver's --enable-admission-plugins and
// --disable-admission-plugins do. Names that Tower has no plugin for are
// returned as unknown (kube-apiserver knows more plugins than Tower).
func (c Chain) Select(enable, disable []string) (selected Chain, unknown []string, err error) {
	on := map[string]bool{}
	for _, p := range c {
		if !p.Builtin {
			on[p.Name] = !p.DefaultOff
		}
	}
	disabled := map[string]bool{}
	for _, name := range disable {
		disabled[name] = true
	}
	for _, name := range enable {
		if disabled[name] {
			return nil, nil, fmt.Errorf("admission plugin %q is both enabled and disabled", name)
		}
	}
	for _, names := range [][]string{enable, disable} {
		for _, name := range names {
			if _, ok := on[name]; !ok {
				unknown = append(unknown, name)
				continue
			}
			on[name] = !disabled[name]
		}
	}
	for _, p := range c {
		if p.Builtin || on[p.Name] {
			selected = append(selected, p)
		}
	}
	return selected, unknown, nil
}
