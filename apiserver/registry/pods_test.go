package registry

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

func TestPodDefaults(t *testing.T) {
	pods := resourceFor(t, "", "pods")
	pod := newPod("web")
	pod.Spec.Containers = append(pod.Spec.Containers,
		corev1.Container{
			Name: "sidecar", Image: "busybox",
			Ports:          []corev1.ContainerPort{{ContainerPort: 8080}},
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt32(8080)}}},
			Resources:      corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")}},
			Env:            []corev1.EnvVar{{Name: "NODE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}}},
		},
		corev1.Container{Name: "pinned", Image: "registry.local:5000/tool@sha256:abc"},
		corev1.Container{Name: "latest", Image: "registry.local:5000/tool:latest"},
	)
	pod.Spec.Volumes = []corev1.Volume{
		{Name: "scratch"},
		{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
		{Name: "creds", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "creds"}}},
	}
	if errs := create(t, pods, pod); len(errs) > 0 {
		t.Fatalf("create: %v", errs.ToAggregate())
	}
	spec := pod.Spec
	checks := []struct {
		name      string
		got, want any
	}{
		{"restartPolicy", spec.RestartPolicy, corev1.RestartPolicyAlways},
		{"dnsPolicy", spec.DNSPolicy, corev1.DNSClusterFirst},
		{"schedulerName", spec.SchedulerName, "default-scheduler"},
		{"terminationGracePeriodSeconds", *spec.TerminationGracePeriodSeconds, int64(30)},
		{"securityContext", spec.SecurityContext != nil, true},
		{"enableServiceLinks", *spec.EnableServiceLinks, true},
		{"tagged pull policy", spec.Containers[0].ImagePullPolicy, corev1.PullIfNotPresent},
		{"untagged pull policy", spec.Containers[1].ImagePullPolicy, corev1.PullAlways},
		{"digest pull policy", spec.Containers[2].ImagePullPolicy, corev1.PullIfNotPresent},
		{"latest pull policy", spec.Containers[3].ImagePullPolicy, corev1.PullAlways},
		{"terminationMessagePath", spec.Containers[0].TerminationMessagePath, "/dev/termination-log"},
		{"terminationMessagePolicy", spec.Containers[0].TerminationMessagePolicy, corev1.TerminationMessageReadFile},
		{"port protocol", spec.Containers[1].Ports[0].Protocol, corev1.ProtocolTCP},
		{"probe period", spec.Containers[1].ReadinessProbe.PeriodSeconds, int32(10)},
		{"probe timeout", spec.Containers[1].ReadinessProbe.TimeoutSeconds, int32(1)},
		{"probe failureThreshold", spec.Containers[1].ReadinessProbe.FailureThreshold, int32(3)},
		{"probe http path", spec.Containers[1].ReadinessProbe.HTTPGet.Path, "/"},
		{"probe http scheme", spec.Containers[1].ReadinessProbe.HTTPGet.Scheme, corev1.URISchemeHTTP},
		{"requests from limits", spec.Containers[1].Resources.Requests.Cpu().String(), "500m"},
		{"fieldRef apiVersion", spec.Containers[1].Env[0].ValueFrom.FieldRef.APIVersion, "v1"},
		{"volume without source", spec.Volumes[0].EmptyDir != nil, true},
		{"configMap defaultMode", *spec.Volumes[1].ConfigMap.DefaultMode, int32(420)},
		{"secret defaultMode", *spec.Volumes[2].Secret.DefaultMode, int32(420)},
		{"generation", pod.Generation, int64(1)},
		{"phase", pod.Status.Phase, corev1.PodPending},
		{"qos", pod.Status.QOSClass, corev1.PodQOSBurstable},
		{"default tolerations", len(spec.Tolerations), 2},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestPodQOSClass(t *testing.T) {
	res := func(cpu, mem string) corev1.ResourceList {
		l := corev1.ResourceList{}
		if cpu != "" {
			l[corev1.ResourceCPU] = resource.MustParse(cpu)
		}
		if mem != "" {
			l[corev1.ResourceMemory] = resource.MustParse(mem)
		}
		return l
	}
	cases := []struct {
		name      string
		resources corev1.ResourceRequirements
		want      corev1.PodQOSClass
	}{
		{"nothing", corev1.ResourceRequirements{}, corev1.PodQOSBestEffort},
		{"limits only (requests defaulted)", corev1.ResourceRequirements{Limits: res("1", "1Gi")}, corev1.PodQOSGuaranteed},
		{"requests below limits", corev1.ResourceRequirements{Requests: res("100m", "1Gi"), Limits: res("1", "1Gi")}, corev1.PodQOSBurstable},
		{"cpu limit only", corev1.ResourceRequirements{Limits: res("1", "")}, corev1.PodQOSBurstable},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pod := newPod("p")
			pod.Spec.Containers[0].Resources = c.resources
			if errs := create(t, resourceFor(t, "", "pods"), pod); len(errs) > 0 {
				t.Fatal(errs.ToAggregate())
			}
			if pod.Status.QOSClass != c.want {
				t.Errorf("qos = %s, want %s", pod.Status.QOSClass, c.want)
			}
		})
	}
}

