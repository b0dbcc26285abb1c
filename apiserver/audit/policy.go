// Package audit records what the API server was asked and what it
// answered as audit.k8s.io/v1 events, at the levels an audit policy sets,
// as kube-apiserver's --audit-policy-file and --audit-log-path do.
package audit

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

// Request is what a policy decides on.
type Request struct {
	User   string
	Groups []string
	Verb   string
	// Resource requests name these; non-resource requests set Path.
	IsResource  bool
	APIGroup    string
	Resource    string
	Subresource string
	Namespace   string
	Name        string
	Path        string
}

// Policy is an audit policy: the first rule that matches a request sets
// its level; no match means no event.
type Policy struct {
	rules      []auditv1.PolicyRule
	omitStages []auditv1.Stage
}

// LoadPolicy reads an audit.k8s.io/v1 Policy from a YAML or JSON file.
func LoadPolicy(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read audit policy: %w", err)
	}
	scheme := runtime.NewScheme()
	if err := auditv1.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("register audit types: %w", err)
	}
	policy := &auditv1.Policy{}
	gvk := auditv1.SchemeGroupVersion.WithKind("Policy")
	if _, _, err := serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer().Decode(data, &gvk, policy); err != nil {
		return nil, fmt.Errorf("decode audit policy %s: %w", path, err)
	}
	return NewPolicy(policy)
}

// NewPolicy checks a decoded policy.
func NewPolicy(p *auditv1.Policy) (*Policy, error) {
	for i, rule := range p.Rules {
		switch rule.Level {
		case auditv1.LevelNone, auditv1.LevelMetadata, auditv1.LevelRequest, auditv1.LevelRequestResponse:
		default:
			return nil, fmt.Errorf("audit policy rule %d: unknown level %q", i, rule.Level)
		}
		if len(rule.Resources) > 0 && len(rule.NonResourceURLs) > 0 {
			return nil, fmt.Errorf("audit policy rule %d: resources and nonResourceURLs are mutually exclusive", i)
		}
	}
	return &Policy{rules: p.Rules, omitStages: p.OmitStages}, nil
}

// Decide returns the level for a request and the stages not to record.
func (p *Policy) Decide(req *Request) (auditv1.Level, []auditv1.Stage) {
	for _, rule := range p.rules {
		if !ruleMatches(&rule, req) {
			continue
		}
		if rule.Level == auditv1.LevelNone {
			return auditv1.LevelNone, nil
		}
		return rule.Level, append(slices.Clone(p.omitStages), rule.OmitStages...)
	}
	return auditv1.LevelNone, nil
}

func ruleMatches(rule *auditv1.PolicyRule, req *Request) bool {
	if len(rule.Users) > 0 && !slices.Contains(rule.Users, req.User) {
		return false
	}
	if len(rule.UserGroups) > 0 && !slices.ContainsFunc(req.Groups, func(g string) bool { return slices.Contains(rule.UserGroups, g) }) {
		return false
	}
	if len(rule.Verbs) > 0 && !slices.Contains(rule.Verbs, req.Verb) {
		return false
	}
	if len(rule.Resources) > 0 || len(rule.Namespaces) > 0 {
		if !req.IsResource {
			return false
		}
		if len(rule.Namespaces) > 0 && !slices.Contains(rule.Namespaces, req.Namespace) {
			return false
		}
		if len(rule.Resources) > 0 && !slices.ContainsFunc(rule.Resources, func(gr auditv1.GroupResources) bool { return groupResourcesMatch(gr, req) }) {
			return false
		}
	}
	if len(rule.NonResourceURLs) > 0 {
		if req.IsResource {
			return false
		}
		if !slices.ContainsFunc(rule.NonResourceURLs, func(pattern string) bool { return pathMatches(pattern, req.Path) }) {
			return false
		}
	}
	return true
}

// groupResourcesMatch follows upstream: "pods" matches pods but not its
// subresources, "pods/log" one subresource, "*/scale" a subresource of
// any resource, "*" everything in the group.
func groupResourcesMatch(gr auditv1.GroupResources, req *Request) bool {
	if gr.Group != req.APIGroup {
		return false
	}
	if len(gr.Resources) > 0 {
		combined := req.Resource
		if req.Subresource != "" {
			combined += "/" + req.Subresource
		}
		matched := slices.ContainsFunc(gr.Resources, func(r string) bool {
			return r == "*" || r == combined || (req.Subresource != "" && r == "*/"+req.Subresource)
		})
		if !matched {
			return false
		}
	}
	if len(gr.ResourceNames) > 0 && !slices.Contains(gr.ResourceNames, req.Name) {
		return false
	}
	return true
}

func pathMatches(pattern, path string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(path, prefix)
	}
	return pattern == path
}
