package admission

import (
	"context"
	"fmt"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"tower.dev/tower/apiserver/authentication"
	"tower.dev/tower/apiserver/authorization"
)

// RBACEscalation keeps RBAC from being a way up: a user may write a Role
// or ClusterRole only with rules they hold themselves (or the escalate
// verb on it), and bind a role only when they hold its rules (or the bind
// verb on it), as kube-apiserver's RBAC storage enforces.
type RBACEscalation struct {
	Authorizer authorization.Authorizer
	Rules      authorization.RuleResolver
	Policy     *authorization.Policy
}

// Admit implements Interface.
func (e *RBACEscalation) Admit(ctx context.Context, a *Attributes) error {
	if a.Resource.Group != rbacv1.GroupName || a.Subresource != "" || (a.Operation != Create && a.Operation != Update) {
		return nil
	}
	user, ok := authentication.UserFrom(ctx)
	if !ok || user.InGroup(authentication.GroupMasters) {
		return nil
	}
	switch obj := a.Object.(type) {
	case *rbacv1.Role:
		return e.checkRules(ctx, user, a, obj.Namespace, obj.Rules, "escalate", "roles", obj.Name)
	case *rbacv1.ClusterRole:
		return e.checkRules(ctx, user, a, "", obj.Rules, "escalate", "clusterroles", obj.Name)
	case *rbacv1.RoleBinding:
		return e.checkBinding(ctx, user, a, obj.Namespace, obj.RoleRef)
	case *rbacv1.ClusterRoleBinding:
		return e.checkBinding(ctx, user, a, "", obj.RoleRef)
	}
	return nil
}

func (e *RBACEscalation) checkBinding(ctx context.Context, user *authentication.User, a *Attributes, namespace string, ref rbacv1.RoleRef) error {
	resource := "clusterroles"
	var rules []rbacv1.PolicyRule
	var err error
	if ref.Kind == "Role" {
		resource = "roles"
		rules, err = e.Policy.RoleRules(namespace, ref.Name)
	} else {
		rules, err = e.Policy.ClusterRoleRules(ref.Name)
	}
	if e.holds(ctx, user, "bind", resource, namespace, ref.Name) {
		return nil
	}
	if err != nil {
		return forbidden(a, fmt.Sprintf("user %q (groups=%q) is attempting to bind to %s %q, which cannot be resolved: %v", user.Name, user.Groups, strings.TrimSuffix(resource, "s"), ref.Name, err))
	}
	return e.checkRules(ctx, user, a, namespace, rules, "", resource, ref.Name)
}

// checkRules refuses rules the user does not hold, unless the user holds
// verb on the named role.
func (e *RBACEscalation) checkRules(ctx context.Context, user *authentication.User, a *Attributes, namespace string, rules []rbacv1.PolicyRule, verb, resource, name string) error {
	if verb != "" && e.holds(ctx, user, verb, resource, namespace, name) {
		return nil
	}
	owned, resolveErr := e.Rules.RulesFor(ctx, user, namespace)
	var missing []rbacv1.PolicyRule
	for _, rule := range rules {
		if ok, lacking := authorization.Covers(owned, rule); !ok {
			missing = append(missing, lacking...)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "user %q (groups=%q) is attempting to grant RBAC permissions not currently held:", user.Name, user.Groups)
	for _, m := range missing {
		b.WriteString("\n" + describeRule(m))
	}
	if resolveErr != nil {
		fmt.Fprintf(&b, "; resolution errors: %v", resolveErr)
	}
	return forbidden(a, b.String())
}

func (e *RBACEscalation) holds(ctx context.Context, user *authentication.User, verb, resource, namespace, name string) bool {
	decision, _, _ := e.Authorizer.Authorize(ctx, &authorization.Attributes{
		User: user, Verb: verb, ResourceRequest: true, APIGroup: rbacv1.GroupName, Resource: resource, Namespace: namespace, Name: name,
	})
	return decision == authorization.Allow
}

func forbidden(a *Attributes, msg string) error {
	return apierrors.NewForbidden(schema.GroupResource{Group: a.Resource.Group, Resource: a.Resource.Resource}, a.Name, fmt.Errorf("%s", msg))
}

// describeRule prints a rule as upstream's escalation errors do.
func describeRule(r rbacv1.PolicyRule) string {
	var parts []string
	if len(r.APIGroups) > 0 {
		parts = append(parts, fmt.Sprintf("APIGroups:%q", r.APIGroups))
	}
	if len(r.Resources) > 0 {
		parts = append(parts, fmt.Sprintf("Resources:%q", r.Resources))
	}
	if len(r.ResourceNames) > 0 {
		parts = append(parts, fmt.Sprintf("ResourceNames:%q", r.ResourceNames))
	}
	if len(r.NonResourceURLs) > 0 {
		parts = append(parts, fmt.Sprintf("NonResourceURLs:%q", r.NonResourceURLs))
	}
	parts = append(parts, fmt.Sprintf("Verbs:%q", r.Verbs))
	return "{" + strings.Join(parts, ", ") + "}"
}
