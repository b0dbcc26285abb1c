package server

import (
	"context"
	"fmt"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"

	"tower.dev/tower/apiserver/authorization"
	"tower.dev/tower/apiserver/endpoints"
	"tower.dev/tower/apiserver/storage"
)

// bootstrapPolicy creates the bootstrap cluster roles and bindings and
// reconciles existing ones as kube-apiserver does at every start: missing
// rules, subjects, labels and aggregation selectors are added, nothing is
// removed, and objects annotated autoupdate=false are left alone.
func (a *api) bootstrapPolicy(ctx context.Context) error {
	roles := a.byGVR[rbacv1.SchemeGroupVersion.WithResource("clusterroles")]
	for _, role := range authorization.BootstrapClusterRoles() {
		if err := a.reconcile(ctx, roles, role.Name, role, reconcileClusterRole); err != nil {
			return err
		}
	}
	bindings := a.byGVR[rbacv1.SchemeGroupVersion.WithResource("clusterrolebindings")]
	for _, binding := range authorization.BootstrapClusterRoleBindings() {
		if err := a.reconcile(ctx, bindings, binding.Name, binding, reconcileClusterRoleBinding); err != nil {
			return err
		}
	}
	return nil
}

// reconcile creates the cluster-scoped object want, or merges it into the
// stored one.
func (a *api) reconcile(ctx context.Context, e *endpoints.Endpoint, name string, want runtime.Object, merge func(current, want runtime.Object) (runtime.Object, bool)) error {
	key := e.KeyPrefix + "/" + name
	if err := a.ensure(ctx, e, want.DeepCopyObject()); err != nil {
		return err
	}
	err := e.Store.GuaranteedUpdate(ctx, key, e.Resource.New(), false, nil, func(current runtime.Object) (runtime.Object, error) {
		merged, changed := merge(current.DeepCopyObject(), want)
		if !changed {
			return current, nil
		}
		return merged, nil
	}, nil)
	if err != nil && !storage.IsNotFound(err) {
		return fmt.Errorf("reconcile bootstrap policy %s: %w", key, err)
	}
	return nil
}

func reconcileClusterRole(current, wantObj runtime.Object) (runtime.Object, bool) {
	role, want := current.(*rbacv1.ClusterRole), wantObj.(*rbacv1.ClusterRole)
	if role.Annotations[authorization.AutoUpdateAnnotation] == "false" {
		return role, false
	}
	changed := mergeStrings(&role.ObjectMeta.Labels, want.Labels)
	changed = mergeStrings(&role.ObjectMeta.Annotations, want.Annotations) || changed
	for _, rule := range want.Rules {
		if !containsRule(role.Rules, rule) {
			role.Rules = append(role.Rules, rule)
			changed = true
		}
	}
	if want.AggregationRule != nil {
		if role.AggregationRule == nil {
			role.AggregationRule = &rbacv1.AggregationRule{}
		}
		for _, sel := range want.AggregationRule.ClusterRoleSelectors {
			found := false
			for _, have := range role.AggregationRule.ClusterRoleSelectors {
				found = found || equality.Semantic.DeepEqual(have, sel)
			}
			if !found {
				role.AggregationRule.ClusterRoleSelectors = append(role.AggregationRule.ClusterRoleSelectors, sel)
				changed = true
			}
		}
	}
	return role, changed
}

func reconcileClusterRoleBinding(current, wantObj runtime.Object) (runtime.Object, bool) {
	binding, want := current.(*rbacv1.ClusterRoleBinding), wantObj.(*rbacv1.ClusterRoleBinding)
	if binding.Annotations[authorization.AutoUpdateAnnotation] == "false" {
		return binding, false
	}
	changed := mergeStrings(&binding.ObjectMeta.Labels, want.Labels)
	changed = mergeStrings(&binding.ObjectMeta.Annotations, want.Annotations) || changed
	for _, s := range want.Subjects {
		found := false
		for _, have := range binding.Subjects {
			found = found || have == s
		}
		if !found {
			binding.Subjects = append(binding.Subjects, s)
			changed = true
		}
	}
	return binding, changed
}

func containsRule(rules []rbacv1.PolicyRule, rule rbacv1.PolicyRule) bool {
	for _, r := range rules {
		if equality.Semantic.DeepEqual(r, rule) {
			return true
		}
	}
	return false
}

func mergeStrings(dst *map[string]string, src map[string]string) bool {
	changed := false
	for k, v := range src {
		if _, ok := (*dst)[k]; ok {
			continue
		}
		if *dst == nil {
			*dst = map[string]string{}
		}
		(*dst)[k] = v
		changed = true
	}
	return changed
}
