package server

import (
	"context"
	"crypto"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"

	"tower.dev/tower/apiserver/authentication"
	"tower.dev/tower/apiserver/authorization"
	"tower.dev/tower/apiserver/endpoints"
	"tower.dev/tower/apiserver/storage"
)

// policyResyncDelay is how long the RBAC index waits before re-listing
// after its watch ends.
const policyResyncDelay = time.Second

// security is who may talk to the server and what they may do.
type security struct {
	authenticator authentication.Authenticator
	authorizer    authorization.Authorizer
	rules         authorization.RuleResolver
	policy        *authorization.Policy
	// issuer signs TokenRequests; nil without a signing key.
	issuer   *authentication.TokenIssuer
	verifier *authentication.TokenVerifier
	static   *authentication.StaticTokens
	// publicKeys verify service-account tokens (JWKS).
	publicKeys []crypto.PublicKey
}

func (a *api) newSecurity() (*security, error) {
	o := a.options
	s := &security{policy: authorization.NewPolicy()}
	rbac := &authorization.RBAC{Policy: s.policy}
	s.rules = rbac
	authorizers := authorization.Union{authorization.PrivilegedGroup{}}
	for _, mode := range o.AuthorizationModes {
		switch mode {
		case "RBAC":
			authorizers = append(authorizers, rbac)
		case "Node":
			authorizers = append(authorizers, &authorization.Node{Pods: a.podsOnNode})
		case "AlwaysAllow":
			authorizers = append(authorizers, authorization.AlwaysAllow{})
		default:
			return nil, fmt.Errorf("--authorization-mode: unknown mode %q (supported: AlwaysAllow, Node, RBAC)", mode)
		}
	}
	s.authorizer = authorizers

	var tokens authentication.BearerToken
	if o.TokenAuthFile != "" {
		static, err := authentication.LoadTokenFile(o.TokenAuthFile)
		if err != nil {
			return nil, fmt.Errorf("--token-auth-file: %w", err)
		}
		tokens = append(tokens, static)
		s.static = static
	}
	if err := s.loadServiceAccountKeys(o); err != nil {
		return nil, err
	}
	if len(s.publicKeys) > 0 && len(o.ServiceAccountIssuers) > 0 {
		audiences := s.apiAudiences(o)
		s.verifier = &authentication.TokenVerifier{
			Issuers:   o.ServiceAccountIssuers,
			Keys:      s.publicKeys,
			Audiences: audiences,
			Objects:   objectUIDs{a},
		}
		tokens = append(tokens, s.verifier)
	}
	authenticators := authentication.Union{authentication.ClientCertificate{}}
	if len(tokens) > 0 {
		authenticators = append(authenticators, tokens)
	}
	s.authenticator = authenticators
	return s, nil
}

func (s *security) loadServiceAccountKeys(o *Options) error {
	if o.ServiceAccountSigningKeyFile != "" {
		key, err := authentication.LoadSigningKey(o.ServiceAccountSigningKeyFile)
		if err != nil {
			return fmt.Errorf("--service-account-signing-key-file: %w", err)
		}
		if len(o.ServiceAccountIssuers) == 0 {
			return fmt.Errorf("--service-account-issuer is required with --service-account-signing-key-file")
		}
		if s.issuer, err = authentication.NewTokenIssuer(o.ServiceAccountIssuers[0], key); err != nil {
			return fmt.Errorf("service account token issuer: %w", err)
		}
		if len(o.ServiceAccountKeyFiles) == 0 {
			s.publicKeys = append(s.publicKeys, key.Public())
		}
	}
	for _, file := range o.ServiceAccountKeyFiles {
		keys, err := authentication.LoadPublicKeys(file)
		if err != nil {
			return fmt.Errorf("--service-account-key-file: %w", err)
		}
		s.publicKeys = append(s.publicKeys, keys...)
	}
	return nil
}

// objectUIDs answers the token verifier's questions from storage, the
// watch cache first.
type objectUIDs struct{ a *api }

func (o objectUIDs) UID(ctx context.Context, resource, namespace, name string) (string, bool, error) {
	e := o.a.byGVR[corev1.SchemeGroupVersion.WithResource(resource)]
	if e == nil {
		return "", false, fmt.Errorf("no storage for %s", resource)
	}
	key := e.KeyPrefix + "/" + name
	if namespace != "" {
		key = e.KeyPrefix + "/" + namespace + "/" + name
	}
	for _, rv := range []string{"0", ""} {
		obj := e.Resource.New()
		err := e.Store.Get(ctx, key, storage.GetOptions{ResourceVersion: rv}, obj)
		if storage.IsNotFound(err) {
			continue
		}
		if err != nil {
			return "", false, err
		}
		m, err := meta.Accessor(obj)
		if err != nil {
			return "", false, err
		}
		return string(m.GetUID()), true, nil
	}
	return "", false, nil
}

