package storage_test

import (
	"fmt"
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"tower.dev/tower/apiserver/storage"
	"tower.dev/tower/apiserver/storage/storagetest"
)

func noLabels(int) map[string]string { return nil }

func TestPagedListIsOneSnapshot(t *testing.T) {
	ctx := testContext(t)
	s := storagetest.NewStore(storagetest.StartEtcd(t))
	const total, pageSize = 5000, 100
	createMany(t, ctx, s, "ns", total, noLabels)

	seen := map[string]int{}
	var listRV, token string
	pages := 0
	for {
		page := &corev1.ConfigMapList{}
		opts := storage.ListOptions{Recursive: true, Predicate: storage.SelectionPredicate{Limit: pageSize, Continue: token}}
		if err := s.GetList(ctx, storagetest.Prefix+"/ns/", opts, page); err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		if pages == 0 {
			listRV = page.ResourceVersion
		} else if page.ResourceVersion != listRV {
			t.Fatalf("page %d at rv %s, first page at %s", pages, page.ResourceVersion, listRV)
		}
		for _, item := range page.Items {
			seen[item.Name]++
		}
		pages++
		// Writes between pages must not show up in this list.
		mustCreate(t, ctx, s, storagetest.ConfigMap("ns", fmt.Sprintf("late-%d", pages), nil))
		if page.Continue == "" {
			if page.RemainingItemCount != nil {
				t.Fatalf("last page has remainingItemCount %d", *page.RemainingItemCount)
			}
			break
		}
		if want := int64(total - pages*pageSize); page.RemainingItemCount == nil || *page.RemainingItemCount != want {
			t.Fatalf("page %d remainingItemCount %v, want %d", pages, page.RemainingItemCount, want)
		}
		token = page.Continue
	}
	if pages != total/pageSize || len(seen) != total {
		t.Fatalf("%d pages with %d distinct items, want %d and %d", pages, len(seen), total/pageSize, total)
	}
	for name, n := range seen {
		if n != 1 {
			t.Fatalf("%s listed %d times", name, n)
		}
	}
}

func TestPagedListWithSelectorFillsPages(t *testing.T) {
	ctx := testContext(t)
	s := storagetest.NewStore(storagetest.StartEtcd(t))
	createMany(t, ctx, s, "ns", 300, func(i int) map[string]string {
		return map[string]string{"third": strconv.FormatBool(i%3 == 0)}
	})

	pred := storagetest.LabelPredicate(t, "third=true")
	pred.Limit = 30
	var names []string
	for {
		page := &corev1.ConfigMapList{}
		if err := s.GetList(ctx, storagetest.Prefix+"/", storage.ListOptions{Recursive: true, Predicate: pred}, page); err != nil {
			t.Fatal(err)
		}
		if page.Continue != "" && len(page.Items) != 30 {
			t.Fatalf("a non-final page has %d items, want 30", len(page.Items))
		}
		if page.RemainingItemCount != nil {
			t.Fatal("remainingItemCount must be unset with a selector")
		}
		for _, item := range page.Items {
			names = append(names, item.Name)
		}
		if page.Continue == "" {
			break
		}
		pred.Continue = page.Continue
	}
	if len(names) != 100 {
		t.Fatalf("listed %d matching items, want 100", len(names))
	}
}

