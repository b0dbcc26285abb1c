package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"tower.dev/tower/apiserver/server"
	"tower.dev/tower/test/framework"
)

// policyOn is a ValidatingAdmissionPolicy for creates and updates of one
// resource in one namespace (tests share the control plane).
func policyOn(name, ns, group, version, resource string, validations ...admissionregistrationv1.Validation) *admissionregistrationv1.ValidatingAdmissionPolicy {
	return &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			MatchConstraints: &admissionregistrationv1.MatchResources{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: ns}},
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
					RuleWithOperations: admissionregistrationv1.RuleWithOperations{
						Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
						Rule:       admissionregistrationv1.Rule{APIGroups: []string{group}, APIVersions: []string{version}, Resources: []string{resource}},
					},
				}},
			},
			Validations: validations,
		},
	}
}

// bindPolicy creates the policy and a binding of it with the given
// actions (and paramRef), both removed when the test ends.
func bindPolicy(t *testing.T, clients kubernetes.Interface, policy *admissionregistrationv1.ValidatingAdmissionPolicy, paramRef *admissionregistrationv1.ParamRef,
	actions ...admissionregistrationv1.ValidationAction) {
	t.Helper()
	api := clients.AdmissionregistrationV1()
	if _, err := api.ValidatingAdmissionPolicies().Create(t.Context(), policy, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create policy: %v", err)
	}
	t.Cleanup(func() {
		_ = api.ValidatingAdmissionPolicies().Delete(context.Background(), policy.Name, metav1.DeleteOptions{})
	})
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: policy.Name + "-binding"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName: policy.Name, ParamRef: paramRef, ValidationActions: actions,
		},
	}
	if _, err := api.ValidatingAdmissionPolicyBindings().Create(t.Context(), binding, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create binding: %v", err)
	}
	t.Cleanup(func() {
		_ = api.ValidatingAdmissionPolicyBindings().Delete(context.Background(), binding.Name, metav1.DeleteOptions{})
	})
}

// wantStatus checks an admission refusal's reason and whole message.
func wantStatus(t *testing.T, err error, reason metav1.StatusReason, message string) {
	t.Helper()
	if apierrors.ReasonForError(err) != reason || err.Error() != message {
		t.Errorf("answer %v (reason %s), want %s %q", err, apierrors.ReasonForError(err), reason, message)
	}
}

func configMap(name string, labels, annotations, data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: annotations}, Data: data}
}

func deployment(name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "tower.dev/test/echo:v1"}}},
			},
		},
	}
}

// createDeploymentUntil creates the deployment until done accepts the
// answer, removing what attempts made before the change took effect
// stored, and returns the last answer.
func createDeploymentUntil(t *testing.T, ns string, d *appsv1.Deployment, done func(error) bool) error {
	t.Helper()
	deployments := controlPlane.Clientset().AppsV1().Deployments(ns)
	var err error
	eventually(t, webhookWait, "the policy change to take effect", func(ctx context.Context) (bool, error) {
		_, err = deployments.Create(ctx, d.DeepCopy(), metav1.CreateOptions{})
		if done(err) {
			return true, nil
		}
		if err == nil {
			if derr := deployments.Delete(ctx, d.Name, metav1.DeleteOptions{}); derr != nil {
				return false, fmt.Errorf("removing deployment %s: %w", d.Name, derr)
			}
		}
		return false, nil
	})
	return err
}

