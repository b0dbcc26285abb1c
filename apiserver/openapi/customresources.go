package openapi

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/controller/openapi/builder"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/kube-openapi/pkg/cached"
	"k8s.io/kube-openapi/pkg/handler"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// customResources is one generation of the custom resources' part of the
// documents. Each UpdateCustomResources makes a new one and swaps it in
// whole, as discovery does, so a reader never sees half of a change.
type customResources struct {
	// generation tags the documents built from this state, so that
	// kube-openapi's caches re-encode (and v3 hashes change) with it.
	generation uint64
	byName     map[string]*crdDocuments
	// groupVersions maps each /openapi/v3 document name ("apis/<group>/<version>")
	// to the CRDs it is merged from, in name order.
	groupVersions map[string][]*crdDocuments
}

// crdDocuments are what one CRD adds to the documents: its paths and
// definitions in /openapi/v2 and, per served version, its part of that
// group version's /openapi/v3 document. They are built by
// apiextensions-apiserver's builder from the CRD's structural schema, with
// the options kube-apiserver's OpenAPI controllers use.
type crdDocuments struct {
	uid        types.UID
	generation int64
	names      apiextensionsv1.CustomResourceDefinitionNames
	v2         *spec.Swagger
	v3         map[string]*spec3.OpenAPI
}

func buildCRDDocuments(crd *apiextensionsv1.CustomResourceDefinition) (*crdDocuments, error) {
	out := &crdDocuments{
		uid: crd.UID, generation: crd.Generation, names: crd.Status.AcceptedNames,
		v2: &spec.Swagger{}, v3: map[string]*spec3.OpenAPI{},
	}
	for _, version := range crd.Spec.Versions {
		if !version.Served {
			continue
		}
		v2, err := builder.BuildOpenAPIV2(crd, version.Name, builder.Options{V2: true, IncludeSelectableFields: true})
		if err != nil {
			return nil, fmt.Errorf("build OpenAPI v2 of version %s: %w", version.Name, err)
		}
		// The built-in v2 definitions have their defaults pruned; the CRD's
		// must match them to merge cleanly.
		v2.Definitions = handler.PruneDefaults(v2.Definitions)
		if out.v2, err = builder.MergeSpecs(out.v2, v2); err != nil {
			return nil, fmt.Errorf("merge OpenAPI v2 of version %s: %w", version.Name, err)
		}
		v3, err := builder.BuildOpenAPIV3(crd, version.Name, builder.Options{IncludeSelectableFields: true})
		if err != nil {
			return nil, fmt.Errorf("build OpenAPI v3 of version %s: %w", version.Name, err)
		}
		out.v3["apis/"+crd.Spec.Group+"/"+version.Name] = v3
	}
	return out, nil
}

// builtFrom reports whether the documents describe crd as it is now.
func (c *crdDocuments) builtFrom(crd *apiextensionsv1.CustomResourceDefinition) bool {
	return c.uid == crd.UID && c.generation == crd.Generation && equality.Semantic.DeepEqual(c.names, crd.Status.AcceptedNames)
}

// UpdateCustomResources makes the documents describe crds (the served
// CRDs, with the names their status accepted) next to the built-in
// resources. Only CRDs whose spec or names changed are rebuilt, and only
// the /openapi/v3 documents of group versions whose CRDs changed get a new
// hash; the merged documents are built on first request. A CRD whose
// documents cannot be built is left out and reported in the error.
func (d *Documents) UpdateCustomResources(crds []*apiextensionsv1.CustomResourceDefinition) error {
	d.updating.Lock()
	defer d.updating.Unlock()
	previous := d.custom.Load()
	next := &customResources{
		generation:    previous.generation + 1,
		byName:        make(map[string]*crdDocuments, len(crds)),
		groupVersions: map[string][]*crdDocuments{},
	}
	sorted := slices.Clone(crds)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	var errs []error
	for _, crd := range sorted {
		docs := previous.byName[crd.Name]
		if docs == nil || !docs.builtFrom(crd) {
			built, err := buildCRDDocuments(crd)
			if err != nil {
				errs = append(errs, fmt.Errorf("OpenAPI of customresourcedefinition %s: %w", crd.Name, err))
				continue
			}
			docs = built
		}
		next.byName[crd.Name] = docs
		for name := range docs.v3 {
			// A built-in group version keeps its own document, as the
			// static spec wins over CRDs in kube-apiserver.
			if !d.builtinGroupVersions[name] {
				next.groupVersions[name] = append(next.groupVersions[name], docs)
			}
		}
	}

	tag := builtOnce + "-" + strconv.FormatUint(next.generation, 10)
	for name, members := range next.groupVersions {
		if slices.Equal(members, previous.groupVersions[name]) {
			continue
		}
		d.v3.UpdateGroupVersionLazy(name, cached.Once(cached.Func(func() (*spec3.OpenAPI, string, error) {
			parts := make([]*spec3.OpenAPI, 0, len(members))
			for _, m := range members {
				parts = append(parts, m.v3[name])
			}
			doc, err := builder.MergeSpecsV3(parts...)
			if err != nil {
				return nil, "", fmt.Errorf("merge OpenAPI v3 document %s: %w", name, err)
			}
			return doc, tag, nil
		})))
	}
	d.v2Service.UpdateSpecLazy(d.v2Document(next))
	d.custom.Store(next)
	for name := range previous.groupVersions {
		if _, ok := next.groupVersions[name]; !ok {
			d.v3.DeleteGroupVersion(name)
		}
	}
	return errors.Join(errs...)
}

// v2Document is /openapi/v2 with custom's CRDs merged into the built-in
// document, built on first request.
func (d *Documents) v2Document(custom *customResources) cached.Value[*spec.Swagger] {
	tag := builtOnce + "-" + strconv.FormatUint(custom.generation, 10)
	return cached.Once(cached.Func(func() (*spec.Swagger, string, error) {
		static, err := d.staticV2()
		if err != nil {
			return nil, "", err
		}
		names := make([]string, 0, len(custom.byName))
		for name := range custom.byName {
			names = append(names, name)
		}
		sort.Strings(names)
		parts := make([]*spec.Swagger, 0, len(names))
		for _, name := range names {
			parts = append(parts, custom.byName[name].v2)
		}
		doc, err := builder.MergeSpecs(static, parts...)
		if err != nil {
			return nil, "", fmt.Errorf("merge custom resources into OpenAPI v2: %w", err)
		}
		return doc, tag, nil
	}))
}
