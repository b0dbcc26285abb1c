package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"tower.dev/tower/test/framework"
)

// webhookWait bounds how long a new webhook configuration may take to
// reach the API server's admission plugins (an informer).
const webhookWait = 20 * time.Second

// admissionRecorder serves admission webhooks on several paths and keeps
// the requests each path received.
type admissionRecorder struct {
	mu       sync.Mutex
	requests map[string][]admissionv1.AdmissionRequest
}

func (r *admissionRecorder) record(path string, req admission.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests[path] = append(r.requests[path], req.AdmissionRequest)
}

func (r *admissionRecorder) received(path string) []admissionv1.AdmissionRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]admissionv1.AdmissionRequest(nil), r.requests[path]...)
}

// addLabel answers with a JSON patch that sets labels[key]=value.
func addLabel(req admission.Request, key, value string) admission.Response {
	cm := &corev1.ConfigMap{}
	if err := json.Unmarshal(req.Object.Raw, cm); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	if cm.Labels == nil {
		cm.Labels = map[string]string{}
	}
	cm.Labels[key] = value
	patched, err := json.Marshal(cm)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	return admission.PatchResponseFromRaw(req.Object.Raw, patched)
}

// startAdmissionServer runs controller-runtime admission handlers on a
// TLS server with its own CA.
func startAdmissionServer(t *testing.T) (*framework.WebhookServer, *admissionRecorder) {
	rec := &admissionRecorder{requests: map[string][]admissionv1.AdmissionRequest{}}
	handlers := map[string]admission.HandlerFunc{
		"/add-label": func(_ context.Context, req admission.Request) admission.Response {
			return addLabel(req, "mutated-by", "webhook")
		},
		"/deny": func(_ context.Context, req admission.Request) admission.Response {
			return admission.Denied("configmaps named " + req.Name + " are not welcome")
		},
		"/allow": func(context.Context, admission.Request) admission.Response {
			return admission.Allowed("")
		},
		"/warn": func(context.Context, admission.Request) admission.Response {
			return admission.Allowed("").WithWarnings("this configmap is deprecated")
		},
		"/slow": func(ctx context.Context, _ admission.Request) admission.Response {
			<-ctx.Done()
			return admission.Allowed("")
		},
		// first is reinvoked: it records whether second's label was there.
		"/first": func(_ context.Context, req admission.Request) admission.Response {
			cm := &corev1.ConfigMap{}
			_ = json.Unmarshal(req.Object.Raw, cm)
			return addLabel(req, "first-saw-second", cm.Labels["second"])
		},
		"/second": func(_ context.Context, req admission.Request) admission.Response {
			return addLabel(req, "second", "yes")
		},
	}
	mux := http.NewServeMux()
	for path, h := range handlers {
		mux.Handle(path, &admission.Webhook{Handler: admission.HandlerFunc(func(ctx context.Context, req admission.Request) admission.Response {
			rec.record(path, req)
			return h(ctx, req)
		})})
	}
	return framework.StartWebhookServer(t, mux), rec
}

// hookFor is a webhook on configmap writes in namespace ns only, so that
// tests sharing the control plane do not see each other's webhooks.
type hookFor struct {
	name, url string
	caBundle  []byte
	ns        string
	ops       []admissionregistrationv1.OperationType
}

func (h hookFor) common() (admissionregistrationv1.WebhookClientConfig, []admissionregistrationv1.RuleWithOperations, *metav1.LabelSelector) {
	ops := h.ops
	if ops == nil {
		ops = []admissionregistrationv1.OperationType{admissionregistrationv1.Create}
	}
	url := h.url
	return admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: h.caBundle},
		[]admissionregistrationv1.RuleWithOperations{{
			Operations: ops,
			Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}},
		}},
		&metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: h.ns}}
}

func (h hookFor) validating(mutate ...func(*admissionregistrationv1.ValidatingWebhook)) admissionregistrationv1.ValidatingWebhook {
	client, rules, sel := h.common()
	none := admissionregistrationv1.SideEffectClassNone
	hook := admissionregistrationv1.ValidatingWebhook{
		Name: h.name, ClientConfig: client, Rules: rules, NamespaceSelector: sel,
		SideEffects: &none, AdmissionReviewVersions: []string{"v1"},
	}
	for _, m := range mutate {
		m(&hook)
	}
	return hook
}

