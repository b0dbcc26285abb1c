package registry

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var admissionRegistrationV1 = admissionregistrationv1.SchemeGroupVersion

// admissionRegistrationSpecs are the admissionregistration.k8s.io/v1
// resources: webhook configurations and validating admission policies.
func admissionRegistrationSpecs() []spec {
	cluster := objectStrategy{}
	cel := &admissionCEL{}
	return []spec{
		{gv: admissionRegistrationV1, resource: "mutatingwebhookconfigurations", kind: "MutatingWebhookConfiguration", categories: []string{"api-extensions"},
			prefix:   "/registry/mutatingwebhookconfigurations",
			newObj:   func() runtime.Object { return &admissionregistrationv1.MutatingWebhookConfiguration{} },
			newList:  func() runtime.Object { return &admissionregistrationv1.MutatingWebhookConfigurationList{} },
			strategy: webhookConfigurationStrategy{cluster, cel}},
		{gv: admissionRegistrationV1, resource: "validatingwebhookconfigurations", kind: "ValidatingWebhookConfiguration", categories: []string{"api-extensions"},
			prefix:   "/registry/validatingwebhookconfigurations",
			newObj:   func() runtime.Object { return &admissionregistrationv1.ValidatingWebhookConfiguration{} },
			newList:  func() runtime.Object { return &admissionregistrationv1.ValidatingWebhookConfigurationList{} },
			strategy: webhookConfigurationStrategy{cluster, cel}},
		{gv: admissionRegistrationV1, resource: "validatingadmissionpolicies", kind: "ValidatingAdmissionPolicy", categories: []string{"api-extensions"},
			prefix:   "/registry/validatingadmissionpolicies",
			newObj:   func() runtime.Object { return &admissionregistrationv1.ValidatingAdmissionPolicy{} },
			newList:  func() runtime.Object { return &admissionregistrationv1.ValidatingAdmissionPolicyList{} },
			strategy: validatingAdmissionPolicyStrategy{objectStrategy{tracksGeneration: true}, cel}, status: statusStrategy{}},
		{gv: admissionRegistrationV1, resource: "validatingadmissionpolicybindings", kind: "ValidatingAdmissionPolicyBinding", categories: []string{"api-extensions"},
			prefix:   "/registry/validatingadmissionpolicybindings",
			newObj:   func() runtime.Object { return &admissionregistrationv1.ValidatingAdmissionPolicyBinding{} },
			newList:  func() runtime.Object { return &admissionregistrationv1.ValidatingAdmissionPolicyBindingList{} },
			strategy: validatingAdmissionPolicyBindingStrategy{objectStrategy{tracksGeneration: true}}},
	}
}

// Upstream's defaults for admissionregistration.k8s.io/v1.
const (
	defaultWebhookTimeoutSeconds = int32(10)
	defaultServicePort           = int32(443)
	maxWebhookTimeoutSeconds     = 30
	maxMatchConditions           = 64
)

func defaultRules(rules []admissionregistrationv1.RuleWithOperations) {
	for i := range rules {
		if rules[i].Scope == nil {
			scope := admissionregistrationv1.AllScopes
			rules[i].Scope = &scope
		}
	}
}

func defaultNamedRules(rules []admissionregistrationv1.NamedRuleWithOperations) {
	for i := range rules {
		if rules[i].Scope == nil {
			scope := admissionregistrationv1.AllScopes
			rules[i].Scope = &scope
		}
	}
}

func defaultSelector(s **metav1.LabelSelector) {
	if *s == nil {
		*s = &metav1.LabelSelector{}
	}
}

func defaultClientConfig(c *admissionregistrationv1.WebhookClientConfig) {
	if c.Service != nil && c.Service.Port == nil {
		port := defaultServicePort
		c.Service.Port = &port
	}
}

