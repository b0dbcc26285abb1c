package integration

import (
	"strings"
	"testing"

	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
)

// TestCustomResourceFieldValidation: fields a custom resource's schema does
// not know are refused with fieldValidation=Strict (kubectl's default),
// reported as warnings with Warn, and dropped silently with Ignore.
func TestCustomResourceFieldValidation(t *testing.T) {
	ctx := t.Context()
	// Its own group, so that other tests counting the widget group's keys
	// in etcd never see these objects.
	const group = "fieldvalidation-test.tower.dev"
	crd := widgetCRD()
	crd.Spec.Group = group
	crd.Name = "gadgets." + group
	crd.Spec.Names.Plural, crd.Spec.Names.Singular, crd.Spec.Names.Kind, crd.Spec.Names.ListKind = "gadgets", "gadget", "Gadget", "GadgetList"
	crd.Spec.Names.ShortNames = nil
	crdClient := apiextensionsclient.NewForConfigOrDie(controlPlane.Config)
	if _, err := crdClient.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create CRD: %v", err)
	}
	t.Cleanup(func() {
		_ = crdClient.ApiextensionsV1().CustomResourceDefinitions().Delete(ctx, crd.Name, metav1.DeleteOptions{})
	})
	waitEstablished(t, crdClient, crd.Name)

	recorder := &warningRecorder{}
	config := rest.CopyConfig(controlPlane.Config)
	config.WarningHandlerWithContext = recorder
	ns := controlPlane.CreateNamespace(t)
	gadgets := dynamic.NewForConfigOrDie(config).Resource(schema.GroupVersionResource{Group: group, Version: "v1", Resource: "gadgets"}).Namespace(ns)
	gadget := func(name string) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": group + "/v1", "kind": "Gadget",
			"metadata": map[string]any{"name": name},
			"spec":     map[string]any{"size": "small", "colour": "red"},
		}}
	}
	const unknown = `unknown field "spec.colour"`

	_, err := gadgets.Create(ctx, gadget("strict"), metav1.CreateOptions{FieldValidation: metav1.FieldValidationStrict})
	if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), "strict decoding error: "+unknown) {
		t.Errorf("Strict create: err = %v, want BadRequest with %s", err, unknown)
	}

	created, err := gadgets.Create(ctx, gadget("warn"), metav1.CreateOptions{FieldValidation: metav1.FieldValidationWarn})
	if err != nil {
		t.Fatalf("Warn create: %v", err)
	}
	if warnings := recorder.take(); len(warnings) != 1 || warnings[0] != unknown {
		t.Errorf("Warn create warnings = %q, want [%s]", warnings, unknown)
	}
	if _, found, _ := unstructured.NestedString(created.Object, "spec", "colour"); found {
		t.Error("Warn create kept the unknown field, want it pruned")
	}

	if _, err := gadgets.Create(ctx, gadget("ignore"), metav1.CreateOptions{FieldValidation: metav1.FieldValidationIgnore}); err != nil {
		t.Fatalf("Ignore create: %v", err)
	}
	if warnings := recorder.take(); len(warnings) != 0 {
		t.Errorf("Ignore create added warnings: %q", warnings)
	}
}
