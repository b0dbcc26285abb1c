package openapi

import (
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"

	"tower.dev/tower/apiserver/registry"
)

func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkFirstRequest measures what the server pays the first time each
// document is asked for (documents are built lazily), and the heap the
// built and encoded documents keep.
func BenchmarkFirstRequest(b *testing.B) {
	for _, path := range []string{"/openapi/v2", "/openapi/v3"} {
		b.Run(path, func(b *testing.B) {
			var retained uint64
			for range b.N {
				b.StopTimer()
				before := liveHeap()
				docs := newTestDocuments(b)
				b.StartTimer()
				rec := httptest.NewRecorder()
				docs.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
				if rec.Code != http.StatusOK {
					b.Fatalf("GET %s: %d", path, rec.Code)
				}
				b.StopTimer()
				retained += liveHeap() - before
				runtime.KeepAlive(docs)
				b.StartTimer()
			}
			b.ReportMetric(float64(retained)/float64(b.N)/(1<<20), "retained-MB")
		})
	}
}

func BenchmarkNew(b *testing.B) {
	scheme := testScheme(b)
	for range b.N {
		if _, err := New(registry.Builtins(registry.BuiltinOptions{}), scheme, "v1.37.2"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTypeSchemas(b *testing.B) {
	docs := newTestDocuments(b)
	for range b.N {
		if _, err := docs.TypeSchemas(); err != nil {
			b.Fatal(err)
		}
	}
}
