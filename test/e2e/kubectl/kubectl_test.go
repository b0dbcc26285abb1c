package kubectl

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestInfo: version and api-versions talk to the server.
func TestInfo(t *testing.T) {
	session.expect(t, []string{"version"}, "Client Version: v1.37", "Server Version: v1.37")
	session.expect(t, []string{"api-versions"}, "apps/v1\n", "batch/v1\n", "v1\n", "coordination.k8s.io/v1\n")
	session.expect(t, []string{"api-resources", "--api-group=apps"}, "deployments", "deploy", "apps/v1", "Deployment")
}

// TestGenerators: kubectl create's generators and the output formats of
// get.
func TestGenerators(t *testing.T) {
	ns := session.namespace(t)
	steps := []struct {
		args []string
		want string
	}{
		{[]string{"create", "configmap", "cfg", "--from-literal=a=1", "--from-literal=b=2"}, "configmap/cfg created"},
		{[]string{"create", "secret", "generic", "sec", "--from-literal=password=s3cret"}, "secret/sec created"},
		{[]string{"create", "deployment", "web", "--image=nginx:1", "--replicas=2", "--port=80"}, "deployment.apps/web created"},
		{[]string{"create", "service", "clusterip", "svc", "--tcp=80:8080"}, "service/svc created"},
		{[]string{"create", "job", "once", "--image=busybox", "--", "echo", "hi"}, "job.batch/once created"},
		{[]string{"create", "serviceaccount", "robot"}, "serviceaccount/robot created"},
		{[]string{"create", "cronjob", "tick", "--image=busybox", "--schedule=*/5 * * * *", "--", "date"}, "cronjob.batch/tick created"},
	}
	for _, s := range steps {
		session.expect(t, append([]string{"-n", ns}, s.args...), s.want)
	}

	if got := session.jsonpath(t, ns, "deployment/web", "{.spec.replicas} {.spec.template.spec.containers[0].image}"); got != "2 nginx:1" {
		t.Errorf("deployment replicas and image = %q, want \"2 nginx:1\"", got)
	}
	if got := session.jsonpath(t, ns, "secret/sec", "{.data.password}"); got != "czNjcmV0" {
		t.Errorf("secret data = %q, want base64 of s3cret", got)
	}
	if got := session.jsonpath(t, ns, "service/svc", "{.spec.ports[0].port}:{.spec.ports[0].targetPort}"); got != "80:8080" {
		t.Errorf("service ports = %q, want 80:8080", got)
	}
	session.expect(t, []string{"-n", ns, "get", "configmaps", "-o", "name"}, "configmap/cfg\n")
	session.expect(t, []string{"-n", ns, "get", "deployments", "-o",
		"custom-columns=NAME:.metadata.name,IMAGE:.spec.template.spec.containers[0].image"}, "NAME", "IMAGE", "web    nginx:1")
	if got := session.run(t, "-n", ns, "get", "configmap", "cfg", "-o", "go-template={{.data.a}}-{{.data.b}}"); got != "1-2" {
		t.Errorf("go-template = %q, want 1-2", got)
	}
	session.expect(t, []string{"-n", ns, "get", "deployments,services,jobs"}, "deployment.apps/web", "service/svc", "job.batch/once")
	session.expect(t, []string{"-n", ns, "get", "all"}, "deployment.apps/web", "service/svc")
}

