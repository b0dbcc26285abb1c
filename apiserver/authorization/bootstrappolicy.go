package authorization

import (
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"tower.dev/tower/apiserver/authentication"
)

// The labels and annotation of the bootstrap policy, as kube-apiserver sets
// them.
const (
	BootstrappingLabel   = "kubernetes.io/bootstrapping"
	AutoUpdateAnnotation = "rbac.authorization.kubernetes.io/autoupdate"
	aggregateToAdmin     = "rbac.authorization.k8s.io/aggregate-to-admin"
	aggregateToEdit      = "rbac.authorization.k8s.io/aggregate-to-edit"
	aggregateToView      = "rbac.authorization.k8s.io/aggregate-to-view"
)

// The identities of the control-plane components.
const (
	UserKubeScheduler         = "system:kube-scheduler"
	UserKubeControllerManager = "system:kube-controller-manager"
	UserKubeProxy             = "system:kube-proxy"
)

var (
	readVerbs  = []string{"get", "list", "watch"}
	writeVerbs = []string{"create", "delete", "deletecollection", "patch", "update"}
	allVerbs   = []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
)

func rule(verbs []string, groups []string, resources ...string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{Verbs: verbs, APIGroups: groups, Resources: resources}
}

func urls(verbs []string, paths ...string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{Verbs: verbs, NonResourceURLs: paths}
}

func core() []string             { return []string{""} }
func group(g ...string) []string { return g }
func verbs(v ...string) []string { return v }

func clusterRole(name string, rules ...rbacv1.PolicyRule) *rbacv1.ClusterRole {
	return &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Labels:      map[string]string{BootstrappingLabel: "rbac-defaults"},
			Annotations: map[string]string{AutoUpdateAnnotation: "true"},
		},
		Rules: rules,
	}
}

func aggregated(name, selectorLabel string) *rbacv1.ClusterRole {
	r := clusterRole(name)
	r.AggregationRule = &rbacv1.AggregationRule{ClusterRoleSelectors: []metav1.LabelSelector{
		{MatchLabels: map[string]string{selectorLabel: "true"}},
	}}
	return r
}

func withLabel(r *rbacv1.ClusterRole, key string) *rbacv1.ClusterRole {
	r.Labels[key] = "true"
	return r
}

func clusterRoleBinding(name, role string, subjects ...rbacv1.Subject) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Labels:      map[string]string{BootstrappingLabel: "rbac-defaults"},
			Annotations: map[string]string{AutoUpdateAnnotation: "true"},
		},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects: subjects,
	}
}

func groupSubject(name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: name}
}

func userSubject(name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name}
}

