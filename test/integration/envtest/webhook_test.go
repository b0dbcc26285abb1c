package envtest

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// TestEnvtestInstallsWebhooks: envtest installs a validating webhook
// configuration with its WebhookInstallOptions (URL and caBundle rewritten
// to its local server), a manager serves the webhook, and the API server
// calls it for custom resources.
func TestEnvtestInstallsWebhooks(t *testing.T) {
	ctrl.SetLogger(logr.Discard())
	path := "/validate-gadget"
	none := admissionregistrationv1.SideEffectClassNone
	env := &envtest.Environment{
		BinaryAssetsDirectory: assetsDir(t),
		CRDInstallOptions:     envtest.CRDInstallOptions{Paths: []string{filepath.Join("testdata", "gadgets.yaml")}},
		ErrorIfCRDPathMissing: true,
		WebhookInstallOptions: envtest.WebhookInstallOptions{
			ValidatingWebhooks: []*admissionregistrationv1.ValidatingWebhookConfiguration{{
				ObjectMeta: metav1.ObjectMeta{Name: "gadget-validation"},
				TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingWebhookConfiguration"},
				Webhooks: []admissionregistrationv1.ValidatingWebhook{{
					Name: "vgadget.envtest.tower.dev",
					ClientConfig: admissionregistrationv1.WebhookClientConfig{
						Service: &admissionregistrationv1.ServiceReference{Namespace: "system", Name: "webhook-service", Path: &path},
					},
					Rules: []admissionregistrationv1.RuleWithOperations{{
						Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
						Rule:       admissionregistrationv1.Rule{APIGroups: []string{"envtest.tower.dev"}, APIVersions: []string{"v1"}, Resources: []string{"gadgets"}},
					}},
					SideEffects:             &none,
					AdmissionReviewVersions: []string{"v1"},
				}},
			}},
		},
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start envtest: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stop envtest: %v", err)
		}
	})
	opts := env.WebhookInstallOptions
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Metrics:       metricsserver.Options{BindAddress: "0"},
		WebhookServer: webhook.NewServer(webhook.Options{Host: opts.LocalServingHost, Port: opts.LocalServingPort, CertDir: opts.LocalServingCertDir}),
	})
	if err != nil {
		t.Fatalf("manager: %v", err)
	}
	mgr.GetWebhookServer().Register(path, &admission.Webhook{Handler: admission.HandlerFunc(func(_ context.Context, req admission.Request) admission.Response {
		gadget := &unstructured.Unstructured{}
		if err := gadget.UnmarshalJSON(req.Object.Raw); err != nil {
			return admission.Denied(err.Error())
		}
		size, _, _ := unstructured.NestedInt64(gadget.Object, "spec", "size")
		if size > 10 {
			return admission.Denied(fmt.Sprintf("size %d is more than 10", size))
		}
		return admission.Allowed("")
	})})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})

	writer := mgr.GetClient()
	var lastErr error
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		big := &unstructured.Unstructured{Object: map[string]any{
			"metadata": map[string]any{"generateName": "big-", "namespace": "default"},
			"spec":     map[string]any{"size": int64(20)},
		}}
		big.SetGroupVersionKind(gadgetGVK)
		lastErr = writer.Create(ctx, big)
		return lastErr != nil, nil
	})
	if err != nil {
		t.Fatalf("the webhook never refused a gadget of size 20: %v", err)
	}
	want := `admission webhook "vgadget.envtest.tower.dev" denied the request: size 20 is more than 10`
	if !strings.Contains(lastErr.Error(), want) {
		t.Fatalf("create answered %v, want %q", lastErr, want)
	}
	small := &unstructured.Unstructured{Object: map[string]any{
		"metadata": map[string]any{"name": "small", "namespace": "default"},
		"spec":     map[string]any{"size": int64(2)},
	}}
	small.SetGroupVersionKind(gadgetGVK)
	if err := writer.Create(ctx, small); err != nil {
		t.Fatalf("create a gadget the webhook allows: %v", err)
	}
}