// TestApply: client-side apply records last-applied and prunes fields
// removed from the file; server-side apply records its manager.
func TestApply(t *testing.T) {
	ns := session.namespace(t)
	first := writeFile(t, "cm.yaml", `apiVersion: v1
kind: ConfigMap
metadata:
  name: applied
  labels:
    tier: front
data:
  a: "1"
  b: "2"
`)
	session.expect(t, []string{"-n", ns, "apply", "-f", first}, "configmap/applied created")
	session.expect(t, []string{"-n", ns, "apply", "-f", first}, "configmap/applied unchanged")
	// Someone else adds c; the next apply keeps it but drops b, which the
	// file no longer has.
	session.run(t, "-n", ns, "patch", "configmap", "applied", "--type=merge", "-p", `{"data":{"c":"3"}}`)
	second := writeFile(t, "cm.yaml", `apiVersion: v1
kind: ConfigMap
metadata:
  name: applied
data:
  a: "10"
`)
	session.expect(t, []string{"-n", ns, "apply", "-f", second}, "configmap/applied configured")
	if got := session.jsonpath(t, ns, "configmap/applied", "{.data}"); got != `{"a":"10","c":"3"}` {
		t.Errorf("data after apply = %s, want a=10 and c=3 (b pruned)", got)
	}
	if got := session.jsonpath(t, ns, "configmap/applied", "{.metadata.labels}"); got != "" {
		t.Errorf("labels after apply = %q, want the removed label pruned", got)
	}
	lastApplied := session.jsonpath(t, ns, "configmap/applied", `{.metadata.annotations.kubectl\.kubernetes\.io/last-applied-configuration}`)
	if !strings.Contains(lastApplied, `"a":"10"`) || strings.Contains(lastApplied, `"b"`) {
		t.Errorf("last-applied-configuration = %s", lastApplied)
	}
	if got := session.jsonpath(t, ns, "configmap/applied", `{.metadata.managedFields[*].manager}`); !strings.Contains(got, "kubectl-client-side-apply") {
		t.Errorf("managers = %q, want kubectl-client-side-apply", got)
	}
	session.expect(t, []string{"-n", ns, "apply", "view-last-applied", "configmap/applied"}, `a: "10"`)

	ssa := writeFile(t, "ssa.yaml", `apiVersion: apps/v1
kind: Deployment
metadata:
  name: ssa
spec:
  replicas: 1
  selector:
    matchLabels: {app: ssa}
  template:
    metadata:
      labels: {app: ssa}
    spec:
      containers:
      - name: app
        image: app:1
`)
	session.expect(t, []string{"-n", ns, "apply", "--server-side", "-f", ssa}, "deployment.apps/ssa serverside-applied")
	if got := session.jsonpath(t, ns, "deployment/ssa", `{.metadata.managedFields[0].manager}/{.metadata.managedFields[0].operation}`); got != "kubectl/Apply" {
		t.Errorf("manager = %q, want kubectl/Apply", got)
	}
	// Another manager owns the image now: a plain server-side apply
	// conflicts, --force-conflicts takes it back.
	session.run(t, "-n", ns, "set", "image", "deployment/ssa", "app=app:2")
	r := session.exec(t.Context(), "", nil, "-n", ns, "apply", "--server-side", "--field-manager=other", "-f", ssa)
	if r.err == nil || !strings.Contains(r.stderr, "conflict") {
		t.Errorf("conflicting server-side apply: err %v, stderr %q; want a conflict", r.err, r.stderr)
	}
	session.expect(t, []string{"-n", ns, "apply", "--server-side", "--force-conflicts", "-f", ssa}, "serverside-applied")
	if got := session.jsonpath(t, ns, "deployment/ssa", "{.spec.template.spec.containers[0].image}"); got != "app:1" {
		t.Errorf("image after forced apply = %q, want app:1", got)
	}
}

// TestDiff: kubectl diff shows a change (exit 1) without making it.
func TestDiff(t *testing.T) {
	ns := session.namespace(t)
	session.run(t, "-n", ns, "create", "configmap", "diffed", "--from-literal=a=1")
	changed := writeFile(t, "cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: diffed\ndata:\n  a: \"2\"\n")
	r := session.exec(t.Context(), "", nil, "-n", ns, "diff", "-f", changed)
	var exit *exec.ExitError
	if !errors.As(r.err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("diff: err %v (stderr %q), want exit status 1", r.err, r.stderr)
	}
	if !strings.Contains(r.stdout, "-  a: \"1\"") || !strings.Contains(r.stdout, "+  a: \"2\"") {
		t.Errorf("diff printed:\n%s\nwant a: 1 -> 2", r.stdout)
	}
	if got := session.jsonpath(t, ns, "configmap/diffed", "{.data.a}"); got != "1" {
		t.Errorf("data.a after diff = %q, want 1 (diff must not write)", got)
	}
	same := writeFile(t, "same.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: diffed\ndata:\n  a: \"1\"\n")
	if r := session.exec(t.Context(), "", nil, "-n", ns, "diff", "-f", same); r.err != nil {
		t.Errorf("diff of an unchanged object: %v (stdout %q, stderr %q), want exit 0", r.err, r.stdout, r.stderr)
	}
}