func TestListResourceVersionSemantics(t *testing.T) {
	ctx := testContext(t)
	client := storagetest.StartEtcd(t)
	s := storagetest.NewStore(client)
	first := mustCreate(t, ctx, s, storagetest.ConfigMap("ns", "a", nil))
	mustCreate(t, ctx, s, storagetest.ConfigMap("ns", "b", nil))

	list := func(rv string, match metav1.ResourceVersionMatch) (*corev1.ConfigMapList, error) {
		out := &corev1.ConfigMapList{}
		err := s.GetList(ctx, storagetest.Prefix+"/", storage.ListOptions{Recursive: true, ResourceVersion: rv, ResourceVersionMatch: match}, out)
		return out, err
	}

	exact, err := list(first.ResourceVersion, metav1.ResourceVersionMatchExact)
	if err != nil {
		t.Fatal(err)
	}
	if len(exact.Items) != 1 || exact.ResourceVersion != first.ResourceVersion {
		t.Fatalf("exact list at %s: %d items at rv %s", first.ResourceVersion, len(exact.Items), exact.ResourceVersion)
	}
	current, err := list("", "")
	if err != nil || len(current.Items) != 2 {
		t.Fatalf("consistent list: %v, %d items", err, len(current.Items))
	}
	if _, err := list("99999", metav1.ResourceVersionMatchNotOlderThan); !storage.IsTimeout(err) {
		t.Fatalf("NotOlderThan a future revision: got %v, want Timeout", err)
	}
	if _, err := list("abc", ""); storage.CodeOf(err) != storage.ErrCodeInvalidResourceVersion {
		t.Fatalf("bad resourceVersion: got %v", err)
	}

	rev, _ := strconv.ParseInt(current.ResourceVersion, 10, 64)
	if _, err := client.Compact(ctx, rev); err != nil {
		t.Fatal(err)
	}
	if _, err := list(first.ResourceVersion, metav1.ResourceVersionMatchExact); !storage.IsTooOld(err) {
		t.Fatalf("exact list at a compacted revision: got %v, want TooOld", err)
	}
}

func TestContinueAfterCompaction(t *testing.T) {
	ctx := testContext(t)
	client := storagetest.StartEtcd(t)
	s := storagetest.NewStore(client)
	createMany(t, ctx, s, "ns", 10, noLabels)

	page := &corev1.ConfigMapList{}
	opts := storage.ListOptions{Recursive: true, Predicate: storage.SelectionPredicate{Limit: 4}}
	if err := s.GetList(ctx, storagetest.Prefix+"/", opts, page); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, ctx, s, storagetest.ConfigMap("ns", "later", nil))
	rev, err := s.CurrentResourceVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Compact(ctx, int64(rev)); err != nil {
		t.Fatal(err)
	}

	opts.Predicate.Continue = page.Continue
	err = s.GetList(ctx, storagetest.Prefix+"/", opts, &corev1.ConfigMapList{})
	if !storage.IsTooOld(err) {
		t.Fatalf("continue at a compacted revision: got %v, want TooOld", err)
	}
	var se *storage.Error
	if !asStorageError(err, &se) || se.Continue == "" {
		t.Fatalf("TooOld error carries no fresh continue token: %#v", err)
	}
	// The fresh token continues (inconsistently) at the newest revision.
	opts.Predicate.Continue = se.Continue
	rest := &corev1.ConfigMapList{}
	if err := s.GetList(ctx, storagetest.Prefix+"/", opts, rest); err != nil {
		t.Fatal(err)
	}
	if len(rest.Items) != 4 || rest.Items[0].Name != "cm-00004" {
		t.Fatalf("inconsistent continue returned %d items starting at %s", len(rest.Items), rest.Items[0].Name)
	}

	opts.Predicate.Continue = "not-a-token"
	if err := s.GetList(ctx, storagetest.Prefix+"/", opts, &corev1.ConfigMapList{}); storage.CodeOf(err) != storage.ErrCodeInvalidContinue {
		t.Fatalf("garbage token: got %v", err)
	}
}

func TestContinueTokenFormat(t *testing.T) {
	token, err := storage.EncodeContinue("/registry/pods/ns/web-1\x00", "/registry/pods/", 42)
	if err != nil {
		t.Fatal(err)
	}
	// kube-apiserver's encoding of the same position.
	if want := "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6NDIsInN0YXJ0IjoibnMvd2ViLTFcdTAwMDAifQ"; token != want {
		t.Fatalf("token %s, want %s", token, want)
	}
	key, rev, err := storage.DecodeContinue(token, "/registry/pods/")
	if err != nil || key != "/registry/pods/ns/web-1\x00" || rev != 42 {
		t.Fatalf("decode: %q %d %v", key, rev, err)
	}
	escape, _ := storage.EncodeContinue("/registry/pods/../secrets/x", "/registry/pods/", 42)
	if _, _, err := storage.DecodeContinue(escape, "/registry/pods/"); storage.CodeOf(err) != storage.ErrCodeInvalidContinue {
		t.Fatalf("path traversal accepted: %v", err)
	}
}
