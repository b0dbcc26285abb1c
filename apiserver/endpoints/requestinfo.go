// Package endpoints serves the REST API of every registered resource: it
// turns HTTP requests into storage calls through the resource's strategy and
// writes the results in the representation the client negotiated.
package endpoints

import (
	"net/http"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// RequestInfo is what the URL of a resource request names.
type RequestInfo struct {
	Verb         string
	APIPrefix    string
	GroupVersion schema.GroupVersion
	Namespace    string
	Resource     string
	Name         string
	Subresource  string
}

// namespaceSubresources are the subresources of a namespace itself, so that
// /api/v1/namespaces/x/status is not read as a resource named "status" in
// namespace x.
var namespaceSubresources = map[string]bool{"status": true, "finalize": true}

// ParseRequestInfo splits a resource URL the way kube-apiserver does. It
// returns false for paths that are not resource requests.
func ParseRequestInfo(r *http.Request) (*RequestInfo, bool) {
	parts := splitPath(r.URL.Path)
	if len(parts) < 2 {
		return nil, false
	}
	info := &RequestInfo{APIPrefix: parts[0]}
	switch parts[0] {
	case "api":
		info.GroupVersion = schema.GroupVersion{Version: parts[1]}
		parts = parts[2:]
	case "apis":
		if len(parts) < 3 {
			return nil, false
		}
		info.GroupVersion = schema.GroupVersion{Group: parts[1], Version: parts[2]}
		parts = parts[3:]
	default:
		return nil, false
	}
	if len(parts) == 0 {
		return nil, false
	}
	watchPath := false
	if parts[0] == "watch" {
		watchPath = true
		parts = parts[1:]
		if len(parts) == 0 {
			return nil, false
		}
	}
	if parts[0] == "namespaces" && len(parts) > 1 {
		info.Namespace = parts[1]
		if len(parts) > 2 && !namespaceSubresources[parts[2]] {
			parts = parts[2:]
		}
	}
	info.Resource = parts[0]
	if len(parts) > 1 {
		info.Name = parts[1]
	}
	if len(parts) > 2 {
		info.Subresource = parts[2]
	}
	if len(parts) > 3 {
		return nil, false
	}
	info.Verb = verbFor(r, info.Name != "", watchPath)
	return info, true
}

func verbFor(r *http.Request, named, watchPath bool) string {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if watchPath || isTrue(r.URL.Query().Get("watch")) {
			return "watch"
		}
		if named {
			return "get"
		}
		return "list"
	case http.MethodPost:
		return "create"
	case http.MethodPut:
		return "update"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		if named {
			return "delete"
		}
		return "deletecollection"
	}
	return strings.ToLower(r.Method)
}

func isTrue(s string) bool { return s == "true" || s == "1" }

func splitPath(path string) []string {
	path = strings.Trim(path, "/")
	if path == "" {
		return nil
	}
	return strings.Split(path, "/")
}
