package integration

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

	err := inParallel(ctx, objects, 16, func(ctx context.Context, i int) error {
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
