package integration

import (
	"bufio"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/json"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"

	"tower.dev/tower/apiserver/server"
	"tower.dev/tower/test/framework"
)

const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: None
  nonResourceURLs: ["/healthz*", "/readyz*", "/livez*"]
- level: RequestResponse
  resources:
  - group: ""
    resources: ["configmaps"]
- level: Metadata
  omitStages: ["RequestReceived"]
  resources:
  - group: ""
    resources: ["secrets"]
`

// TestAuditLog: with --audit-policy-file and --audit-log-path the server
// writes audit.k8s.io/v1 events as JSON lines at the policy's levels.
func TestAuditLog(t *testing.T) {
	dir := t.TempDir()
	policyPath, logPath := filepath.Join(dir, "policy.yaml"), filepath.Join(dir, "audit.log")
	if err := os.WriteFile(policyPath, []byte(auditPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	cp := framework.Start(t, framework.WithServerOptions(func(o *server.Options) {
		o.AuditPolicyFile, o.AuditLogPath = policyPath, logPath
	}))
	ctx := t.Context()
	cs := cp.Clientset()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "audited"}, Data: map[string]string{"k": "v"}}
	if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create configmap: %v", err)
	}
	if _, err := cs.CoreV1().Secrets("default").Get(ctx, "missing", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("get secret: %v, want NotFound", err)
	}
	if _, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatalf("list namespaces: %v", err)
	}

	type key struct {
		resource string
		stage    auditv1.Stage
	}
	events := map[key]auditv1.Event{}
	for _, ev := range readAuditLog(t, logPath) {
		if ev.ObjectRef == nil {
			t.Errorf("event for %s %s has no objectRef; non-resource requests are not audited by this policy", ev.Verb, ev.RequestURI)
			continue
		}
		events[key{ev.ObjectRef.Resource, ev.Stage}] = ev
	}
	created, ok := events[key{"configmaps", auditv1.StageResponseComplete}]
	switch {
	case !ok:
		t.Fatalf("no ResponseComplete event for the configmap create; events: %v", events)
	case created.Level != auditv1.LevelRequestResponse || created.Verb != "create" || created.User.Username != "admin":
		t.Errorf("configmap event level/verb/user = %s/%s/%s, want RequestResponse/create/admin", created.Level, created.Verb, created.User.Username)
	case created.ObjectRef.Namespace != "default" || created.ResponseStatus == nil || created.ResponseStatus.Code != 201:
		t.Errorf("configmap event objectRef %+v status %+v, want namespace default and code 201", created.ObjectRef, created.ResponseStatus)
	case created.RequestObject == nil || created.ResponseObject == nil:
		t.Error("RequestResponse event lacks the request or response object")
	}
	if _, ok := events[key{"configmaps", auditv1.StageRequestReceived}]; !ok {
		t.Error("no RequestReceived event for the configmap create")
	}
	secret, ok := events[key{"secrets", auditv1.StageResponseComplete}]
	switch {
	case !ok:
		t.Fatal("no ResponseComplete event for the secret get")
	case secret.Level != auditv1.LevelMetadata || secret.RequestObject != nil || secret.ResponseObject != nil:
		t.Errorf("secret event at %s carries objects: request %v response %v; Metadata carries none", secret.Level, secret.RequestObject, secret.ResponseObject)
	case secret.ResponseStatus == nil || secret.ResponseStatus.Code != 404 || secret.ResponseStatus.Reason != metav1.StatusReasonNotFound:
		t.Errorf("secret event status = %+v, want 404 NotFound", secret.ResponseStatus)
	}
	if _, ok := events[key{"secrets", auditv1.StageRequestReceived}]; ok {
		t.Error("RequestReceived recorded for secrets although the rule omits it")
	}
	if _, ok := events[key{"namespaces", auditv1.StageResponseComplete}]; ok {
		t.Error("namespaces were audited although no rule covers them")
	}
}

func readAuditLog(t *testing.T, path string) []auditv1.Event {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open audit log: %v", err)
	}
	defer f.Close()
	var events []auditv1.Event
	scanner := bufio.NewScanner(f)
	scanner.Buffer(make([]byte, 1<<20), 8<<20)
	for scanner.Scan() {
		var ev auditv1.Event
		if err := json.Unmarshal(scanner.Bytes(), &ev); err != nil {
			t.Fatalf("audit line %q: %v", scanner.Text(), err)
		}
		events = append(events, ev)
	}
	if err := scanner.Err(); err != nil {
		t.Fatalf("read audit log: %v", err)
	}
	return events
}