func TestPodValidation(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*corev1.Pod)
		want   []string
	}{
		{"valid", func(*corev1.Pod) {}, nil},
		{"missing image", func(p *corev1.Pod) { p.Spec.Containers[0].Image = "" }, []string{"FieldValueRequired spec.containers[0].image"}},
		{"invalid name", func(p *corev1.Pod) { p.Name = "Web_1" }, []string{"FieldValueInvalid metadata.name"}},
		{"missing name", func(p *corev1.Pod) { p.Name = "" }, []string{"FieldValueRequired metadata.name"}},
		{"no containers", func(p *corev1.Pod) { p.Spec.Containers = nil }, []string{"FieldValueRequired spec.containers"}},
		{"duplicate container names", func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "app", Image: "x"})
		}, []string{"FieldValueDuplicate spec.containers[1].name"}},
		{"container name not a DNS label", func(p *corev1.Pod) { p.Spec.Containers[0].Name = "App" }, []string{"FieldValueInvalid spec.containers[0].name"}},
		{"bad restart policy", func(p *corev1.Pod) { p.Spec.RestartPolicy = "Sometimes" }, []string{"FieldValueNotSupported spec.restartPolicy"}},
		{"bad dns policy", func(p *corev1.Pod) { p.Spec.DNSPolicy = "Cluster" }, []string{"FieldValueNotSupported spec.dnsPolicy"}},
		{"bad pull policy", func(p *corev1.Pod) { p.Spec.Containers[0].ImagePullPolicy = "Sometimes" }, []string{"FieldValueNotSupported spec.containers[0].imagePullPolicy"}},
		{"port out of range", func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 70000}}
		}, []string{"FieldValueInvalid spec.containers[0].ports[0].containerPort"}},
		{"bad protocol", func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, Protocol: "HTTP"}}
		}, []string{"FieldValueNotSupported spec.containers[0].ports[0].protocol"}},
		{"mount of unknown volume", func(p *corev1.Pod) {
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
		}, []string{"FieldValueNotFound spec.containers[0].volumeMounts[0].name"}},
		{"request above limit", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources = corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")},
				Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")},
			}
		}, []string{"FieldValueInvalid spec.containers[0].resources.requests[cpu]"}},
		{"probe without handler", func(p *corev1.Pod) { p.Spec.Containers[0].LivenessProbe = &corev1.Probe{} }, []string{"FieldValueRequired spec.containers[0].livenessProbe"}},
		{"liveness successThreshold", func(p *corev1.Pod) {
			p.Spec.Containers[0].LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(80)}}, SuccessThreshold: 2}
		}, []string{"FieldValueInvalid spec.containers[0].livenessProbe.successThreshold"}},
		{"toleration value with Exists", func(p *corev1.Pod) {
			p.Spec.Tolerations = []corev1.Toleration{{Key: "k", Operator: corev1.TolerationOpExists, Value: "v"}}
		}, []string{"FieldValueInvalid spec.tolerations[0].operator"}},
		{"duplicate volume", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "a"}, {Name: "a"}}
		}, []string{"FieldValueDuplicate spec.volumes[1].name"}},
		{"secret volume without name", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{}}}}
		}, []string{"FieldValueRequired spec.volumes[0].secret.secretName"}},
		{"env name", func(p *corev1.Pod) { p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: ""}} }, []string{"FieldValueRequired spec.containers[0].env[0].name"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pod := newPod("web")
			c.mutate(pod)
			expectErrors(t, create(t, resourceFor(t, "", "pods"), pod), c.want...)
		})
	}
}

