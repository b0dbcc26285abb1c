package generated

import (
	"testing"

	"k8s.io/kube-openapi/pkg/validation/spec"
)

// Every type a generated definition refers to must be generated too, or the
// builders fail on the first document that reaches it.
func TestGeneratedDefinitionsAreClosed(t *testing.T) {
	defs := GetOpenAPIDefinitions(func(name string) spec.Ref { return spec.MustCreateRef("#/definitions/" + name) })
	for name, def := range defs {
		for _, dep := range def.Dependencies {
			if _, ok := defs[dep]; !ok {
				t.Errorf("%s refers to %s, which is not generated: add its package to the go:generate directive", name, dep)
			}
		}
	}
}