// TestEditReplacePatch: edit through an EDITOR script, replace from a
// file, and the three patch types.
func TestEditReplacePatch(t *testing.T) {
	ns := session.namespace(t)
	session.run(t, "-n", ns, "create", "deployment", "web", "--image=nginx:1")
	editor := writeFile(t, "editor.sh", "#!/bin/sh\nsed -i 's/image: nginx:1/image: nginx:edited/' \"$1\"\n")
	if err := exec.Command("chmod", "+x", editor).Run(); err != nil {
		t.Fatalf("chmod: %v", err)
	}
	session.runWith(t, "", []string{"EDITOR=" + editor, "KUBE_EDITOR="}, "-n", ns, "edit", "deployment/web")
	if got := session.jsonpath(t, ns, "deployment/web", "{.spec.template.spec.containers[0].image}"); got != "nginx:edited" {
		t.Errorf("image after edit = %q, want nginx:edited", got)
	}
	if got := session.jsonpath(t, ns, "deployment/web", "{.metadata.managedFields[*].manager}"); !strings.Contains(got, "kubectl-edit") {
		t.Errorf("managers = %q, want kubectl-edit", got)
	}

	manifest := session.run(t, "-n", ns, "get", "deployment", "web", "-o", "yaml")
	replaced := writeFile(t, "web.yaml", strings.Replace(manifest, "image: nginx:edited", "image: nginx:replaced", 1))
	session.expect(t, []string{"-n", ns, "replace", "-f", replaced}, "deployment.apps/web replaced")
	if got := session.jsonpath(t, ns, "deployment/web", "{.spec.template.spec.containers[0].image}"); got != "nginx:replaced" {
		t.Errorf("image after replace = %q, want nginx:replaced", got)
	}
	// A stale replace (the manifest's resourceVersion is old) conflicts.
	r := session.exec(t.Context(), "", nil, "-n", ns, "replace", "-f", replaced)
	if r.err == nil || !strings.Contains(r.stderr, "the object has been modified") {
		t.Errorf("stale replace: err %v, stderr %q; want a conflict", r.err, r.stderr)
	}

	patches := []struct {
		patchType, patch, path, want string
	}{
		{"strategic", `{"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:smp"}]}}}}`, "{.spec.template.spec.containers[0].image}", "nginx:smp"},
		{"strategic", `{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"side:1"}]}}}}`, "{.spec.template.spec.containers[*].name}", "sidecar nginx"},
		{"strategic", `{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","$patch":"delete"}]}}}}`, "{.spec.template.spec.containers[*].name}", "nginx"},
		{"merge", `{"metadata":{"labels":{"patched":"merge"}}}`, "{.metadata.labels.patched}", "merge"},
		{"json", `[{"op":"replace","path":"/spec/replicas","value":4}]`, "{.spec.replicas}", "4"},
	}
	for _, p := range patches {
		session.expect(t, []string{"-n", ns, "patch", "deployment", "web", "--type=" + p.patchType, "-p", p.patch}, "deployment.apps/web patched")
		if got := session.jsonpath(t, ns, "deployment/web", p.path); got != p.want {
			t.Errorf("after %s patch %s: %s = %q, want %q", p.patchType, p.patch, p.path, got, p.want)
		}
	}
	r = session.exec(t.Context(), "", nil, "-n", ns, "patch", "deployment", "web", "--type=merge", "-p", `{"spec":{"selector":{"matchLabels":{"app":"other"}}}}`)
	if r.err == nil || !strings.Contains(r.stderr, "field is immutable") {
		t.Errorf("patching the selector: err %v, stderr %q; want an immutable-field error", r.err, r.stderr)
	}
	r = session.exec(t.Context(), "", nil, "-n", ns, "patch", "deployment", "web", "--type=merge", "-p", `{"spec":{"bogus":1}}`)
	// kubectl patch leaves fieldValidation to the server's default, Warn.
	if r.err != nil || !strings.Contains(r.stderr, `Warning: unknown field "spec.bogus"`) {
		t.Errorf("patch with a misspelled field: err %v, stderr %q; want success with a warning", r.err, r.stderr)
	}
	bad := writeFile(t, "bad.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad\ndatta:\n  a: \"1\"\n")
	r = session.exec(t.Context(), "", nil, "-n", ns, "create", "-f", bad)
	if r.err == nil || !strings.Contains(r.stderr, `unknown field "datta"`) {
		t.Errorf("create with a misspelled field: err %v, stderr %q; want strict decoding to refuse it", r.err, r.stderr)
	}
}