func TestPodUpdate(t *testing.T) {
	pods := resourceFor(t, "", "pods")
	cases := []struct {
		name    string
		mutate  func(*corev1.Pod)
		want    []string
		wantGen int64
	}{
		{"labels only", func(p *corev1.Pod) { p.Labels = map[string]string{"a": "b"} }, nil, 1},
		{"image change", func(p *corev1.Pod) { p.Spec.Containers[0].Image = "nginx:1.28" }, nil, 2},
		{"added toleration", func(p *corev1.Pod) {
			p.Spec.Tolerations = append(p.Spec.Tolerations, corev1.Toleration{Key: "k", Operator: corev1.TolerationOpExists})
		}, nil, 2},
		{"removed toleration", func(p *corev1.Pod) { p.Spec.Tolerations = nil }, []string{"FieldValueForbidden spec.tolerations"}, 2},
		{"command change", func(p *corev1.Pod) { p.Spec.Containers[0].Command = []string{"sh"} }, []string{"FieldValueForbidden spec"}, 2},
		{"node name change", func(p *corev1.Pod) { p.Spec.NodeName = "n2" }, []string{"FieldValueForbidden spec"}, 2},
		{"status ignored", func(p *corev1.Pod) { p.Status.Phase = corev1.PodRunning }, nil, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			old := stored(t, pods, newPod("web"))
			pod := old.DeepCopy()
			c.mutate(pod)
			errs := update(t, pods, pod, old)
			expectErrors(t, errs, c.want...)
			if pod.Generation != c.wantGen {
				t.Errorf("generation = %d, want %d", pod.Generation, c.wantGen)
			}
			if pod.Status.Phase != corev1.PodPending {
				t.Errorf("status phase changed through main resource: %s", pod.Status.Phase)
			}
		})
	}
	t.Run("forbidden message", func(t *testing.T) {
		old := stored(t, pods, newPod("web"))
		pod := old.DeepCopy()
		pod.Spec.Containers[0].Args = []string{"-v"}
		expectDetail(t, update(t, pods, pod, old), "spec", "pod updates may not change fields other than `spec.containers[*].image`")
	})
}

func TestPodStatusUpdate(t *testing.T) {
	pods := resourceFor(t, "", "pods")
	old := stored(t, pods, newPod("web"))
	old.Spec.NodeName = "n1"
	old.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "rs", UID: "u"}}
	old.Status.ObservedGeneration = 1

	pod := old.DeepCopy()
	pod.Spec.NodeName = "n2"
	pod.OwnerReferences = nil
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIPs: []corev1.PodIP{{IP: "10.0.0.5"}}}
	expectErrors(t, updateStatus(t, pods, pod, old))
	if pod.Spec.NodeName != "n1" || len(pod.OwnerReferences) != 1 {
		t.Errorf("status update changed spec or ownerReferences: %q %v", pod.Spec.NodeName, pod.OwnerReferences)
	}
	if pod.Status.QOSClass != corev1.PodQOSBestEffort || pod.Status.ObservedGeneration != 1 {
		t.Errorf("qosClass/observedGeneration not preserved: %q %d", pod.Status.QOSClass, pod.Status.ObservedGeneration)
	}
	if pod.Generation != 1 {
		t.Errorf("status update bumped generation to %d", pod.Generation)
	}

	terminal := pod.DeepCopy()
	terminal.Status.Phase = corev1.PodSucceeded
	back := terminal.DeepCopy()
	back.Status.Phase = corev1.PodRunning
	expectErrors(t, updateStatus(t, pods, back, terminal), "FieldValueForbidden status.phase")

	badIP := pod.DeepCopy()
	badIP.Status.PodIPs = []corev1.PodIP{{IP: "not-an-ip"}}
	expectErrors(t, updateStatus(t, pods, badIP, pod), "FieldValueInvalid status.podIPs[0].ip")
}

