package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"tower.dev/tower/test/framework"
)

func newPod(name string, containers ...corev1.Container) *corev1.Pod {
	if len(containers) == 0 {
		containers = []corev1.Container{{Name: "c", Image: "example"}}
	}
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{Containers: containers}}
}

func createPod(t *testing.T, cs kubernetes.Interface, ns string, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	created, err := cs.CoreV1().Pods(ns).Create(t.Context(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s: %v", pod.Name, err)
	}
	return created
}

// wantForbidden checks an admission refusal: 403 Forbidden with
// kube-apiserver's message.
func wantForbidden(t *testing.T, err error, message string) {
	t.Helper()
	if !apierrors.IsForbidden(err) {
		t.Fatalf("got %v, want Forbidden %q", err, message)
	}
	if got := err.Error(); got != message {
		t.Errorf("message\n got %q\nwant %q", got, message)
	}
}

// TestServiceAccountAdmission: pods get the default service account and
// the projected API credentials in every container; a missing service
// account is refused; automountServiceAccountToken=false on the pod or
// the service account leaves the pod alone.
func TestServiceAccountAdmission(t *testing.T) {
	ctx := t.Context()
	ns := controlPlane.CreateNamespace(t)
	cs := controlPlane.Clientset()

	pod := newPod("mounted", corev1.Container{Name: "a", Image: "example"}, corev1.Container{Name: "b", Image: "example"})
	pod.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "example"}}
	got := createPod(t, cs, ns, pod)
	if got.Spec.ServiceAccountName != "default" {
		t.Errorf("serviceAccountName = %q, want default", got.Spec.ServiceAccountName)
	}
	if len(got.Spec.Volumes) != 1 || !strings.HasPrefix(got.Spec.Volumes[0].Name, "kube-api-access-") || len(got.Spec.Volumes[0].Name) != len("kube-api-access-")+5 {
		t.Fatalf("volumes = %+v, want one kube-api-access-xxxxx", got.Spec.Volumes)
	}
	volume := got.Spec.Volumes[0]
	sources := volume.Projected.Sources
	if len(sources) != 3 || sources[0].ServiceAccountToken == nil || *sources[0].ServiceAccountToken.ExpirationSeconds != 3607 ||
		sources[0].ServiceAccountToken.Path != "token" || sources[1].ConfigMap == nil || sources[1].ConfigMap.Name != "kube-root-ca.crt" ||
		sources[1].ConfigMap.Items[0].Key != "ca.crt" || sources[2].DownwardAPI == nil ||
		sources[2].DownwardAPI.Items[0].FieldRef.FieldPath != "metadata.namespace" || *volume.Projected.DefaultMode != 0o644 {
		t.Errorf("projected sources = %+v", volume.Projected)
	}
	for _, c := range append(got.Spec.InitContainers, got.Spec.Containers...) {
		want := corev1.VolumeMount{Name: volume.Name, ReadOnly: true, MountPath: "/var/run/secrets/kubernetes.io/serviceaccount"}
		if len(c.VolumeMounts) != 1 || c.VolumeMounts[0].String() != want.String() {
			t.Errorf("container %s mounts %+v, want %+v", c.Name, c.VolumeMounts, want)
		}
	}

	optOut := newPod("opted-out")
	optOut.Spec.AutomountServiceAccountToken = ptr.To(false)
	if got := createPod(t, cs, ns, optOut); len(got.Spec.Volumes) != 0 || len(got.Spec.Containers[0].VolumeMounts) != 0 {
		t.Errorf("pod with automountServiceAccountToken=false got volumes %+v", got.Spec.Volumes)
	}
	quiet := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "quiet"}, AutomountServiceAccountToken: ptr.To(false)}
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, quiet, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	viaSA := newPod("quiet-sa")
	viaSA.Spec.ServiceAccountName = "quiet"
	if got := createPod(t, cs, ns, viaSA); len(got.Spec.Volumes) != 0 {
		t.Errorf("pod of a service account with automount off got volumes %+v", got.Spec.Volumes)
	}

	missing := newPod("orphan")
	missing.Spec.ServiceAccountName = "nobody"
	_, err := cs.CoreV1().Pods(ns).Create(ctx, missing, metav1.CreateOptions{})
	wantForbidden(t, err, `pods "orphan" is forbidden: error looking up service account `+ns+`/nobody: serviceaccount "nobody" not found`)
}