// BootstrapClusterRoles are the cluster roles every cluster starts with.
func BootstrapClusterRoles() []*rbacv1.ClusterRole {
	viewCore := rule(readVerbs, core(), "configmaps", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status",
		"pods", "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts", "services", "services/status",
		"bindings", "events", "limitranges", "namespaces/status", "pods/log", "pods/status", "replicationcontrollers/status",
		"resourcequotas", "resourcequotas/status")
	workloads := []string{"daemonsets", "daemonsets/status", "deployments", "deployments/scale", "deployments/status",
		"replicasets", "replicasets/scale", "replicasets/status", "statefulsets", "statefulsets/scale", "statefulsets/status", "controllerrevisions"}
	return []*rbacv1.ClusterRole{
		clusterRole("cluster-admin",
			rule(verbs("*"), group("*"), "*"),
			urls(verbs("*"), "*")),
		clusterRole("system:discovery",
			urls(verbs("get"), "/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz", "/version", "/version/")),
		clusterRole("system:public-info-viewer",
			urls(verbs("get"), "/healthz", "/livez", "/readyz", "/version", "/version/")),
		clusterRole("system:basic-user",
			rule(verbs("create"), group("authorization.k8s.io"), "selfsubjectaccessreviews", "selfsubjectrulesreviews"),
			rule(verbs("create"), group("authentication.k8s.io"), "selfsubjectreviews")),
		clusterRole("system:service-account-issuer-discovery",
			urls(verbs("get"), "/.well-known/openid-configuration", "/.well-known/openid-configuration/", "/openid/v1/jwks", "/openid/v1/jwks/")),
		clusterRole("system:monitoring",
			urls(verbs("get"), "/healthz", "/healthz/*", "/livez", "/livez/*", "/readyz", "/readyz/*", "/metrics", "/metrics/slis")),
		clusterRole("system:auth-delegator",
			rule(verbs("create"), group("authentication.k8s.io"), "tokenreviews"),
			rule(verbs("create"), group("authorization.k8s.io"), "subjectaccessreviews")),
		aggregated("admin", aggregateToAdmin),
		withLabel(aggregated("edit", aggregateToEdit), aggregateToAdmin),
		withLabel(withLabel(aggregated("view", aggregateToView), aggregateToEdit), aggregateToAdmin),
		withLabel(clusterRole("system:aggregate-to-admin",
			rule(allVerbs, group("rbac.authorization.k8s.io"), "rolebindings", "roles"),
			rule(verbs("create"), group("authorization.k8s.io"), "localsubjectaccessreviews")), aggregateToAdmin),
		withLabel(clusterRole("system:aggregate-to-edit",
			rule(verbs("impersonate"), core(), "serviceaccounts"),
			rule(writeVerbs, core(), "pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"),
			rule(verbs("create"), core(), "pods/eviction", "serviceaccounts/token"),
			rule(append(readVerbs, writeVerbs...), core(), "configmaps", "events", "persistentvolumeclaims", "replicationcontrollers",
				"replicationcontrollers/scale", "secrets", "serviceaccounts", "services", "services/proxy", "endpoints"),
			rule(writeVerbs, group("apps"), workloads...),
			rule(writeVerbs, group("autoscaling"), "horizontalpodautoscalers"),
			rule(writeVerbs, group("batch"), "cronjobs", "jobs"),
			rule(writeVerbs, group("networking.k8s.io"), "ingresses", "networkpolicies"),
			rule(writeVerbs, group("policy"), "poddisruptionbudgets"),
			rule(writeVerbs, group("discovery.k8s.io"), "endpointslices"),
			rule(writeVerbs, group("coordination.k8s.io"), "leases")), aggregateToEdit),
		withLabel(clusterRole("system:aggregate-to-view",
			viewCore,
			rule(readVerbs, core(), "namespaces"),
			rule(readVerbs, group("discovery.k8s.io"), "endpointslices"),
			rule(readVerbs, group("apps"), workloads...),
			rule(readVerbs, group("autoscaling"), "horizontalpodautoscalers", "horizontalpodautoscalers/status"),
			rule(readVerbs, group("batch"), "cronjobs", "cronjobs/status", "jobs", "jobs/status"),
			rule(readVerbs, group("policy"), "poddisruptionbudgets", "poddisruptionbudgets/status"),
			rule(readVerbs, group("networking.k8s.io"), "ingresses", "ingresses/status", "networkpolicies"),
			rule(readVerbs, group("coordination.k8s.io"), "leases")), aggregateToView),
		clusterRole(UserKubeScheduler,
			rule(verbs("create"), group("events.k8s.io", ""), "events"),
			rule(verbs("patch", "update"), group("events.k8s.io", ""), "events"),
			rule(verbs("create", "get", "update", "list", "watch"), group("coordination.k8s.io"), "leases"),
			rule(readVerbs, core(), "nodes", "namespaces", "pods", "services", "replicationcontrollers", "persistentvolumeclaims", "persistentvolumes"),
			rule(verbs("delete"), core(), "pods"),
			rule(verbs("create"), core(), "bindings", "pods/binding"),
			rule(verbs("patch", "update"), core(), "pods/status"),
			rule(readVerbs, group("apps"), "replicasets", "statefulsets"),
			rule(readVerbs, group("policy"), "poddisruptionbudgets"),
			rule(readVerbs, group("storage.k8s.io"), "storageclasses", "csinodes", "csidrivers", "csistoragecapacities"),
			rule(verbs("create"), group("authentication.k8s.io"), "tokenreviews"),
			rule(verbs("create"), group("authorization.k8s.io"), "subjectaccessreviews")),
		// Tower's controller manager runs every controller under one
		// identity (upstream's --use-service-account-credentials=false),
		// so its role is the union of what Tower's controllers do, as
		// upstream's system:controller:* roles grant it: the garbage
		// collector and the namespace controller read, update and delete
		// objects of every kind; creating is limited to the kinds the
		// controllers make; escalate, bind and impersonate are never held.
		clusterRole(UserKubeControllerManager,
			rule(verbs("get", "list", "watch", "patch", "update", "delete", "deletecollection"), group("*"), "*"),
			rule(verbs("create"), core(), "pods", "endpoints", "serviceaccounts", "configmaps", "persistentvolumeclaims", "events"),
			rule(verbs("create"), group("events.k8s.io"), "events"),
			rule(verbs("create"), group("apps"), "replicasets", "controllerrevisions"),
			rule(verbs("create"), group("batch"), "jobs"),
			rule(verbs("create"), group("discovery.k8s.io"), "endpointslices"),
			rule(verbs("create"), group("coordination.k8s.io"), "leases"),
			rule(verbs("create"), group("authentication.k8s.io"), "tokenreviews"),
			rule(verbs("create"), group("authorization.k8s.io"), "subjectaccessreviews")),
		clusterRole("system:node-proxier",
			rule(readVerbs, core(), "endpoints", "services", "nodes"),
			rule(readVerbs, group("discovery.k8s.io"), "endpointslices"),
			rule(verbs("create", "patch", "update"), group("", "events.k8s.io"), "events")),
		clusterRole("system:node",
			rule(verbs("create"), group("authentication.k8s.io"), "tokenreviews"),
			rule(verbs("create"), group("authorization.k8s.io"), "localsubjectaccessreviews", "subjectaccessreviews"),
			rule(readVerbs, core(), "services", "nodes", "endpoints"),
			rule(verbs("create", "patch", "update"), group("", "events.k8s.io"), "events"),
			rule(readVerbs, group("discovery.k8s.io"), "endpointslices")),
	}
}