// rbacEndpoints are the stores the RBAC index follows.
func (a *api) rbacEndpoints() []*endpoints.Endpoint {
	var out []*endpoints.Endpoint
	for _, r := range []string{"roles", "rolebindings", "clusterroles", "clusterrolebindings"} {
		out = append(out, a.byGVR[rbacv1.SchemeGroupVersion.WithResource(r)])
	}
	return out
}

// syncPolicy loads the RBAC objects into the index and keeps it current
// until ctx ends. It returns once the first load is done.
func (a *api) syncPolicy(ctx context.Context) error {
	for _, e := range a.rbacEndpoints() {
		rv, err := a.relistPolicy(ctx, e)
		if err != nil {
			return err
		}
		go a.followPolicy(ctx, e, rv)
	}
	return nil
}

func (a *api) relistPolicy(ctx context.Context, e *endpoints.Endpoint) (string, error) {
	list := e.Resource.NewList()
	if err := e.Store.GetList(ctx, e.KeyPrefix+"/", storage.ListOptions{Recursive: true}, list); err != nil {
		return "", fmt.Errorf("list %s for authorization: %w", e.Resource.Resource, err)
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		return "", err
	}
	a.security.policy.Replace(e.Resource.New(), items)
	listMeta, err := meta.ListAccessor(list)
	if err != nil {
		return "", err
	}
	return listMeta.GetResourceVersion(), nil
}

// followPolicy applies watch events to the index, re-listing whenever the
// watch ends.
func (a *api) followPolicy(ctx context.Context, e *endpoints.Endpoint, rv string) {
	log := logr.FromContextOrDiscard(ctx).WithValues("resource", e.Resource.Resource)
	for ctx.Err() == nil {
		if rv == "" {
			var err error
			if rv, err = a.relistPolicy(ctx, e); err != nil {
				log.Error(err, "re-listing RBAC objects")
				sleep(ctx, policyResyncDelay)
				continue
			}
		}
		w, err := e.Store.Watch(ctx, e.KeyPrefix+"/", storage.ListOptions{ResourceVersion: rv, Recursive: true})
		if err != nil {
			log.Error(err, "watching RBAC objects")
			rv = ""
			sleep(ctx, policyResyncDelay)
			continue
		}
		rv = a.applyPolicyEvents(w)
	}
}