func defaultWebhookCommon(failure **admissionregistrationv1.FailurePolicyType, match **admissionregistrationv1.MatchPolicyType,
	nsSel, objSel **metav1.LabelSelector, timeout **int32, rules []admissionregistrationv1.RuleWithOperations, client *admissionregistrationv1.WebhookClientConfig) {
	if *failure == nil {
		p := admissionregistrationv1.Fail
		*failure = &p
	}
	if *match == nil {
		p := admissionregistrationv1.Equivalent
		*match = &p
	}
	defaultSelector(nsSel)
	defaultSelector(objSel)
	if *timeout == nil {
		t := defaultWebhookTimeoutSeconds
		*timeout = &t
	}
	defaultRules(rules)
	defaultClientConfig(client)
}

// webhookFields are the fields the two webhook types share, for validation.
type webhookFields struct {
	name                    string
	client                  admissionregistrationv1.WebhookClientConfig
	rules                   []admissionregistrationv1.RuleWithOperations
	failurePolicy           *admissionregistrationv1.FailurePolicyType
	matchPolicy             *admissionregistrationv1.MatchPolicyType
	namespaceSelector       *metav1.LabelSelector
	objectSelector          *metav1.LabelSelector
	sideEffects             *admissionregistrationv1.SideEffectClass
	timeoutSeconds          *int32
	admissionReviewVersions []string
	matchConditions         []admissionregistrationv1.MatchCondition
}

// webhookConfigurationStrategy serves both webhook configuration kinds.
// They have no status and no spec: generation moves with any change of the
// webhooks.
type webhookConfigurationStrategy struct {
	objectStrategy
	cel *admissionCEL
}

func (webhookConfigurationStrategy) Default(obj runtime.Object) {
	switch c := obj.(type) {
	case *admissionregistrationv1.MutatingWebhookConfiguration:
		for i := range c.Webhooks {
			h := &c.Webhooks[i]
			defaultWebhookCommon(&h.FailurePolicy, &h.MatchPolicy, &h.NamespaceSelector, &h.ObjectSelector, &h.TimeoutSeconds, h.Rules, &h.ClientConfig)
			if h.ReinvocationPolicy == nil {
				p := admissionregistrationv1.NeverReinvocationPolicy
				h.ReinvocationPolicy = &p
			}
		}
	case *admissionregistrationv1.ValidatingWebhookConfiguration:
		for i := range c.Webhooks {
			h := &c.Webhooks[i]
			defaultWebhookCommon(&h.FailurePolicy, &h.MatchPolicy, &h.NamespaceSelector, &h.ObjectSelector, &h.TimeoutSeconds, h.Rules, &h.ClientConfig)
		}
	}
}

func (webhookConfigurationStrategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	setGeneration(obj, 1)
}

func (webhookConfigurationStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	newMeta, err1 := meta.Accessor(obj)
	oldMeta, err2 := meta.Accessor(old)
	if err1 != nil || err2 != nil {
		return
	}
	bumpGeneration(newMeta, oldMeta, !equality.Semantic.DeepEqual(fieldValue(obj, "Webhooks"), fieldValue(old, "Webhooks")))
}

func (s webhookConfigurationStrategy) Validate(ctx context.Context, obj runtime.Object) field.ErrorList {
	return s.validate(ctx, obj, nil)
}

