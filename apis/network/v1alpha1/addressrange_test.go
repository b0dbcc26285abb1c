package v1alpha1

import (
	"math"
	"testing"
)

func TestAddressRangeBounds(t *testing.T) {
	for _, tc := range []struct {
		in          AddressRange
		first, last string
		size        int64
		wantErr     bool
	}{
		{in: "192.0.2.0/28", first: "192.0.2.0", last: "192.0.2.15", size: 16},
		{in: "192.0.2.7/30", first: "192.0.2.4", last: "192.0.2.7", size: 4},
		{in: "192.0.2.1/32", first: "192.0.2.1", last: "192.0.2.1", size: 1},
		{in: "192.0.2.10-192.0.2.20", first: "192.0.2.10", last: "192.0.2.20", size: 11},
		{in: "2001:db8::/120", first: "2001:db8::", last: "2001:db8::ff", size: 256},
		{in: "2001:db8::/64", first: "2001:db8::", last: "2001:db8::ffff:ffff:ffff:ffff", size: math.MaxInt64},
		{in: "192.0.2.20-192.0.2.10", wantErr: true},
		{in: "192.0.2.1-2001:db8::1", wantErr: true},
		{in: "192.0.2.0/33", wantErr: true},
		{in: "pool", wantErr: true},
	} {
		bounds, err := tc.in.Bounds()
		if tc.wantErr {
			if err == nil {
				t.Errorf("%s: bounds %v, want an error", tc.in, bounds)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if bounds.First.String() != tc.first || bounds.Last.String() != tc.last || bounds.Size() != tc.size {
			t.Errorf("%s: %s size %d, want %s-%s size %d", tc.in, bounds, bounds.Size(), tc.first, tc.last, tc.size)
		}
	}
}

func TestAddressBoundsOverlaps(t *testing.T) {
	bounds := func(r AddressRange) AddressBounds {
		b, err := r.Bounds()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		a, b AddressRange
		want bool
	}{
		{"192.0.2.0/28", "192.0.2.15-192.0.2.20", true},
		{"192.0.2.0/28", "192.0.2.16-192.0.2.20", false},
		{"192.0.2.0/24", "192.0.2.128/25", true},
		{"10.0.0.0/8", "2001:db8::/32", false},
	} {
		if got := bounds(tc.a).Overlaps(bounds(tc.b)); got != tc.want {
			t.Errorf("%s overlaps %s = %v, want %v", tc.a, tc.b, got, tc.want)
		}
		if got := bounds(tc.b).Overlaps(bounds(tc.a)); got != tc.want {
			t.Errorf("%s overlaps %s = %v, want %v", tc.b, tc.a, got, tc.want)
		}
	}
}