func (h hookFor) mutating(mutate ...func(*admissionregistrationv1.MutatingWebhook)) admissionregistrationv1.MutatingWebhook {
	client, rules, sel := h.common()
	none := admissionregistrationv1.SideEffectClassNone
	hook := admissionregistrationv1.MutatingWebhook{
		Name: h.name, ClientConfig: client, Rules: rules, NamespaceSelector: sel,
		SideEffects: &none, AdmissionReviewVersions: []string{"v1"},
	}
	for _, m := range mutate {
		m(&hook)
	}
	return hook
}

func createValidatingConfig(t *testing.T, hooks ...admissionregistrationv1.ValidatingWebhook) {
	t.Helper()
	client := controlPlane.Clientset().AdmissionregistrationV1().ValidatingWebhookConfigurations()
	cfg, err := client.Create(t.Context(), &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "test-"}, Webhooks: hooks,
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create validating webhook configuration: %v", err)
	}
	t.Cleanup(func() { _ = client.Delete(context.Background(), cfg.Name, metav1.DeleteOptions{}) })
}

func createMutatingConfig(t *testing.T, hooks ...admissionregistrationv1.MutatingWebhook) {
	t.Helper()
	client := controlPlane.Clientset().AdmissionregistrationV1().MutatingWebhookConfigurations()
	cfg, err := client.Create(t.Context(), &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "test-"}, Webhooks: hooks,
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create mutating webhook configuration: %v", err)
	}
	t.Cleanup(func() { _ = client.Delete(context.Background(), cfg.Name, metav1.DeleteOptions{}) })
}

// createUntil creates configmaps (new names each time) until done says the
// answer shows the webhook configuration in effect, and returns that answer.
func createUntil(t *testing.T, clients kubernetes.Interface, ns string, cm *corev1.ConfigMap, opts metav1.CreateOptions,
	done func(*corev1.ConfigMap, error) bool) (*corev1.ConfigMap, error) {
	t.Helper()
	var out *corev1.ConfigMap
	var err error
	eventually(t, webhookWait, "the webhook configuration to take effect", func(ctx context.Context) (bool, error) {
		attempt := cm.DeepCopy()
		if attempt.Name == "" && attempt.GenerateName == "" {
			attempt.GenerateName = "cm-"
		}
		out, err = clients.CoreV1().ConfigMaps(ns).Create(ctx, attempt, opts)
		if done(out, err) {
			return true, nil
		}
		// An attempt that got in before the webhook took effect must not
		// stay: later checks look for what the webhook let through.
		if err == nil && len(opts.DryRun) == 0 {
			if derr := clients.CoreV1().ConfigMaps(ns).Delete(ctx, out.Name, metav1.DeleteOptions{}); derr != nil {
				return false, fmt.Errorf("removing configmap %s created before the webhook took effect: %w", out.Name, derr)
			}
		}
		return false, nil
	})
	return out, err
}

