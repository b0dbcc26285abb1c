package audit

import (
	"testing"

	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

func TestPolicyDecide(t *testing.T) {
	policy, err := NewPolicy(&auditv1.Policy{
		OmitStages: []auditv1.Stage{auditv1.StageRequestReceived},
		Rules: []auditv1.PolicyRule{
			{Level: auditv1.LevelNone, Users: []string{"system:kube-proxy"}},
			{Level: auditv1.LevelNone, NonResourceURLs: []string{"/healthz*", "/version"}},
			{Level: auditv1.LevelMetadata, Resources: []auditv1.GroupResources{{Group: "", Resources: []string{"secrets", "configmaps"}}}},
			{Level: auditv1.LevelRequest, Resources: []auditv1.GroupResources{{Group: "", Resources: []string{"pods/log", "*/status"}}}},
			{Level: auditv1.LevelRequestResponse, Verbs: []string{"delete"}, Namespaces: []string{"prod"},
				Resources: []auditv1.GroupResources{{Group: "apps", Resources: []string{"deployments"}, ResourceNames: []string{"web"}}}},
			{Level: auditv1.LevelMetadata, UserGroups: []string{"system:nodes"}, OmitStages: []auditv1.Stage{auditv1.StageResponseStarted}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		req   Request
		level auditv1.Level
		omit  int
	}{
		{"excluded user", Request{User: "system:kube-proxy", IsResource: true, Resource: "secrets", Verb: "get"}, auditv1.LevelNone, 0},
		{"health prefix", Request{User: "u", Path: "/healthz/etcd", Verb: "get"}, auditv1.LevelNone, 0},
		{"non-resource not covered", Request{User: "u", Path: "/metrics", Verb: "get"}, auditv1.LevelNone, 0},
		{"secrets at metadata", Request{User: "u", IsResource: true, Resource: "secrets", Namespace: "a", Verb: "list"}, auditv1.LevelMetadata, 1},
		{"subresource of secrets is not secrets", Request{User: "u", IsResource: true, Resource: "secrets", Subresource: "x", Verb: "get"}, auditv1.LevelNone, 0},
		{"named subresource", Request{User: "u", IsResource: true, Resource: "pods", Subresource: "log", Verb: "get"}, auditv1.LevelRequest, 1},
		{"wildcard subresource", Request{User: "u", IsResource: true, Resource: "nodes", Subresource: "status", Verb: "patch"}, auditv1.LevelRequest, 1},
		{"resource name, namespace and verb", Request{User: "u", IsResource: true, APIGroup: "apps", Resource: "deployments", Namespace: "prod", Name: "web", Verb: "delete"}, auditv1.LevelRequestResponse, 1},
		{"other namespace", Request{User: "u", IsResource: true, APIGroup: "apps", Resource: "deployments", Namespace: "dev", Name: "web", Verb: "delete"}, auditv1.LevelNone, 0},
		{"group rule adds its omitted stages", Request{User: "system:node:a", Groups: []string{"system:nodes"}, IsResource: true, Resource: "pods", Verb: "watch"}, auditv1.LevelMetadata, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			level, omit := policy.Decide(&tt.req)
			if level != tt.level || len(omit) != tt.omit {
				t.Errorf("Decide = %s, %v; want %s with %d omitted stages", level, omit, tt.level, tt.omit)
			}
		})
	}
}

func TestNewPolicyRejectsBadRules(t *testing.T) {
	for name, rule := range map[string]auditv1.PolicyRule{
		"unknown level": {Level: "Everything"},
		"both kinds":    {Level: auditv1.LevelMetadata, Resources: []auditv1.GroupResources{{}}, NonResourceURLs: []string{"/x"}},
	} {
		if _, err := NewPolicy(&auditv1.Policy{Rules: []auditv1.PolicyRule{rule}}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
