package validatingadmissionpolicystatus_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	ctrl "sigs.k8s.io/controller-runtime"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"tower.dev/tower/controllers/validatingadmissionpolicystatus"
	"tower.dev/tower/test/framework"
)

// TestTypeChecking: the controller checks each policy generation against
// the matched kind's schema and reports type errors in
// status.typeChecking.
func TestTypeChecking(t *testing.T) {
	ctrl.SetLogger(logr.Discard())
	cp := framework.Start(t)
	ctx := t.Context()
	policies := cp.Clientset().AdmissionregistrationV1().ValidatingAdmissionPolicies()

	mgr, err := ctrl.NewManager(cp.Config, ctrl.Options{Logger: logr.Discard(), Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := validatingadmissionpolicystatus.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	framework.RunManager(t, mgr)

	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "replicas"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"deployments"}},
				},
			}}},
			Validations: []admissionregistrationv1.Validation{{Expression: "object.spec.replicas <= 5"}},
		},
	}
	if _, err := policies.Create(ctx, policy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	checked := waitForChecked(t, policies.Get, 1)
	if warnings := checked.Status.TypeChecking.ExpressionWarnings; len(warnings) != 0 {
		t.Errorf("a well-typed policy got warnings %+v", warnings)
	}

	// Comparing the replica count with a string compiles (the policy is
	// stored) but does not type-check against Deployment's schema.
	checked.Spec.Validations[0].Expression = "object.spec.replicas == 'five'"
	if _, err := policies.Update(ctx, checked, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	checked = waitForChecked(t, policies.Get, 2)
	warnings := checked.Status.TypeChecking.ExpressionWarnings
	if len(warnings) != 1 || warnings[0].FieldRef != "spec.validations[0].expression" ||
		!strings.Contains(warnings[0].Warning, "apps/v1, Kind=Deployment") || !strings.Contains(warnings[0].Warning, "no matching overload") {
		t.Errorf("warnings = %+v, want one for spec.validations[0].expression about Deployment's replicas", warnings)
	}
}

func waitForChecked(t *testing.T, get func(context.Context, string, metav1.GetOptions) (*admissionregistrationv1.ValidatingAdmissionPolicy, error), generation int64) *admissionregistrationv1.ValidatingAdmissionPolicy {
	t.Helper()
	var policy *admissionregistrationv1.ValidatingAdmissionPolicy
	err := wait.PollUntilContextTimeout(t.Context(), 50*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		var err error
		policy, err = get(ctx, "replicas", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return policy.Status.ObservedGeneration == generation && policy.Status.TypeChecking != nil, nil
	})
	if err != nil {
		t.Fatalf("waiting for generation %d to be type-checked: %v", generation, err)
	}
	return policy
}
