package authorization

import (
	"context"
	"errors"
	"fmt"
	"sync"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"tower.dev/tower/apiserver/authentication"
)

// Policy is an in-memory copy of the RBAC objects, kept current by the
// server's watches, so that authorizing a request reads no storage.
type Policy struct {
	mu                  sync.RWMutex
	roles               map[string]map[string]*rbacv1.Role
	roleBindings        map[string]map[string]*rbacv1.RoleBinding
	clusterRoles        map[string]*rbacv1.ClusterRole
	clusterRoleBindings map[string]*rbacv1.ClusterRoleBinding
}

// NewPolicy returns an empty policy.
func NewPolicy() *Policy {
	return &Policy{
		roles:               map[string]map[string]*rbacv1.Role{},
		roleBindings:        map[string]map[string]*rbacv1.RoleBinding{},
		clusterRoles:        map[string]*rbacv1.ClusterRole{},
		clusterRoleBindings: map[string]*rbacv1.ClusterRoleBinding{},
	}
}

// Set adds or replaces an RBAC object; other objects are ignored.
func (p *Policy) Set(obj runtime.Object) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch o := obj.(type) {
	case *rbacv1.Role:
		inner(p.roles, o.Namespace)[o.Name] = o
	case *rbacv1.RoleBinding:
		inner(p.roleBindings, o.Namespace)[o.Name] = o
	case *rbacv1.ClusterRole:
		p.clusterRoles[o.Name] = o
	case *rbacv1.ClusterRoleBinding:
		p.clusterRoleBindings[o.Name] = o
	}
}

// Remove forgets an RBAC object.
func (p *Policy) Remove(obj runtime.Object) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch o := obj.(type) {
	case *rbacv1.Role:
		delete(p.roles[o.Namespace], o.Name)
	case *rbacv1.RoleBinding:
		delete(p.roleBindings[o.Namespace], o.Name)
	case *rbacv1.ClusterRole:
		delete(p.clusterRoles, o.Name)
	case *rbacv1.ClusterRoleBinding:
		delete(p.clusterRoleBindings, o.Name)
	}
}

// Replace swaps every object of example's type for items (after a relist).
func (p *Policy) Replace(example runtime.Object, items []runtime.Object) {
	p.mu.Lock()
	switch example.(type) {
	case *rbacv1.Role:
		p.roles = map[string]map[string]*rbacv1.Role{}
	case *rbacv1.RoleBinding:
		p.roleBindings = map[string]map[string]*rbacv1.RoleBinding{}
	case *rbacv1.ClusterRole:
		p.clusterRoles = map[string]*rbacv1.ClusterRole{}
	case *rbacv1.ClusterRoleBinding:
		p.clusterRoleBindings = map[string]*rbacv1.ClusterRoleBinding{}
	}
	p.mu.Unlock()
	for _, item := range items {
		p.Set(item)
	}
}

func inner[T any](m map[string]map[string]T, key string) map[string]T {
	if m[key] == nil {
		m[key] = map[string]T{}
	}
	return m[key]
}

// ClusterRoleRules returns a cluster role's rules, with the rules of the
// roles its aggregationRule selects.
func (p *Policy) ClusterRoleRules(name string) ([]Rule, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.clusterRoleRules(name, map[string]bool{})
}

// RoleRules returns the rules of a namespaced role.
func (p *Policy) RoleRules(namespace, name string) ([]Rule, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.roleRefRules(namespace, rbacv1.RoleRef{Kind: "Role", Name: name})
}

func (p *Policy) clusterRoleRules(name string, seen map[string]bool) ([]Rule, error) {
	role, ok := p.clusterRoles[name]
	if !ok {
		return nil, fmt.Errorf("clusterrole.rbac.authorization.k8s.io %q not found", name)
	}
	seen[name] = true
	rules := append([]Rule{}, role.Rules...)
	if role.AggregationRule == nil {
		return rules, nil
	}
	for _, sel := range role.AggregationRule.ClusterRoleSelectors {
		selector, err := metav1.LabelSelectorAsSelector(&sel)
		if err != nil {
			continue
		}
		for other, candidate := range p.clusterRoles {
			if seen[other] || !selector.Matches(labels.Set(candidate.Labels)) {
				continue
			}
			more, err := p.clusterRoleRules(other, seen)
			if err == nil {
				rules = append(rules, more...)
			}
		}
	}
	return rules, nil
}

func (p *Policy) roleRefRules(namespace string, ref rbacv1.RoleRef) ([]Rule, error) {
	switch ref.Kind {
	case "ClusterRole":
		return p.clusterRoleRules(ref.Name, map[string]bool{})
	case "Role":
		role, ok := p.roles[namespace][ref.Name]
		if !ok {
			return nil, fmt.Errorf("role.rbac.authorization.k8s.io %q not found", ref.Name)
		}
		return role.Rules, nil
	}
	return nil, fmt.Errorf("unsupported role reference kind %q", ref.Kind)
}

// visit calls fn with every rule that applies to user in namespace, first
// the cluster-wide ones, until fn returns false.
func (p *Policy) visit(user *authentication.User, namespace string, fn func(rule *Rule) bool) []error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	var errs []error
	for _, b := range p.clusterRoleBindings {
		if !appliesTo(user, b.Subjects, "") {
			continue
		}
		rules, err := p.roleRefRules("", b.RoleRef)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for i := range rules {
			if !fn(&rules[i]) {
				return nil
			}
		}
	}
	if namespace == "" {
		return errs
	}
	for _, b := range p.roleBindings[namespace] {
		if !appliesTo(user, b.Subjects, namespace) {
			continue
		}
		rules, err := p.roleRefRules(namespace, b.RoleRef)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for i := range rules {
			if !fn(&rules[i]) {
				return nil
			}
		}
	}
	return errs
}

// appliesTo reports whether a binding's subjects include user. A service
// account subject without a namespace is in the binding's namespace.
func appliesTo(user *authentication.User, subjects []rbacv1.Subject, namespace string) bool {
	for _, s := range subjects {
		switch s.Kind {
		case rbacv1.UserKind:
			if user.Name == s.Name {
				return true
			}
		case rbacv1.GroupKind:
			if user.InGroup(s.Name) {
				return true
			}
		case rbacv1.ServiceAccountKind:
			ns := s.Namespace
			if ns == "" {
				ns = namespace
			}
			if ns != "" && user.Name == authentication.ServiceAccountUserPrefix+ns+":"+s.Name {
				return true
			}
		}
	}
	return false
}

// RBAC authorizes requests with the rules of the roles bound to the user.
type RBAC struct {
	Policy *Policy
}

// Authorize implements Authorizer. RBAC never denies: without a matching
// rule it has no opinion, and the reason lists roles it could not find.
func (r *RBAC) Authorize(_ context.Context, a *Attributes) (Decision, string, error) {
	if a.User == nil {
		return NoOpinion, "", nil
	}
	allowed := false
	errs := r.Policy.visit(a.User, a.Namespace, func(rule *Rule) bool {
		allowed = RuleAllows(rule, a)
		return !allowed
	})
	if allowed {
		return Allow, "", nil
	}
	if len(errs) > 0 {
		return NoOpinion, fmt.Sprintf("RBAC: %v", errors.Join(errs...)), nil
	}
	return NoOpinion, "", nil
}

// RulesFor implements RuleResolver.
func (r *RBAC) RulesFor(_ context.Context, user *authentication.User, namespace string) ([]Rule, error) {
	var rules []Rule
	errs := r.Policy.visit(user, namespace, func(rule *Rule) bool {
		rules = append(rules, *rule)
		return true
	})
	return rules, errors.Join(errs...)
}
