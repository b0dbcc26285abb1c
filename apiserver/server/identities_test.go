package server_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"tower.dev/tower/apiserver/authentication"
	"tower.dev/tower/test/framework"
)

// nodeClient authenticates as the kubelet of node with a client
// certificate from the cluster CA.
func nodeClient(t *testing.T, cp *framework.ControlPlane, node string) *kubernetes.Clientset {
	t.Helper()
	config, err := cp.ConfigFor(authentication.NodeUserPrefix+node, authentication.GroupNodes)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(config)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// podWithSecret is a pod bound to node that mounts secret.
func podWithSecret(name, node, secret string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			NodeName:   node,
			Containers: []corev1.Container{{Name: "c", Image: "tower.dev/test/echo:v1"}},
			Volumes:    []corev1.Volume{{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: secret}}}},
		},
	}
}

// TestNodeReadsOnlyItsPodsSecrets: the Node authorizer lets a kubelet read
// the secret of a pod bound to it and nothing else, with upstream's
// Forbidden text.
func TestNodeReadsOnlyItsPodsSecrets(t *testing.T) {
	cp := securedControlPlane(t)
	ctx := context.Background()
	admin := cp.Clientset()
	ns := cp.CreateNamespace(t)
	for _, name := range []string{"mine", "theirs", "unused"} {
		mustCreate(t, func() error {
			_, err := admin.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
			return err
		})
	}
	for _, pod := range []*corev1.Pod{podWithSecret("on-n1", "n1", "mine"), podWithSecret("on-n2", "n2", "theirs")} {
		mustCreate(t, func() error {
			_, err := admin.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
			return err
		})
	}
	n1 := nodeClient(t, cp, "n1")

	eventually(t, func() error {
		_, err := n1.CoreV1().Secrets(ns).Get(ctx, "mine", metav1.GetOptions{})
		return err
	})
	for _, name := range []string{"theirs", "unused"} {
		_, err := n1.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		want := `secrets "` + name + `" is forbidden: User "system:node:n1" cannot get resource "secrets" in API group "" in the namespace "` + ns + `": no relationship found between node 'n1' and this object`
		if !apierrors.IsForbidden(err) || err.Error() != want {
			t.Errorf("node n1 reading secret %s: %v\nwant 403 %q", name, err, want)
		}
	}
	if _, err := n1.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("node listing secrets: %v, want 403", err)
	}
}

