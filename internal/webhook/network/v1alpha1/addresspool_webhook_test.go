package v1alpha1

import (
	"errors"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	networkv1alpha1 "tower.dev/tower/apis/network/v1alpha1"
)

func TestAddressPoolValidator(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := networkv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	pool := func(name string, addresses ...networkv1alpha1.AddressRange) *networkv1alpha1.AddressPool {
		return &networkv1alpha1.AddressPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: networkv1alpha1.AddressPoolSpec{Addresses: addresses}}
	}
	existing := pool("lb", "192.0.2.0/28")
	validator := &AddressPoolValidator{Reader: fake.NewClientBuilder().WithScheme(scheme).WithObjects(existing).Build()}
	for _, tc := range []struct {
		name  string
		pool  *networkv1alpha1.AddressPool
		field string
		want  string
	}{
		{name: "disjoint", pool: pool("more", "192.0.2.16/28", "198.51.100.1-198.51.100.9")},
		{name: "itself on update", pool: pool("lb", "192.0.2.0/27")},
		{name: "other pool", pool: pool("clash", "192.0.2.10-192.0.2.20"), field: "spec.addresses[0]", want: "overlaps 192.0.2.0/28 of AddressPool lb"},
		{name: "within the pool", pool: pool("self", "198.51.100.0/24", "198.51.100.7-198.51.100.8"), field: "spec.addresses[1]", want: "overlaps 198.51.100.0/24 of this pool"},
		{name: "backwards", pool: pool("backwards", "198.51.100.9-198.51.100.1"), field: "spec.addresses[0]", want: "ends before it starts"},
	} {
		_, err := validator.ValidateCreate(t.Context(), tc.pool)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		var status apierrors.APIStatus
		if !apierrors.IsInvalid(err) || !errors.As(err, &status) || len(status.Status().Details.Causes) != 1 {
			t.Errorf("%s: %v, want Invalid with one cause", tc.name, err)
			continue
		}
		if cause := status.Status().Details.Causes[0]; cause.Field != tc.field || !strings.Contains(cause.Message, tc.want) {
			t.Errorf("%s: cause %+v, want %s: %s", tc.name, cause, tc.field, tc.want)
		}
	}
}