func TestPodGracefulDelete(t *testing.T) {
	strategy := newPodStrategy()
	cases := []struct {
		name      string
		nodeName  string
		phase     corev1.PodPhase
		requested *int64
		wantGrace int64
		wantMark  bool
	}{
		{"scheduled uses spec", "n1", corev1.PodRunning, nil, 30, true},
		{"scheduled request wins", "n1", corev1.PodRunning, ptr.To[int64](5), 5, true},
		{"zero means now", "n1", corev1.PodRunning, ptr.To[int64](0), 0, false},
		{"negative becomes 1", "n1", corev1.PodRunning, ptr.To[int64](-3), 1, true},
		{"unscheduled is immediate", "", corev1.PodPending, nil, 0, false},
		{"succeeded is immediate", "n1", corev1.PodSucceeded, nil, 0, false},
		{"failed is immediate", "n1", corev1.PodFailed, ptr.To[int64](10), 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pod := newPod("p")
			strategy.Default(pod)
			pod.Spec.NodeName = c.nodeName
			pod.Status.Phase = c.phase
			opts := &metav1.DeleteOptions{GracePeriodSeconds: c.requested}
			mark := strategy.CheckGracefulDelete(context.Background(), pod, opts)
			if mark != c.wantMark || opts.GracePeriodSeconds == nil || *opts.GracePeriodSeconds != c.wantGrace {
				t.Errorf("got mark=%v grace=%v, want %v %d", mark, opts.GracePeriodSeconds, c.wantMark, c.wantGrace)
			}
		})
	}
	if strategy.CheckGracefulDelete(context.Background(), newPod("p"), nil) {
		t.Error("nil options should not be graceful")
	}
}

func TestPodSelectableFields(t *testing.T) {
	pods := resourceFor(t, "", "pods")
	pod := stored(t, pods, newPod("web"))
	pod.Spec.NodeName = "n1"
	pod.Status.PodIPs = []corev1.PodIP{{IP: "10.0.0.9"}}
	_, f, err := pods.Strategy.GetAttrs(pod)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"metadata.name": "web", "metadata.namespace": "default", "spec.nodeName": "n1",
		"spec.restartPolicy": "Always", "spec.schedulerName": "default-scheduler",
		"spec.serviceAccountName": "", "spec.hostNetwork": "false", "status.phase": "Pending",
		"status.podIP": "10.0.0.9", "status.nominatedNodeName": "",
	}
	for k, v := range want {
		if got, ok := f[k]; !ok || got != v {
			t.Errorf("field %s = %q (present %v), want %q", k, got, ok, v)
		}
	}
	if len(f) != len(want) {
		t.Errorf("fields = %v, want exactly %v", f, want)
	}
}

func TestImageTag(t *testing.T) {
	for image, want := range map[string]string{
		"nginx":                          "latest",
		"nginx:1.2":                      "1.2",
		"localhost:5000/nginx":           "latest",
		"localhost:5000/nginx:v1":        "v1",
		"nginx@sha256:abc":               "",
		"nginx:1.2@sha256:abc":           "1.2",
		"docker.io/library/nginx:latest": "latest",
	} {
		if got := imageTag(image); got != want {
			t.Errorf("imageTag(%q) = %q, want %q", image, got, want)
		}
	}
	if !strings.Contains(updatablePodSpecFields, "spec.tolerations") {
		t.Error("updatable field list lost tolerations")
	}
}