// validate checks a configuration; stored are the matchConditions
// expressions of the configuration it replaces.
func (s webhookConfigurationStrategy) validate(ctx context.Context, obj runtime.Object, stored sets.Set[string]) field.ErrorList {
	errs := s.objectStrategy.Validate(ctx, obj)
	cel, err := s.cel.check(stored)
	if err != nil {
		return append(errs, err)
	}
	names := sets.New[string]()
	webhooks := field.NewPath("webhooks")
	switch c := obj.(type) {
	case *admissionregistrationv1.MutatingWebhookConfiguration:
		for i, h := range c.Webhooks {
			errs = append(errs, validateWebhook(webhookFields{
				name: h.Name, client: h.ClientConfig, rules: h.Rules, failurePolicy: h.FailurePolicy, matchPolicy: h.MatchPolicy,
				namespaceSelector: h.NamespaceSelector, objectSelector: h.ObjectSelector, sideEffects: h.SideEffects,
				timeoutSeconds: h.TimeoutSeconds, admissionReviewVersions: h.AdmissionReviewVersions, matchConditions: h.MatchConditions,
			}, names, cel, webhooks.Index(i))...)
			if h.ReinvocationPolicy != nil {
				errs = append(errs, validateEnum(*h.ReinvocationPolicy, []admissionregistrationv1.ReinvocationPolicyType{
					admissionregistrationv1.NeverReinvocationPolicy, admissionregistrationv1.IfNeededReinvocationPolicy}, webhooks.Index(i).Child("reinvocationPolicy"))...)
			}
		}
	case *admissionregistrationv1.ValidatingWebhookConfiguration:
		for i, h := range c.Webhooks {
			errs = append(errs, validateWebhook(webhookFields{
				name: h.Name, client: h.ClientConfig, rules: h.Rules, failurePolicy: h.FailurePolicy, matchPolicy: h.MatchPolicy,
				namespaceSelector: h.NamespaceSelector, objectSelector: h.ObjectSelector, sideEffects: h.SideEffects,
				timeoutSeconds: h.TimeoutSeconds, admissionReviewVersions: h.AdmissionReviewVersions, matchConditions: h.MatchConditions,
			}, names, cel, webhooks.Index(i))...)
		}
	}
	return errs
}

func (s webhookConfigurationStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	stored := sets.New[string]()
	switch c := old.(type) {
	case *admissionregistrationv1.MutatingWebhookConfiguration:
		for _, h := range c.Webhooks {
			for _, m := range h.MatchConditions {
				stored.Insert(m.Expression)
			}
		}
	case *admissionregistrationv1.ValidatingWebhookConfiguration:
		for _, h := range c.Webhooks {
			for _, m := range h.MatchConditions {
				stored.Insert(m.Expression)
			}
		}
	}
	return append(validateMetaAccessorUpdate(obj, old), s.validate(ctx, obj, stored)...)
}

func setGeneration(obj runtime.Object, gen int64) {
	if m, err := meta.Accessor(obj); err == nil {
		m.SetGeneration(gen)
	}
}

// validateWebhook applies upstream's checks to one webhook; names collects
// the names seen so far in the configuration.
func validateWebhook(h webhookFields, names sets.Set[string], cel *celCheck, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch {
	case h.name == "":
		errs = append(errs, field.Required(p.Child("name"), ""))
	case names.Has(h.name):
		errs = append(errs, field.Duplicate(p.Child("name"), h.name))
	default:
		errs = append(errs, validateQualifiedWebhookName(h.name, p.Child("name"))...)
	}
	names.Insert(h.name)
	for i, r := range h.rules {
		errs = append(errs, validateRuleWithOperations(r, p.Child("rules").Index(i))...)
	}
	if h.failurePolicy != nil {
		errs = append(errs, validateEnum(*h.failurePolicy, []admissionregistrationv1.FailurePolicyType{admissionregistrationv1.Ignore, admissionregistrationv1.Fail}, p.Child("failurePolicy"))...)
	}
	if h.matchPolicy != nil {
		errs = append(errs, validateEnum(*h.matchPolicy, []admissionregistrationv1.MatchPolicyType{admissionregistrationv1.Exact, admissionregistrationv1.Equivalent}, p.Child("matchPolicy"))...)
	}
	if h.sideEffects == nil {
		errs = append(errs, field.Required(p.Child("sideEffects"), "must specify one of None, NoneOnDryRun"))
	} else {
		errs = append(errs, validateEnum(*h.sideEffects, []admissionregistrationv1.SideEffectClass{admissionregistrationv1.SideEffectClassNone, admissionregistrationv1.SideEffectClassNoneOnDryRun}, p.Child("sideEffects"))...)
	}
	if h.timeoutSeconds != nil && (*h.timeoutSeconds < 1 || *h.timeoutSeconds > maxWebhookTimeoutSeconds) {
		errs = append(errs, field.Invalid(p.Child("timeoutSeconds"), *h.timeoutSeconds, "the timeout value must be between 1 and 30 seconds"))
	}
	errs = append(errs, validateLabelSelector(h.namespaceSelector, p.Child("namespaceSelector"))...)
	errs = append(errs, validateLabelSelector(h.objectSelector, p.Child("objectSelector"))...)
	errs = append(errs, validateAdmissionReviewVersions(h.admissionReviewVersions, p.Child("admissionReviewVersions"))...)
	errs = append(errs, validateWebhookClientConfig(h.client, p.Child("clientConfig"))...)
	errs = append(errs, validateMatchConditions(h.matchConditions, p.Child("matchConditions"))...)
	return append(errs, cel.matchConditions(h.matchConditions, false, p.Child("matchConditions"))...)
}

