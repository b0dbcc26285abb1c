package discovery

import (
	"net/http"
	"sync/atomic"

	"tower.dev/tower/apiserver/registry"
)

// Swappable serves the documents of a catalog that changes while the
// server runs (custom resources come and go): each change builds new
// documents and swaps them in whole, so a reader never sees half of one.
type Swappable struct {
	current atomic.Pointer[Documents]
}

// NewSwappable serves catalog's documents until the first Update.
func NewSwappable(catalog *registry.Catalog) *Swappable {
	s := &Swappable{}
	s.Update(catalog)
	return s
}

// Update replaces the served documents with catalog's.
func (s *Swappable) Update(catalog *registry.Catalog) {
	s.current.Store(New(catalog))
}

// ServeHTTP answers discovery paths and returns false for any other path.
func (s *Swappable) ServeHTTP(w http.ResponseWriter, r *http.Request) bool {
	return s.current.Load().ServeHTTP(w, r)
}
