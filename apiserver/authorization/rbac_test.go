package authorization

import (
	"context"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"tower.dev/tower/apiserver/authentication"
)

// testPolicy is the bootstrap policy plus:
//   - jane: edit in team-a (aggregated from system:aggregate-to-edit and
//     -view), reading one named secret in team-b;
//   - bob (in devs): pods/log in any namespace, /logs/* URLs;
//   - the team-a "builder" service account: a Role in team-a.
//   - monitor-ext: a custom role aggregated into view through its label.
func testPolicy() *Policy {
	p := NewPolicy()
	for _, r := range BootstrapClusterRoles() {
		p.Set(r)
	}
	for _, b := range BootstrapClusterRoleBindings() {
		p.Set(b)
	}
	p.Set(&rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "widgets-view", Labels: map[string]string{aggregateToView: "true"}},
		Rules:      []rbacv1.PolicyRule{{Verbs: readVerbs, APIGroups: []string{"example.com"}, Resources: []string{"widgets"}}},
	})
	p.Set(&rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "jane-edit"},
		RoleRef:    rbacv1.RoleRef{Kind: "ClusterRole", Name: "edit"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: "jane"}},
	})
	p.Set(&rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-b", Name: "one-secret"},
		Rules:      []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{"db"}}},
	})
	p.Set(&rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-b", Name: "jane-secret"},
		RoleRef:    rbacv1.RoleRef{Kind: "Role", Name: "one-secret"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: "jane"}},
	})
	p.Set(&rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "log-reader"},
		Rules: []rbacv1.PolicyRule{
			{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"pods/log"}},
			{Verbs: []string{"get"}, NonResourceURLs: []string{"/logs/*"}},
		},
	})
	p.Set(&rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "devs-logs"},
		RoleRef:    rbacv1.RoleRef{Kind: "ClusterRole", Name: "log-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.GroupKind, Name: "devs"}},
	})
	p.Set(&rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "deployer"},
		Rules:      []rbacv1.PolicyRule{{Verbs: []string{"*"}, APIGroups: []string{"apps"}, Resources: []string{"deployments", "deployments/scale"}}},
	})
	p.Set(&rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "builder-deploys"},
		RoleRef:    rbacv1.RoleRef{Kind: "Role", Name: "deployer"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "builder"}},
	})
	p.Set(&rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "dangling"},
		RoleRef:    rbacv1.RoleRef{Kind: "Role", Name: "missing"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: "carol"}},
	})
	return p
}

func TestRBACDecisionMatrix(t *testing.T) {
	authed := func(name string, groups ...string) *authentication.User {
		return authentication.WithAuthenticatedGroup(&authentication.User{Name: name, Groups: groups})
	}
	jane, bob, carol := authed("jane"), authed("bob", "devs"), authed("carol")
	admin := authed("admin", authentication.GroupMasters)
	builder := authentication.WithAuthenticatedGroup(authentication.ServiceAccountUser("team-a", "builder", "u1"))
	otherBuilder := authentication.WithAuthenticatedGroup(authentication.ServiceAccountUser("team-b", "builder", "u2"))
	anonymous := authentication.Anonymous()
	res := func(user *authentication.User, verb, group, resource, sub, ns, name string) *Attributes {
		return &Attributes{User: user, Verb: verb, ResourceRequest: true, APIGroup: group, Resource: resource, Subresource: sub, Namespace: ns, Name: name}
	}
	url := func(user *authentication.User, verb, path string) *Attributes {
		return &Attributes{User: user, Verb: verb, Path: path}
	}
	tests := []struct {
		name  string
		attrs *Attributes
		allow bool
	}{
		{"masters do anything", res(admin, "delete", "", "nodes", "", "", "n1"), true},
		{"masters reach any path", url(admin, "get", "/debug/pprof"), true},
		{"edit lists pods in its namespace", res(jane, "list", "", "pods", "", "team-a", ""), true},
		{"edit creates deployments", res(jane, "create", "apps", "deployments", "", "team-a", ""), true},
		{"edit scales deployments", res(jane, "update", "apps", "deployments", "scale", "team-a", "web"), true},
		{"edit reads secrets", res(jane, "get", "", "secrets", "", "team-a", "x"), true},
		{"edit cannot create roles", res(jane, "create", "rbac.authorization.k8s.io", "roles", "", "team-a", ""), false},
		{"edit is namespaced", res(jane, "list", "", "pods", "", "team-b", ""), false},
		{"edit is not cluster-wide", res(jane, "list", "", "pods", "", "", ""), false},
		{"view aggregation picks up labelled roles", res(jane, "list", "example.com", "widgets", "", "team-a", ""), true},
		{"aggregated read-only role grants no writes", res(jane, "delete", "example.com", "widgets", "", "team-a", "w"), false},
		{"resourceNames grant the named secret", res(jane, "get", "", "secrets", "", "team-b", "db"), true},
		{"resourceNames deny other names", res(jane, "get", "", "secrets", "", "team-b", "other"), false},
		{"resourceNames deny list", res(jane, "list", "", "secrets", "", "team-b", ""), false},
		{"group subject grants pods/log", res(bob, "get", "", "pods", "log", "any", "p"), true},
		{"subresource grant is not the resource", res(bob, "get", "", "pods", "", "any", "p"), false},
		{"subresource grant is not another subresource", res(bob, "get", "", "pods", "exec", "any", "p"), false},
		{"non-resource URL prefix", url(bob, "get", "/logs/kube.log"), true},
		{"non-resource URL verb", url(bob, "post", "/logs/kube.log"), false},
		{"service account in binding namespace", res(builder, "patch", "apps", "deployments", "", "team-a", "web"), true},
		{"service account of another namespace", res(otherBuilder, "patch", "apps", "deployments", "", "team-a", "web"), false},
		{"dangling role reference grants nothing", res(carol, "get", "", "pods", "", "team-a", "p"), false},
		{"discovery for authenticated users", url(carol, "get", "/apis/apps/v1"), true},
		{"openapi for authenticated users", url(carol, "get", "/openapi/v3"), true},
		{"self access reviews for authenticated users", res(carol, "create", "authorization.k8s.io", "selfsubjectaccessreviews", "", "", ""), true},
		{"whoami for authenticated users", res(carol, "create", "authentication.k8s.io", "selfsubjectreviews", "", "", ""), true},
		{"anonymous reads health", url(anonymous, "get", "/healthz"), true},
		{"anonymous reads version", url(anonymous, "get", "/version"), true},
		{"anonymous gets no discovery", url(anonymous, "get", "/api"), false},
		{"anonymous gets no resources", res(anonymous, "list", "", "namespaces", "", "", ""), false},
		{"metrics need system:monitoring", url(carol, "get", "/metrics"), false},
		{"scheduler binds pods", res(authed(UserKubeScheduler), "create", "", "pods", "binding", "team-a", "p"), true},
		{"scheduler cannot read secrets", res(authed(UserKubeScheduler), "get", "", "secrets", "", "team-a", "s"), false},
		{"controller manager cannot escalate", res(authed(UserKubeControllerManager), "escalate", "rbac.authorization.k8s.io", "clusterroles", "", "", "x"), false},
	}
	authz := Union{PrivilegedGroup{}, &RBAC{Policy: testPolicy()}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			decision, reason, err := authz.Authorize(context.Background(), tt.attrs)
			if err != nil {
				t.Fatal(err)
			}
			if got := decision == Allow; got != tt.allow {
				t.Errorf("allowed = %v, want %v (reason %q)", got, tt.allow, reason)
			}
		})
	}
}