// TestNodeRestrictionOverHTTP runs NodeRestriction's main refusals
// through real requests of a kubelet identity (the full matrix is the
// admission package's unit test): each is a 403 with upstream's text, and
// the node's own objects stay writable.
func TestNodeRestrictionOverHTTP(t *testing.T) {
	cp := securedControlPlane(t)
	ctx := context.Background()
	admin := cp.Clientset()
	ns := cp.CreateNamespace(t)
	n1 := nodeClient(t, cp, "n1")
	for _, name := range []string{"n1", "n2"} {
		mustCreate(t, func() error {
			_, err := nodeClient(t, cp, name).CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
			return err
		})
	}
	for _, pod := range []*corev1.Pod{podWithSecret("on-n1", "n1", "s"), podWithSecret("on-n2", "n2", "s")} {
		mustCreate(t, func() error {
			_, err := admin.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
			return err
		})
	}
	mergePatch := func(body string) []byte { return []byte(body) }
	tests := []struct {
		name string
		do   func() error
		want string // "" when allowed
	}{
		{"label its own node", func() error {
			_, err := n1.CoreV1().Nodes().Patch(ctx, "n1", types.MergePatchType, mergePatch(`{"metadata":{"labels":{"example.com/team":"a"}}}`), metav1.PatchOptions{})
			return err
		}, ""},
		{"label another node", func() error {
			_, err := n1.CoreV1().Nodes().Patch(ctx, "n2", types.MergePatchType, mergePatch(`{"metadata":{"labels":{"example.com/team":"a"}}}`), metav1.PatchOptions{})
			return err
		}, `nodes "n2" is forbidden: node "n1" is not allowed to modify node "n2"`},
		{"set a restricted label on itself", func() error {
			_, err := n1.CoreV1().Nodes().Patch(ctx, "n1", types.MergePatchType, mergePatch(`{"metadata":{"labels":{"node-restriction.kubernetes.io/gpu":"true"}}}`), metav1.PatchOptions{})
			return err
		}, `nodes "n1" is forbidden: is not allowed to modify labels: node-restriction.kubernetes.io/gpu`},
		{"taint itself", func() error {
			_, err := n1.CoreV1().Nodes().Patch(ctx, "n1", types.MergePatchType, mergePatch(`{"spec":{"taints":[{"key":"k","effect":"NoSchedule"}]}}`), metav1.PatchOptions{})
			return err
		}, `nodes "n1" is forbidden: node "n1" is not allowed to modify taints`},
		{"report its pod's status", func() error {
			_, err := n1.CoreV1().Pods(ns).Patch(ctx, "on-n1", types.MergePatchType, mergePatch(`{"status":{"message":"hello"}}`), metav1.PatchOptions{}, "status")
			return err
		}, ""},
		{"report another node's pod status", func() error {
			_, err := n1.CoreV1().Pods(ns).Patch(ctx, "on-n2", types.MergePatchType, mergePatch(`{"status":{"message":"hello"}}`), metav1.PatchOptions{}, "status")
			return err
		}, `pods "on-n2" is forbidden: node "n1" can only update pod status for pods with spec.nodeName set to itself`},
		{"create a regular pod", func() error {
			_, err := n1.CoreV1().Pods(ns).Create(ctx, podWithSecret("sneaky", "n1", "s"), metav1.CreateOptions{})
			return err
		}, `pods "sneaky" is forbidden: pod does not have "kubernetes.io/config.mirror" annotation, node "n1" can only create mirror pods`},
		{"renew its lease", func() error {
			_, err := n1.CoordinationV1().Leases(corev1.NamespaceNodeLease).Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}, metav1.CreateOptions{})
			return err
		}, ""},
		{"take another node's lease", func() error {
			_, err := n1.CoordinationV1().Leases(corev1.NamespaceNodeLease).Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "n2"}}, metav1.CreateOptions{})
			return err
		}, `leases.coordination.k8s.io "n2" is forbidden: can only access node lease with the same name as the requesting node`},
		{"delete another node's pod", func() error {
			return n1.CoreV1().Pods(ns).Delete(ctx, "on-n2", metav1.DeleteOptions{})
		}, `pods "on-n2" is forbidden: node "n1" can only delete pods with spec.nodeName set to itself`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.do()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (!apierrors.IsForbidden(err) || err.Error() != tt.want):
				t.Fatalf("got %v\nwant 403 %q", err, tt.want)
			}
		})
	}
}

// TestExpiredServiceAccountTokenRejected: a token signed with the
// cluster's own key is refused with 401 once expired, while the same
// token minted with a live expiry is accepted (so the expiry is what
// decides).
func TestExpiredServiceAccountTokenRejected(t *testing.T) {
	cp, key := securedControlPlaneWithKey(t)
	ctx := context.Background()
	ns := cp.CreateNamespace(t)
	sa, err := cp.Clientset().CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "robot"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := authentication.NewTokenIssuer(testIssuer, key)
	if err != nil {
		t.Fatal(err)
	}
	mint := func(issuedAt time.Time) string {
		t.Helper()
		token, err := issuer.Issue(authentication.TokenRequest{
			Namespace: ns, ServiceAccountName: sa.Name, ServiceAccountUID: string(sa.UID),
			Audiences: []string{testIssuer}, IssuedAt: issuedAt, Expiry: issuedAt.Add(time.Hour), ID: "test",
		})
		if err != nil {
			t.Fatal(err)
		}
		return token
	}
	live := mint(time.Now())
	eventually(t, func() error {
		_, err := clientFor(t, cp, live).AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		return err
	})
	expired := mint(time.Now().Add(-3 * time.Hour))
	_, err = clientFor(t, cp, expired).AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if !apierrors.IsUnauthorized(err) {
		t.Fatalf("expired token: %v, want 401", err)
	}
}

