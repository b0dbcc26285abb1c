// Package kubectl runs a scripted session of real kubectl commands (Tower's
// `kubectl`, which is k8s.io/kubectl's command tree unmodified) against a
// control plane from test/framework, asserting on what kubectl prints and
// on what the server then holds. The same script passes against upstream
// kube-apiserver when the framework is pointed at the reference build
// (TOWER_TEST_AGAINST=reference).
package kubectl

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tower.dev/tower/test/framework"
)

// session is the kubectl environment every test shares.
var session *kubectl

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "tower-e2e-kubectl-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "temp dir: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	tower, err := buildTower(ctx, dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "building tower: %v\n", err)
		return 1
	}
	// Invoked as "kubectl", tower is kubectl, User-Agent included.
	bin := filepath.Join(dir, "kubectl")
	if err := os.Symlink(tower, bin); err != nil {
		fmt.Fprintf(os.Stderr, "linking kubectl: %v\n", err)
		return 1
	}
	cp, err := framework.New(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting control plane: %v\n", err)
		return 1
	}
	home := filepath.Join(dir, "home")
	if err := os.MkdirAll(home, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "home: %v\n", err)
		return 1
	}
	session = &kubectl{bin: bin, kubeconfig: cp.KubeconfigPath, home: home}
	code := m.Run()
	if err := cp.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stopping control plane: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// buildTower builds the tower binary with the Kubernetes version stamped
// into client-go and component-base, as `make build` does: kubectl
// version refuses an unparsable client version.
func buildTower(ctx context.Context, dir string) (string, error) {
	kubeVersion, err := kubernetesVersion(ctx)
	if err != nil {
		return "", err
	}
	minor := strings.Split(kubeVersion, ".")[1]
	var ldflags []string
	for _, pkg := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		ldflags = append(ldflags, "-X", pkg+".gitVersion="+kubeVersion, "-X", pkg+".gitMajor=1", "-X", pkg+".gitMinor="+minor,
			"-X", pkg+".gitTreeState=clean")
	}
	bin := filepath.Join(dir, "tower")
	cmd := exec.CommandContext(ctx, "go", "build", "-ldflags", strings.Join(ldflags, " "), "-o", bin, "tower.dev/tower/cmd/tower")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build tower: %w\n%s", err, out)
	}
	return bin, nil
}

// kubernetesVersion is the release matching the k8s.io/api module the
// project pins (v0.37.2 -> v1.37.2), as the Makefile derives it.
func kubernetesVersion(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Version}}", "k8s.io/api").Output()
	if err != nil {
		return "", fmt.Errorf("go list k8s.io/api: %w", err)
	}
	version := strings.TrimSpace(string(out))
	if !strings.HasPrefix(version, "v0.") {
		return "", fmt.Errorf("unexpected k8s.io/api version %q", version)
	}
	return "v1." + strings.TrimPrefix(version, "v0."), nil
}

// kubectl runs the kubectl binary with the admin kubeconfig and a private
// HOME (its discovery cache).
type kubectl struct {
	bin        string
	kubeconfig string
	home       string
}

// result is what one kubectl invocation left.
type result struct {
	stdout, stderr string
	err            error
}

// exec runs kubectl with args, stdin and extra environment.
func (k *kubectl) exec(ctx context.Context, stdin string, env []string, args ...string) result {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, k.bin, append([]string{"--kubeconfig", k.kubeconfig}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+k.home, "KUBECONFIG="+k.kubeconfig, "KUBECTL_EXTERNAL_DIFF=")
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	return result{stdout: stdout.String(), stderr: stderr.String(), err: err}
}

// run runs kubectl and fails the test if it fails.
func (k *kubectl) run(t *testing.T, args ...string) string {
	t.Helper()
	return k.runWith(t, "", nil, args...)
}

// runWith is run with stdin and extra environment.
func (k *kubectl) runWith(t *testing.T, stdin string, env []string, args ...string) string {
	t.Helper()
	r := k.exec(t.Context(), stdin, env, args...)
	if r.err != nil {
		t.Fatalf("kubectl %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.err, r.stdout, r.stderr)
	}
	return r.stdout
}

// expect runs kubectl and checks that its output contains every want.
func (k *kubectl) expect(t *testing.T, args []string, want ...string) string {
	t.Helper()
	out := k.run(t, args...)
	for _, w := range want {
		if !strings.Contains(squeezeSpaces(out), squeezeSpaces(w)) {
			t.Errorf("kubectl %s printed:\n%s\nwant it to contain %q", strings.Join(args, " "), out, w)
		}
	}
	return out
}

// jsonpath reads one value of a stored object.
func (k *kubectl) jsonpath(t *testing.T, namespace, object, path string) string {
	t.Helper()
	return k.run(t, "-n", namespace, "get", object, "-o", "jsonpath="+path)
}

// namespace creates a namespace named after the test with kubectl and
// deletes it (without waiting) when the test ends.
func (k *kubectl) namespace(t *testing.T) string {
	t.Helper()
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 50 {
		name = name[:50]
	}
	k.expect(t, []string{"create", "namespace", name}, "namespace/"+name+" created")
	t.Cleanup(func() {
		k.exec(context.Background(), "", nil, "delete", "namespace", name, "--wait=false")
	})
	return name
}

// writeFile writes content to a file in the test's temp dir.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	return path
}

// squeezeSpaces collapses runs of spaces, so that expectations do not
// depend on the column widths of kubectl's aligned output.
func squeezeSpaces(s string) string {
	var b strings.Builder
	space := false
	for _, r := range s {
		if r == ' ' || r == '\t' {
			if !space {
				b.WriteByte(' ')
			}
			space = true
			continue
		}
		space = false
		b.WriteRune(r)
	}
	return b.String()
}