// validateQualifiedWebhookName: webhook names are domain names with at
// least three segments, as upstream requires.
func validateQualifiedWebhookName(name string, p *field.Path) field.ErrorList {
	errs := invalidEach(p, name, validation.IsDNS1123Subdomain(name))
	if len(strings.Split(name, ".")) < 3 {
		errs = append(errs, field.Invalid(p, name, "should be a domain with at least three segments separated by dots"))
	}
	return errs
}

func validateLabelSelector(s *metav1.LabelSelector, p *field.Path) field.ErrorList {
	if s == nil {
		return nil
	}
	return metav1validation.ValidateLabelSelector(s, metav1validation.LabelSelectorValidationOptions{}, p)
}

var supportedAdmissionReviewVersions = []string{"v1", "v1beta1"}

func validateAdmissionReviewVersions(versions []string, p *field.Path) field.ErrorList {
	if len(versions) == 0 {
		return field.ErrorList{field.Required(p, "must specify one of v1, v1beta1")}
	}
	var errs field.ErrorList
	seen := sets.New[string]()
	known := false
	for i, v := range versions {
		if seen.Has(v) {
			errs = append(errs, field.Invalid(p.Index(i), v, "duplicate version"))
		}
		seen.Insert(v)
		errs = append(errs, invalidEach(p.Index(i), v, validation.IsDNS1035Label(v))...)
		if v == "v1" || v == "v1beta1" {
			known = true
		}
	}
	if !known {
		errs = append(errs, field.Invalid(p, versions, fmt.Sprintf("must include at least one of %v", strings.Join(supportedAdmissionReviewVersions, ", "))))
	}
	return errs
}

func validateWebhookClientConfig(c admissionregistrationv1.WebhookClientConfig, p *field.Path) field.ErrorList {
	switch {
	case c.URL != nil && c.Service != nil:
		return field.ErrorList{field.Required(p, "exactly one of url or service is required")}
	case c.URL != nil:
		return validateWebhookURL(*c.URL, p.Child("url"))
	case c.Service != nil:
		return validateServiceReference(c.Service, p.Child("service"))
	}
	return field.ErrorList{field.Required(p, "exactly one of url or service is required")}
}

func validateWebhookURL(raw string, p *field.Path) field.ErrorList {
	u, err := url.Parse(raw)
	if err != nil {
		return field.ErrorList{field.Invalid(p, raw, "url must be a valid URL: "+err.Error())}
	}
	var errs field.ErrorList
	if u.Scheme != "https" {
		errs = append(errs, field.Invalid(p, u.Scheme, "'https' is the only allowed URL scheme"))
	}
	if u.Host == "" {
		errs = append(errs, field.Invalid(p, u.Host, "host must be specified"))
	}
	if u.User != nil {
		errs = append(errs, field.Invalid(p, u.User.String(), "user information is not permitted in the URL"))
	}
	if u.Fragment != "" || u.RawFragment != "" {
		errs = append(errs, field.Invalid(p, u.Fragment, "fragments are not permitted in the URL"))
	}
	if u.RawQuery != "" {
		errs = append(errs, field.Invalid(p, u.RawQuery, "query parameters are not permitted in the URL"))
	}
	return errs
}

