package server_test

import (
	"net/http"
	"testing"

	"k8s.io/client-go/rest"

	"tower.dev/tower/apiserver/server"
	"tower.dev/tower/test/framework"
)

// TestProfiling checks --profiling: an authorized client reads the
// runtime profiles under /debug/pprof/, and turning it off removes them.
func TestProfiling(t *testing.T) {
	for _, c := range []struct {
		profiling bool
		want      int
	}{
		{profiling: true, want: http.StatusOK},
		{profiling: false, want: http.StatusNotFound},
	} {
		cp := framework.Start(t, framework.WithServerOptions(func(o *server.Options) { o.Profiling = c.profiling }))
		client, err := rest.HTTPClientFor(cp.Config)
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/heap?debug=1", "/debug/pprof/profile?seconds=1"} {
			resp, err := client.Get(cp.Config.Host + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != c.want {
				t.Errorf("--profiling=%v: GET %s = %d, want %d", c.profiling, path, resp.StatusCode, c.want)
			}
		}
	}
}
