package registry

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// resourceFor looks a built-in resource up by group and plural.
func resourceFor(t *testing.T, group, resource string) *Resource {
	t.Helper()
	for _, r := range Builtins(BuiltinOptions{}).Resources() {
		if r.Group == group && r.Resource == resource {
			return r
		}
	}
	t.Fatalf("no resource %s.%s", resource, group)
	return nil
}

// create runs obj through the create path the HTTP layer uses: defaulting,
// server-set metadata, PrepareForCreate and Validate.
func create(t *testing.T, r *Resource, obj runtime.Object) field.ErrorList {
	t.Helper()
	ctx := context.Background()
	r.Strategy.Default(obj)
	m := mustMeta(t, obj)
	m.SetUID(types.UID("uid-1"))
	m.SetGeneration(0)
	r.Strategy.PrepareForCreate(ctx, obj)
	return r.Strategy.Validate(ctx, obj)
}

// update runs obj through the update path against the stored old. Like
// the HTTP layer it carries uid over and treats a missing resourceVersion
// as an unconditional update.
func update(t *testing.T, r *Resource, obj, old runtime.Object) field.ErrorList {
	t.Helper()
	ctx := context.Background()
	carryServerMeta(t, obj, old)
	r.Strategy.Default(obj)
	r.Strategy.PrepareForUpdate(ctx, obj, old)
	return r.Strategy.ValidateUpdate(ctx, obj, old)
}

// updateStatus runs obj through the status subresource path.
func updateStatus(t *testing.T, r *Resource, obj, old runtime.Object) field.ErrorList {
	t.Helper()
	ctx := context.Background()
	carryServerMeta(t, obj, old)
	r.Strategy.Default(obj)
	r.Status.PrepareForUpdate(ctx, obj, old)
	return r.Status.ValidateUpdate(ctx, obj, old)
}

func carryServerMeta(t *testing.T, obj, old runtime.Object) {
	m, oldMeta := mustMeta(t, obj), mustMeta(t, old)
	m.SetUID(oldMeta.GetUID())
	if m.GetResourceVersion() == "" {
		m.SetResourceVersion("1")
	}
}

func mustMeta(t *testing.T, obj runtime.Object) metav1.Object {
	t.Helper()
	m, ok := obj.(metav1.Object)
	if !ok {
		t.Fatalf("%T has no metadata", obj)
	}
	return m
}

// errKeys renders errors as "Type path" for compact comparisons.
func errKeys(errs field.ErrorList) []string {
	out := make([]string, 0, len(errs))
	for _, e := range errs {
		out = append(out, fmt.Sprintf("%s %s", string(e.Type), e.Field))
	}
	return out
}

// expectErrors checks that errs holds exactly the wanted "Type path" keys
// (order-insensitive); want empty means valid.
func expectErrors(t *testing.T, errs field.ErrorList, want ...string) {
	t.Helper()
	got := errKeys(errs)
	slices.Sort(got)
	w := slices.Clone(want)
	slices.Sort(w)
	if !slices.Equal(got, w) {
		t.Errorf("errors = %v\nwant %v\nfull: %v", got, w, errs.ToAggregate())
	}
}

// expectDetail checks that some error at path mentions substr.
func expectDetail(t *testing.T, errs field.ErrorList, path, substr string) {
	t.Helper()
	for _, e := range errs {
		if e.Field == path && strings.Contains(e.Error(), substr) {
			return
		}
	}
	t.Errorf("no error at %s containing %q in %v", path, substr, errs.ToAggregate())
}

func objectMeta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: "default", ResourceVersion: "1"}
}

func newPod(name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: objectMeta(name),
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx:1.27"}}},
	}
}

func podTemplate(labels map[string]string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx"}}},
	}
}

var appLabels = map[string]string{"app": "web"}

func newDeployment(name string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: objectMeta(name),
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: appLabels},
			Template: podTemplate(appLabels),
		},
	}
}

func newJob(name string) *batchv1.Job {
	tmpl := podTemplate(nil)
	tmpl.Spec.RestartPolicy = corev1.RestartPolicyNever
	return &batchv1.Job{ObjectMeta: objectMeta(name), Spec: batchv1.JobSpec{Template: tmpl}}
}

// stored returns obj as the HTTP layer would have stored it after create.
func stored[T runtime.Object](t *testing.T, r *Resource, obj T) T {
	t.Helper()
	if errs := create(t, r, obj); len(errs) > 0 {
		t.Fatalf("create %T: %v", obj, errs.ToAggregate())
	}
	return obj.DeepCopyObject().(T)
}
