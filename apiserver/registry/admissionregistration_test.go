package registry

import (
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func newValidatingWebhookConfiguration(mutate func(*admissionregistrationv1.ValidatingWebhook)) *admissionregistrationv1.ValidatingWebhookConfiguration {
	url := "https://127.0.0.1:9443/validate"
	none := admissionregistrationv1.SideEffectClassNone
	hook := admissionregistrationv1.ValidatingWebhook{
		Name:         "check.example.com",
		ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url},
		Rules: []admissionregistrationv1.RuleWithOperations{{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
			Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}},
		}},
		SideEffects:             &none,
		AdmissionReviewVersions: []string{"v1"},
	}
	if mutate != nil {
		mutate(&hook)
	}
	return &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "checks"},
		Webhooks:   []admissionregistrationv1.ValidatingWebhook{hook},
	}
}

func TestWebhookConfigurationDefaults(t *testing.T) {
	r := resourceFor(t, "admissionregistration.k8s.io", "validatingwebhookconfigurations")
	cfg := stored(t, r, newValidatingWebhookConfiguration(func(h *admissionregistrationv1.ValidatingWebhook) {
		h.ClientConfig = admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{Namespace: "system", Name: "hooks"}}
	}))
	h := cfg.Webhooks[0]
	if *h.FailurePolicy != admissionregistrationv1.Fail || *h.MatchPolicy != admissionregistrationv1.Equivalent || *h.TimeoutSeconds != 10 ||
		h.NamespaceSelector == nil || h.ObjectSelector == nil || *h.Rules[0].Scope != admissionregistrationv1.AllScopes ||
		*h.ClientConfig.Service.Port != 443 || cfg.Generation != 1 {
		t.Errorf("defaults not applied as upstream: %+v", h)
	}
}

func TestWebhookConfigurationValidation(t *testing.T) {
	r := resourceFor(t, "admissionregistration.k8s.io", "validatingwebhookconfigurations")
	some := admissionregistrationv1.SideEffectClassSome
	http := "http://127.0.0.1/validate"
	tooLong := int32(31)
	cases := []struct {
		name   string
		mutate func(*admissionregistrationv1.ValidatingWebhook)
		want   []string
	}{
		{"valid", func(*admissionregistrationv1.ValidatingWebhook) {}, nil},
		{"short name", func(h *admissionregistrationv1.ValidatingWebhook) { h.Name = "check" }, []string{"FieldValueInvalid webhooks[0].name"}},
		{"side effects Some", func(h *admissionregistrationv1.ValidatingWebhook) { h.SideEffects = &some }, []string{"FieldValueNotSupported webhooks[0].sideEffects"}},
		{"no side effects", func(h *admissionregistrationv1.ValidatingWebhook) { h.SideEffects = nil }, []string{"FieldValueRequired webhooks[0].sideEffects"}},
		{"plain http", func(h *admissionregistrationv1.ValidatingWebhook) { h.ClientConfig.URL = &http }, []string{"FieldValueInvalid webhooks[0].clientConfig.url"}},
		{"no client", func(h *admissionregistrationv1.ValidatingWebhook) { h.ClientConfig.URL = nil }, []string{"FieldValueRequired webhooks[0].clientConfig"}},
		{"timeout", func(h *admissionregistrationv1.ValidatingWebhook) { h.TimeoutSeconds = &tooLong }, []string{"FieldValueInvalid webhooks[0].timeoutSeconds"}},
		{"review versions", func(h *admissionregistrationv1.ValidatingWebhook) { h.AdmissionReviewVersions = []string{"v2"} },
			[]string{"FieldValueInvalid webhooks[0].admissionReviewVersions"}},
		{"wildcard with others", func(h *admissionregistrationv1.ValidatingWebhook) { h.Rules[0].Resources = []string{"*", "pods"} },
			[]string{"FieldValueInvalid webhooks[0].rules[0].resources"}},
		{"duplicate match condition", func(h *admissionregistrationv1.ValidatingWebhook) {
			h.MatchConditions = []admissionregistrationv1.MatchCondition{{Name: "a", Expression: "true"}, {Name: "a", Expression: "true"}}
		}, []string{"FieldValueDuplicate webhooks[0].matchConditions[1].name"}},
		{"match condition with the authorizer", func(h *admissionregistrationv1.ValidatingWebhook) {
			h.MatchConditions = []admissionregistrationv1.MatchCondition{{Name: "a", Expression: "authorizer.group('').resource('pods').check('create').allowed()"}}
		}, nil},
		{"match condition does not compile", func(h *admissionregistrationv1.ValidatingWebhook) {
			h.MatchConditions = []admissionregistrationv1.MatchCondition{{Name: "a", Expression: "object.metadata.name =="}}
		}, []string{"FieldValueInvalid webhooks[0].matchConditions[0].expression"}},
		{"match condition is not a bool", func(h *admissionregistrationv1.ValidatingWebhook) {
			h.MatchConditions = []admissionregistrationv1.MatchCondition{{Name: "a", Expression: "'yes'"}}
		}, []string{"FieldValueInvalid webhooks[0].matchConditions[0].expression"}},
		{"match condition uses params", func(h *admissionregistrationv1.ValidatingWebhook) {
			h.MatchConditions = []admissionregistrationv1.MatchCondition{{Name: "a", Expression: "params != null"}}
		}, []string{"FieldValueInvalid webhooks[0].matchConditions[0].expression"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			expectErrors(t, create(t, r, newValidatingWebhookConfiguration(tc.mutate)), tc.want...)
		})
	}
}