func TestValidatingAdmissionPolicy(t *testing.T) {
	clients := controlPlane.Clientset()
	// Attempts are admitted until the API server's plugin has seen the
	// policy, binding and namespace (informers), and a new user's first
	// attempts may meet RBAC's cache.
	refused := func(_ *corev1.ConfigMap, err error) bool {
		return err != nil && strings.Contains(err.Error(), "ValidatingAdmissionPolicy")
	}

	t.Run("Deny with message, messageExpression and reason", func(t *testing.T) {
		ns := controlPlane.CreateNamespace(t)
		name := ns + "-keys"
		bindPolicy(t, clients, policyOn(name, ns, "", "v1", "configmaps",
			admissionregistrationv1.Validation{Expression: "!has(object.data) || size(object.data) <= 2", Message: "at most two keys"},
			admissionregistrationv1.Validation{
				Expression:        "!has(object.metadata.labels) || !('tier' in object.metadata.labels) || object.metadata.labels['tier'] in ['web', 'db']",
				MessageExpression: "'tier ' + object.metadata.labels['tier'] + ' is not web or db'",
				Reason:            ptr.To(metav1.StatusReasonForbidden),
			}), nil, admissionregistrationv1.Deny)

		_, err := createUntil(t, clients, ns, configMap("three", nil, nil, map[string]string{"a": "1", "b": "2", "c": "3"}), metav1.CreateOptions{}, refused)
		prefix := fmt.Sprintf(`configmaps "%%s" is forbidden: ValidatingAdmissionPolicy '%s' with binding '%s-binding' denied request: `, name, name)
		wantStatus(t, err, metav1.StatusReasonInvalid, fmt.Sprintf(prefix, "three")+"at most two keys")
		if status, ok := err.(apierrors.APIStatus); !ok || status.Status().Code != 422 {
			t.Errorf("code of %v, want 422 (reason Invalid)", err)
		}

		_, err = clients.CoreV1().ConfigMaps(ns).Create(t.Context(), configMap("cache", map[string]string{"tier": "cache"}, nil, nil), metav1.CreateOptions{})
		wantStatus(t, err, metav1.StatusReasonForbidden, fmt.Sprintf(prefix, "cache")+"tier cache is not web or db")

		good, err := clients.CoreV1().ConfigMaps(ns).Create(t.Context(), configMap("web", map[string]string{"tier": "web"}, nil, map[string]string{"a": "1"}), metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create a configmap the policy allows: %v", err)
		}
		good.Data["b"], good.Data["c"] = "2", "3"
		_, err = clients.CoreV1().ConfigMaps(ns).Update(t.Context(), good, metav1.UpdateOptions{})
		wantStatus(t, err, metav1.StatusReasonInvalid, fmt.Sprintf(prefix, "web")+"at most two keys")
	})

	t.Run("Warn admits and warns the client", func(t *testing.T) {
		ns := controlPlane.CreateNamespace(t)
		name := ns + "-warn"
		bindPolicy(t, clients, policyOn(name, ns, "", "v1", "configmaps",
			admissionregistrationv1.Validation{Expression: "!has(object.data) || size(object.data) <= 1", Message: "more than one key"}),
			nil, admissionregistrationv1.Warn)
		warnings := &warningCollector{}
		cfg := rest.CopyConfig(controlPlane.Config)
		cfg.WarningHandler = warnings
		want := fmt.Sprintf("Validation failed for ValidatingAdmissionPolicy '%s' with binding '%s-binding': more than one key", name, name)
		_, err := createUntil(t, kubernetes.NewForConfigOrDie(cfg), ns, configMap("", nil, nil, map[string]string{"a": "1", "b": "2"}), metav1.CreateOptions{},
			func(_ *corev1.ConfigMap, err error) bool { return err != nil || warnings.has(want) })
		if err != nil {
			t.Fatalf("a Warn binding refused the configmap: %v", err)
		}
	})

	t.Run("paramKind ConfigMap with paramRef", func(t *testing.T) {
		ns := controlPlane.CreateNamespace(t)
		name := ns + "-replicas"
		policy := policyOn(name, ns, "apps", "v1", "deployments", admissionregistrationv1.Validation{
			Expression:        "object.spec.replicas <= int(params.data.maxReplicas)",
			MessageExpression: "'replicas must be at most ' + params.data.maxReplicas",
		})
		policy.Spec.ParamKind = &admissionregistrationv1.ParamKind{APIVersion: "v1", Kind: "ConfigMap"}
		bindPolicy(t, clients, policy, &admissionregistrationv1.ParamRef{
			Name: "limits", Namespace: ns, ParameterNotFoundAction: ptr.To(admissionregistrationv1.DenyAction),
		}, admissionregistrationv1.Deny)

		prefix := fmt.Sprintf(`deployments.apps "web" is forbidden: ValidatingAdmissionPolicy '%s' with binding '%s-binding' denied request: `, name, name)
		err := createDeploymentUntil(t, ns, deployment("web", 2), func(err error) bool { return err != nil && strings.Contains(err.Error(), "no params found") })
		wantStatus(t, err, metav1.StatusReasonInvalid, prefix+"failed to configure binding: no params found for policy binding with `Deny` parameterNotFoundAction")

		limits := configMap("limits", nil, nil, map[string]string{"maxReplicas": "3"})
		if limits, err = clients.CoreV1().ConfigMaps(ns).Create(t.Context(), limits, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		err = createDeploymentUntil(t, ns, deployment("web", 5), func(err error) bool { return err != nil && strings.Contains(err.Error(), "replicas must be") })
		wantStatus(t, err, metav1.StatusReasonInvalid, prefix+"replicas must be at most 3")
		if _, err := clients.AppsV1().Deployments(ns).Create(t.Context(), deployment("small", 3), metav1.CreateOptions{}); err != nil {
			t.Errorf("create a deployment within the parameter's limit: %v", err)
		}

		limits.Data["maxReplicas"] = "10"
		if _, err := clients.CoreV1().ConfigMaps(ns).Update(t.Context(), limits, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := createDeploymentUntil(t, ns, deployment("web", 5), func(err error) bool { return err == nil }); err != nil {
			t.Errorf("create after raising the limit: %v", err)
		}
	})

	t.Run("variables and matchConditions", func(t *testing.T) {
		ns := controlPlane.CreateNamespace(t)
		name := ns + "-owner"
		policy := policyOn(name, ns, "", "v1", "configmaps", admissionregistrationv1.Validation{
			Expression:        "variables.env != 'prod' || (has(object.data) && 'owner' in object.data)",
			MessageExpression: "'env ' + variables.env + ' needs an owner'",
		})
		policy.Spec.Variables = []admissionregistrationv1.Variable{{
			Name:       "env",
			Expression: "has(object.metadata.labels) && 'env' in object.metadata.labels ? object.metadata.labels['env'] : 'none'",
		}}
		policy.Spec.MatchConditions = []admissionregistrationv1.MatchCondition{{
			Name:       "not-exempt",
			Expression: "!has(object.metadata.annotations) || !('exempt' in object.metadata.annotations)",
		}}
		bindPolicy(t, clients, policy, nil, admissionregistrationv1.Deny)

		prod := map[string]string{"env": "prod"}
		_, err := createUntil(t, clients, ns, configMap("orphan", prod, nil, nil), metav1.CreateOptions{}, refused)
		wantStatus(t, err, metav1.StatusReasonInvalid,
			fmt.Sprintf(`configmaps "orphan" is forbidden: ValidatingAdmissionPolicy '%s' with binding '%s-binding' denied request: env prod needs an owner`, name, name))
		for _, cm := range []*corev1.ConfigMap{
			configMap("exempt", prod, map[string]string{"exempt": "yes"}, nil),
			configMap("owned", prod, nil, map[string]string{"owner": "team-a"}),
			configMap("staging", map[string]string{"env": "staging"}, nil, nil),
		} {
			if _, err := clients.CoreV1().ConfigMaps(ns).Create(t.Context(), cm, metav1.CreateOptions{}); err != nil {
				t.Errorf("create %s: %v", cm.Name, err)
			}
		}
	})

	t.Run("failurePolicy on evaluation errors", func(t *testing.T) {
		ns := controlPlane.CreateNamespace(t)
		validations := []admissionregistrationv1.Validation{
			{Expression: "object.metadata.name != 'blocked'", Message: "blocked"},
			// An error for configmaps without data.
			{Expression: "object.data.level == 'high'", Message: "level must be high"},
		}
		fail, ignore := policyOn(ns+"-fail", ns, "", "v1", "configmaps", validations...), policyOn(ns+"-ignore", ns, "", "v1", "configmaps", validations...)
		fail.Spec.FailurePolicy = ptr.To(admissionregistrationv1.Fail)
		ignore.Spec.FailurePolicy = ptr.To(admissionregistrationv1.Ignore)
		// Ignore's binding comes first, so that once Fail's refuses a
		// configmap without the key, both are in effect.
		bindPolicy(t, clients, ignore, nil, admissionregistrationv1.Deny)
		high := map[string]string{"level": "high"}
		_, err := createUntil(t, clients, ns, configMap("blocked", nil, nil, high), metav1.CreateOptions{}, refused)
		if err == nil || !strings.Contains(err.Error(), "denied request: blocked") {
			t.Fatalf("blocked configmap: %v, want the Ignore policy's denial", err)
		}
		if _, err := clients.CoreV1().ConfigMaps(ns).Create(t.Context(), configMap("no-level", nil, nil, nil), metav1.CreateOptions{}); err != nil {
			t.Errorf("failurePolicy Ignore refused a configmap its expression fails on: %v", err)
		}

		bindPolicy(t, clients, fail, nil, admissionregistrationv1.Deny)
		_, err = createUntil(t, clients, ns, configMap("no-level-2", nil, nil, nil), metav1.CreateOptions{}, refused)
		want := fmt.Sprintf(`configmaps "no-level-2" is forbidden: ValidatingAdmissionPolicy '%s-fail' with binding '%s-fail-binding' denied request: expression 'object.data.level == 'high'' resulted in error: no such key: data`, ns, ns)
		wantStatus(t, err, metav1.StatusReasonInvalid, want)
	})

	t.Run("authorizer variable", func(t *testing.T) {
		ns := controlPlane.CreateNamespace(t)
		name := ns + "-authz"
		bindPolicy(t, clients, policyOn(name, ns, "", "v1", "configmaps", admissionregistrationv1.Validation{
			Expression: "authorizer.group('').resource('secrets').namespace(object.metadata.namespace).check('list').allowed()",
			Message:    "only users who may list secrets",
		}), nil, admissionregistrationv1.Deny)
		writer := configMapWriter(t, ns)
		_, err := createUntil(t, writer, ns, configMap("by-writer", nil, nil, nil), metav1.CreateOptions{}, refused)
		wantStatus(t, err, metav1.StatusReasonInvalid,
			fmt.Sprintf(`configmaps "by-writer" is forbidden: ValidatingAdmissionPolicy '%s' with binding '%s-binding' denied request: only users who may list secrets`, name, name))
		if _, err := clients.CoreV1().ConfigMaps(ns).Create(t.Context(), configMap("by-admin", nil, nil, nil), metav1.CreateOptions{}); err != nil {
			t.Errorf("the admin, who may list secrets, was refused: %v", err)
		}
	})
}

// TestValidatingAdmissionPolicyAudit: a binding with the Audit action
// admits the write and records the failure in the request's audit event.
func TestValidatingAdmissionPolicyAudit(t *testing.T) {
	dir := t.TempDir()
	policyPath, logPath := filepath.Join(dir, "policy.yaml"), filepath.Join(dir, "audit.log")
	auditConfigMaps := "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n  omitStages: [RequestReceived]\n  resources:\n  - group: \"\"\n    resources: [configmaps]\n"
	if err := os.WriteFile(policyPath, []byte(auditConfigMaps), 0o600); err != nil {
		t.Fatal(err)
	}
	cp := framework.Start(t, framework.WithServerOptions(func(o *server.Options) {
		o.AuditPolicyFile, o.AuditLogPath = policyPath, logPath
	}))
	clients := cp.Clientset()
	bindPolicy(t, clients, policyOn("audited", "default", "", "v1", "configmaps",
		admissionregistrationv1.Validation{Expression: "!has(object.data)", Message: "configmaps here hold no data"}), nil, admissionregistrationv1.Audit)

	const key = "validation.policy.admission.k8s.io/validation_failure"
	want := `[{"message":"configmaps here hold no data","policy":"audited","binding":"audited-binding","expressionIndex":0,"validationActions":["Audit"]}]`
	var got string
	eventually(t, webhookWait, "an audit event with the policy's failure", func(ctx context.Context) (bool, error) {
		cm := configMap("", nil, nil, map[string]string{"k": "v"})
		cm.GenerateName = "audited-"
		if _, err := clients.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			return false, fmt.Errorf("an Audit binding refused the configmap: %w", err)
		}
		for _, ev := range readAuditLog(t, logPath) {
			if ev.Verb == "create" && ev.Annotations[key] != "" {
				got = ev.Annotations[key]
				return true, nil
			}
		}
		return false, nil
	})
	if got != want {
		t.Errorf("audit annotation %s = %s, want %s", key, got, want)
	}
}

// configMapWriter is a client for a user who may create and delete
// configmaps in ns, and nothing else.
func configMapWriter(t *testing.T, ns string) kubernetes.Interface {
	t.Helper()
	clients := controlPlane.Clientset()
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "configmap-writer"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"create", "delete"}}},
	}
	if _, err := clients.RbacV1().Roles(ns).Create(t.Context(), role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "configmap-writer"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "writer"}},
	}
	if _, err := clients.RbacV1().RoleBindings(ns).Create(t.Context(), binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg, err := controlPlane.ConfigFor("writer")
	if err != nil {
		t.Fatal(err)
	}
	return kubernetes.NewForConfigOrDie(cfg)
}

