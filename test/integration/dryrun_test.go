package integration

import (
	"context"
	"net/http"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
)

var dryRunAll = []string{metav1.DryRunAll}

// TestDryRun: every write with dryRun=All runs admission and validation
// and answers with the would-be object, and etcd is left as it was.
func TestDryRun(t *testing.T) {
	ctx := t.Context()
	ns := controlPlane.CreateNamespace(t)
	configMaps := controlPlane.Clientset().CoreV1().ConfigMaps(ns)
	prefix := "/registry/configmaps/" + ns + "/"

	// snapshot is every key under the namespace's configmaps with its
	// mod revision.
	snapshot := func(t *testing.T) map[string]int64 {
		t.Helper()
		resp, err := controlPlane.EtcdClient.Get(ctx, prefix, clientv3.WithPrefix())
		if err != nil {
			t.Fatalf("etcd get: %v", err)
		}
		out := map[string]int64{}
		for _, kv := range resp.Kvs {
			out[string(kv.Key)] = kv.ModRevision
		}
		return out
	}

	if _, err := configMaps.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "existing"}, Data: map[string]string{"a": "1"}},
		metav1.CreateOptions{}); err != nil {
		t.Fatalf("create: %v", err)
	}
	before := snapshot(t)

	cases := []struct {
		name  string
		write func(ctx context.Context) (*corev1.ConfigMap, error)
		check func(t *testing.T, cm *corev1.ConfigMap)
	}{
		{"create", func(ctx context.Context) (*corev1.ConfigMap, error) {
			return configMaps.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "new"}}, metav1.CreateOptions{DryRun: dryRunAll})
		}, func(t *testing.T, cm *corev1.ConfigMap) {
			if cm.UID == "" || cm.CreationTimestamp.IsZero() {
				t.Errorf("dry-run create answered %+v, want server-set uid and creationTimestamp", cm.ObjectMeta)
			}
		}},
		{"update", func(ctx context.Context) (*corev1.ConfigMap, error) {
			cm, err := configMaps.Get(ctx, "existing", metav1.GetOptions{})
			if err != nil {
				return nil, err
			}
			cm.Data["a"] = "updated"
			return configMaps.Update(ctx, cm, metav1.UpdateOptions{DryRun: dryRunAll})
		}, func(t *testing.T, cm *corev1.ConfigMap) {
			if cm.Data["a"] != "updated" {
				t.Errorf("data = %v, want the would-be update", cm.Data)
			}
		}},
		{"patch", func(ctx context.Context) (*corev1.ConfigMap, error) {
			return configMaps.Patch(ctx, "existing", types.StrategicMergePatchType, []byte(`{"data":{"b":"2"}}`), metav1.PatchOptions{DryRun: dryRunAll})
		}, func(t *testing.T, cm *corev1.ConfigMap) {
			if cm.Data["b"] != "2" {
				t.Errorf("data = %v, want the would-be patch", cm.Data)
			}
		}},
		{"apply to existing", func(ctx context.Context) (*corev1.ConfigMap, error) {
			return configMaps.Apply(ctx, corev1ac.ConfigMap("existing", ns).WithData(map[string]string{"c": "3"}),
				metav1.ApplyOptions{FieldManager: "dry", Force: true, DryRun: dryRunAll})
		}, func(t *testing.T, cm *corev1.ConfigMap) {
			if cm.Data["c"] != "3" {
				t.Errorf("data = %v, want the would-be apply", cm.Data)
			}
		}},
		{"apply creating", func(ctx context.Context) (*corev1.ConfigMap, error) {
			return configMaps.Apply(ctx, corev1ac.ConfigMap("applied", ns).WithData(map[string]string{"c": "3"}),
				metav1.ApplyOptions{FieldManager: "dry", DryRun: dryRunAll})
		}, func(*testing.T, *corev1.ConfigMap) {}},
		{"delete", func(ctx context.Context) (*corev1.ConfigMap, error) {
			return nil, configMaps.Delete(ctx, "existing", metav1.DeleteOptions{DryRun: dryRunAll})
		}, func(*testing.T, *corev1.ConfigMap) {}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cm, err := tc.write(t.Context())
			if err != nil {
				t.Fatalf("dry-run %s: %v", tc.name, err)
			}
			if cm != nil {
				tc.check(t, cm)
			}
			after := snapshot(t)
			if len(after) != len(before) {
				t.Fatalf("etcd keys after dry-run %s: %v, before %v", tc.name, after, before)
			}
			for k, rev := range before {
				if after[k] != rev {
					t.Errorf("etcd key %s: mod revision %d after dry-run %s, %d before", k, after[k], tc.name, rev)
				}
			}
		})
	}

	t.Run("validation still runs", func(t *testing.T) {
		_, err := configMaps.Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "Not_Valid"}}, metav1.CreateOptions{DryRun: dryRunAll})
		if !apierrors.IsInvalid(err) {
			t.Errorf("dry-run create of an invalid name: got %v, want 422 Invalid", err)
		}
	})
	t.Run("unknown dryRun value", func(t *testing.T) {
		_, err := configMaps.Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{DryRun: []string{"Some"}})
		if code := statusCode(err); code != http.StatusUnprocessableEntity || !strings.Contains(err.Error(), "dryRun") {
			t.Errorf("got %v (code %d), want 422 naming dryRun", err, code)
		}
	})
}
