package server

import (
	"fmt"
	"net/http"
	"strings"

	authnv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"tower.dev/tower/apiserver/audit"
	"tower.dev/tower/apiserver/authentication"
	"tower.dev/tower/apiserver/endpoints"
)

// auditing is the audit policy and log, when --audit-log-path and
// --audit-policy-file are both given.
type auditing struct {
	policy *audit.Policy
	log    *audit.Log
}

func newAuditing(o *Options) (*auditing, error) {
	if o.AuditLogPath == "" || o.AuditPolicyFile == "" {
		return nil, nil
	}
	policy, err := audit.LoadPolicy(o.AuditPolicyFile)
	if err != nil {
		return nil, fmt.Errorf("--audit-policy-file: %w", err)
	}
	log, err := audit.OpenLog(o.AuditLogPath)
	if err != nil {
		return nil, fmt.Errorf("--audit-log-path: %w", err)
	}
	return &auditing{policy: policy, log: log}, nil
}

// audit records requests after authentication, so events name the user.
func (a *api) audit(next http.Handler) http.Handler {
	if a.auditing == nil {
		return next
	}
	return audit.Handler(next, audit.Config{
		Policy: a.auditing.policy, Log: a.auditing.log, Describe: describeForAudit, ToJSON: a.bodyAsJSON,
	})
}

// bodyAsJSON re-encodes a protobuf or YAML body as JSON for audit events.
func (a *api) bodyAsJSON(contentType string, body []byte) []byte {
	if len(body) == 0 || strings.Contains(contentType, "json") || contentType == "" {
		return body
	}
	obj, _, err := a.codecs.UniversalDeserializer().Decode(body, nil, nil)
	if err != nil {
		return nil
	}
	out, err := runtime.Encode(a.jsonEncoder(), obj)
	if err != nil {
		return nil
	}
	return out
}

func (a *api) jsonEncoder() runtime.Encoder {
	info, _ := runtime.SerializerInfoForMediaType(a.codecs.SupportedMediaTypes(), runtime.ContentTypeJSON)
	return info.Serializer
}

func describeForAudit(r *http.Request) (audit.Request, authnv1.UserInfo) {
	var user authnv1.UserInfo
	if u, ok := authentication.UserFrom(r.Context()); ok {
		user = userInfo(u)
	}
	req := audit.Request{User: user.Username, Groups: user.Groups, Path: r.URL.Path}
	if info, ok := endpoints.ParseRequestInfo(r); ok {
		req.IsResource = true
		req.Verb = info.Verb
		req.APIGroup = info.GroupVersion.Group
		req.Resource, req.Subresource = info.Resource, info.Subresource
		req.Namespace, req.Name = info.Namespace, info.Name
	} else {
		req.Verb = strings.ToLower(r.Method)
	}
	return req, user
}

func userInfo(u *authentication.User) authnv1.UserInfo {
	info := authnv1.UserInfo{Username: u.Name, UID: u.UID, Groups: u.Groups}
	if len(u.Extra) > 0 {
		info.Extra = map[string]authnv1.ExtraValue{}
		for k, v := range u.Extra {
			info.Extra[k] = v
		}
	}
	return info
}