func TestAdmissionWebhooks(t *testing.T) {
	server, rec := startAdmissionServer(t)
	clients := controlPlane.Clientset()
	unreachable := "https://127.0.0.1:1/unreachable"

	t.Run("mutating webhook adds a label with a JSON patch", func(t *testing.T) {
		ns := controlPlane.CreateNamespace(t)
		createMutatingConfig(t, hookFor{name: "label.tower.dev", url: server.URL + "/add-label", caBundle: server.CABundle, ns: ns}.mutating())
		created, err := createUntil(t, clients, ns, &corev1.ConfigMap{}, metav1.CreateOptions{}, func(cm *corev1.ConfigMap, err error) bool {
			return err == nil && cm.Labels["mutated-by"] == "webhook"
		})
		if err != nil {
			t.Fatal(err)
		}
		stored, err := clients.CoreV1().ConfigMaps(ns).Get(t.Context(), created.Name, metav1.GetOptions{})
		if err != nil || stored.Labels["mutated-by"] != "webhook" {
			t.Fatalf("stored configmap %v (err %v), want the webhook's label", stored.Labels, err)
		}
		req := rec.received("/add-label")
		last := req[len(req)-1]
		if last.UserInfo.Username != framework.AdminUser || last.Operation != admissionv1.Create || last.Namespace != ns ||
			last.Kind.Kind != "ConfigMap" || last.Resource.Resource != "configmaps" || last.Options.Raw == nil {
			t.Errorf("webhook request %+v: want the admin's CREATE of a v1 ConfigMap in %s with options", last, ns)
		}
	})

	t.Run("validating webhook denies with its message", func(t *testing.T) {
		ns := controlPlane.CreateNamespace(t)
		createValidatingConfig(t, hookFor{name: "deny.tower.dev", url: server.URL + "/deny", caBundle: server.CABundle, ns: ns}.validating())
		_, err := createUntil(t, clients, ns, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "unwelcome"}}, metav1.CreateOptions{},
			func(_ *corev1.ConfigMap, err error) bool { return err != nil })
		want := `admission webhook "deny.tower.dev" denied the request: configmaps named unwelcome are not welcome`
		if !apierrors.IsForbidden(err) || err.Error() != want {
			t.Fatalf("create answered %v, want Forbidden %q", err, want)
		}
		if _, err := clients.CoreV1().ConfigMaps(ns).Get(t.Context(), "unwelcome", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("denied configmap was stored (get: %v)", err)
		}
	})

	t.Run("unreachable webhook: failurePolicy Fail refuses, Ignore admits", func(t *testing.T) {
		ns := controlPlane.CreateNamespace(t)
		ignore, fail := admissionregistrationv1.Ignore, admissionregistrationv1.Fail
		createMutatingConfig(t,
			hookFor{name: "marker.tower.dev", url: server.URL + "/add-label", caBundle: server.CABundle, ns: ns}.mutating(),
			hookFor{name: "ignored.tower.dev", url: unreachable, ns: ns}.mutating(func(h *admissionregistrationv1.MutatingWebhook) { h.FailurePolicy = &ignore }))
		if _, err := createUntil(t, clients, ns, &corev1.ConfigMap{}, metav1.CreateOptions{}, func(cm *corev1.ConfigMap, err error) bool {
			return err == nil && cm.Labels["mutated-by"] == "webhook"
		}); err != nil {
			t.Fatalf("create with an unreachable Ignore webhook: %v", err)
		}

		failNS := controlPlane.CreateNamespace(t)
		createValidatingConfig(t, hookFor{name: "failing.tower.dev", url: unreachable, ns: failNS}.validating(func(h *admissionregistrationv1.ValidatingWebhook) { h.FailurePolicy = &fail }))
		_, err := createUntil(t, clients, failNS, &corev1.ConfigMap{}, metav1.CreateOptions{}, func(_ *corev1.ConfigMap, err error) bool { return err != nil })
		if !apierrors.IsInternalError(err) || !strings.Contains(err.Error(), `failed calling webhook "failing.tower.dev"`) {
			t.Fatalf("create with an unreachable Fail webhook answered %v, want an internal error naming the webhook", err)
		}
	})

	t.Run("object selector and matchConditions choose what is sent", func(t *testing.T) {
		ns := controlPlane.CreateNamespace(t)
		createValidatingConfig(t,
			hookFor{name: "selected.tower.dev", url: server.URL + "/deny", caBundle: server.CABundle, ns: ns}.validating(func(h *admissionregistrationv1.ValidatingWebhook) {
				h.ObjectSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"guarded": "true"}}
			}),
			hookFor{name: "conditional.tower.dev", url: server.URL + "/deny", caBundle: server.CABundle, ns: ns}.validating(func(h *admissionregistrationv1.ValidatingWebhook) {
				h.MatchConditions = []admissionregistrationv1.MatchCondition{{Name: "forbidden-prefix", Expression: `object.metadata.name.startsWith("forbidden-")`}}
			}))
		_, err := createUntil(t, clients, ns, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "x-", Labels: map[string]string{"guarded": "true"}}},
			metav1.CreateOptions{}, func(_ *corev1.ConfigMap, err error) bool { return err != nil })
		if err == nil || !strings.Contains(err.Error(), `admission webhook "selected.tower.dev" denied`) {
			t.Fatalf("labelled configmap: %v, want the object-selected webhook's denial", err)
		}
		if _, err := clients.CoreV1().ConfigMaps(ns).Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "plain"}}, metav1.CreateOptions{}); err != nil {
			t.Errorf("configmap matching neither webhook refused: %v", err)
		}
		_, err = clients.CoreV1().ConfigMaps(ns).Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "forbidden-one"}}, metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), `admission webhook "conditional.tower.dev" denied`) {
			t.Errorf("configmap matching the CEL condition: %v, want the conditional webhook's denial", err)
		}
		otherNS := controlPlane.CreateNamespace(t)
		if _, err := clients.CoreV1().ConfigMaps(otherNS).Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "forbidden-two"}}, metav1.CreateOptions{}); err != nil {
			t.Errorf("configmap outside the namespace selector refused: %v", err)
		}
	})

	t.Run("timeoutSeconds bounds a slow webhook", func(t *testing.T) {
		ns := controlPlane.CreateNamespace(t)
		one := int32(1)
		createValidatingConfig(t, hookFor{name: "slow.tower.dev", url: server.URL + "/slow", caBundle: server.CABundle, ns: ns}.validating(func(h *admissionregistrationv1.ValidatingWebhook) {
			h.TimeoutSeconds = &one
		}))
		_, err := createUntil(t, clients, ns, &corev1.ConfigMap{}, metav1.CreateOptions{}, func(_ *corev1.ConfigMap, err error) bool { return err != nil })
		if !strings.Contains(err.Error(), `failed calling webhook "slow.tower.dev"`) || !strings.Contains(err.Error(), "deadline exceeded") {
			t.Fatalf("create with a slow webhook answered %v, want a deadline error naming the webhook", err)
		}
	})

	t.Run("reinvocationPolicy IfNeeded calls a webhook again after a later change", func(t *testing.T) {
		ns := controlPlane.CreateNamespace(t)
		ifNeeded := admissionregistrationv1.IfNeededReinvocationPolicy
		createMutatingConfig(t,
			hookFor{name: "first.tower.dev", url: server.URL + "/first", caBundle: server.CABundle, ns: ns}.mutating(func(h *admissionregistrationv1.MutatingWebhook) {
				h.ReinvocationPolicy = &ifNeeded
			}),
			hookFor{name: "second.tower.dev", url: server.URL + "/second", caBundle: server.CABundle, ns: ns}.mutating())
		created, err := createUntil(t, clients, ns, &corev1.ConfigMap{}, metav1.CreateOptions{}, func(cm *corev1.ConfigMap, err error) bool {
			return err == nil && cm.Labels["second"] == "yes"
		})
		if err != nil {
			t.Fatal(err)
		}
		if created.Labels["first-saw-second"] != "yes" {
			t.Fatalf("labels %v: the first webhook was not reinvoked after the second changed the object", created.Labels)
		}
	})

	t.Run("dryRun requests reach webhooks flagged and store nothing", func(t *testing.T) {
		ns := controlPlane.CreateNamespace(t)
		noneOnDryRun := admissionregistrationv1.SideEffectClassNoneOnDryRun
		createMutatingConfig(t, hookFor{name: "dryrun.tower.dev", url: server.URL + "/add-label", caBundle: server.CABundle, ns: ns}.mutating(func(h *admissionregistrationv1.MutatingWebhook) {
			h.SideEffects = &noneOnDryRun
		}))
		created, err := createUntil(t, clients, ns, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "dry"}}, metav1.CreateOptions{DryRun: dryRunAll},
			func(cm *corev1.ConfigMap, err error) bool { return err == nil && cm.Labels["mutated-by"] == "webhook" })
		if err != nil {
			t.Fatal(err)
		}
		reqs := rec.received("/add-label")
		if last := reqs[len(reqs)-1]; last.DryRun == nil || !*last.DryRun || last.Name != created.Name {
			t.Errorf("webhook saw dryRun=%v for %s, want true", last.DryRun, last.Name)
		}
		if _, err := clients.CoreV1().ConfigMaps(ns).Get(t.Context(), "dry", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("dry-run configmap was stored (get: %v)", err)
		}
	})

	t.Run("warnings reach the client and updates carry the old object", func(t *testing.T) {
		ns := controlPlane.CreateNamespace(t)
		createValidatingConfig(t, hookFor{name: "warn.tower.dev", url: server.URL + "/warn", caBundle: server.CABundle, ns: ns,
			ops: []admissionregistrationv1.OperationType{admissionregistrationv1.OperationAll}}.validating())
		warnings := &warningCollector{}
		config := rest.CopyConfig(controlPlane.Config)
		config.WarningHandler = warnings
		warned := kubernetes.NewForConfigOrDie(config)
		created, err := createUntil(t, warned, ns, &corev1.ConfigMap{Data: map[string]string{"v": "1"}}, metav1.CreateOptions{},
			func(_ *corev1.ConfigMap, err error) bool {
				return err == nil && warnings.has("this configmap is deprecated")
			})
		if err != nil {
			t.Fatal(err)
		}
		created.Data["v"] = "2"
		if _, err := clients.CoreV1().ConfigMaps(ns).Update(t.Context(), created, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("update: %v", err)
		}
		reqs := rec.received("/warn")
		last := reqs[len(reqs)-1]
		old, cur := &corev1.ConfigMap{}, &corev1.ConfigMap{}
		if last.Operation != admissionv1.Update || json.Unmarshal(last.OldObject.Raw, old) != nil || json.Unmarshal(last.Object.Raw, cur) != nil ||
			old.Data["v"] != "1" || cur.Data["v"] != "2" {
			t.Errorf("update reached the webhook as %s with old %v and new %v, want UPDATE from v=1 to v=2", last.Operation, old.Data, cur.Data)
		}
	})
}