// TestDefaultTolerationSeconds: pods tolerate not-ready and unreachable
// nodes for 300 s unless they say otherwise.
func TestDefaultTolerationSeconds(t *testing.T) {
	ns := controlPlane.CreateNamespace(t)
	cs := controlPlane.Clientset()
	got := createPod(t, cs, ns, newPod("defaulted"))
	want := []corev1.Toleration{
		{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](300)},
		{Key: "node.kubernetes.io/unreachable", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](300)},
	}
	if len(got.Spec.Tolerations) != 2 || got.Spec.Tolerations[0].String() != want[0].String() || got.Spec.Tolerations[1].String() != want[1].String() {
		t.Errorf("tolerations = %v, want %v", got.Spec.Tolerations, want)
	}
	own := newPod("own")
	own.Spec.Tolerations = []corev1.Toleration{{Key: "node.kubernetes.io/unreachable", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](10)}}
	got = createPod(t, cs, ns, own)
	if len(got.Spec.Tolerations) != 2 || *got.Spec.Tolerations[0].TolerationSeconds != 10 || got.Spec.Tolerations[1].Key != "node.kubernetes.io/not-ready" {
		t.Errorf("tolerations = %v, want the pod's own unreachable toleration kept and not-ready added", got.Spec.Tolerations)
	}
}

// TestPriorityAdmission: the built-in classes exist; a pod's class
// resolves to its value and preemption policy; unknown classes and a
// second global default are refused; system classes cannot be deleted.
func TestPriorityAdmission(t *testing.T) {
	ctx := t.Context()
	ns := controlPlane.CreateNamespace(t)
	cs := controlPlane.Clientset()
	pcs := cs.SchedulingV1().PriorityClasses()

	node, err := pcs.Get(ctx, "system-node-critical", metav1.GetOptions{})
	if err != nil || node.Value != 2000001000 {
		t.Fatalf("system-node-critical: %v %+v", err, node)
	}
	critical := newPod("critical")
	critical.Spec.PriorityClassName = "system-cluster-critical"
	if got := createPod(t, cs, ns, critical); *got.Spec.Priority != 2000000000 || *got.Spec.PreemptionPolicy != corev1.PreemptLowerPriority {
		t.Errorf("priority %d policy %s, want 2000000000 PreemptLowerPriority", *got.Spec.Priority, *got.Spec.PreemptionPolicy)
	}
	if got := createPod(t, cs, ns, newPod("plain")); *got.Spec.Priority != 0 || got.Spec.PriorityClassName != "" {
		t.Errorf("pod without class: priority %d class %q, want 0 and none", *got.Spec.Priority, got.Spec.PriorityClassName)
	}

	never := corev1.PreemptNever
	name := "batch-" + ns
	low := &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Value: 100, PreemptionPolicy: &never}
	if _, err := pcs.Create(ctx, low, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pcs.Delete(ctx, name, metav1.DeleteOptions{}) })
	batch := newPod("batch")
	batch.Spec.PriorityClassName = name
	if got := createPod(t, cs, ns, batch); *got.Spec.Priority != 100 || *got.Spec.PreemptionPolicy != corev1.PreemptNever {
		t.Errorf("priority %d policy %s, want 100 Never", *got.Spec.Priority, *got.Spec.PreemptionPolicy)
	}
	mismatched := newPod("mismatched")
	mismatched.Spec.PriorityClassName = name
	mismatched.Spec.Priority = ptr.To[int32](5)
	_, err = cs.CoreV1().Pods(ns).Create(ctx, mismatched, metav1.CreateOptions{})
	wantForbidden(t, err, `pods "mismatched" is forbidden: the integer value of priority (5) must not be provided in pod spec; priority admission controller computed 100 from the given PriorityClass name`)

	unknown := newPod("unknown")
	unknown.Spec.PriorityClassName = "no-such-class"
	_, err = cs.CoreV1().Pods(ns).Create(ctx, unknown, metav1.CreateOptions{})
	wantForbidden(t, err, `pods "unknown" is forbidden: no PriorityClass with name no-such-class was found`)

	err = pcs.Delete(ctx, "system-node-critical", metav1.DeleteOptions{})
	wantForbidden(t, err, `priorityclasses.scheduling.k8s.io "system-node-critical" is forbidden: this is a system priority class and cannot be deleted`)
	reserved := &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: "system-mine"}, Value: 1}
	if _, err := pcs.Create(ctx, reserved, metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("creating system-mine: %v, want Invalid", err)
	}
}