func validateServiceReference(s *admissionregistrationv1.ServiceReference, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if s.Name == "" {
		errs = append(errs, field.Required(p.Child("name"), "service name is required"))
	} else {
		errs = append(errs, validateDNSLabel(s.Name, p.Child("name"))...)
	}
	if s.Namespace == "" {
		errs = append(errs, field.Required(p.Child("namespace"), "service namespace is required"))
	} else {
		errs = append(errs, validateDNSLabel(s.Namespace, p.Child("namespace"))...)
	}
	if s.Path != nil && !strings.HasPrefix(*s.Path, "/") {
		errs = append(errs, field.Invalid(p.Child("path"), *s.Path, "must start with a '/'"))
	}
	if s.Port != nil {
		errs = append(errs, validatePortNumber(*s.Port, p.Child("port"))...)
	}
	return errs
}

var supportedOperations = []admissionregistrationv1.OperationType{
	admissionregistrationv1.OperationAll, admissionregistrationv1.Create, admissionregistrationv1.Update,
	admissionregistrationv1.Delete, admissionregistrationv1.Connect,
}

func validateRuleWithOperations(r admissionregistrationv1.RuleWithOperations, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(r.Operations) == 0 {
		errs = append(errs, field.Required(p.Child("operations"), ""))
	}
	if len(r.Operations) > 1 && hasWildcard(r.Operations) {
		errs = append(errs, field.Invalid(p.Child("operations"), r.Operations, "if '*' is present, must not specify other operations"))
	}
	for i, op := range r.Operations {
		errs = append(errs, validateEnum(op, supportedOperations, p.Child("operations").Index(i))...)
	}
	return append(errs, validateRule(r.Rule, p)...)
}

func hasWildcard[T ~string](values []T) bool {
	for _, v := range values {
		if v == "*" {
			return true
		}
	}
	return false
}

// validateRule checks apiGroups, apiVersions, resources and scope.
func validateRule(r admissionregistrationv1.Rule, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(r.APIGroups) == 0 {
		errs = append(errs, field.Required(p.Child("apiGroups"), ""))
	}
	if len(r.APIGroups) > 1 && hasWildcard(r.APIGroups) {
		errs = append(errs, field.Invalid(p.Child("apiGroups"), r.APIGroups, "if '*' is present, must not specify other API groups"))
	}
	if len(r.APIVersions) == 0 {
		errs = append(errs, field.Required(p.Child("apiVersions"), ""))
	}
	if len(r.APIVersions) > 1 && hasWildcard(r.APIVersions) {
		errs = append(errs, field.Invalid(p.Child("apiVersions"), r.APIVersions, "if '*' is present, must not specify other API versions"))
	}
	for i, v := range r.APIVersions {
		if v == "" {
			errs = append(errs, field.Required(p.Child("apiVersions").Index(i), ""))
		}
	}
	if len(r.Resources) == 0 {
		errs = append(errs, field.Required(p.Child("resources"), ""))
	}
	errs = append(errs, validateRuleResources(r.Resources, p.Child("resources"))...)
	if r.Scope != nil {
		errs = append(errs, validateEnum(*r.Scope, []admissionregistrationv1.ScopeType{
			admissionregistrationv1.ClusterScope, admissionregistrationv1.NamespacedScope, admissionregistrationv1.AllScopes}, p.Child("scope"))...)
	}
	return errs
}

