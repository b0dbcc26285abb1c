package endpoints

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"tower.dev/tower/apiserver/admission"
	"tower.dev/tower/apiserver/authentication"
	"tower.dev/tower/apiserver/registry"
	"tower.dev/tower/apiserver/storage"
)

// Token lifetimes as kube-apiserver bounds them.
const (
	defaultTokenExpirationSeconds = 3600
	minTokenExpirationSeconds     = 600
)

// tokenRequestResource describes the TokenRequest body of
// serviceaccounts/token for decoding and encoding.
var tokenRequestResource = &registry.Resource{
	GroupVersionResource: authenticationv1.SchemeGroupVersion.WithResource("tokenrequests"),
	Kind:                 "TokenRequest",
	Namespaced:           true,
	New:                  func() runtime.Object { return &authenticationv1.TokenRequest{} },
}

// TokenRequests serves POST serviceaccounts/<name>/token: bound,
// audience-scoped, expiring service-account tokens.
type TokenRequests struct {
	Issuer *authentication.TokenIssuer
	// Audiences are used when the request names none (the API's).
	Audiences []string
	// MaxExpiration caps the requested lifetime; zero means no cap.
	MaxExpiration time.Duration
	// Objects are the stores of the objects a token names, by resource:
	// serviceaccounts, pods, secrets, nodes.
	Objects map[string]*Endpoint
	Now     func() time.Time
}

func (t *TokenRequests) serve(w http.ResponseWriter, r *http.Request, info *RequestInfo, scope *Scope) {
	q := &request{Endpoint: &Endpoint{Resource: tokenRequestResource}, scope: scope, info: info, w: w, r: r}
	if info.Verb != "create" {
		q.fail(apierrors.NewMethodNotSupported(schema.GroupResource{Resource: "serviceaccounts/token"}, info.Verb))
		return
	}
	obj, warnings, err := q.decodeBody(r.URL.Query().Get("fieldValidation"))
	if err != nil {
		q.fail(err)
		return
	}
	addWarnings(w, warnings)
	req := obj.(*authenticationv1.TokenRequest)
	ctx := r.Context()
	if err := t.admit(ctx, scope, info, req); err != nil {
		q.fail(err)
		return
	}
	if err := t.issue(ctx, info.Namespace, info.Name, req); err != nil {
		q.fail(err)
		return
	}
	q.respond(ctx, http.StatusCreated, req)
}

// admit runs the request through both halves of admission as a create
// of serviceaccounts/token, as kube-apiserver does (NodeRestriction
// limits nodes to tokens bound to their pods).
func (t *TokenRequests) admit(ctx context.Context, scope *Scope, info *RequestInfo, req *authenticationv1.TokenRequest) error {
	if scope.Admission == nil {
		return nil
	}
	attrs := &admission.Attributes{
		Operation:   admission.Create,
		Resource:    t.Objects["serviceaccounts"].Resource,
		Subresource: "token",
		Namespace:   info.Namespace,
		Name:        info.Name,
		Object:      req,
	}
	if err := scope.Admission.Admit(ctx, attrs); err != nil {
		return err
	}
	return scope.Admission.Validate(ctx, attrs)
}

