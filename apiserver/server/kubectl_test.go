package server_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"tower.dev/tower/test/framework"
)

// TestKubectlAuthCommands runs Tower's kubectl (k8s.io/kubectl unmodified)
// through auth can-i --list with impersonation, auth whoami and create
// token.
func TestKubectlAuthCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the tower binary")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	tower, err := framework.BuildTower(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	kubectlBin := filepath.Join(dir, "kubectl")
	if err := os.Symlink(tower, kubectlBin); err != nil {
		t.Fatal(err)
	}
	cp := securedControlPlane(t)
	admin := cp.Clientset()
	// CreateNamespace also creates the default service account that
	// `kubectl create token default` asks for.
	ns := cp.CreateNamespace(t)
	if _, err := admin.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "jane-view"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: "jane"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kubectl := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, kubectlBin, append([]string{"--kubeconfig", cp.KubeconfigPath}, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+dir)
		var out, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("kubectl %v: %v\n%s%s", args, err, out.String(), stderr.String())
		}
		return out.String()
	}

	var list string
	deadline := time.Now().Add(10 * time.Second)
	for {
		list = kubectl("--as=jane", "auth", "can-i", "--list", "-n", ns)
		if strings.Contains(list, "deployments.apps") || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, want := range []string{"Resources", "Non-Resource URLs", "Resource Names", "Verbs",
		"selfsubjectaccessreviews.authorization.k8s.io", "deployments.apps", "[get list watch]", "[/api/*]"} {
		if !strings.Contains(list, want) {
			t.Errorf("auth can-i --list lacks %q:\n%s", want, list)
		}
	}
	if strings.Contains(list, "secrets ") {
		t.Errorf("view must not list secrets:\n%s", list)
	}
	if got := strings.TrimSpace(kubectl("--as=jane", "auth", "can-i", "list", "pods", "-n", ns)); got != "yes" {
		t.Errorf("can-i list pods = %q", got)
	}
	cmd := exec.CommandContext(ctx, kubectlBin, "--kubeconfig", cp.KubeconfigPath, "--as=jane", "auth", "can-i", "delete", "pods", "-n", ns)
	if out, err := cmd.Output(); err == nil || strings.TrimSpace(string(out)) != "no" {
		t.Errorf("can-i delete pods = %q, %v; want no and exit status 1", out, err)
	}

	whoami := kubectl("auth", "whoami")
	for _, want := range []string{"ATTRIBUTE", "VALUE", "Username", framework.AdminUser, "[" + framework.AdminGroup + " system:authenticated]"} {
		if !strings.Contains(whoami, want) {
			t.Errorf("auth whoami lacks %q:\n%s", want, whoami)
		}
	}
	if asJane := kubectl("--as=jane", "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"); asJane != "jane" {
		t.Errorf("whoami as jane = %q", asJane)
	}

	token := strings.TrimSpace(kubectl("create", "token", "default", "-n", ns))
	if parts := strings.Split(token, "."); len(parts) != 3 {
		t.Fatalf("create token printed %q, want a JWT", token)
	}
	empty := filepath.Join(dir, "empty.kubeconfig")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	withToken := exec.CommandContext(ctx, kubectlBin, "--kubeconfig", empty, "--server", cp.Config.Host,
		"--certificate-authority", cp.Config.CAFile, "--token", token, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
	out, err := withToken.CombinedOutput()
	if err != nil {
		t.Fatalf("whoami with the token: %v\n%s", err, out)
	}
	if user := string(out); user != "system:serviceaccount:"+ns+":default" {
		t.Errorf("whoami with the token = %q", user)
	}
}
