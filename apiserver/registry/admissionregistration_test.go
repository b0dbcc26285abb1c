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
