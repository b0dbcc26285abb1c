package integration

import (
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"tower.dev/tower/apiserver/server"
	"tower.dev/tower/test/framework"
)

// TestEventsExpireAfterEventTTL runs a server with --event-ttl=2s: events
// written through core/v1 and events.k8s.io/v1 disappear on their own and
// watchers of both APIs see them DELETED, while nothing else the test
// writes is stored with a TTL.
func TestEventsExpireAfterEventTTL(t *testing.T) {
	cp := framework.Start(t, framework.WithServerOptions(func(o *server.Options) { o.EventTTL = 2 * time.Second }))
	ctx := t.Context()
	ns := cp.CreateNamespace(t)
	clients := cp.Clientset()

	// Watch from before the writes, so both ADDED and DELETED are seen.
	coreWatch, err := clients.CoreV1().Events(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer coreWatch.Stop()
	eventsWatch, err := clients.EventsV1().Events(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer eventsWatch.Stop()

	involved := corev1.ObjectReference{Kind: "ConfigMap", Namespace: ns, Name: "subject", APIVersion: "v1"}
	if _, err := clients.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "subject"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := clients.CoreV1().Events(ns).Create(ctx, &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "core-event"},
		InvolvedObject: involved, Reason: "Tested", Message: "core/v1", Type: corev1.EventTypeNormal,
		Source: corev1.EventSource{Component: "integration"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := clients.EventsV1().Events(ns).Create(ctx, &eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: "events-event"},
		EventTime:  metav1.NowMicro(), Regarding: involved, Reason: "Tested", Note: "events.k8s.io/v1",
		Type: corev1.EventTypeNormal, Action: "Testing", ReportingController: "tower.dev/integration", ReportingInstance: "integration-1",
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	for api, w := range map[string]watch.Interface{"core/v1": coreWatch, "events.k8s.io/v1": eventsWatch} {
		deleted := map[string]bool{}
		deadline := time.After(time.Minute)
		for len(deleted) < 2 {
			select {
			case e, ok := <-w.ResultChan():
				if !ok {
					t.Fatalf("%s watch closed; deleted so far: %v", api, deleted)
				}
				if e.Type == watch.Deleted {
					name := e.Object.(metav1.Object).GetName()
					deleted[name] = true
				}
			case <-deadline:
				t.Fatalf("%s watch: events not DELETED within a minute of a 2 s TTL; deleted: %v", api, deleted)
			}
		}
		if !deleted["core-event"] || !deleted["events-event"] {
			t.Fatalf("%s watch deleted %v, want core-event and events-event", api, deleted)
		}
	}
	list, err := clients.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 0 {
		t.Fatalf("%d events left after expiry", len(list.Items))
	}
	if _, err := clients.CoreV1().ConfigMaps(ns).Get(ctx, "subject", metav1.GetOptions{}); err != nil {
		t.Fatalf("the ConfigMap did not outlive the events: %v", err)
	}
}

// TestOnlyEventsCarryTheEventTTL checks the shared server (the default
// --event-ttl of one hour): an event is stored with a lease of the TTL plus
// the one-minute reuse window, and no other key the server stored has one.
func TestOnlyEventsCarryTheEventTTL(t *testing.T) {
	ctx := t.Context()
	ns := controlPlane.CreateNamespace(t)
	if _, err := controlPlane.Clientset().CoreV1().Events(ns).Create(ctx, &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "leased"},
		InvolvedObject: corev1.ObjectReference{Kind: "ConfigMap", Namespace: ns, Name: "subject", APIVersion: "v1"},
		Reason:         "Tested", Message: "kept for an hour", Type: corev1.EventTypeNormal,
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	client := controlPlane.EtcdClient
	event, err := client.Get(ctx, "/registry/events/"+ns+"/leased")
	if err != nil {
		t.Fatal(err)
	}
	if len(event.Kvs) != 1 || event.Kvs[0].Lease == 0 {
		t.Fatalf("event stored as %v, want one key with a lease", event.Kvs)
	}
	ttl, err := client.TimeToLive(ctx, clientv3.LeaseID(event.Kvs[0].Lease))
	if err != nil {
		t.Fatal(err)
	}
	if ttl.GrantedTTL != 3660 {
		t.Fatalf("event lease granted for %d s, want 3660", ttl.GrantedTTL)
	}

	all, err := client.Get(ctx, "/registry/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range all.Kvs {
		if kv.Lease != 0 && !strings.HasPrefix(string(kv.Key), "/registry/events/") {
			t.Errorf("%s is stored with lease %x; only events expire", kv.Key, kv.Lease)
		}
	}
}
