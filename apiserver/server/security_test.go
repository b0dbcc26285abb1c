package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"tower.dev/tower/apiserver/server"
	"tower.dev/tower/test/framework"
)

const testIssuer = "https://kubernetes.default.svc.cluster.local"

// securedControlPlane starts a server with RBAC, a static token file
// (jane, bob) and service-account tokens.
func securedControlPlane(t *testing.T) *framework.ControlPlane {
	t.Helper()
	cp, _ := securedControlPlaneWithKey(t)
	return cp
}

// securedControlPlaneWithKey is securedControlPlane that also returns the
// service-account signing key, for tests that mint their own tokens.
func securedControlPlaneWithKey(t *testing.T) (*framework.ControlPlane, *ecdsa.PrivateKey) {
	t.Helper()
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte("jane-token,jane,1001\nbob-token,bob,1002,\"devs,testers\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "sa.key")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return framework.Start(t, framework.WithServerOptions(func(o *server.Options) {
		o.TokenAuthFile = tokens
		o.ServiceAccountIssuers = []string{testIssuer}
		o.ServiceAccountSigningKeyFile = keyFile
		o.AuthorizationModes = []string{"Node", "RBAC"}
	})), key
}

// clientFor authenticates with a bearer token and trusts the server's CA.
func clientFor(t *testing.T, cp *framework.ControlPlane, token string) *kubernetes.Clientset {
	t.Helper()
	config := &rest.Config{Host: cp.Config.Host, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAFile: cp.Config.CAFile}, QPS: -1}
	cs, err := kubernetes.NewForConfig(config)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func TestForbiddenMessageAndRBACGrants(t *testing.T) {
	cp := securedControlPlane(t)
	ctx := context.Background()
	admin := cp.Clientset()
	jane := clientFor(t, cp, "jane-token")

	_, err := jane.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{})
	want := `configmaps is forbidden: User "jane" cannot list resource "configmaps" in API group "" in the namespace "default"`
	if !apierrors.IsForbidden(err) || err.Error() != want {
		t.Fatalf("list as jane: %v, want Forbidden %q", err, want)
	}
	if _, err := jane.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{}); err == nil ||
		err.Error() != `nodes "n1" is forbidden: User "jane" cannot get resource "nodes" in API group "" at the cluster scope` {
		t.Fatalf("get node as jane: %v", err)
	}

	ns := cp.CreateNamespace(t)
	grantRead(t, admin, ns, "configmaps", rbacv1.Subject{Kind: rbacv1.UserKind, Name: "jane"})
	eventually(t, func() error {
		_, err := jane.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
		return err
	})
	if _, err := jane.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("create configmap as jane: %v, want Forbidden", err)
	}

	// kubectl auth can-i: SelfSubjectAccessReview.
	review, err := jane.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
		Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: "list", Resource: "configmaps"}},
	}, metav1.CreateOptions{})
	if err != nil || !review.Status.Allowed {
		t.Errorf("SelfSubjectAccessReview: %v %+v", err, review)
	}
	rules, err := jane.AuthorizationV1().SelfSubjectRulesReviews().Create(ctx, &authorizationv1.SelfSubjectRulesReview{
		Spec: authorizationv1.SelfSubjectRulesReviewSpec{Namespace: ns},
	}, metav1.CreateOptions{})
	if err != nil || !hasResourceRule(rules.Status.ResourceRules, "configmaps") {
		t.Errorf("SelfSubjectRulesReview: %v %+v", err, rules)
	}
	who, err := jane.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil || who.Status.UserInfo.Username != "jane" || who.Status.UserInfo.UID != "1001" {
		t.Errorf("SelfSubjectReview: %v %+v", err, who)
	}
}

func TestImpersonation(t *testing.T) {
	cp := securedControlPlane(t)
	ctx := context.Background()
	config := rest.CopyConfig(cp.Config)
	config.Impersonate = rest.ImpersonationConfig{UserName: "jane"}
	asJane, err := kubernetes.NewForConfig(config)
	if err != nil {
		t.Fatal(err)
	}
	_, err = asJane.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `User "jane" cannot list resource "secrets"`) {
		t.Fatalf("admin impersonating jane: %v", err)
	}
	bob := rest.CopyConfig(config)
	bob.TLSClientConfig = rest.TLSClientConfig{CAFile: cp.Config.CAFile}
	bob.BearerToken = "bob-token"
	bobAsJane, err := kubernetes.NewForConfig(bob)
	if err != nil {
		t.Fatal(err)
	}
	_, err = bobAsJane.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{})
	want := `users "jane" is forbidden: User "bob" cannot impersonate resource "users" in API group "" at the cluster scope`
	if !apierrors.IsForbidden(err) || err.Error() != want {
		t.Fatalf("bob impersonating jane: %v, want %q", err, want)
	}
}