func (t *TokenRequests) issue(ctx context.Context, namespace, name string, req *authenticationv1.TokenRequest) error {
	sa := &corev1.ServiceAccount{}
	if err := t.get(ctx, "serviceaccounts", namespace, name, sa); err != nil {
		return err
	}
	if len(req.Spec.Audiences) == 0 {
		req.Spec.Audiences = t.Audiences
	}
	if req.Spec.ExpirationSeconds == nil {
		seconds := int64(defaultTokenExpirationSeconds)
		req.Spec.ExpirationSeconds = &seconds
	}
	specPath := field.NewPath("spec")
	switch seconds := *req.Spec.ExpirationSeconds; {
	case seconds < minTokenExpirationSeconds:
		return invalidTokenRequest(field.Invalid(specPath.Child("expirationSeconds"), seconds, "may not specify a duration less than 10 minutes"))
	case seconds > math.MaxUint32:
		return invalidTokenRequest(field.TooLong(specPath.Child("expirationSeconds"), seconds, math.MaxUint32))
	}
	if t.MaxExpiration > 0 && time.Duration(*req.Spec.ExpirationSeconds)*time.Second > t.MaxExpiration {
		capped := int64(t.MaxExpiration / time.Second)
		req.Spec.ExpirationSeconds = &capped
	}
	now := time.Now()
	if t.Now != nil {
		now = t.Now()
	}
	issued := authentication.TokenRequest{
		Namespace: namespace, ServiceAccountName: sa.Name, ServiceAccountUID: string(sa.UID),
		Audiences: req.Spec.Audiences,
		IssuedAt:  now,
		Expiry:    now.Add(time.Duration(*req.Spec.ExpirationSeconds) * time.Second),
		ID:        string(uuid.NewUUID()),
	}
	if err := t.bind(ctx, namespace, req.Spec.BoundObjectRef, &issued); err != nil {
		return err
	}
	token, err := t.Issuer.Issue(issued)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	req.Namespace = namespace
	req.Name = name
	req.Status = authenticationv1.TokenRequestStatus{Token: token, ExpirationTimestamp: metav1.NewTime(issued.Expiry)}
	return nil
}

// bind records the object the token is bound to; a pod binding also names
// the pod's node, as upstream does.
func (t *TokenRequests) bind(ctx context.Context, namespace string, ref *authenticationv1.BoundObjectReference, issued *authentication.TokenRequest) error {
	if ref == nil {
		return nil
	}
	refPath := field.NewPath("spec", "boundObjectRef")
	switch ref.Kind {
	case "Pod":
		pod := &corev1.Pod{}
		if err := t.getBound(ctx, "pods", namespace, ref, pod); err != nil {
			return err
		}
		issued.Pod = &authentication.BoundObject{Name: pod.Name, UID: string(pod.UID)}
		if pod.Spec.NodeName != "" {
			node := &corev1.Node{}
			if err := t.get(ctx, "nodes", "", pod.Spec.NodeName, node); err == nil {
				issued.Node = &authentication.BoundObject{Name: node.Name, UID: string(node.UID)}
			}
		}
	case "Secret":
		secret := &corev1.Secret{}
		if err := t.getBound(ctx, "secrets", namespace, ref, secret); err != nil {
			return err
		}
		issued.Secret = &authentication.BoundObject{Name: secret.Name, UID: string(secret.UID)}
	case "Node":
		node := &corev1.Node{}
		if err := t.getBound(ctx, "nodes", "", ref, node); err != nil {
			return err
		}
		issued.Node = &authentication.BoundObject{Name: node.Name, UID: string(node.UID)}
	default:
		return invalidTokenRequest(field.NotSupported(refPath.Child("kind"), ref.Kind, []string{"Pod", "Secret", "Node"}))
	}
	return nil
}

func (t *TokenRequests) getBound(ctx context.Context, resource, namespace string, ref *authenticationv1.BoundObjectReference, into runtime.Object) error {
	if err := t.get(ctx, resource, namespace, ref.Name, into); err != nil {
		return err
	}
	m := into.(metav1.Object)
	if ref.UID != "" && m.GetUID() != ref.UID {
		return apierrors.NewConflict(schema.GroupResource{Resource: resource}, ref.Name,
			fmt.Errorf("the UID in the bound object reference (%s) does not match the UID in record. The object might have been deleted and then recreated", ref.UID))
	}
	return nil
}

func (t *TokenRequests) get(ctx context.Context, resource, namespace, name string, into runtime.Object) error {
	e, ok := t.Objects[resource]
	if !ok {
		return apierrors.NewInternalError(fmt.Errorf("no store for %s", resource))
	}
	key := e.KeyPrefix + "/" + name
	if namespace != "" {
		key = e.KeyPrefix + "/" + namespace + "/" + name
	}
	if err := e.Store.Get(ctx, key, storage.GetOptions{}, into); err != nil {
		return apiError(err, e.Resource.GroupResource(), name)
	}
	return nil
}

func invalidTokenRequest(errs ...*field.Error) error {
	return apierrors.NewInvalid(schema.GroupKind{Group: authenticationv1.GroupName, Kind: "TokenRequest"}, "", errs)
}