// TestProjectedTokenInClusterConfig follows a pod's token from the node
// to the API: the kubelet of the pod's node requests the bound token (as
// the node agent does for a projected volume), writes it and the cluster
// CA as the files /var/run/secrets/kubernetes.io/serviceaccount holds,
// and a client built the way rest.InClusterConfig builds one (service
// host and port from the environment, BearerTokenFile, CAFile) makes a
// request its RBAC allows and is refused one it does not.
func TestProjectedTokenInClusterConfig(t *testing.T) {
	cp := securedControlPlane(t)
	ctx := context.Background()
	admin := cp.Clientset()
	ns := cp.CreateNamespace(t)
	mustCreate(t, func() error {
		_, err := admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "app"}}, metav1.CreateOptions{})
		return err
	})
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "app"},
		Spec:       corev1.PodSpec{NodeName: "n1", ServiceAccountName: "app", Containers: []corev1.Container{{Name: "c", Image: "tower.dev/test/echo:v1"}}},
	}
	created, err := admin.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	grantRead(t, admin, ns, "pods", rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: "app"})

	// The kubelet of another node may not have the pod's token.
	request := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		BoundObjectRef: &authenticationv1.BoundObjectReference{APIVersion: "v1", Kind: "Pod", Name: created.Name, UID: created.UID},
	}}
	if _, err := nodeClient(t, cp, "n2").CoreV1().ServiceAccounts(ns).CreateToken(ctx, "app", request, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("node n2 requesting the token of a pod on n1: %v, want 403", err)
	}
	var token *authenticationv1.TokenRequest
	eventually(t, func() error {
		token, err = nodeClient(t, cp, "n1").CoreV1().ServiceAccounts(ns).CreateToken(ctx, "app", request, metav1.CreateOptions{})
		return err
	})

	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	caFile := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(tokenFile, []byte(token.Status.Token), 0o600); err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(cp.Config.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(caFile, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	host, port, err := net.SplitHostPort(strings.TrimPrefix(cp.Config.Host, "https://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", host)
	t.Setenv("KUBERNETES_SERVICE_PORT", port)
	config, err := inClusterConfig(tokenFile, caFile)
	if err != nil {
		t.Fatal(err)
	}
	app, err := kubernetes.NewForConfig(config)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error {
		_, err := app.CoreV1().Pods(ns).Get(ctx, "app", metav1.GetOptions{})
		return err
	})
	who, err := app.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := who.Status.UserInfo; got.Username != "system:serviceaccount:"+ns+":app" || len(got.Extra[authentication.ExtraPodName]) != 1 || got.Extra[authentication.ExtraPodName][0] != "app" {
		t.Errorf("the pod's token authenticates as %+v", got)
	}
	if _, err := app.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("listing secrets with the pod's token: %v, want 403", err)
	}
}

// inClusterConfig builds a client configuration as rest.InClusterConfig
// does, from the service environment and the token and CA files, which
// here live in a test directory instead of
// /var/run/secrets/kubernetes.io/serviceaccount.
func inClusterConfig(tokenFile, caFile string) (*rest.Config, error) {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return nil, rest.ErrNotInCluster
	}
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		return nil, err
	}
	return &rest.Config{
		Host:            "https://" + net.JoinHostPort(host, port),
		TLSClientConfig: rest.TLSClientConfig{CAFile: caFile},
		BearerToken:     string(token),
		BearerTokenFile: tokenFile,
	}, nil
}
