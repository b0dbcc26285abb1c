package integration

import (
	"strconv"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestConcurrentUpdatesOneWinner sends 16 updates of one object, all
// carrying the same resourceVersion, at once: compare-and-swap must let
// exactly one through and answer 409 Conflict to the rest.
func TestConcurrentUpdatesOneWinner(t *testing.T) {
	const writers = 16
	ctx := t.Context()
	ns := controlPlane.CreateNamespace(t)
	configMaps := controlPlane.Clientset().CoreV1().ConfigMaps(ns)

	original, err := configMaps.Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "contended"},
		Data:       map[string]string{"writer": "none"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating object: %v", err)
	}

	start := make(chan struct{})
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			update := original.DeepCopy()
			update.Data = map[string]string{"writer": strconv.Itoa(i)}
			<-start
			_, errs[i] = configMaps.Update(ctx, update, metav1.UpdateOptions{})
		})
	}
	close(start)
	wg.Wait()

	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner == -1:
			winner = i
		case err == nil:
			t.Errorf("writers %d and %d both succeeded with resourceVersion %s", winner, i, original.ResourceVersion)
		case !apierrors.IsConflict(err):
			t.Errorf("writer %d: got %v, want a Conflict", i, err)
		}
	}
	if winner == -1 {
		t.Fatal("no writer succeeded")
	}

	stored, err := configMaps.Get(ctx, "contended", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("reading object back: %v", err)
	}
	if got, want := stored.Data["writer"], strconv.Itoa(winner); got != want {
		t.Errorf("stored writer = %q, want the winner %q", got, want)
	}
}