// validateRuleResources: "resource", "resource/sub", "*", "*/sub",
// "resource/*" and "*/*"; a full wildcard excludes everything else, as
// upstream.
func validateRuleResources(resources []string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	seen := sets.New[string]()
	withSub, withoutSub := map[string]bool{}, map[string]bool{}
	for i, r := range resources {
		if r == "" {
			errs = append(errs, field.Required(p.Index(i), ""))
			continue
		}
		if seen.Has(r) {
			errs = append(errs, field.Duplicate(p.Index(i), r))
		}
		seen.Insert(r)
		res, sub, hasSub := strings.Cut(r, "/")
		if hasSub {
			withSub[sub] = true
			if strings.Contains(sub, "/") {
				errs = append(errs, field.Invalid(p.Index(i), r, "resource must be of the form 'resource' or 'resource/subresource'"))
			}
		} else {
			withoutSub[res] = true
		}
	}
	if len(resources) > 1 && (withoutSub["*"] && len(withoutSub) > 1) {
		errs = append(errs, field.Invalid(p, resources, "if '*' is present, must not specify other resources without subresources"))
	}
	if len(resources) > 1 && seen.Has("*/*") {
		errs = append(errs, field.Invalid(p, resources, "if '*/*' is present, must not specify other resources"))
	}
	return errs
}

// validateMatchConditions checks names and the presence of expressions
// (celCheck compiles them).
func validateMatchConditions(conditions []admissionregistrationv1.MatchCondition, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(conditions) > maxMatchConditions {
		errs = append(errs, field.TooMany(p, len(conditions), maxMatchConditions))
	}
	names := sets.New[string]()
	for i, c := range conditions {
		cp := p.Index(i)
		switch {
		case c.Name == "":
			errs = append(errs, field.Required(cp.Child("name"), ""))
		case names.Has(c.Name):
			errs = append(errs, field.Duplicate(cp.Child("name"), c.Name))
		default:
			errs = append(errs, invalidEach(cp.Child("name"), c.Name, validation.IsQualifiedName(c.Name))...)
		}
		names.Insert(c.Name)
		if strings.TrimSpace(c.Expression) == "" {
			errs = append(errs, field.Required(cp.Child("expression"), ""))
		}
	}
	return errs
}

type validatingAdmissionPolicyStrategy struct {
	objectStrategy
	cel *admissionCEL
}

func (validatingAdmissionPolicyStrategy) Default(obj runtime.Object) {
	policy := obj.(*admissionregistrationv1.ValidatingAdmissionPolicy)
	if policy.Spec.FailurePolicy == nil {
		p := admissionregistrationv1.Fail
		policy.Spec.FailurePolicy = &p
	}
	defaultMatchResources(policy.Spec.MatchConstraints)
}

func defaultMatchResources(m *admissionregistrationv1.MatchResources) {
	if m == nil {
		return
	}
	if m.MatchPolicy == nil {
		p := admissionregistrationv1.Equivalent
		m.MatchPolicy = &p
	}
	defaultSelector(&m.NamespaceSelector)
	defaultSelector(&m.ObjectSelector)
	defaultNamedRules(m.ResourceRules)
	defaultNamedRules(m.ExcludeResourceRules)
}

func (s validatingAdmissionPolicyStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return s.validate(obj.(*admissionregistrationv1.ValidatingAdmissionPolicy), nil)
}