// TestSetScaleRollout: set image/env/resources, scale, and rollout
// pause/resume/restart write what upstream writes.
func TestSetScaleRollout(t *testing.T) {
	ns := session.namespace(t)
	session.run(t, "-n", ns, "create", "deployment", "web", "--image=nginx:1")
	session.expect(t, []string{"-n", ns, "set", "image", "deployment/web", "nginx=nginx:2"}, "deployment.apps/web image updated")
	session.expect(t, []string{"-n", ns, "set", "env", "deployment/web", "MODE=prod"}, "deployment.apps/web env updated")
	session.expect(t, []string{"-n", ns, "set", "resources", "deployment/web", "--limits=cpu=200m,memory=64Mi"}, "resource requirements updated")
	got := session.jsonpath(t, ns, "deployment/web", "{.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].env[0].name}={.spec.template.spec.containers[0].env[0].value} {.spec.template.spec.containers[0].resources.limits.cpu}")
	if got != "nginx:2 MODE=prod 200m" {
		t.Errorf("after set: %q, want \"nginx:2 MODE=prod 200m\"", got)
	}

	session.expect(t, []string{"-n", ns, "scale", "deployment/web", "--replicas=3"}, "deployment.apps/web scaled")
	if got := session.jsonpath(t, ns, "deployment/web", "{.spec.replicas}"); got != "3" {
		t.Errorf("replicas after scale = %q, want 3", got)
	}
	r := session.exec(t.Context(), "", nil, "-n", ns, "scale", "deployment/web", "--replicas=5", "--current-replicas=1")
	if r.err == nil {
		t.Errorf("scale with a wrong --current-replicas succeeded")
	}
	session.run(t, "-n", ns, "create", "deployment", "other", "--image=nginx:1")
	session.expect(t, []string{"-n", ns, "scale", "deployment", "--all", "--replicas=0"}, "deployment.apps/web scaled", "deployment.apps/other scaled")

	session.expect(t, []string{"-n", ns, "rollout", "pause", "deployment/web"}, "deployment.apps/web paused")
	if got := session.jsonpath(t, ns, "deployment/web", "{.spec.paused}"); got != "true" {
		t.Errorf("paused = %q, want true", got)
	}
	session.expect(t, []string{"-n", ns, "rollout", "resume", "deployment/web"}, "deployment.apps/web resumed")
	if got := session.jsonpath(t, ns, "deployment/web", "{.spec.paused}"); got != "" && got != "false" {
		t.Errorf("paused after resume = %q, want unset", got)
	}
	session.expect(t, []string{"-n", ns, "rollout", "restart", "deployment/web"}, "deployment.apps/web restarted")
	if got := session.jsonpath(t, ns, "deployment/web", `{.spec.template.metadata.annotations.kubectl\.kubernetes\.io/restartedAt}`); got == "" {
		t.Errorf("restart did not set the restartedAt annotation")
	}
}

// TestWait: wait for a condition, a JSONPath value and a deletion.
func TestWait(t *testing.T) {
	ns := session.namespace(t)
	session.run(t, "-n", ns, "create", "deployment", "web", "--image=nginx:1")
	now := time.Now().UTC().Format(time.RFC3339)
	session.run(t, "-n", ns, "patch", "deployment", "web", "--subresource=status", "--type=merge", "-p",
		`{"status":{"conditions":[{"type":"Available","status":"True","reason":"Test","message":"set by the test","lastUpdateTime":"`+now+`","lastTransitionTime":"`+now+`"}]}}`)
	session.expect(t, []string{"-n", ns, "wait", "--for=condition=Available", "deployment/web", "--timeout=10s"}, "deployment.apps/web condition met")
	session.expect(t, []string{"-n", ns, "wait", "--for=jsonpath={.spec.replicas}=1", "deployment/web", "--timeout=10s"}, "deployment.apps/web condition met")

	// A finalizer holds the object; wait --for=delete returns once the
	// finalizer is removed and the object is gone.
	session.run(t, "-n", ns, "create", "configmap", "held")
	session.run(t, "-n", ns, "patch", "configmap", "held", "--type=merge", "-p", `{"metadata":{"finalizers":["example.com/hold"]}}`)
	session.run(t, "-n", ns, "delete", "configmap", "held", "--wait=false")
	done := make(chan result, 1)
	go func() {
		done <- session.exec(context.Background(), "", nil, "-n", ns, "wait", "--for=delete", "configmap/held", "--timeout=20s")
	}()
	time.Sleep(500 * time.Millisecond)
	session.run(t, "-n", ns, "patch", "configmap", "held", "--type=json", "-p", `[{"op":"remove","path":"/metadata/finalizers"}]`)
	if r := <-done; r.err != nil {
		t.Errorf("wait --for=delete: %v (stdout %q, stderr %q)", r.err, r.stdout, r.stderr)
	}
}