// TestAdmissionWebhookBehindService: a webhook configured with a Service
// reference is called at one of the Service's ready endpoints, verified
// with the name the Service gives it.
func TestAdmissionWebhookBehindService(t *testing.T) {
	ns := controlPlane.CreateNamespace(t)
	rec := &admissionRecorder{requests: map[string][]admissionv1.AdmissionRequest{}}
	mux := http.NewServeMux()
	mux.Handle("/deny", &admission.Webhook{Handler: admission.HandlerFunc(func(_ context.Context, req admission.Request) admission.Response {
		rec.record("/deny", req)
		return admission.Denied("refused behind a service")
	})})
	server := framework.StartWebhookServer(t, mux, "hooks."+ns+".svc")
	exposeAsService(t, ns, "hooks", server)
	clients := controlPlane.Clientset()
	hook := hookFor{name: "service.tower.dev", caBundle: server.CABundle, ns: ns}.validating(func(h *admissionregistrationv1.ValidatingWebhook) {
		path := "/deny"
		h.ClientConfig = admissionregistrationv1.WebhookClientConfig{
			Service:  &admissionregistrationv1.ServiceReference{Namespace: ns, Name: "hooks", Path: &path},
			CABundle: server.CABundle,
		}
	})
	createValidatingConfig(t, hook)
	_, err := createUntil(t, clients, ns, &corev1.ConfigMap{}, metav1.CreateOptions{}, func(_ *corev1.ConfigMap, err error) bool { return err != nil })
	want := `admission webhook "service.tower.dev" denied the request: refused behind a service`
	if err == nil || err.Error() != want {
		t.Fatalf("create answered %v, want %q", err, want)
	}
	if len(rec.received("/deny")) == 0 {
		t.Error("the webhook behind the service was never called")
	}
}

