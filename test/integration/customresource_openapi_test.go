package integration

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"tower.dev/tower/test/framework"
)

// openAPIV3Paths lists the group versions /openapi/v3 advertises.
func openAPIV3Paths(ctx context.Context) (map[string]bool, error) {
	paths, err := controlPlane.Clientset().Discovery().OpenAPIV3().Paths()
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for name := range paths {
		out[name] = true
	}
	return out, nil
}

// TestCustomResourceOpenAPI: a CRD's versions appear in /openapi/v2 and
// /openapi/v3 as soon as it is established, built from its schema; kubectl
// explain and --validate=strict use them; schema changes and deletion show
// without a restart.
func TestCustomResourceOpenAPI(t *testing.T) {
	ctx := t.Context()
	crdClient := apiextensionsclient.NewForConfigOrDie(controlPlane.Config)
	ns := controlPlane.CreateNamespace(t)
	const group = "openapi.tower.dev"
	crd := widgetCRD()
	crd.Name, crd.Spec.Group = "widgets."+group, group
	crd.Spec.Names.ShortNames, crd.Spec.Names.Categories = nil, nil
	// The built-in documents are built on first request; build them
	// before timing the CRD.
	if _, err := openAPIV3Paths(ctx); err != nil {
		t.Fatalf("/openapi/v3: %v", err)
	}
	start := time.Now()
	if _, err := crdClient.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create CRD: %v", err)
	}
	t.Cleanup(func() {
		_ = crdClient.ApiextensionsV1().CustomResourceDefinitions().Delete(context.Background(), crd.Name, metav1.DeleteOptions{})
	})
	eventually(t, 5*time.Second, "both versions in /openapi/v3", func(ctx context.Context) (bool, error) {
		paths, err := openAPIV3Paths(ctx)
		return err == nil && paths["apis/"+group+"/v1"] && paths["apis/"+group+"/v1beta1"], err
	})
	t.Logf("CRD in /openapi/v3 %v after create", time.Since(start))

	v2, err := controlPlane.Clientset().Discovery().OpenAPISchema()
	if err != nil {
		t.Fatalf("/openapi/v2: %v", err)
	}
	var widget, deployment bool
	for _, def := range v2.GetDefinitions().GetAdditionalProperties() {
		switch def.GetName() {
		case "dev.tower.openapi.v1.Widget":
			widget = strings.Contains(def.GetValue().String(), "replicas")
		case "io.k8s.api.apps.v1.Deployment":
			deployment = true
		}
	}
	if !widget || !deployment {
		t.Errorf("/openapi/v2 has Widget with its schema: %v, Deployment: %v", widget, deployment)
	}

	explain, err := framework.RunKubectl(controlPlane.KubeconfigPath, nil, "explain", "widgets.spec", "--api-version="+group+"/v1")
	if err != nil {
		t.Fatalf("%v\n%s", err, explain)
	}
	for _, want := range []string{"GROUP:      " + group, "KIND:       Widget", "VERSION:    v1", "replicas\t<integer>", "size\t<string>", "enum: small, large"} {
		if !strings.Contains(explain, want) {
			t.Errorf("kubectl explain lacks %q:\n%s", want, explain)
		}
	}

	manifest := filepath.Join(t.TempDir(), "widget.yaml")
	if err := os.WriteFile(manifest, []byte("apiVersion: "+group+"/v1\nkind: Widget\nmetadata:\n  name: strict\nspec:\n  size: small\n  bogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := framework.RunKubectl(controlPlane.KubeconfigPath, nil, "create", "-n", ns, "--validate=strict", "-f", manifest)
	if err == nil || !strings.Contains(out, `unknown field "spec.bogus"`) {
		t.Errorf("kubectl create --validate=strict with an unknown field = %v:\n%s", err, out)
	}

	eventually(t, 5*time.Second, "schema change in the v1 document", func(ctx context.Context) (bool, error) {
		current, err := crdClient.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		spec := current.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
		if _, ok := spec.Properties["owner"]; !ok {
			spec.Properties["owner"] = apiextensionsv1.JSONSchemaProps{Type: "string", Description: "who runs the widget"}
			current.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"] = spec
			if _, err := crdClient.ApiextensionsV1().CustomResourceDefinitions().Update(ctx, current, metav1.UpdateOptions{}); err != nil {
				return false, nil
			}
		}
		doc, err := controlPlane.Clientset().RESTClient().Get().AbsPath("/openapi/v3/apis", group, "v1").DoRaw(ctx)
		if err != nil {
			return false, err
		}
		return strings.Contains(string(doc), "who runs the widget"), nil
	})
	explain, err = framework.RunKubectl(controlPlane.KubeconfigPath, nil, "explain", "widgets.spec.owner", "--api-version="+group+"/v1")
	if err != nil || !strings.Contains(explain, "who runs the widget") {
		t.Errorf("kubectl explain after the schema change = %v:\n%s", err, explain)
	}

	if err := crdClient.ApiextensionsV1().CustomResourceDefinitions().Delete(ctx, crd.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete CRD: %v", err)
	}
	eventually(t, 10*time.Second, "CRD gone from /openapi/v2 and /openapi/v3", func(ctx context.Context) (bool, error) {
		paths, err := openAPIV3Paths(ctx)
		if err != nil || paths["apis/"+group+"/v1"] {
			return false, err
		}
		raw, err := controlPlane.Clientset().RESTClient().Get().AbsPath("/openapi/v2").DoRaw(ctx)
		if err != nil {
			return false, err
		}
		var doc struct {
			Definitions map[string]json.RawMessage `json:"definitions"`
		}
		if err := json.Unmarshal(raw, &doc); err != nil {
			return false, err
		}
		_, found := doc.Definitions["dev.tower.openapi.v1.Widget"]
		return !found, nil
	})
	if _, err := controlPlane.Clientset().RESTClient().Get().AbsPath("/openapi/v3/apis", group, "v1").DoRaw(ctx); err == nil {
		t.Error("/openapi/v3 still serves the deleted CRD's group version")
	}
}