func TestServiceAccountTokens(t *testing.T) {
	cp := securedControlPlane(t)
	ctx := context.Background()
	admin := cp.Clientset()
	ns := cp.CreateNamespace(t)
	sa, err := admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "robot"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "robot", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest: %v", err)
	}
	if tr.Status.Token == "" || len(tr.Spec.Audiences) != 1 || tr.Spec.Audiences[0] != testIssuer {
		t.Fatalf("TokenRequest answer: %+v", tr)
	}
	robot := clientFor(t, cp, tr.Status.Token)
	who, err := robot.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("whoami with the token: %v", err)
	}
	if who.Status.UserInfo.Username != "system:serviceaccount:"+ns+":robot" || who.Status.UserInfo.UID != string(sa.UID) {
		t.Errorf("whoami: %+v", who.Status.UserInfo)
	}
	review, err := admin.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: tr.Status.Token}}, metav1.CreateOptions{})
	if err != nil || !review.Status.Authenticated || review.Status.User.Username != who.Status.UserInfo.Username {
		t.Errorf("TokenReview: %v %+v", err, review)
	}
	wrongAudience, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "robot", &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{"vault"}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	forged := tr.Status.Token[:len(tr.Status.Token)-4] + "AAAA"
	for name, token := range map[string]string{"forged": forged, "wrong audience": wrongAudience.Status.Token, "garbage": "not-a-token"} {
		_, err := clientFor(t, cp, token).CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		if !apierrors.IsUnauthorized(err) {
			t.Errorf("%s token: %v, want 401", name, err)
		}
	}
	// Deleting the service account revokes its tokens once the watch cache
	// has seen the deletion (a moment, as with upstream's informers).
	if err := admin.CoreV1().ServiceAccounts(ns).Delete(ctx, "robot", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		_, lastErr = robot.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		if apierrors.IsUnauthorized(lastErr) {
			break
		}
	}
	if !apierrors.IsUnauthorized(lastErr) {
		t.Errorf("token of a deleted service account: %v, want 401", lastErr)
	}

	// Issuer discovery is public to service accounts, like upstream.
	body, err := admin.Discovery().RESTClient().Get().AbsPath("/.well-known/openid-configuration").DoRaw(ctx)
	if err != nil || !strings.Contains(string(body), `"issuer":"`+testIssuer+`"`) {
		t.Errorf("openid configuration: %v %s", err, body)
	}
	body, err = admin.Discovery().RESTClient().Get().AbsPath("/openid/v1/jwks").DoRaw(ctx)
	if err != nil || !strings.Contains(string(body), `"kty":"EC"`) {
		t.Errorf("jwks: %v %s", err, body)
	}
}

func TestAnonymousReachesOnlyPublicInfo(t *testing.T) {
	cp := securedControlPlane(t)
	anon := &rest.Config{Host: cp.Config.Host, TLSClientConfig: rest.TLSClientConfig{CAFile: cp.Config.CAFile}}
	client, err := rest.HTTPClientFor(anon)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]int{"/healthz": 200, "/livez": 200, "/readyz": 200, "/version": 200, "/api": 403, "/api/v1/namespaces": 403, "/metrics": 403, "/debug/pprof/": 403} {
		resp, err := client.Get(cp.Config.Host + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("anonymous GET %s = %d, want %d", path, resp.StatusCode, want)
		}
	}
}

func hasResourceRule(rules []authorizationv1.ResourceRule, resource string) bool {
	for _, r := range rules {
		for _, res := range r.Resources {
			if res == resource {
				return true
			}
		}
	}
	return false
}

// grantRead lets subject get and list resource in ns through a Role and
// RoleBinding named after the resource.
func grantRead(t *testing.T, admin kubernetes.Interface, ns, resource string, subject rbacv1.Subject) {
	t.Helper()
	ctx := context.Background()
	mustCreate(t, func() error {
		_, err := admin.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: resource + "-reader"},
			Rules:      []rbacv1.PolicyRule{{Verbs: []string{"get", "list"}, APIGroups: []string{""}, Resources: []string{resource}}},
		}, metav1.CreateOptions{})
		return err
	})
	mustCreate(t, func() error {
		_, err := admin.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: resource + "-readers"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: resource + "-reader"},
			Subjects:   []rbacv1.Subject{subject},
		}, metav1.CreateOptions{})
		return err
	})
}

func mustCreate(t *testing.T, create func() error) {
	t.Helper()
	if err := create(); err != nil {
		t.Fatal(err)
	}
}

// eventually retries fn while the authorizer's RBAC index catches up with
// a write (it follows a watch).
func eventually(t *testing.T, fn func() error) {
	t.Helper()
	var err error
	for range 100 {
		if err = fn(); err == nil {
			return
		}
		var status apierrors.APIStatus
		if !errors.As(err, &status) || status.Status().Code != http.StatusForbidden {
			break
		}
		sleep()
	}
	t.Fatal(err)
}

func sleep() { <-time.After(20 * time.Millisecond) }

func TestPrivilegeEscalationDenied(t *testing.T) {
	cp := securedControlPlane(t)
	ctx := context.Background()
	admin := cp.Clientset()
	ns := cp.CreateNamespace(t)
	// jane administers the namespace (admin may write roles and bindings).
	mustCreate(t, func() error {
		_, err := admin.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "jane-admin"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "admin"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: "jane"}},
		}, metav1.CreateOptions{})
		return err
	})
	jane := clientFor(t, cp, "jane-token")
	eventually(t, func() error {
		_, err := jane.RbacV1().Roles(ns).List(ctx, metav1.ListOptions{})
		return err
	})

	// Within her own permissions: allowed.
	if _, err := jane.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "pod-reader"},
		Rules:      []rbacv1.PolicyRule{{Verbs: []string{"get", "list"}, APIGroups: []string{""}, Resources: []string{"pods"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("role within jane's permissions: %v", err)
	}
	// Nodes are beyond a namespace admin: refused.
	_, err := jane.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "everything"},
		Rules:      []rbacv1.PolicyRule{{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}}},
	}, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "attempting to grant RBAC permissions not currently held") {
		t.Errorf("role beyond jane's permissions: %v, want Forbidden escalation", err)
	}
	// Binding cluster-admin within the namespace: refused.
	_, err = jane.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "bob-cluster-admin"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: "bob"}},
	}, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("binding cluster-admin: %v, want Forbidden", err)
	}
	// Binding what she holds: allowed.
	if _, err := jane.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "bob-edit"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "edit"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: "bob"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Errorf("binding edit: %v", err)
	}
	// Cluster-wide objects are out of reach altogether.
	if _, err := jane.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "jane-root"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: "jane"}},
	}, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("cluster role binding: %v, want Forbidden", err)
	}
}