// TestWebhookMatchConditions: matchConditions are compiled when the
// configuration is written (an expression that does not compile is
// refused with its field), and may ask the authorizer about the user.
func TestWebhookMatchConditions(t *testing.T) {
	server, rec := startAdmissionServer(t)
	clients := controlPlane.Clientset()
	ns := controlPlane.CreateNamespace(t)

	broken := hookFor{name: "deny.tower.dev", url: server.URL + "/deny", caBundle: server.CABundle, ns: ns}.validating(func(h *admissionregistrationv1.ValidatingWebhook) {
		h.MatchConditions = []admissionregistrationv1.MatchCondition{{Name: "broken", Expression: "object.metadata.name =="}}
	})
	_, err := clients.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(t.Context(), &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: ns}, Webhooks: []admissionregistrationv1.ValidatingWebhook{broken},
	}, metav1.CreateOptions{})
	var status apierrors.APIStatus
	if !apierrors.IsInvalid(err) || !errors.As(err, &status) || len(status.Status().Details.Causes) != 1 ||
		status.Status().Details.Causes[0].Field != "webhooks[0].matchConditions[0].expression" ||
		!strings.Contains(err.Error(), `Invalid value: "object.metadata.name ==": compilation failed: ERROR: <input>:1:24: Syntax error`) {
		t.Errorf("create with a matchCondition that does not compile: %v, want Invalid at webhooks[0].matchConditions[0].expression", err)
	}

	createValidatingConfig(t, hookFor{name: "deny.tower.dev", url: server.URL + "/deny", caBundle: server.CABundle, ns: ns}.validating(func(h *admissionregistrationv1.ValidatingWebhook) {
		h.MatchConditions = []admissionregistrationv1.MatchCondition{{
			Name:       "cannot-list-secrets",
			Expression: "!authorizer.group('').resource('secrets').namespace(object.metadata.namespace).check('list').allowed()",
		}}
	}))
	writer := configMapWriter(t, ns)
	_, err = createUntil(t, writer, ns, configMap("by-writer", nil, nil, nil), metav1.CreateOptions{}, func(_ *corev1.ConfigMap, err error) bool {
		return err != nil && strings.Contains(err.Error(), "admission webhook")
	})
	want := `admission webhook "deny.tower.dev" denied the request: configmaps named by-writer are not welcome`
	if !apierrors.IsForbidden(err) || err.Error() != want {
		t.Fatalf("writer's create: %v, want %q", err, want)
	}
	calls := len(rec.received("/deny"))
	if _, err := clients.CoreV1().ConfigMaps(ns).Create(t.Context(), configMap("by-admin", nil, nil, nil), metav1.CreateOptions{}); err != nil {
		t.Errorf("the admin, who may list secrets, was sent to the webhook: %v", err)
	}
	if got := len(rec.received("/deny")); got != calls {
		t.Errorf("webhook called %d more times for the admin's create; the matchCondition excludes it", got-calls)
	}
}
