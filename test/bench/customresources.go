package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"tower.dev/tower/test/framework"
)

// widgets are the custom resource the load writes, lists and watches.
var widgetResource = schema.GroupVersionResource{Group: "bench.tower.dev", Version: "v1", Resource: "widgets"}

// widgetCRD is a namespaced CRD with a structural schema, so every write
// goes through validation and pruning as an operator's would.
func widgetCRD() *apiextensionsv1.CustomResourceDefinition {
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: widgetResource.Resource + "." + widgetResource.Group},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: widgetResource.Group,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "widgets", Singular: "widget", Kind: "Widget", ListKind: "WidgetList"},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: widgetResource.Version, Served: true, Storage: true,
				Subresources: &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}},
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object",
					Properties: map[string]apiextensionsv1.JSONSchemaProps{
						"spec": {Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
							"size":   {Type: "integer", Minimum: ptr.To[float64](0)},
							"config": {Type: "string", MaxLength: ptr.To[int64](4096)},
						}},
						"status": {Type: "object", XPreserveUnknownFields: ptr.To(true)},
					},
				}},
			}},
		},
	}
}

// widget is object i of the load, with about 1 KiB of spec like the
// ConfigMaps.
func widget(name string, size int) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": widgetResource.GroupVersion().String(),
		"kind":       "Widget",
		"metadata":   map[string]any{"name": name},
		"spec":       map[string]any{"size": int64(size), "config": configMapPayload["config.yaml"]},
	}}
}

// installWidgets creates the CRD and waits until it is served.
func installWidgets(ctx context.Context, c *cluster) (dynamic.NamespaceableResourceInterface, error) {
	extensions, err := apiextensionsclient.NewForConfig(c.cp.Config)
	if err != nil {
		return nil, fmt.Errorf("apiextensions client: %w", err)
	}
	crd, err := extensions.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, widgetCRD(), metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("creating the widgets CRD: %w", err)
	}
	dyn, err := dynamic.NewForConfig(c.cp.Config)
	if err != nil {
		return nil, fmt.Errorf("dynamic client: %w", err)
	}
	widgets := dyn.Resource(widgetResource)
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := widgets.Namespace(loadNamespace).List(ctx, metav1.ListOptions{Limit: 1})
		return err == nil, nil
	})
	if err != nil {
		return nil, fmt.Errorf("waiting for CRD %s to be served: %w", crd.Name, err)
	}
	return widgets, nil
}

// measureCustomResources repeats the create, list and watch phases with
// custom objects of a CRD with a schema.
func measureCustomResources(ctx context.Context, c *cluster, sc scale, result measurement) error {
	widgets, err := installWidgets(ctx, c)
	if err != nil {
		return err
	}
	if err := measureWrites(ctx, c, sc, "CR create", result, func(ctx context.Context, i int) error {
		_, err := widgets.Namespace(loadNamespace).Create(ctx, widget(fmt.Sprintf("widget-%06d", i), i), metav1.CreateOptions{})
		return err
	}); err != nil {
		return err
	}
	path := fmt.Sprintf("/apis/%s/namespaces/%s/%s", widgetResource.GroupVersion(), loadNamespace, widgetResource.Resource)
	if err := measureLists(ctx, c, sc, result, listTarget{metric: "CR LIST", path: path, accepts: []string{mediaJSON}}); err != nil {
		return err
	}
	return measureWatch(ctx, c, sc, result, watchTarget{
		metric: "CR watch",
		watch: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			return widgets.Namespace(watchNamespace).Watch(ctx, opts)
		},
		list: func(ctx context.Context) (string, error) {
			list, err := widgets.Namespace(watchNamespace).List(ctx, metav1.ListOptions{})
			if err != nil {
				return "", err
			}
			return list.GetResourceVersion(), nil
		},
		create: func(ctx context.Context, name string) error {
			_, err := widgets.Namespace(watchNamespace).Create(ctx, widget(name, 0), metav1.CreateOptions{})
			return err
		},
		name: func(obj runtime.Object) (string, bool) {
			u, ok := obj.(*unstructured.Unstructured)
			if !ok {
				return "", false
			}
			return u.GetName(), true
		},
	})
}

// envtestStartRuns is how many times envtest starts each server; the
// median is reported.
const envtestStartRuns = 5

// measureEnvtestStart times controller-runtime envtest's Start (servers
// running, admin provisioned, one CRD installed and discoverable), as an
// operator's suite pays it before its first test.
func measureEnvtestStart(ctx context.Context, bins framework.Binaries, dir string) (time.Duration, error) {
	assets, err := envtestAssets(bins, dir)
	if err != nil {
		return 0, err
	}
	var durations []time.Duration
	for run := range envtestStartRuns {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		env := &envtest.Environment{
			BinaryAssetsDirectory: assets,
			CRDs:                  []*apiextensionsv1.CustomResourceDefinition{widgetCRD()},
		}
		started := time.Now()
		_, startErr := env.Start()
		elapsed := time.Since(started)
		stopErr := env.Stop()
		if startErr != nil {
			return 0, fmt.Errorf("envtest start %d with %s: %w", run, bins.Name, startErr)
		}
		if stopErr != nil {
			return 0, fmt.Errorf("envtest stop %d with %s: %w", run, bins.Name, stopErr)
		}
		durations = append(durations, elapsed)
	}
	return percentile(durations, 50), nil
}

// envtestAssets returns a directory where envtest finds kube-apiserver and
// etcd: links to tower, which acts as the program it is invoked as, or the
// reference build's own directory.
func envtestAssets(bins framework.Binaries, dir string) (string, error) {
	if len(bins.APIServer) == 1 {
		return filepath.Dir(bins.APIServer[0]), nil
	}
	assets := filepath.Join(dir, "envtest-assets")
	if err := os.MkdirAll(assets, 0o755); err != nil {
		return "", fmt.Errorf("creating envtest assets: %w", err)
	}
	// A relative -tower path would name a file next to the link.
	tower, err := filepath.Abs(bins.APIServer[0])
	if err != nil {
		return "", fmt.Errorf("locating tower: %w", err)
	}
	for _, name := range []string{"kube-apiserver", "etcd"} {
		if err := os.Symlink(tower, filepath.Join(assets, name)); err != nil && !os.IsExist(err) {
			return "", fmt.Errorf("linking %s: %w", name, err)
		}
	}
	return assets, nil
}

// crdScaleNote describes the custom resource phases for the report.
func crdScaleNote(sc scale) string {
	return strings.Join([]string{
		fmt.Sprintf("%d Widgets (CRD with a structural schema, ~1 KiB spec) by %d writers, listed as JSON %d times, %d watchers", sc.objects, sc.writers, sc.listRuns, sc.watchers),
		fmt.Sprintf("envtest start = controller-runtime envtest Start with one CRD, median of %d", envtestStartRuns),
	}, "; ")
}