// TestLimitRanger: container defaults fill what a pod leaves out (and are
// noted in an annotation); min, max and ratio bounds refuse pods with
// kube-apiserver's messages.
func TestLimitRanger(t *testing.T) {
	ctx := t.Context()
	ns := controlPlane.CreateNamespace(t)
	cs := controlPlane.Clientset()
	q := resource.MustParse
	lr := &corev1.LimitRange{
		ObjectMeta: metav1.ObjectMeta{Name: "limits"},
		Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{
			Type:                 corev1.LimitTypeContainer,
			Default:              corev1.ResourceList{corev1.ResourceCPU: q("500m"), corev1.ResourceMemory: q("128Mi")},
			DefaultRequest:       corev1.ResourceList{corev1.ResourceCPU: q("100m"), corev1.ResourceMemory: q("64Mi")},
			Max:                  corev1.ResourceList{corev1.ResourceCPU: q("1")},
			Min:                  corev1.ResourceList{corev1.ResourceMemory: q("32Mi")},
			MaxLimitRequestRatio: corev1.ResourceList{corev1.ResourceCPU: q("10")},
		}}},
	}
	if _, err := cs.CoreV1().LimitRanges(ns).Create(ctx, lr, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.WaitForCached(t, cs.CoreV1().LimitRanges(ns).List, func(l *corev1.LimitRangeList) bool { return len(l.Items) == 1 })
	got := createPod(t, cs, ns, newPod("defaulted"))
	res := got.Spec.Containers[0].Resources
	if res.Requests.Cpu().String() != "100m" || res.Requests.Memory().String() != "64Mi" || res.Limits.Cpu().String() != "500m" || res.Limits.Memory().String() != "128Mi" {
		t.Errorf("resources = %+v", res)
	}
	if note := got.Annotations["kubernetes.io/limit-ranger"]; note != "LimitRanger plugin set: cpu, memory request for container c; cpu, memory limit for container c" {
		t.Errorf("annotation = %q", note)
	}

	tests := []struct {
		name      string
		resources corev1.ResourceRequirements
		message   string
	}{
		{"over-max", corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: q("2")}, Requests: corev1.ResourceList{corev1.ResourceCPU: q("1")}},
			"maximum cpu usage per Container is 1, but limit is 2"},
		{"under-min", corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceMemory: q("16Mi")}},
			"minimum memory usage per Container is 32Mi, but request is 16Mi"},
		{"ratio", corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: q("1")}, Requests: corev1.ResourceList{corev1.ResourceCPU: q("50m")}},
			"cpu max limit to request ratio per Container is 10, but provided ratio is 20.000000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := newPod(tt.name, corev1.Container{Name: "c", Image: "example", Resources: tt.resources})
			_, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
			wantForbidden(t, err, `pods "`+tt.name+`" is forbidden: `+tt.message)
		})
	}
}

// TestPodSecurity: a namespace enforcing "restricted" refuses a
// privileged pod with the library's message; one warning at "baseline"
// admits it with a Warning header, for pods and workload templates alike.
func TestPodSecurity(t *testing.T) {
	ctx := t.Context()
	cs := controlPlane.Clientset()
	label := func(ns string, labels map[string]string) {
		t.Helper()
		got, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got.Labels = labels
		if _, err := cs.CoreV1().Namespaces().Update(ctx, got, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	privileged := func(name string) *corev1.Pod {
		return newPod(name, corev1.Container{Name: "c", Image: "example", SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)}})
	}

	// The plugin reads namespaces as upstream's does, from a cache that may
	// lag the label update by a moment: pods admitted before it sees the
	// label are removed and tried again.
	createUntilLabelSeen := func(client kubernetes.Interface, ns string, seen func(error) bool) error {
		t.Helper()
		var err error
		eventually(t, 30*time.Second, "PodSecurity to see the namespace labels", func(ctx context.Context) (bool, error) {
			_, err = client.CoreV1().Pods(ns).Create(ctx, privileged("root"), metav1.CreateOptions{})
			if seen(err) {
				return true, nil
			}
			if err == nil {
				return false, client.CoreV1().Pods(ns).Delete(ctx, "root", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
			}
			return false, nil
		})
		return err
	}

	enforced := controlPlane.CreateNamespace(t)
	label(enforced, map[string]string{"pod-security.kubernetes.io/enforce": "baseline"})
	err := createUntilLabelSeen(cs, enforced, func(err error) bool { return err != nil })
	wantForbidden(t, err, `pods "root" is forbidden: violates PodSecurity "baseline:latest": privileged (container "c" must not set securityContext.privileged=true)`)

	warned := controlPlane.CreateNamespace(t)
	label(warned, map[string]string{"pod-security.kubernetes.io/warn": "baseline"})
	collector := &warningCollector{}
	cfg := rest.CopyConfig(controlPlane.Config)
	cfg.WarningHandler = collector
	warnClient := kubernetes.NewForConfigOrDie(cfg)
	want := `would violate PodSecurity "baseline:latest": privileged (container "c" must not set securityContext.privileged=true)`
	if err := createUntilLabelSeen(warnClient, warned, func(err error) bool { return err != nil || collector.has(want) }); err != nil {
		t.Fatalf("warn-only namespace refused the pod: %v", err)
	}
	if !collector.has(want) {
		t.Errorf("warnings = %q, want %q", collector.messages, want)
	}
}
