package openapi

import (
	"strings"
	"unicode"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// groupIdentifier is the group as it appears in operation IDs and tags:
// "core" for the legacy group, otherwise the name without ".k8s.io" in
// camel case ("rbac.authorization.k8s.io" -> "rbacAuthorization").
func groupIdentifier(group string) string {
	if group == "" {
		return "core"
	}
	return identifier(strings.TrimSuffix(group, ".k8s.io"), false)
}

// groupVersionTag tags every operation of a group version ("apps_v1",
// "core_v1"), as kube-apiserver does; generated clients group by it.
func groupVersionTag(gv schema.GroupVersion) string {
	return groupIdentifier(gv.Group) + "_" + identifier(gv.Version, false)
}

// operationID composes kube-apiserver's operation IDs: the action, then the
// group and version, then what is acted on, e.g.
// ("create", apps/v1, "NamespacedDeployment") -> "createAppsV1NamespacedDeployment".
func operationID(action string, gv schema.GroupVersion, object string) string {
	return action + identifier(groupIdentifier(gv.Group), true) + identifier(gv.Version, true) + object
}

// identifier keeps letters, underscores and (not first) digits of s, and
// starts a new camel-case word after anything else.
func identifier(s string, capitalizeFirst bool) string {
	var b strings.Builder
	upper := capitalizeFirst
	for i, r := range s {
		if !unicode.IsLetter(r) && r != '_' && (i == 0 || !unicode.IsDigit(r)) {
			upper = true
			continue
		}
		if upper {
			r = unicode.ToUpper(r)
			upper = false
		}
		b.WriteRune(r)
	}
	return b.String()
}