// validate checks a policy; stored are the expressions of the policy it
// replaces.
func (s validatingAdmissionPolicyStrategy) validate(policy *admissionregistrationv1.ValidatingAdmissionPolicy, stored sets.Set[string]) field.ErrorList {
	errs := s.validateMeta(&policy.ObjectMeta)
	spec := policy.Spec
	sp := field.NewPath("spec")
	if spec.FailurePolicy != nil {
		errs = append(errs, validateEnum(*spec.FailurePolicy, []admissionregistrationv1.FailurePolicyType{admissionregistrationv1.Ignore, admissionregistrationv1.Fail}, sp.Child("failurePolicy"))...)
	}
	if spec.ParamKind != nil {
		pk := sp.Child("paramKind")
		if spec.ParamKind.APIVersion == "" {
			errs = append(errs, field.Required(pk.Child("apiVersion"), ""))
		}
		if spec.ParamKind.Kind == "" {
			errs = append(errs, field.Required(pk.Child("kind"), ""))
		}
	}
	if spec.MatchConstraints == nil {
		errs = append(errs, field.Required(sp.Child("matchConstraints"), ""))
	} else {
		errs = append(errs, validateMatchResources(spec.MatchConstraints, sp.Child("matchConstraints"))...)
		if len(spec.MatchConstraints.ResourceRules) == 0 {
			errs = append(errs, field.Required(sp.Child("matchConstraints", "resourceRules"), ""))
		}
	}
	if len(spec.Validations) == 0 && len(spec.AuditAnnotations) == 0 {
		errs = append(errs, field.Required(sp.Child("validations"), "validations or auditAnnotations must contain at least one item"))
	}
	for i, v := range spec.Validations {
		vp := sp.Child("validations").Index(i)
		if strings.TrimSpace(v.Expression) == "" {
			errs = append(errs, field.Required(vp.Child("expression"), "expression is not specified"))
		}
		if strings.Contains(v.Message, "\n") {
			errs = append(errs, field.Invalid(vp.Child("message"), v.Message, "message must not contain line breaks"))
		}
		if v.Reason != nil {
			errs = append(errs, validateEnum(*v.Reason, []metav1.StatusReason{metav1.StatusReasonUnauthorized, metav1.StatusReasonForbidden,
				metav1.StatusReasonInvalid, metav1.StatusReasonRequestEntityTooLarge}, vp.Child("reason"))...)
		}
	}
	for i, a := range spec.AuditAnnotations {
		ap := sp.Child("auditAnnotations").Index(i)
		if a.Key == "" {
			errs = append(errs, field.Required(ap.Child("key"), ""))
		}
		if strings.TrimSpace(a.ValueExpression) == "" {
			errs = append(errs, field.Required(ap.Child("valueExpression"), "valueExpression is not specified"))
		}
	}
	errs = append(errs, validateMatchConditions(spec.MatchConditions, sp.Child("matchConditions"))...)
	variables := sets.New[string]()
	for i, v := range spec.Variables {
		vp := sp.Child("variables").Index(i)
		if v.Name == "" {
			errs = append(errs, field.Required(vp.Child("name"), "name is not specified"))
		} else if variables.Has(v.Name) {
			errs = append(errs, field.Duplicate(vp.Child("name"), v.Name))
		}
		variables.Insert(v.Name)
		if strings.TrimSpace(v.Expression) == "" {
			errs = append(errs, field.Required(vp.Child("expression"), "expression is not specified"))
		}
	}
	cel, err := s.cel.check(stored)
	if err != nil {
		return append(errs, err)
	}
	return append(errs, cel.policy(&spec, sp)...)
}

func (s validatingAdmissionPolicyStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	stored := policyExpressions(&old.(*admissionregistrationv1.ValidatingAdmissionPolicy).Spec)
	return append(validateMetaAccessorUpdate(obj, old), s.validate(obj.(*admissionregistrationv1.ValidatingAdmissionPolicy), stored)...)
}

func validateMatchResources(m *admissionregistrationv1.MatchResources, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if m.MatchPolicy != nil {
		errs = append(errs, validateEnum(*m.MatchPolicy, []admissionregistrationv1.MatchPolicyType{admissionregistrationv1.Exact, admissionregistrationv1.Equivalent}, p.Child("matchPolicy"))...)
	}
	errs = append(errs, validateLabelSelector(m.NamespaceSelector, p.Child("namespaceSelector"))...)
	errs = append(errs, validateLabelSelector(m.ObjectSelector, p.Child("objectSelector"))...)
	for i, r := range m.ResourceRules {
		errs = append(errs, validateNamedRule(r, p.Child("resourceRules").Index(i))...)
	}
	for i, r := range m.ExcludeResourceRules {
		errs = append(errs, validateNamedRule(r, p.Child("excludeResourceRules").Index(i))...)
	}
	return errs
}