func TestRBACReasonNamesMissingRole(t *testing.T) {
	carol := authentication.WithAuthenticatedGroup(&authentication.User{Name: "carol"})
	_, reason, _ := (&RBAC{Policy: testPolicy()}).Authorize(context.Background(), &Attributes{User: carol, Verb: "get", ResourceRequest: true, Resource: "pods", Namespace: "team-a"})
	if want := `RBAC: role.rbac.authorization.k8s.io "missing" not found`; reason != want {
		t.Errorf("reason = %q, want %q", reason, want)
	}
}

func TestForbiddenMessages(t *testing.T) {
	jane := &authentication.User{Name: "jane"}
	tests := []struct {
		attrs *Attributes
		want  string
	}{
		{&Attributes{User: jane, Verb: "list", ResourceRequest: true, Resource: "configmaps", Namespace: "default"},
			`configmaps is forbidden: User "jane" cannot list resource "configmaps" in API group "" in the namespace "default"`},
		{&Attributes{User: jane, Verb: "get", ResourceRequest: true, APIGroup: "apps", Resource: "deployments", Subresource: "scale", Namespace: "a", Name: "web"},
			`deployments.apps "web" is forbidden: User "jane" cannot get resource "deployments/scale" in API group "apps" in the namespace "a"`},
		{&Attributes{User: jane, Verb: "list", ResourceRequest: true, Resource: "nodes"},
			`nodes is forbidden: User "jane" cannot list resource "nodes" in API group "" at the cluster scope`},
		{&Attributes{User: jane, Verb: "get", Path: "/metrics"},
			`forbidden: User "jane" cannot get path "/metrics"`},
	}
	for _, tt := range tests {
		if got := Forbidden(tt.attrs, "").Error(); got != tt.want {
			t.Errorf("got  %s\nwant %s", got, tt.want)
		}
	}
}

func TestCovers(t *testing.T) {
	owner := []Rule{
		{Verbs: []string{"get", "list"}, APIGroups: []string{""}, Resources: []string{"pods", "*/status"}},
		{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{"db"}},
		{Verbs: []string{"get"}, NonResourceURLs: []string{"/logs/*"}},
	}
	tests := []struct {
		name string
		rule Rule
		want bool
	}{
		{"subset of verbs", Rule{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"pods"}}, true},
		{"extra verb", Rule{Verbs: []string{"get", "delete"}, APIGroups: []string{""}, Resources: []string{"pods"}}, false},
		{"wildcard verb is not covered by a list", Rule{Verbs: []string{"*"}, APIGroups: []string{""}, Resources: []string{"pods"}}, false},
		{"any status subresource", Rule{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"deployments/status"}}, true},
		{"named secret", Rule{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{"db"}}, true},
		{"all secrets", Rule{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"secrets"}}, false},
		{"url under prefix", Rule{Verbs: []string{"get"}, NonResourceURLs: []string{"/logs/a"}}, true},
		{"url outside prefix", Rule{Verbs: []string{"get"}, NonResourceURLs: []string{"/metrics"}}, false},
	}
	for _, tt := range tests {
		if got, _ := Covers(owner, tt.rule); got != tt.want {
			t.Errorf("%s: Covers = %v, want %v", tt.name, got, tt.want)
		}
	}
}
