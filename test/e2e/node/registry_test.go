package node_test

import (
	"archive/tar"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"tower.dev/tower/apiserver/pki"
	"tower.dev/tower/nodeagent"
	"tower.dev/tower/test/images/imagebuild"
)

const (
	registryUser     = "puller"
	registryPassword = "s3cret"
)

// testRegistry is a real registry (go-containerregistry's implementation
// of the distribution protocol) served over TLS on loopback, with basic
// authentication in front, and a hosts directory in containerd's certs.d
// layout that trusts its CA.
type testRegistry struct {
	host     string
	hostsDir string
}

// startRegistry serves the registry until the test ends and pushes the
// echo image to it under each of tags, as <host>/test/echo:<tag>.
func startRegistry(t *testing.T, tags ...string) *testRegistry {
	t.Helper()
	dir := t.TempDir()
	ca, err := pki.LoadOrCreateCA(filepath.Join(dir, "pki"))
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := ca.EnsureServingCert(filepath.Join(dir, "pki"), "registry", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := &http.Server{
		Handler:           basicAuth(registry.New(registry.Logger(log.New(io.Discard, "", 0)))),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = server.ServeTLS(listener, "", "") }()
	t.Cleanup(func() { _ = server.Close() })
	r := &testRegistry{host: listener.Addr().String(), hostsDir: filepath.Join(dir, "certs.d")}

	// A user configures the registry for the node exactly so, in
	// /etc/containerd/certs.d/<host:port>/hosts.toml.
	hostDir := filepath.Join(r.hostsDir, r.host)
	if err := os.MkdirAll(hostDir, 0o755); err != nil {
		t.Fatal(err)
	}
	hostsTOML := fmt.Sprintf("server = %q\nca = %q\n", "https://"+r.host, ca.CertFile)
	if err := os.WriteFile(filepath.Join(hostDir, "hosts.toml"), []byte(hostsTOML), 0o644); err != nil {
		t.Fatal(err)
	}

	images := t.TempDir()
	archives, err := imagebuild.Build(t.Context(), images)
	if err != nil {
		t.Fatal(err)
	}
	var echoArchive string
	for _, a := range archives {
		if a.Image == imagebuild.EchoImage {
			echoArchive = a.Path
		}
	}
	img := loadArchiveImage(t, echoArchive)
	transport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}}
	for _, tag := range tags {
		ref, err := name.ParseReference(r.image(tag))
		if err != nil {
			t.Fatal(err)
		}
		err = remote.Write(ref, img, remote.WithContext(t.Context()), remote.WithTransport(transport),
			remote.WithAuth(&authn.Basic{Username: registryUser, Password: registryPassword}))
		if err != nil {
			t.Fatalf("pushing %s: %v", ref, err)
		}
	}
	return r
}

func (r *testRegistry) image(tag string) string { return r.host + "/test/echo:" + tag }

