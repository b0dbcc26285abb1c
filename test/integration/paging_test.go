package integration

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"tower.dev/tower/test/framework"
)

// TestPagedListReturnsEachObjectOnce lists 5000 ConfigMaps 100 at a time
// while new objects keep arriving: every page must come from the snapshot
// of the first one (same resourceVersion, none of the newcomers) and every
// object must appear exactly once.
func TestPagedListReturnsEachObjectOnce(t *testing.T) {
	const objects = 5000
	const pageSize = 100
	ctx := t.Context()
	ns := controlPlane.CreateNamespace(t)
	configMaps := controlPlane.Clientset().CoreV1().ConfigMaps(ns)

	err := framework.InParallel(ctx, objects, 16, func(ctx context.Context, i int) error {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%05d", i)}}
		if _, err := configMaps.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating %s: %w", cm.Name, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	seen := map[string]int{}
	var snapshotRV, continueToken string
	pages := 0
	for {
		page, err := configMaps.List(ctx, metav1.ListOptions{Limit: pageSize, Continue: continueToken})
		if err != nil {
			t.Fatalf("listing page %d: %v", pages+1, err)
		}
		pages++
		if pages == 1 {
			snapshotRV = page.ResourceVersion
		} else if page.ResourceVersion != snapshotRV {
			t.Errorf("page %d has resourceVersion %s, want the first page's %s", pages, page.ResourceVersion, snapshotRV)
		}
		if len(page.Items) > pageSize {
			t.Errorf("page %d has %d items, limit was %d", pages, len(page.Items), pageSize)
		}
		for _, cm := range page.Items {
			seen[cm.Name]++
		}
		continueToken = page.Continue
		if continueToken == "" {
			break
		}
		// Sorts after every original name, so it would show up in a later
		// page if pages were not served from the first page's snapshot.
		latecomer := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-latecomer-%03d", pages)}}
		if _, err := configMaps.Create(ctx, latecomer, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating %s: %v", latecomer.Name, err)
		}
	}

	if want := objects / pageSize; pages != want {
		t.Errorf("got %d pages, want %d", pages, want)
	}
	if len(seen) != objects {
		t.Errorf("saw %d distinct objects, want %d", len(seen), objects)
	}
	for i := range objects {
		name := fmt.Sprintf("cm-%05d", i)
		if seen[name] != 1 {
			t.Errorf("%s returned %d times, want once", name, seen[name])
		}
	}
	for name, n := range seen {
		var index int
		if _, err := fmt.Sscanf(name, "cm-%05d", &index); err != nil {
			t.Errorf("%s (seen %d times) was created after the first page and must not be listed", name, n)
		}
	}
}

// expiredContinueMessage is kube-apiserver's answer to a continue token
// whose snapshot etcd has compacted away.
const expiredContinueMessage = "The provided continue parameter is too old to display a consistent list result. " +
	"You can start a new list without the continue parameter, or use the continue token in this response to " +
	"retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - " +
	"objects that were created, modified, or deleted between the time the first chunk was returned and now may " +
	"show up in the list."

// TestContinueAfterCompaction: a continue token whose snapshot etcd has
// compacted either still lists that snapshot (kube-apiserver serves it
// from its watch cache's snapshots until it notices the compaction) or
// gets 410 Expired with upstream's message and a fresh token in the
// Status's ListMeta, which resumes the list (as of now) where it stopped.
func TestContinueAfterCompaction(t *testing.T) {
	ctx := t.Context()
	ns := controlPlane.CreateNamespace(t)
	configMaps := controlPlane.Clientset().CoreV1().ConfigMaps(ns)
	for _, name := range []string{"a", "b", "c"} {
		if _, err := configMaps.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating %s: %v", name, err)
		}
	}
	firstPage, err := configMaps.List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		t.Fatalf("first page: %v", err)
	}
	if _, err := configMaps.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "d"}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating d: %v", err)
	}
	if _, err := controlPlane.CompactNow(ctx); err != nil {
		t.Fatal(err)
	}

	names := func(list *corev1.ConfigMapList) string {
		var names []string
		for _, cm := range list.Items {
			names = append(names, cm.Name)
		}
		return fmt.Sprint(names)
	}
	rest, err := configMaps.List(ctx, metav1.ListOptions{Continue: firstPage.Continue})
	if err == nil {
		if got, want := names(rest), "[b c]"; got != want {
			t.Errorf("continued list = %s, want the first page's snapshot %s", got, want)
		}
		return
	}
	var statusErr apierrors.APIStatus
	if !errors.As(err, &statusErr) {
		t.Fatalf("continue after compaction: got %v, want the snapshot or 410 Expired", err)
	}
	status := statusErr.Status()
	if status.Code != http.StatusGone || status.Reason != metav1.StatusReasonExpired {
		t.Fatalf("continue after compaction: code %d reason %q, want 410 Expired", status.Code, status.Reason)
	}
	if status.Message != expiredContinueMessage {
		t.Errorf("message = %q, want %q", status.Message, expiredContinueMessage)
	}
	if status.Continue == "" {
		t.Fatal("the Expired Status carries no continue token to resume with")
	}
	rest, err = configMaps.List(ctx, metav1.ListOptions{Continue: status.Continue})
	if err != nil {
		t.Fatalf("resuming with the Status's continue token: %v", err)
	}
	if got, want := names(rest), "[b c d]"; got != want {
		t.Errorf("resumed list = %s, want %s (the rest, as of now)", got, want)
	}
}