func TestValidatingAdmissionPolicyBindingValidation(t *testing.T) {
	r := resourceFor(t, "admissionregistration.k8s.io", "validatingadmissionpolicybindings")
	cases := []struct {
		name    string
		actions []admissionregistrationv1.ValidationAction
		want    []string
	}{
		{"deny", []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}, nil},
		{"none", nil, []string{"FieldValueRequired spec.validationActions"}},
		{"deny and warn", []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny, admissionregistrationv1.Warn},
			[]string{"FieldValueInvalid spec.validationActions"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
				ObjectMeta: metav1.ObjectMeta{Name: "b"},
				Spec:       admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: "p", ValidationActions: tc.actions},
			}
			expectErrors(t, create(t, r, b), tc.want...)
		})
	}
}

func TestValidatingAdmissionPolicyCompilesCEL(t *testing.T) {
	r := resourceFor(t, "admissionregistration.k8s.io", "validatingadmissionpolicies")
	policy := func(mutate func(*admissionregistrationv1.ValidatingAdmissionPolicySpec)) *admissionregistrationv1.ValidatingAdmissionPolicy {
		p := &admissionregistrationv1.ValidatingAdmissionPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "p"},
			Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
				MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
					RuleWithOperations: admissionregistrationv1.RuleWithOperations{
						Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
						Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}},
					},
				}}},
				Variables:   []admissionregistrationv1.Variable{{Name: "keys", Expression: "has(object.data) ? size(object.data) : 0"}},
				Validations: []admissionregistrationv1.Validation{{Expression: "variables.keys < 3", MessageExpression: "'too many keys: ' + string(variables.keys)"}},
			},
		}
		if mutate != nil {
			mutate(&p.Spec)
		}
		return p
	}
	cases := []struct {
		name   string
		mutate func(*admissionregistrationv1.ValidatingAdmissionPolicySpec)
		want   []string
	}{
		{"valid", nil, nil},
		{"syntax error", func(s *admissionregistrationv1.ValidatingAdmissionPolicySpec) {
			s.Validations[0].Expression = "variables.keys <"
		},
			[]string{"FieldValueInvalid spec.validations[0].expression"}},
		{"unknown variable", func(s *admissionregistrationv1.ValidatingAdmissionPolicySpec) {
			s.Validations[0].Expression = "variables.other < 3"
		},
			[]string{"FieldValueInvalid spec.validations[0].expression"}},
		{"params without paramKind", func(s *admissionregistrationv1.ValidatingAdmissionPolicySpec) {
			s.Validations[0].Expression = "params.data.max == '1'"
		},
			[]string{"FieldValueInvalid spec.validations[0].expression"}},
		{"params with paramKind", func(s *admissionregistrationv1.ValidatingAdmissionPolicySpec) {
			s.ParamKind = &admissionregistrationv1.ParamKind{APIVersion: "v1", Kind: "ConfigMap"}
			s.Validations[0].Expression = "params != null"
		}, nil},
		{"message expression not a string", func(s *admissionregistrationv1.ValidatingAdmissionPolicySpec) {
			s.Validations[0].MessageExpression = "variables.keys"
		},
			[]string{"FieldValueInvalid spec.validations[0].messageExpression"}},
		{"message expression with the authorizer", func(s *admissionregistrationv1.ValidatingAdmissionPolicySpec) {
			s.Validations[0].MessageExpression = "authorizer.group('').resource('pods').check('get').reason()"
		}, []string{"FieldValueInvalid spec.validations[0].messageExpression"}},
		{"variable error", func(s *admissionregistrationv1.ValidatingAdmissionPolicySpec) { s.Variables[0].Expression = "object.(" },
			[]string{"FieldValueInvalid spec.variables[0].expression"}},
		{"match condition", func(s *admissionregistrationv1.ValidatingAdmissionPolicySpec) {
			s.MatchConditions = []admissionregistrationv1.MatchCondition{{Name: "a", Expression: "request.userInfo.username"}}
		}, []string{"FieldValueInvalid spec.matchConditions[0].expression"}},
		{"audit annotation", func(s *admissionregistrationv1.ValidatingAdmissionPolicySpec) {
			s.AuditAnnotations = []admissionregistrationv1.AuditAnnotation{{Key: "k", ValueExpression: "1"}}
		}, []string{"FieldValueInvalid spec.auditAnnotations[0].valueExpression"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			expectErrors(t, create(t, r, policy(tc.mutate)), tc.want...)
		})
	}
	errs := create(t, r, policy(func(s *admissionregistrationv1.ValidatingAdmissionPolicySpec) {
		s.Validations[0].Expression = "variables.keys <"
	}))
	expectDetail(t, errs, "spec.validations[0].expression", "compilation failed")
}