// applyPolicyEvents consumes a watch and returns the revision to resume
// from, or "" when the index must be re-listed.
func (a *api) applyPolicyEvents(w watch.Interface) string {
	defer w.Stop()
	rv := ""
	for ev := range w.ResultChan() {
		if cached, ok := ev.Object.(runtime.CacheableObject); ok {
			ev.Object = cached.GetObject()
		}
		switch ev.Type {
		case watch.Added, watch.Modified:
			a.security.policy.Set(ev.Object)
		case watch.Deleted:
			a.security.policy.Remove(ev.Object)
		case watch.Error:
			return ""
		}
		if m, err := meta.Accessor(ev.Object); err == nil && ev.Type != watch.Error {
			rv = m.GetResourceVersion()
		}
	}
	return rv
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// podsOnNode lists the pods bound to a node, for the Node authorizer.
func (a *api) podsOnNode(ctx context.Context, node string) ([]*corev1.Pod, error) {
	e := a.byGVR[corev1.SchemeGroupVersion.WithResource("pods")]
	sel := fields.OneTermEqualSelector("spec.nodeName", node)
	list := &corev1.PodList{}
	pred := storage.SelectionPredicate{Field: sel, GetAttrs: e.Resource.Strategy.GetAttrs}
	if err := e.Store.GetList(ctx, e.KeyPrefix+"/", storage.ListOptions{ResourceVersion: "0", Recursive: true, Predicate: pred}, list); err != nil {
		return nil, fmt.Errorf("list pods on node %s: %w", node, err)
	}
	pods := make([]*corev1.Pod, 0, len(list.Items))
	for i := range list.Items {
		pods = append(pods, &list.Items[i])
	}
	return pods, nil
}

// storedPod and storedNode read one object for NodeRestriction.
func (a *api) storedPod(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	pod := &corev1.Pod{}
	return pod, a.stored(ctx, corev1.SchemeGroupVersion.WithResource("pods"), namespace+"/"+name, name, pod)
}

func (a *api) storedNode(ctx context.Context, name string) (*corev1.Node, error) {
	node := &corev1.Node{}
	return node, a.stored(ctx, corev1.SchemeGroupVersion.WithResource("nodes"), name, name, node)
}

// stored reads the object at key under gvr's prefix from the watch cache,
// confirming a miss with a consistent read (the object may be a moment
// old), and reports absence as the API's NotFound.
func (a *api) stored(ctx context.Context, gvr schema.GroupVersionResource, key, name string, into runtime.Object) error {
	e := a.byGVR[gvr]
	key = e.KeyPrefix + "/" + key
	err := e.Store.Get(ctx, key, storage.GetOptions{ResourceVersion: "0"}, into)
	if storage.IsNotFound(err) {
		err = e.Store.Get(ctx, key, storage.GetOptions{}, into)
	}
	switch {
	case storage.IsNotFound(err):
		return apierrors.NewNotFound(gvr.GroupResource(), name)
	case err != nil:
		return fmt.Errorf("reading %s %s: %w", gvr.Resource, name, err)
	}
	return nil
}

// reviews answers the review resources and service-account TokenRequests.
func (a *api) reviews(scope *endpoints.Scope) *endpoints.Reviews {
	v := &endpoints.Reviews{
		Scope:      scope,
		Resources:  a.notStored,
		Authorizer: a.security.authorizer,
		Rules:      a.security.rules,
		Tokens:     tokenReviewer{a.security},
	}
	if a.security.issuer != nil {
		objects := map[string]*endpoints.Endpoint{}
		for _, r := range []string{"serviceaccounts", "pods", "secrets", "nodes"} {
			objects[r] = a.byGVR[corev1.SchemeGroupVersion.WithResource(r)]
		}
		v.TokenRequests = &endpoints.TokenRequests{
			Issuer:        a.security.issuer,
			Audiences:     a.security.apiAudiences(a.options),
			MaxExpiration: a.options.ServiceAccountMaxTokenExpiration,
			Objects:       objects,
		}
	}
	return v
}

func (s *security) apiAudiences(o *Options) []string {
	if len(o.APIAudiences) > 0 {
		return o.APIAudiences
	}
	return o.ServiceAccountIssuers
}

// tokenReviewer checks TokenReview tokens with the server's own token
// authenticators.
type tokenReviewer struct{ s *security }

func (t tokenReviewer) ReviewToken(ctx context.Context, token string, audiences []string) (*authentication.User, []string, error) {
	if t.s.verifier != nil {
		wanted := audiences
		if len(wanted) == 0 {
			wanted = t.s.verifier.Audiences
		}
		user, accepted, ok, err := t.s.verifier.Verify(ctx, token, wanted)
		if err != nil {
			return nil, nil, err
		}
		if ok {
			if len(audiences) == 0 {
				accepted = t.s.verifier.Audiences
			}
			return user, accepted, nil
		}
	}
	if t.s.static != nil && len(audiences) == 0 {
		user, ok, err := t.s.static.AuthenticateToken(ctx, token)
		if err != nil || ok {
			return user, nil, err
		}
	}
	return nil, nil, authentication.ErrInvalidCredentials
}

// serveIssuerDiscovery serves the service-account issuer's OpenID
// configuration and key set, so that other parties can verify tokens.
func (a *api) serveIssuerDiscovery(mux *http.ServeMux) error {
	s := a.security
	if len(s.publicKeys) == 0 || len(a.options.ServiceAccountIssuers) == 0 {
		return nil
	}
	issuer := a.options.ServiceAccountIssuers[0]
	config, err := authentication.OpenIDConfiguration(issuer, strings.TrimSuffix(issuer, "/")+"/openid/v1/jwks", s.publicKeys)
	if err != nil {
		return fmt.Errorf("openid configuration: %w", err)
	}
	jwks, err := authentication.JWKS(s.publicKeys)
	if err != nil {
		return fmt.Errorf("openid key set: %w", err)
	}
	serve := func(body []byte, contentType string) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", contentType)
			w.Header().Set("Cache-Control", "public, max-age=3600")
			_, _ = w.Write(body)
		}
	}
	mux.Handle("/.well-known/openid-configuration", serve(config, "application/json"))
	mux.Handle("/openid/v1/jwks", serve(jwks, "application/jwk-set+json"))
	return nil
}
