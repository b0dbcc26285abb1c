package printers

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// TableConvertor renders the Table of a resource whose columns are not
// known to this package (custom resources and their
// additionalPrinterColumns). It has the signature of k8s.io/apiserver's
// rest.TableConvertor so that apiextensions-apiserver's converter fits.
type TableConvertor interface {
	ConvertToTable(ctx context.Context, obj runtime.Object, tableOptions runtime.Object) (*metav1.Table, error)
}

type tableConvertorKey struct{}

// WithTableConvertor makes ConvertToTable use c for the request ctx belongs
// to: the handler that knows the resource's columns sets it.
func WithTableConvertor(ctx context.Context, c TableConvertor) context.Context {
	return context.WithValue(ctx, tableConvertorKey{}, c)
}

func tableConvertorFrom(ctx context.Context) (TableConvertor, bool) {
	c, ok := ctx.Value(tableConvertorKey{}).(TableConvertor)
	return c, ok && c != nil
}
