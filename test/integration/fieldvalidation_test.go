package integration

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// warningRecorder keeps the Warning headers a client receives.
type warningRecorder struct {
	mu       sync.Mutex
	messages []string
}

func (w *warningRecorder) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, message string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.messages = append(w.messages, message)
}

func (w *warningRecorder) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.messages
	w.messages = nil
	return out
}

// TestFieldValidation: unknown and duplicate fields in create, update,
// patch and apply bodies are refused (Strict), reported in Warning headers
// (Warn, the default) or dropped (Ignore), with kube-apiserver's messages.
func TestFieldValidation(t *testing.T) {
	ns := controlPlane.CreateNamespace(t)
	recorder := &warningRecorder{}
	config := rest.CopyConfig(controlPlane.Config)
	config.WarningHandlerWithContext = recorder
	cs, err := kubernetes.NewForConfig(config)
	if err != nil {
		t.Fatalf("clientset: %v", err)
	}
	rc := cs.CoreV1().RESTClient()
	const createBody = `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"%s"},"data":{"a":"1"},"bogus":1,"data":{"b":"2"}}`

	type request struct {
		name       string
		send       func(ctx context.Context, validation string) error
		strictCode int32
		// strictMessage is the start of the Strict error's message.
		strictMessage string
		warnings      []string
	}
	counter := 0
	uniqueName := func() string {
		counter++
		return "fv-" + string(rune('a'+counter))
	}
	requests := []request{
		{
			name: "create",
			send: func(ctx context.Context, validation string) error {
				body := strings.ReplaceAll(createBody, "%s", uniqueName())
				return rc.Post().Namespace(ns).Resource("configmaps").Param("fieldValidation", validation).
					SetHeader("Content-Type", "application/json").Body([]byte(body)).Do(ctx).Error()
			},
			strictCode:    400,
			strictMessage: `ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: unknown field "bogus", duplicate field "data"`,
			warnings:      []string{`unknown field "bogus"`, `duplicate field "data"`},
		},
		{
			name: "merge patch",
			send: func(ctx context.Context, validation string) error {
				return rc.Patch(types.MergePatchType).Namespace(ns).Resource("configmaps").Name("target").Param("fieldValidation", validation).
					Body([]byte(`{"data":{"x":"1"},"bogus":1}`)).Do(ctx).Error()
			},
			strictCode:    422,
			strictMessage: ` "" is invalid: patch: Invalid value: `,
			warnings:      []string{`unknown field "bogus"`},
		},
		{
			name: "strategic merge patch",
			send: func(ctx context.Context, validation string) error {
				return rc.Patch(types.StrategicMergePatchType).Namespace(ns).Resource("configmaps").Name("target").Param("fieldValidation", validation).
					Body([]byte(`{"data":{"x":"1"},"data":{"y":"2"}}`)).Do(ctx).Error()
			},
			strictCode:    422,
			strictMessage: ` "" is invalid: patch: Invalid value: `,
			warnings:      []string{`duplicate field "data"`},
		},
		{
			name: "apply",
			send: func(ctx context.Context, validation string) error {
				return rc.Patch(types.ApplyYAMLPatchType).Namespace(ns).Resource("configmaps").Name("target").
					Param("fieldValidation", validation).Param("fieldManager", "fv").Param("force", "true").
					Body([]byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: target\ndata:\n  x: \"1\"\n  x: \"2\"\n")).Do(ctx).Error()
			},
			strictCode:    400,
			strictMessage: `error strict decoding patch: error converting YAML to JSON: yaml: unmarshal errors:`,
			// The YAML error spans lines, which a Warning header cannot
			// carry: kube-apiserver drops it.
			warnings: nil,
		},
	}
	if err := rc.Post().Namespace(ns).Resource("configmaps").SetHeader("Content-Type", "application/json").
		Body([]byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"target"}}`)).Do(t.Context()).Error(); err != nil {
		t.Fatalf("create target: %v", err)
	}
	for _, req := range requests {
		t.Run(req.name+" Strict", func(t *testing.T) {
			recorder.take()
			err := req.send(t.Context(), "Strict")
			if code := statusCode(err); code != req.strictCode {
				t.Fatalf("code = %d, want %d (error %v)", code, req.strictCode, err)
			}
			if msg := err.(apierrors.APIStatus).Status().Message; !strings.HasPrefix(msg, req.strictMessage) {
				t.Errorf("message = %q, want prefix %q", msg, req.strictMessage)
			}
		})
		for _, validation := range []string{"Warn", ""} {
			t.Run(req.name+" Warn"+validation, func(t *testing.T) {
				recorder.take()
				if err := req.send(t.Context(), validation); err != nil {
					t.Fatalf("request: %v", err)
				}
				if got := recorder.take(); !slices.Equal(got, req.warnings) {
					t.Errorf("warnings = %q, want %q", got, req.warnings)
				}
			})
		}
		t.Run(req.name+" Ignore", func(t *testing.T) {
			recorder.take()
			if err := req.send(t.Context(), "Ignore"); err != nil {
				t.Fatalf("request: %v", err)
			}
			if got := recorder.take(); len(got) > 0 {
				t.Errorf("warnings = %q, want none", got)
			}
		})
	}
}
