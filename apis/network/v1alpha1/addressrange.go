package v1alpha1

import (
	"fmt"
	"math"
	"math/big"
	"net/netip"
	"strings"
)

// AddressBounds are the first and last address of an AddressRange.
// +kubebuilder:object:generate=false
type AddressBounds struct {
	First, Last netip.Addr
}

// Bounds parses the range. The CRD's CEL rule checks the syntax on the
// server; Bounds also requires a range's first address not to be after
// its last.
func (r AddressRange) Bounds() (AddressBounds, error) {
	s := string(r)
	if first, last, isRange := strings.Cut(s, "-"); isRange {
		a, err := netip.ParseAddr(first)
		if err != nil {
			return AddressBounds{}, fmt.Errorf("range %q: %w", s, err)
		}
		b, err := netip.ParseAddr(last)
		if err != nil {
			return AddressBounds{}, fmt.Errorf("range %q: %w", s, err)
		}
		if a.Is4() != b.Is4() {
			return AddressBounds{}, fmt.Errorf("range %q mixes IPv4 and IPv6", s)
		}
		if b.Less(a) {
			return AddressBounds{}, fmt.Errorf("range %q ends before it starts", s)
		}
		return AddressBounds{First: a, Last: b}, nil
	}
	prefix, err := netip.ParsePrefix(s)
	if err != nil {
		return AddressBounds{}, fmt.Errorf("%q is neither a CIDR nor a range: %w", s, err)
	}
	prefix = prefix.Masked()
	first := prefix.Addr()
	last := first.AsSlice()
	for bit := prefix.Bits(); bit < first.BitLen(); bit++ {
		last[bit/8] |= 1 << (7 - bit%8)
	}
	lastAddr, _ := netip.AddrFromSlice(last)
	return AddressBounds{First: first, Last: lastAddr}, nil
}

// Overlaps reports whether the two blocks share an address.
func (b AddressBounds) Overlaps(other AddressBounds) bool {
	if b.First.Is4() != other.First.Is4() {
		return false
	}
	return !b.Last.Less(other.First) && !other.Last.Less(b.First)
}

// Size is the number of addresses in the block, saturating at math.MaxInt64.
func (b AddressBounds) Size() int64 {
	first := new(big.Int).SetBytes(b.First.AsSlice())
	last := new(big.Int).SetBytes(b.Last.AsSlice())
	n := last.Sub(last, first).Add(last, big.NewInt(1))
	if !n.IsInt64() {
		return math.MaxInt64
	}
	return n.Int64()
}

// String is the block as "first-last".
func (b AddressBounds) String() string { return b.First.String() + "-" + b.Last.String() }