// basicAuth lets only registryUser through, challenging everyone else as
// a registry behind basic authentication does.
func basicAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		user, password, ok := req.BasicAuth()
		if !ok || user != registryUser || password != registryPassword {
			w.Header().Set("WWW-Authenticate", `Basic realm="tower-e2e"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
			return
		}
		next.ServeHTTP(w, req)
	})
}

// loadArchiveImage reads the one image of an OCI layout archive.
func loadArchiveImage(t *testing.T, archive string) v1.Image {
	t.Helper()
	dir := t.TempDir()
	if err := untar(archive, dir); err != nil {
		t.Fatalf("unpacking %s: %v", archive, err)
	}
	index, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := index.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(manifest.Manifests) != 1 {
		t.Fatalf("%s holds %d images, want 1", archive, len(manifest.Manifests))
	}
	img, err := index.Image(manifest.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// untar unpacks a tar archive into dir.
func untar(archive, dir string) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		target := filepath.Join(dir, filepath.Clean("/"+hdr.Name))
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			out, err := os.Create(target)
			if err != nil {
				return err
			}
			_, copyErr := io.Copy(out, tr)
			if err := errors.Join(copyErr, out.Close()); err != nil {
				return err
			}
		}
	}
}

// dockerConfigSecret is a pull secret for the registry of the given type
// (kubernetes.io/dockerconfigjson or kubernetes.io/dockercfg).
func dockerConfigSecret(t *testing.T, secretName, host string, secretType corev1.SecretType, password string) *corev1.Secret {
	t.Helper()
	auths := map[string]map[string]string{host: {
		"auth": base64.StdEncoding.EncodeToString([]byte(registryUser + ":" + password)),
	}}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: secretName}, Type: secretType}
	var data []byte
	var err error
	if secretType == corev1.SecretTypeDockerConfigJson {
		data, err = json.Marshal(map[string]any{"auths": auths})
		secret.Data = map[string][]byte{corev1.DockerConfigJsonKey: data}
	} else {
		data, err = json.Marshal(auths)
		secret.Data = map[string][]byte{corev1.DockerConfigKey: data}
	}
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

func waitingReason(p *corev1.Pod) (reason, message string) {
	if len(p.Status.ContainerStatuses) != 1 || p.Status.ContainerStatuses[0].State.Waiting == nil {
		return "", ""
	}
	w := p.Status.ContainerStatuses[0].State.Waiting
	return w.Reason, w.Message
}

// waitingStates records every waiting state the namespace's pods report,
// in order, so that a test sees states that last only a moment.
type waitingStates struct {
	mu     sync.Mutex
	byPod  map[string][]corev1.ContainerStateWaiting
	events watch.Interface
}

func watchWaitingStates(t *testing.T, n *node, namespace string) *waitingStates {
	t.Helper()
	w, err := n.client.CoreV1().Pods(namespace).Watch(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	s := &waitingStates{byPod: map[string][]corev1.ContainerStateWaiting{}, events: w}
	go func() {
		for e := range w.ResultChan() {
			pod, ok := e.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			reason, message := waitingReason(pod)
			if reason == "" {
				continue
			}
			s.mu.Lock()
			seen := s.byPod[pod.Name]
			if len(seen) == 0 || seen[len(seen)-1].Reason != reason || seen[len(seen)-1].Message != message {
				s.byPod[pod.Name] = append(seen, corev1.ContainerStateWaiting{Reason: reason, Message: message})
			}
			s.mu.Unlock()
		}
	}()
	return s
}

// waitFor returns the pod's first waiting state with the reason.
func (s *waitingStates) waitFor(t *testing.T, pod, reason string, timeout time.Duration) corev1.ContainerStateWaiting {
	t.Helper()
	var found corev1.ContainerStateWaiting
	waitFor(t, timeout, fmt.Sprintf("pod %s waiting with %s", pod, reason), func() (bool, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, w := range s.byPod[pod] {
			if w.Reason == reason {
				found = w
				return true, nil
			}
		}
		return false, nil
	})
	return found
}

func TestImagePulls(t *testing.T) {
	reg := startRegistry(t, "v1", "v2", "v3")
	n := startNodeWith(t, nodeSetup{agent: func(c *nodeagent.Config) { c.RegistryHostsDir = reg.hostsDir }})
	ctx := t.Context()
	namespace := n.createNamespace(t, "pulls")
	states := watchWaitingStates(t, n, namespace)
	secrets := n.client.CoreV1().Secrets(namespace)
	for _, s := range []*corev1.Secret{
		dockerConfigSecret(t, "json", reg.host, corev1.SecretTypeDockerConfigJson, registryPassword),
		dockerConfigSecret(t, "legacy", "https://"+reg.host, corev1.SecretTypeDockercfg, registryPassword),
		dockerConfigSecret(t, "wrong", reg.host, corev1.SecretTypeDockerConfigJson, "not-the-password"),
	} {
		if _, err := secrets.Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	withPull := func(policy corev1.PullPolicy, secretNames ...string) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			p.Spec.Containers[0].ImagePullPolicy = policy
			for _, s := range secretNames {
				p.Spec.ImagePullSecrets = append(p.Spec.ImagePullSecrets, corev1.LocalObjectReference{Name: s})
			}
		}
	}
	// The wrong credentials come first: kubelet tries each that matches.
	n.createPod(t, namespace, "with-secret", reg.image("v1"), withPull(corev1.PullIfNotPresent, "wrong", "json"))
	n.createPod(t, namespace, "with-dockercfg", reg.image("v2"), withPull(corev1.PullAlways, "legacy"))
	n.createPod(t, namespace, "without-secret", reg.image("v3"), withPull(corev1.PullIfNotPresent))
	n.createPod(t, namespace, "never", reg.image("v3"), withPull(corev1.PullNever))

	for _, name := range []string{"with-secret", "with-dockercfg"} {
		t.Run(name+" runs the pulled image", func(t *testing.T) {
			pod := n.waitPod(t, namespace, name, 90*time.Second, "Running", func(p *corev1.Pod) bool {
				return p.Status.Phase == corev1.PodRunning && p.Status.PodIP != ""
			})
			if body := n.httpGetInHostNetwork(t, net.JoinHostPort(pod.Status.PodIP, "8080")); body != name {
				t.Errorf("the pulled echo server answered %q, want %q", body, name)
			}
			if id := pod.Status.ContainerStatuses[0].ImageID; !strings.HasPrefix(id, reg.host+"/test/echo:") || !strings.Contains(id, "@sha256:") {
				t.Errorf("imageID %q, want the pulled image pinned by digest", id)
			}
			if !hasEvent(t, n, namespace, name, "Pulled") {
				t.Error("no Pulled event")
			}
		})
	}

	t.Run("without a secret ErrImagePull then ImagePullBackOff", func(t *testing.T) {
		pullErr := states.waitFor(t, "without-secret", "ErrImagePull", 60*time.Second)
		if !strings.Contains(pullErr.Message, reg.image("v3")) || !strings.Contains(pullErr.Message, "401 Unauthorized") {
			t.Errorf("ErrImagePull message %q does not name the image and the registry's refusal", pullErr.Message)
		}
		backOff := states.waitFor(t, "without-secret", "ImagePullBackOff", 60*time.Second)
		if want := fmt.Sprintf("Back-off pulling image %q: ErrImagePull: %s", reg.image("v3"), pullErr.Message); backOff.Message != want {
			t.Errorf("ImagePullBackOff message %q, want %q", backOff.Message, want)
		}
		pod, err := n.client.CoreV1().Pods(namespace).Get(ctx, "without-secret", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if pod.Status.Phase != corev1.PodPending {
			t.Errorf("phase %s, want Pending", pod.Status.Phase)
		}
		if !hasEvent(t, n, namespace, "without-secret", "Failed") {
			t.Error("no Failed event for the pull")
		}
	})

	t.Run("Never with a missing image ErrImageNeverPull", func(t *testing.T) {
		never := states.waitFor(t, "never", "ErrImageNeverPull", 60*time.Second)
		if want := fmt.Sprintf("Container image %q is not present with pull policy of Never", reg.image("v3")); never.Message != want {
			t.Errorf("message %q, want %q", never.Message, want)
		}
	})
}
