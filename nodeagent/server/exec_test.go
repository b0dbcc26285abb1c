package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/go-logr/logr"
)

func TestParseExecOptions(t *testing.T) {
	cases := []struct {
		query   string
		want    execOptions
		wantErr string
	}{
		{query: "command=ls&command=-l&stdout=true", want: execOptions{command: []string{"ls", "-l"}, stdout: true}},
		{query: "command=sh&stdin=true&stdout=true&stderr=true&tty=true", want: execOptions{command: []string{"sh"}, stdin: true, stdout: true, tty: true}},
		{query: "stdout=true", wantErr: "you must specify a command"},
		{query: "command=ls", wantErr: "you must specify at least 1 of stdin, stdout, stderr"},
	}
	for _, tc := range cases {
		t.Run(tc.query, func(t *testing.T) {
			got, err := parseExecOptions(httptest.NewRequest("GET", "/exec/ns/pod/c?"+tc.query, nil))
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("got %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// allowUsers lets the named users in.
type allowUsers map[string]bool

func (a allowUsers) Authorize(_ context.Context, user string, _ []string, _ string) (bool, string, error) {
	return a[user], "no RBAC rule allows it", nil
}

func TestRequestsAreAuthorized(t *testing.T) {
	s, err := New(Config{PodsDir: t.TempDir(), ClientCAs: x509.NewCertPool(), Authorizer: allowUsers{"kube-apiserver-kubelet-client": true}})
	if err != nil {
		t.Fatal(err)
	}
	handler := s.withRequestLog(logr.Discard())
	for _, tc := range []struct {
		user     string
		wantCode int
	}{
		{"kube-apiserver-kubelet-client", http.StatusNotFound},
		{"someone-else", http.StatusForbidden},
	} {
		t.Run(tc.user, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/containerLogs/ns/pod/c", nil)
			req.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{{Subject: pkix.Name{CommonName: tc.user}}}}
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, req)
			if rec.Code != tc.wantCode {
				t.Errorf("code %d, want %d (%s)", rec.Code, tc.wantCode, rec.Body)
			}
		})
	}
}
