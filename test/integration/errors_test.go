package integration

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// maxConfigMapDataBytes is the limit on a ConfigMap's data (as a Secret's).
const maxConfigMapDataBytes = 1 << 20

// TestErrorStatuses: the Status code, reason and message kube-apiserver
// returns for the errors clients handle.
func TestErrorStatuses(t *testing.T) {
	ns := controlPlane.CreateNamespace(t)
	cs := controlPlane.Clientset()
	configMaps := cs.CoreV1().ConfigMaps(ns)

	// postRaw sends body as a ConfigMap create, bypassing client-side encoding.
	postRaw := func(ctx context.Context, body []byte, params map[string]string) error {
		req := cs.CoreV1().RESTClient().Post().Namespace(ns).Resource("configmaps").
			SetHeader("Content-Type", "application/json").Body(body)
		for k, v := range params {
			req = req.Param(k, v)
		}
		return req.Do(ctx).Error()
	}

	cases := []struct {
		name string
		do   func(ctx context.Context) error
		// wantMessage is matched exactly unless wantMessagePrefix is set.
		wantCode          int32
		wantReason        metav1.StatusReason
		wantMessage       string
		wantMessagePrefix bool
	}{
		{
			name: "get missing",
			do: func(ctx context.Context) error {
				_, err := configMaps.Get(ctx, "x", metav1.GetOptions{})
				return err
			},
			wantCode:    http.StatusNotFound,
			wantReason:  metav1.StatusReasonNotFound,
			wantMessage: `configmaps "x" not found`,
		},
		{
			name: "create twice",
			do: func(ctx context.Context) error {
				cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "twice"}}
				if _, err := configMaps.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
					return err
				}
				_, err := configMaps.Create(ctx, cm, metav1.CreateOptions{})
				return err
			},
			wantCode:    http.StatusConflict,
			wantReason:  metav1.StatusReasonAlreadyExists,
			wantMessage: `configmaps "twice" already exists`,
		},
		{
			name: "malformed JSON",
			do: func(ctx context.Context) error {
				return postRaw(ctx, []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"broken"`), nil)
			},
			wantCode:   http.StatusBadRequest,
			wantReason: metav1.StatusReasonBadRequest,
		},
		{
			name: "unknown field with strict field validation",
			do: func(ctx context.Context) error {
				body := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"strict"},"bogus":"field"}`
				return postRaw(ctx, []byte(body), map[string]string{"fieldValidation": "Strict"})
			},
			wantCode:    http.StatusBadRequest,
			wantReason:  metav1.StatusReasonBadRequest,
			wantMessage: `ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: unknown field "bogus"`,
		},
		{
			name: "body over 3 MiB",
			do: func(ctx context.Context) error {
				body := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"huge"},"data":{"a":"` +
					strings.Repeat("a", 3<<20) + `"}}`
				return postRaw(ctx, []byte(body), nil)
			},
			wantCode:   http.StatusRequestEntityTooLarge,
			wantReason: metav1.StatusReasonRequestEntityTooLarge,
		},
		{
			name: "ConfigMap data over 1 MiB",
			do: func(ctx context.Context) error {
				cm := &corev1.ConfigMap{
					ObjectMeta: metav1.ObjectMeta{Name: "big"},
					Data:       map[string]string{"a": strings.Repeat("a", maxConfigMapDataBytes+1)},
				}
				_, err := configMaps.Create(ctx, cm, metav1.CreateOptions{})
				return err
			},
			wantCode:          http.StatusUnprocessableEntity,
			wantReason:        metav1.StatusReasonInvalid,
			wantMessage:       `ConfigMap "big" is invalid: `,
			wantMessagePrefix: true,
		},
		{
			name: "create in missing namespace",
			do: func(ctx context.Context) error {
				cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "orphan"}}
				_, err := cs.CoreV1().ConfigMaps("nope").Create(ctx, cm, metav1.CreateOptions{})
				return err
			},
			wantCode:    http.StatusNotFound,
			wantReason:  metav1.StatusReasonNotFound,
			wantMessage: `namespaces "nope" not found`,
		},
		{
			name: "update with stale resourceVersion",
			do: func(ctx context.Context) error {
				cm, err := configMaps.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "stale"}}, metav1.CreateOptions{})
				if err != nil {
					return err
				}
				fresh := cm.DeepCopy()
				fresh.Data = map[string]string{"first": "writer"}
				if _, err := configMaps.Update(ctx, fresh, metav1.UpdateOptions{}); err != nil {
					return err
				}
				cm.Data = map[string]string{"second": "writer"}
				_, err = configMaps.Update(ctx, cm, metav1.UpdateOptions{})
				return err
			},
			wantCode:    http.StatusConflict,
			wantReason:  metav1.StatusReasonConflict,
			wantMessage: `Operation cannot be fulfilled on configmaps "stale": the object has been modified; please apply your changes to the latest version and try again`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do(t.Context())
			if err == nil {
				t.Fatal("request succeeded, want an error")
			}
			var statusErr apierrors.APIStatus
			if !errors.As(err, &statusErr) {
				t.Fatalf("error %v (%T) carries no Status", err, err)
			}
			status := statusErr.Status()
			if status.Code != tc.wantCode {
				t.Errorf("code = %d, want %d (status %+v)", status.Code, tc.wantCode, status)
			}
			if status.Reason != tc.wantReason {
				t.Errorf("reason = %q, want %q (message %q)", status.Reason, tc.wantReason, status.Message)
			}
			switch {
			case tc.wantMessage == "":
			case tc.wantMessagePrefix && !strings.HasPrefix(status.Message, tc.wantMessage):
				t.Errorf("message = %q, want prefix %q", status.Message, tc.wantMessage)
			case !tc.wantMessagePrefix && status.Message != tc.wantMessage:
				t.Errorf("message = %q, want %q", status.Message, tc.wantMessage)
			}
		})
	}
}
