package openapi

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// definitionNamer keeps the generated model names ("io.k8s.api.apps.v1.Deployment")
// and marks every definition that is a kind with the group/version/kinds it
// is served as: kubectl finds the schema of an object by that extension.
type definitionNamer struct {
	kinds map[string][]interface{}
}

func newDefinitionNamer(scheme *runtime.Scheme) (*definitionNamer, error) {
	byName := map[string][]schema.GroupVersionKind{}
	for gvk := range scheme.AllKnownTypes() {
		if gvk.Version == runtime.APIVersionInternal {
			continue
		}
		name, err := scheme.ToOpenAPIDefinitionName(gvk)
		if err != nil {
			return nil, fmt.Errorf("name the definition of %s: %w", gvk, err)
		}
		byName[name] = append(byName[name], gvk)
	}
	n := &definitionNamer{kinds: make(map[string][]interface{}, len(byName))}
	for name, gvks := range byName {
		slices.SortFunc(gvks, func(a, b schema.GroupVersionKind) int {
			return strings.Compare(a.Group+"/"+a.Version+"/"+a.Kind, b.Group+"/"+b.Version+"/"+b.Kind)
		})
		list := make([]interface{}, 0, len(gvks))
		for _, gvk := range gvks {
			list = append(list, map[string]interface{}{"group": gvk.Group, "version": gvk.Version, "kind": gvk.Kind})
		}
		n.kinds[name] = list
	}
	return n, nil
}

// definitionName is the builders' GetDefinitionName hook.
func (n *definitionNamer) definitionName(name string) (string, spec.Extensions) {
	if kinds, ok := n.kinds[name]; ok {
		return name, spec.Extensions{extensionGVK: kinds}
	}
	return name, nil
}

// crossRegisteredKinds are the meta kinds every group version registers.
// Their kind lists are long, so each v3 document keeps only its own group
// version and core/v1 in them, as kube-apiserver's documents do.
var crossRegisteredKinds = map[string]bool{"WatchEvent": true, "DeleteOptions": true}

func narrowCrossRegisteredKinds(doc *spec3.OpenAPI, gv schema.GroupVersion) {
	if doc.Components == nil {
		return
	}
	for _, s := range doc.Components.Schemas {
		if s == nil {
			continue
		}
		kinds, ok := s.Extensions[extensionGVK].([]interface{})
		if !ok || len(kinds) < 2 {
			continue
		}
		first, _ := kinds[0].(map[string]interface{})
		if kind, _ := first["kind"].(string); !crossRegisteredKinds[kind] {
			continue
		}
		var kept []interface{}
		for _, k := range kinds {
			m, _ := k.(map[string]interface{})
			group, version := m["group"], m["version"]
			if (group == gv.Group && version == gv.Version) || (group == "" && version == "v1") {
				kept = append(kept, k)
			}
		}
		// The extension map may be shared with the definition other
		// documents are built from: replace it rather than write into it.
		ext := maps.Clone(s.Extensions)
		ext[extensionGVK] = kept
		s.Extensions = ext
	}
}
