package registry

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

func TestDeploymentDefaults(t *testing.T) {
	d := newDeployment("web")
	if errs := create(t, resourceFor(t, "apps", "deployments"), d); len(errs) > 0 {
		t.Fatal(errs.ToAggregate())
	}
	ru := d.Spec.Strategy.RollingUpdate
	checks := []struct {
		name      string
		got, want any
	}{
		{"replicas", *d.Spec.Replicas, int32(1)},
		{"strategy", d.Spec.Strategy.Type, appsv1.RollingUpdateDeploymentStrategyType},
		{"maxUnavailable", ru.MaxUnavailable.String(), "25%"},
		{"maxSurge", ru.MaxSurge.String(), "25%"},
		{"revisionHistoryLimit", *d.Spec.RevisionHistoryLimit, int32(10)},
		{"progressDeadlineSeconds", *d.Spec.ProgressDeadlineSeconds, int32(600)},
		{"template restartPolicy", d.Spec.Template.Spec.RestartPolicy, corev1.RestartPolicyAlways},
		{"template pull policy", d.Spec.Template.Spec.Containers[0].ImagePullPolicy, corev1.PullAlways},
		{"template has no pod-only defaults", d.Spec.Template.Spec.EnableServiceLinks == nil, true},
		{"generation", d.Generation, int64(1)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestWorkloadDefaults(t *testing.T) {
	ss := &appsv1.StatefulSet{ObjectMeta: objectMeta("db"), Spec: appsv1.StatefulSetSpec{
		Selector: &metav1.LabelSelector{MatchLabels: appLabels}, Template: podTemplate(appLabels),
		VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{ObjectMeta: metav1.ObjectMeta{Name: "data"},
			Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}}}},
	}}
	if errs := create(t, resourceFor(t, "apps", "statefulsets"), ss); len(errs) > 0 {
		t.Fatal(errs.ToAggregate())
	}
	ds := &appsv1.DaemonSet{ObjectMeta: objectMeta("agent"), Spec: appsv1.DaemonSetSpec{
		Selector: &metav1.LabelSelector{MatchLabels: appLabels}, Template: podTemplate(appLabels),
	}}
	if errs := create(t, resourceFor(t, "apps", "daemonsets"), ds); len(errs) > 0 {
		t.Fatal(errs.ToAggregate())
	}
	rs := &appsv1.ReplicaSet{ObjectMeta: objectMeta("web-1"), Spec: appsv1.ReplicaSetSpec{
		Selector: &metav1.LabelSelector{MatchLabels: appLabels}, Template: podTemplate(appLabels),
	}}
	if errs := create(t, resourceFor(t, "apps", "replicasets"), rs); len(errs) > 0 {
		t.Fatal(errs.ToAggregate())
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"sts replicas", *ss.Spec.Replicas, int32(1)},
		{"sts podManagementPolicy", ss.Spec.PodManagementPolicy, appsv1.OrderedReadyPodManagement},
		{"sts updateStrategy", ss.Spec.UpdateStrategy.Type, appsv1.RollingUpdateStatefulSetStrategyType},
		{"sts partition", *ss.Spec.UpdateStrategy.RollingUpdate.Partition, int32(0)},
		{"sts maxUnavailable", ss.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable.String(), "1"},
		{"sts revisionHistoryLimit", *ss.Spec.RevisionHistoryLimit, int32(10)},
		{"sts pvc retention", ss.Spec.PersistentVolumeClaimRetentionPolicy.WhenDeleted, appsv1.RetainPersistentVolumeClaimRetentionPolicyType},
		{"sts pvc volumeMode", *ss.Spec.VolumeClaimTemplates[0].Spec.VolumeMode, corev1.PersistentVolumeFilesystem},
		{"sts pvc phase", ss.Spec.VolumeClaimTemplates[0].Status.Phase, corev1.ClaimPending},
		{"sts generation", ss.Generation, int64(1)},
		{"ds updateStrategy", ds.Spec.UpdateStrategy.Type, appsv1.RollingUpdateDaemonSetStrategyType},
		{"ds maxUnavailable", ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable.String(), "1"},
		{"ds maxSurge", ds.Spec.UpdateStrategy.RollingUpdate.MaxSurge.String(), "0"},
		{"ds revisionHistoryLimit", *ds.Spec.RevisionHistoryLimit, int32(10)},
		{"rs replicas", *rs.Spec.Replicas, int32(1)},
		{"rs template dnsPolicy", rs.Spec.Template.Spec.DNSPolicy, corev1.DNSClusterFirst},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestDeploymentValidation(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*appsv1.Deployment)
		want   []string
	}{
		{"valid", func(*appsv1.Deployment) {}, nil},
		{"selector mismatch", func(d *appsv1.Deployment) { d.Spec.Template.Labels = map[string]string{"app": "other"} },
			[]string{"FieldValueInvalid spec.template.metadata.labels"}},
		{"missing selector", func(d *appsv1.Deployment) { d.Spec.Selector = nil }, []string{"FieldValueRequired spec.selector"}},
		{"empty selector", func(d *appsv1.Deployment) { d.Spec.Selector = &metav1.LabelSelector{} }, []string{"FieldValueInvalid spec.selector"}},
		{"negative replicas", func(d *appsv1.Deployment) { d.Spec.Replicas = ptr.To[int32](-1) }, []string{"FieldValueInvalid spec.replicas"}},
		{"restartPolicy Never", func(d *appsv1.Deployment) { d.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyNever },
			[]string{"FieldValueNotSupported spec.template.spec.restartPolicy"}},
		{"missing image", func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "" },
			[]string{"FieldValueRequired spec.template.spec.containers[0].image"}},
		{"both bounds zero", func(d *appsv1.Deployment) {
			zero := intstr.FromInt32(0)
			d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxUnavailable: &zero, MaxSurge: &zero}}
		}, []string{"FieldValueInvalid spec.strategy.rollingUpdate.maxUnavailable"}},
		{"recreate with rollingUpdate", func(d *appsv1.Deployment) {
			d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{}}
		}, []string{"FieldValueForbidden spec.strategy.rollingUpdate"}},
		{"bad template label", func(d *appsv1.Deployment) {
			d.Spec.Template.Labels = map[string]string{"app": "web", "bad key!": "x"}
		}, []string{"FieldValueInvalid spec.template.metadata.labels"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := newDeployment("web")
			c.mutate(d)
			expectErrors(t, create(t, resourceFor(t, "apps", "deployments"), d), c.want...)
		})
	}
	t.Run("mismatch message", func(t *testing.T) {
		d := newDeployment("web")
		d.Spec.Template.Labels = map[string]string{"app": "other"}
		expectDetail(t, create(t, resourceFor(t, "apps", "deployments"), d), "spec.template.metadata.labels", "`selector` does not match template `labels`")
	})
}

