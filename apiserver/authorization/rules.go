package authorization

import (
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
)

// Rule is one RBAC policy rule.
type Rule = rbacv1.PolicyRule

// RuleAllows reports whether rule grants what a asks for, with RBAC's
// wildcards: "*" for verbs, groups, resources and URLs, "*/sub" for a
// subresource of any resource, and a trailing "*" on non-resource URLs.
func RuleAllows(rule *Rule, a *Attributes) bool {
	if !verbMatches(rule.Verbs, a.Verb) {
		return false
	}
	if !a.ResourceRequest {
		return urlMatches(rule.NonResourceURLs, a.Path)
	}
	return groupMatches(rule.APIGroups, a.APIGroup) &&
		resourceMatches(rule.Resources, a.Resource, a.Subresource) &&
		nameMatches(rule.ResourceNames, a.Name)
}

func verbMatches(verbs []string, verb string) bool {
	return slices.Contains(verbs, rbacv1.VerbAll) || slices.Contains(verbs, verb)
}

func groupMatches(groups []string, group string) bool {
	return slices.Contains(groups, rbacv1.APIGroupAll) || slices.Contains(groups, group)
}

func resourceMatches(resources []string, resource, subresource string) bool {
	requested := resource
	if subresource != "" {
		requested += "/" + subresource
	}
	for _, r := range resources {
		switch {
		case r == rbacv1.ResourceAll, r == requested:
			return true
		case subresource != "" && r == "*/"+subresource:
			return true
		}
	}
	return false
}

func nameMatches(names []string, name string) bool {
	return len(names) == 0 || slices.Contains(names, name)
}

func urlMatches(urls []string, path string) bool {
	for _, u := range urls {
		switch {
		case u == rbacv1.NonResourceAll, u == path:
			return true
		case strings.HasSuffix(u, "*") && strings.HasPrefix(path, strings.TrimSuffix(u, "*")):
			return true
		}
	}
	return false
}

// Covers reports whether owner grants everything rule grants, and returns
// the parts of rule that are not covered. It is the escalation check:
// nobody may grant what they do not hold.
func Covers(owner []Rule, rule Rule) (bool, []Rule) {
	var missing []Rule
	for _, atom := range atomize(rule) {
		if !slices.ContainsFunc(owner, func(o Rule) bool { return ruleCovers(&o, &atom) }) {
			missing = append(missing, atom)
		}
	}
	return len(missing) == 0, missing
}

// atomize splits a rule into rules of one verb and one group, resource,
// name or URL each.
func atomize(rule Rule) []Rule {
	var out []Rule
	for _, verb := range rule.Verbs {
		for _, url := range rule.NonResourceURLs {
			out = append(out, Rule{Verbs: []string{verb}, NonResourceURLs: []string{url}})
		}
		for _, group := range rule.APIGroups {
			for _, resource := range rule.Resources {
				if len(rule.ResourceNames) == 0 {
					out = append(out, Rule{Verbs: []string{verb}, APIGroups: []string{group}, Resources: []string{resource}})
					continue
				}
				for _, name := range rule.ResourceNames {
					out = append(out, Rule{Verbs: []string{verb}, APIGroups: []string{group}, Resources: []string{resource}, ResourceNames: []string{name}})
				}
			}
		}
	}
	return out
}

// ruleCovers checks an atomic rule against one owner rule. Wildcards in the
// atom are only covered by the same wildcard.
func ruleCovers(owner, atom *Rule) bool {
	if !verbMatches(owner.Verbs, atom.Verbs[0]) {
		return false
	}
	if len(atom.NonResourceURLs) > 0 {
		return urlMatches(owner.NonResourceURLs, atom.NonResourceURLs[0])
	}
	if !groupMatches(owner.APIGroups, atom.APIGroups[0]) {
		return false
	}
	resource := atom.Resources[0]
	covered := slices.Contains(owner.Resources, rbacv1.ResourceAll) || slices.Contains(owner.Resources, resource)
	if !covered {
		if _, sub, ok := strings.Cut(resource, "/"); ok && slices.Contains(owner.Resources, "*/"+sub) {
			covered = true
		}
	}
	if !covered {
		return false
	}
	if len(owner.ResourceNames) == 0 {
		return true
	}
	return len(atom.ResourceNames) == 1 && slices.Contains(owner.ResourceNames, atom.ResourceNames[0])
}