// BootstrapClusterRoleBindings bind the bootstrap roles.
func BootstrapClusterRoleBindings() []*rbacv1.ClusterRoleBinding {
	return []*rbacv1.ClusterRoleBinding{
		clusterRoleBinding("cluster-admin", "cluster-admin", groupSubject(authentication.GroupMasters)),
		clusterRoleBinding("system:discovery", "system:discovery", groupSubject(authentication.GroupAuthenticated)),
		clusterRoleBinding("system:basic-user", "system:basic-user", groupSubject(authentication.GroupAuthenticated)),
		clusterRoleBinding("system:public-info-viewer", "system:public-info-viewer",
			groupSubject(authentication.GroupAuthenticated), groupSubject(authentication.GroupUnauthenticated)),
		clusterRoleBinding("system:service-account-issuer-discovery", "system:service-account-issuer-discovery",
			groupSubject(authentication.GroupServiceAccounts)),
		clusterRoleBinding("system:monitoring", "system:monitoring", groupSubject("system:monitoring")),
		clusterRoleBinding(UserKubeScheduler, UserKubeScheduler, userSubject(UserKubeScheduler)),
		clusterRoleBinding(UserKubeControllerManager, UserKubeControllerManager, userSubject(UserKubeControllerManager)),
		clusterRoleBinding("system:node-proxier", "system:node-proxier", userSubject(UserKubeProxy)),
		clusterRoleBinding("system:node", "system:node", groupSubject(authentication.GroupNodes)),
	}
}