func TestDeploymentUpdate(t *testing.T) {
	deployments := resourceFor(t, "apps", "deployments")
	cases := []struct {
		name    string
		mutate  func(*appsv1.Deployment)
		want    []string
		wantGen int64
	}{
		{"no change", func(*appsv1.Deployment) {}, nil, 1},
		{"label change", func(d *appsv1.Deployment) { d.Labels = map[string]string{"x": "y"} }, nil, 1},
		{"annotation change", func(d *appsv1.Deployment) { d.Annotations = map[string]string{"x": "y"} }, nil, 2},
		{"scale", func(d *appsv1.Deployment) { d.Spec.Replicas = ptr.To[int32](3) }, nil, 2},
		{"status ignored", func(d *appsv1.Deployment) { d.Status.Replicas = 5 }, nil, 1},
		{"selector change", func(d *appsv1.Deployment) {
			d.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web", "tier": "x"}}
			d.Spec.Template.Labels = map[string]string{"app": "web", "tier": "x"}
		}, []string{"FieldValueInvalid spec.selector"}, 2},
		{"name change", func(d *appsv1.Deployment) { d.Name = "other" }, []string{"FieldValueInvalid metadata.name"}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			old := stored(t, deployments, newDeployment("web"))
			d := old.DeepCopy()
			c.mutate(d)
			expectErrors(t, update(t, deployments, d, old), c.want...)
			if d.Generation != c.wantGen {
				t.Errorf("generation = %d, want %d", d.Generation, c.wantGen)
			}
			if d.Status.Replicas != 0 {
				t.Errorf("status changed through main resource")
			}
		})
	}
}

