package openapi

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/kube-openapi/pkg/common"
)

// documentedOptions is an options type of k8s.io/apimachinery whose field
// documentation is generated into SwaggerDoc.
type documentedOptions interface {
	SwaggerDoc() map[string]string
}

// parameterSets are the query parameters of each kind of operation, derived
// (as kube-apiserver derives them) from the fields of the options types the
// handlers decode, so names, types and descriptions follow k8s.io/apimachinery.
type parameterSets struct {
	list             []common.Parameter
	create           []common.Parameter
	update           []common.Parameter
	patch            []common.Parameter
	delete           []common.Parameter
	deleteCollection []common.Parameter
}

func newParameterSets() (*parameterSets, error) {
	list, err := queryParameters(&metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	create, err := queryParameters(&metav1.CreateOptions{})
	if err != nil {
		return nil, err
	}
	update, err := queryParameters(&metav1.UpdateOptions{})
	if err != nil {
		return nil, err
	}
	patch, err := queryParameters(&metav1.PatchOptions{})
	if err != nil {
		return nil, err
	}
	del, err := queryParameters(&metav1.DeleteOptions{})
	if err != nil {
		return nil, err
	}
	// A collection delete takes the list options that select what to delete;
	// watching makes no sense there.
	selection := slices.DeleteFunc(slices.Clone(list), func(p common.Parameter) bool {
		return p.Name() == "watch" || p.Name() == "allowWatchBookmarks"
	})
	return &parameterSets{
		list:             list,
		create:           create,
		update:           update,
		patch:            patch,
		delete:           del,
		deleteCollection: append(slices.Clone(del), selection...),
	}, nil
}

// queryParameters lists the scalar fields of an options struct as query
// parameters. Struct-valued fields (DeleteOptions.Preconditions) only travel
// in a request body.
func queryParameters(options documentedOptions) ([]common.Parameter, error) {
	docs := options.SwaggerDoc()
	t := reflect.TypeOf(options).Elem()
	var params []common.Parameter
	for i := range t.NumField() {
		field := t.Field(i)
		if field.Anonymous {
			continue
		}
		name, _, _ := strings.Cut(field.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		dataType, ok := parameterDataType(field.Type)
		if !ok {
			continue
		}
		description, ok := docs[name]
		if !ok {
			return nil, fmt.Errorf("%s.%s has no documentation", t.Name(), field.Name)
		}
		params = append(params, parameter{
			name:        name,
			description: description,
			kind:        common.QueryParameterKind,
			dataType:    dataType,
		})
	}
	return params, nil
}

// parameterDataType maps a field type to the parameter type kube-apiserver
// documents; repeated strings (dryRun) are documented as one string.
func parameterDataType(t reflect.Type) (string, bool) {
	if t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Bool:
		return "boolean", true
	case reflect.Int, reflect.Int32, reflect.Int64:
		return "integer", true
	case reflect.String:
		return "string", true
	default:
		return "", false
	}
}

func pathParameter(name, description string) common.Parameter {
	return parameter{name: name, description: description, kind: common.PathParameterKind, required: true, dataType: "string"}
}

func bodyParameter(required bool) common.Parameter {
	return parameter{name: "body", kind: common.BodyParameterKind, required: required}
}

// prettyParameter is accepted by every operation (kube-apiserver indents the
// JSON it writes when set).
var prettyParameter common.Parameter = parameter{
	name:        "pretty",
	description: "If 'true', the response is indented for reading. Browsers and command-line HTTP tools (curl, wget) get indented output by default.",
	kind:        common.QueryParameterKind,
	dataType:    "string",
}

var namespaceParameter = pathParameter("namespace", "namespace of the object: the scope of its name and of access control")