func validateNamedRule(r admissionregistrationv1.NamedRuleWithOperations, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, name := range r.ResourceNames {
		errs = append(errs, invalidEach(p.Child("resourceNames").Index(i), name, validation.IsDNS1123Subdomain(name))...)
	}
	return append(errs, validateRuleWithOperations(r.RuleWithOperations, p)...)
}

type validatingAdmissionPolicyBindingStrategy struct{ objectStrategy }

func (validatingAdmissionPolicyBindingStrategy) Default(obj runtime.Object) {
	b := obj.(*admissionregistrationv1.ValidatingAdmissionPolicyBinding)
	defaultMatchResources(b.Spec.MatchResources)
	if b.Spec.ParamRef != nil && b.Spec.ParamRef.ParameterNotFoundAction == nil {
		a := admissionregistrationv1.DenyAction
		b.Spec.ParamRef.ParameterNotFoundAction = &a
	}
}

// The binding has no status: objectStrategy's spec-tracked generation and
// status reset fit it as they are.

var supportedValidationActions = []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny, admissionregistrationv1.Warn, admissionregistrationv1.Audit}

func (s validatingAdmissionPolicyBindingStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	b := obj.(*admissionregistrationv1.ValidatingAdmissionPolicyBinding)
	errs := s.validateMeta(&b.ObjectMeta)
	sp := field.NewPath("spec")
	if b.Spec.PolicyName == "" {
		errs = append(errs, field.Required(sp.Child("policyName"), ""))
	} else {
		errs = append(errs, invalidEach(sp.Child("policyName"), b.Spec.PolicyName, validation.IsDNS1123Subdomain(b.Spec.PolicyName))...)
	}
	if b.Spec.MatchResources != nil {
		errs = append(errs, validateMatchResources(b.Spec.MatchResources, sp.Child("matchResources"))...)
	}
	ap := sp.Child("validationActions")
	if len(b.Spec.ValidationActions) == 0 {
		errs = append(errs, field.Required(ap, ""))
	}
	actions := sets.New[admissionregistrationv1.ValidationAction]()
	for i, a := range b.Spec.ValidationActions {
		if actions.Has(a) {
			errs = append(errs, field.Duplicate(ap.Index(i), a))
		}
		actions.Insert(a)
		errs = append(errs, validateEnum(a, supportedValidationActions, ap.Index(i))...)
	}
	if actions.Has(admissionregistrationv1.Deny) && actions.Has(admissionregistrationv1.Warn) {
		errs = append(errs, field.Invalid(ap, b.Spec.ValidationActions, "must not contain both Deny and Warn (repeating the same validation failure information in the API response and headers serves no purpose)"))
	}
	if ref := b.Spec.ParamRef; ref != nil {
		rp := sp.Child("paramRef")
		if ref.Name != "" && ref.Selector != nil {
			errs = append(errs, field.Forbidden(rp.Child("name"), "name and selector are mutually exclusive"))
		}
		if ref.Name == "" && ref.Selector == nil {
			errs = append(errs, field.Required(rp, "one of name or selector must be specified"))
		}
		errs = append(errs, validateLabelSelector(ref.Selector, rp.Child("selector"))...)
		if ref.ParameterNotFoundAction != nil {
			errs = append(errs, validateEnum(*ref.ParameterNotFoundAction, []admissionregistrationv1.ParameterNotFoundActionType{
				admissionregistrationv1.AllowAction, admissionregistrationv1.DenyAction}, rp.Child("parameterNotFoundAction"))...)
		}
	}
	return errs
}

func (s validatingAdmissionPolicyBindingStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	return append(validateMetaAccessorUpdate(obj, old), s.Validate(ctx, obj)...)
}
