package registry

import (
	"testing"

	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

func newPDB(name string) *policyv1.PodDisruptionBudget {
	return &policyv1.PodDisruptionBudget{
		ObjectMeta: objectMeta(name),
		Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: ptr.To(intstr.FromInt32(2)),
			Selector:     &metav1.LabelSelector{MatchLabels: appLabels},
		},
	}
}

func TestPodDisruptionBudgetValidation(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*policyv1.PodDisruptionBudget)
		want   []string
	}{
		{"valid", func(*policyv1.PodDisruptionBudget) {}, nil},
		{"percent", func(p *policyv1.PodDisruptionBudget) { p.Spec.MinAvailable = ptr.To(intstr.FromString("50%")) }, nil},
		{"empty selector selects all", func(p *policyv1.PodDisruptionBudget) { p.Spec.Selector = &metav1.LabelSelector{} }, nil},
		{"both bounds", func(p *policyv1.PodDisruptionBudget) { p.Spec.MaxUnavailable = ptr.To(intstr.FromInt32(1)) },
			[]string{"FieldValueInvalid spec"}},
		{"negative minAvailable", func(p *policyv1.PodDisruptionBudget) { p.Spec.MinAvailable = ptr.To(intstr.FromInt32(-1)) },
			[]string{"FieldValueInvalid spec.minAvailable"}},
		{"over 100%", func(p *policyv1.PodDisruptionBudget) {
			p.Spec.MinAvailable = nil
			p.Spec.MaxUnavailable = ptr.To(intstr.FromString("120%"))
		}, []string{"FieldValueInvalid spec.maxUnavailable"}},
		{"bad percent", func(p *policyv1.PodDisruptionBudget) { p.Spec.MinAvailable = ptr.To(intstr.FromString("half")) },
			[]string{"FieldValueInvalid spec.minAvailable"}},
		{"bad selector", func(p *policyv1.PodDisruptionBudget) {
			p.Spec.Selector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Near"}}}
		}, []string{"FieldValueInvalid spec.selector.matchExpressions[0].operator"}},
		{"empty eviction policy", func(p *policyv1.PodDisruptionBudget) {
			p.Spec.UnhealthyPodEvictionPolicy = ptr.To(policyv1.UnhealthyPodEvictionPolicyType(""))
		}, []string{"FieldValueNotSupported spec.unhealthyPodEvictionPolicy"}},
		{"AlwaysAllow", func(p *policyv1.PodDisruptionBudget) {
			p.Spec.UnhealthyPodEvictionPolicy = ptr.To(policyv1.AlwaysAllow)
		}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pdb := newPDB("web")
			c.mutate(pdb)
			expectErrors(t, create(t, resourceFor(t, "policy", "poddisruptionbudgets"), pdb), c.want...)
		})
	}
}

func TestPodDisruptionBudgetUpdate(t *testing.T) {
	pdbs := resourceFor(t, "policy", "poddisruptionbudgets")
	old := stored(t, pdbs, newPDB("web"))
	old.Status.DisruptionsAllowed = 1

	spec := old.DeepCopy()
	spec.Spec.MinAvailable = ptr.To(intstr.FromInt32(3))
	spec.Status.DisruptionsAllowed = 5
	expectErrors(t, update(t, pdbs, spec, old))
	if spec.Generation != 2 || spec.Status.DisruptionsAllowed != 1 {
		t.Errorf("spec update: generation %d, disruptionsAllowed %d; want 2 and the stored 1", spec.Generation, spec.Status.DisruptionsAllowed)
	}

	status := old.DeepCopy()
	status.Spec.MinAvailable = ptr.To(intstr.FromInt32(9))
	status.Status.DisruptionsAllowed = 2
	status.Status.DisruptedPods = map[string]metav1.Time{"web-1": metav1.Now()}
	expectErrors(t, updateStatus(t, pdbs, status, old))
	if status.Spec.MinAvailable.IntValue() != 2 || status.Generation != 1 || status.Status.DisruptionsAllowed != 2 {
		t.Errorf("status update kept %v, generation %d, disruptionsAllowed %d", status.Spec.MinAvailable, status.Generation, status.Status.DisruptionsAllowed)
	}

	negative := old.DeepCopy()
	negative.Status.CurrentHealthy = -1
	expectErrors(t, updateStatus(t, pdbs, negative, old), "FieldValueInvalid status.currentHealthy")
}