func TestDeploymentStatusUpdate(t *testing.T) {
	deployments := resourceFor(t, "apps", "deployments")
	old := stored(t, deployments, newDeployment("web"))
	d := old.DeepCopy()
	d.Spec.Replicas = ptr.To[int32](7)
	d.Labels = map[string]string{"sneaky": "yes"}
	d.Status = appsv1.DeploymentStatus{Replicas: 1, ObservedGeneration: 1}
	expectErrors(t, updateStatus(t, deployments, d, old))
	if *d.Spec.Replicas != 1 || d.Labels != nil || d.Status.Replicas != 1 || d.Generation != 1 {
		t.Errorf("status update: replicas=%d labels=%v status=%d generation=%d", *d.Spec.Replicas, d.Labels, d.Status.Replicas, d.Generation)
	}
	bad := old.DeepCopy()
	bad.Status.Replicas = -1
	expectErrors(t, updateStatus(t, deployments, bad, old), "FieldValueInvalid status.replicas")
}

func TestStatefulSetUpdate(t *testing.T) {
	statefulsets := resourceFor(t, "apps", "statefulsets")
	newSS := func() *appsv1.StatefulSet {
		return &appsv1.StatefulSet{ObjectMeta: objectMeta("db"), Spec: appsv1.StatefulSetSpec{
			ServiceName: "db", Selector: &metav1.LabelSelector{MatchLabels: appLabels}, Template: podTemplate(appLabels),
		}}
	}
	cases := []struct {
		name   string
		mutate func(*appsv1.StatefulSet)
		want   []string
	}{
		{"scale", func(s *appsv1.StatefulSet) { s.Spec.Replicas = ptr.To[int32](3) }, nil},
		{"template image", func(s *appsv1.StatefulSet) { s.Spec.Template.Spec.Containers[0].Image = "nginx:2" }, nil},
		{"service name", func(s *appsv1.StatefulSet) { s.Spec.ServiceName = "other" }, []string{"FieldValueForbidden spec"}},
		{"volume claim templates", func(s *appsv1.StatefulSet) {
			s.Spec.VolumeClaimTemplates = []corev1.PersistentVolumeClaim{{ObjectMeta: metav1.ObjectMeta{Name: "d"},
				Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}}}}
		}, []string{"FieldValueForbidden spec"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			old := stored(t, statefulsets, newSS())
			s := old.DeepCopy()
			c.mutate(s)
			expectErrors(t, update(t, statefulsets, s, old), c.want...)
		})
	}
}

func TestReplicaSetAndDaemonSetRules(t *testing.T) {
	replicasets := resourceFor(t, "apps", "replicasets")
	rs := stored(t, replicasets, &appsv1.ReplicaSet{ObjectMeta: objectMeta("web-1"), Spec: appsv1.ReplicaSetSpec{
		Selector: &metav1.LabelSelector{MatchLabels: appLabels}, Template: podTemplate(appLabels),
	}})
	rs.Status.Replicas = 3
	_, f, err := replicasets.Strategy.GetAttrs(rs)
	if err != nil || f["status.replicas"] != "3" {
		t.Errorf("replicaset fields = %v, %v", f, err)
	}
	changed := rs.DeepCopy()
	changed.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}}
	changed.Spec.Template.Labels = map[string]string{"app": "x"}
	expectErrors(t, update(t, replicasets, changed, rs), "FieldValueInvalid spec.selector")

	daemonsets := resourceFor(t, "apps", "daemonsets")
	ds := &appsv1.DaemonSet{ObjectMeta: objectMeta("agent"), Spec: appsv1.DaemonSetSpec{
		Selector: &metav1.LabelSelector{MatchLabels: appLabels}, Template: podTemplate(map[string]string{"app": "nope"}),
	}}
	expectErrors(t, create(t, daemonsets, ds), "FieldValueInvalid spec.template.metadata.labels")
}