// exposeAsService makes server reachable as Service name in ns (port 443),
// with an EndpointSlice whose one ready endpoint is the server on loopback.
func exposeAsService(t *testing.T, ns, name string, server *framework.WebhookServer) {
	t.Helper()
	port, err := strconv.Atoi(server.URL[strings.LastIndex(server.URL, ":")+1:])
	if err != nil {
		t.Fatalf("webhook server port: %v", err)
	}
	clients := controlPlane.Clientset()
	if _, err := clients.CoreV1().Services(ns).Create(t.Context(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "https", Port: 443, TargetPort: intstr.FromInt(port)}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create service: %v", err)
	}
	ready, portName, tcp, portNumber := true, "https", corev1.ProtocolTCP, int32(port)
	if _, err := clients.DiscoveryV1().EndpointSlices(ns).Create(t.Context(), &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name + "-1", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"127.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		Ports:       []discoveryv1.EndpointPort{{Name: &portName, Protocol: &tcp, Port: &portNumber}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create endpoint slice: %v", err)
	}
}

// warningCollector is a client-go warning handler that keeps what it saw.
type warningCollector struct {
	mu       sync.Mutex
	messages []string
}

func (w *warningCollector) HandleWarningHeader(_ int, _ string, message string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.messages = append(w.messages, message)
}

func (w *warningCollector) has(message string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, m := range w.messages {
		if m == message {
			return true
		}
	}
	return false
}