// TestDescribe: describe prints the upstream layout for the served types.
func TestDescribe(t *testing.T) {
	ns := session.namespace(t)
	session.run(t, "-n", ns, "create", "deployment", "web", "--image=nginx:1")
	session.run(t, "-n", ns, "create", "configmap", "cfg", "--from-literal=a=1")
	session.run(t, "-n", ns, "create", "secret", "generic", "sec", "--from-literal=a=1")
	session.run(t, "-n", ns, "create", "service", "clusterip", "svc", "--tcp=80:80")
	session.run(t, "-n", ns, "create", "job", "once", "--image=busybox")
	session.run(t, "-n", ns, "create", "serviceaccount", "robot")
	cases := []struct {
		object string
		want   []string
	}{
		{"deployment/web", []string{"Name:               web", "Namespace:          " + ns, "Selector:           app=web", "Image:         nginx:1"}},
		{"configmap/cfg", []string{"Name:         cfg", "Data\n====", "a:\n----\n1"}},
		{"secret/sec", []string{"Name:         sec", "Type:  Opaque", "a:  1 bytes"}},
		{"service/svc", []string{"Name:                     svc", "Type:                     ClusterIP", "Port:                     80-80  80/TCP"}},
		{"job/once", []string{"Name:             once", "Parallelism:      1"}},
		{"serviceaccount/robot", []string{"Name:                robot"}},
		{"namespace/" + ns, []string{"Name:         " + ns, "Status:       Active"}},
	}
	for _, c := range cases {
		session.expect(t, []string{"-n", ns, "describe", c.object}, c.want...)
	}
}

// TestDeleteCascade: the propagation policy reaches the server (as the
// finalizers the garbage collector will act on) and dry-run deletes keep
// the object.
func TestDeleteCascade(t *testing.T) {
	ns := session.namespace(t)
	for _, name := range []string{"bg", "fg", "orphan", "dry"} {
		session.run(t, "-n", ns, "create", "deployment", name, "--image=nginx:1")
		// A finalizer of our own keeps each object visible after delete.
		session.run(t, "-n", ns, "patch", "deployment", name, "--type=merge", "-p", `{"metadata":{"finalizers":["example.com/hold"]}}`)
	}
	session.expect(t, []string{"-n", ns, "delete", "deployment", "dry", "--dry-run=server"}, "deployment.apps \"dry\" deleted", "(server dry run)")
	if got := session.jsonpath(t, ns, "deployment/dry", "{.metadata.deletionTimestamp}"); got != "" {
		t.Errorf("dry-run delete marked the object for deletion at %s", got)
	}
	cases := []struct {
		name, cascade, finalizers string
	}{
		{"bg", "background", "example.com/hold"},
		{"fg", "foreground", "example.com/hold foregroundDeletion"},
		{"orphan", "orphan", "example.com/hold orphan"},
	}
	for _, c := range cases {
		session.expect(t, []string{"-n", ns, "delete", "deployment", c.name, "--cascade=" + c.cascade, "--wait=false"}, "deployment.apps \""+c.name+"\" deleted")
		got := session.jsonpath(t, ns, "deployment/"+c.name, "{.metadata.finalizers[*]}")
		if got != c.finalizers {
			t.Errorf("--cascade=%s: finalizers %q, want %q", c.cascade, got, c.finalizers)
		}
		if ts := session.jsonpath(t, ns, "deployment/"+c.name, "{.metadata.deletionTimestamp}"); ts == "" {
			t.Errorf("--cascade=%s: no deletionTimestamp", c.cascade)
		}
		session.run(t, "-n", ns, "patch", "deployment", c.name, "--type=json", "-p", `[{"op":"remove","path":"/metadata/finalizers"}]`)
	}
	session.run(t, "-n", ns, "patch", "deployment", "dry", "--type=json", "-p", `[{"op":"remove","path":"/metadata/finalizers"}]`)
	session.expect(t, []string{"-n", ns, "delete", "deployment", "dry"}, "deployment.apps \"dry\" deleted")
	session.expect(t, []string{"-n", ns, "get", "deployments", "-o", "name", "--ignore-not-found"})
}

// TestEvents: kubectl events lists the namespace's events.
func TestEvents(t *testing.T) {
	ns := session.namespace(t)
	event := writeFile(t, "event.yaml", `apiVersion: v1
kind: Event
metadata:
  name: web.1
involvedObject:
  kind: Deployment
  name: web
  namespace: `+ns+`
reason: Tested
message: an event from the e2e test
type: Normal
firstTimestamp: "2026-01-01T00:00:00Z"
lastTimestamp: "2026-01-01T00:00:00Z"
count: 1
source:
  component: e2e
`)
	session.run(t, "-n", ns, "create", "-f", event)
	session.expect(t, []string{"-n", ns, "events"}, "Tested", "Deployment/web", "an event from the e2e test")
	session.expect(t, []string{"-n", ns, "get", "events"}, "Tested")
}
