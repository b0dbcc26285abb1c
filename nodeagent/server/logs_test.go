package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"tower.dev/tower/apiserver/pki"
)

// runningUntil says a container runs until stopped is set.
type runningUntil struct{ stopped atomic.Bool }

func (r *runningUntil) ContainerRunning(context.Context, string, string, int) bool {
	return !r.stopped.Load()
}

// criLines turns text into CRI log entries of stdout written at at: one F
// entry per line, a P entry for an unterminated end.
func criLines(at time.Time, text string) string {
	var b strings.Builder
	for line := range strings.Lines(text) {
		tag, content := "P", line
		if strings.HasSuffix(line, "\n") {
			tag, content = "F", strings.TrimSuffix(line, "\n")
		}
		fmt.Fprintf(&b, "%s stdout %s %s\n", at.UTC().Format(time.RFC3339Nano), tag, content)
	}
	return b.String()
}

// writeLog writes a container log in the CRI format.
func writeLog(t *testing.T, podsDir, pod, container string, run int, text string) string {
	t.Helper()
	content := criLines(time.Now(), text)
	dir := filepath.Join(podsDir, "ns_"+pod+"_uid-1", "logs", container)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, strconv.Itoa(run)+".log")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func newTestServer(t *testing.T, containers ContainerState) (*Server, string) {
	t.Helper()
	podsDir := t.TempDir()
	s, err := New(Config{PodsDir: podsDir, ClientCAs: x509.NewCertPool(), Containers: containers, FollowPollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return s, podsDir
}

func get(t *testing.T, s *Server, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

func TestContainerLogs(t *testing.T) {
	s, podsDir := newTestServer(t, &runningUntil{})
	writeLog(t, podsDir, "web", "main", 0, "old 1\nold 2\n")
	writeLog(t, podsDir, "web", "main", 1, "one\ntwo\nthree\n")
	writeLog(t, podsDir, "fresh", "main", 0, "")

	cases := []struct {
		name     string
		path     string
		wantCode int
		want     string
	}{
		{"all lines of the current run", "/containerLogs/ns/web/main", 200, "one\ntwo\nthree\n"},
		{"tail", "/containerLogs/ns/web/main?tailLines=2", 200, "two\nthree\n"},
		{"tail zero", "/containerLogs/ns/web/main?tailLines=0", 200, ""},
		{"tail beyond the start", "/containerLogs/ns/web/main?tailLines=10", 200, "one\ntwo\nthree\n"},
		{"previous run", "/containerLogs/ns/web/main?previous=true", 200, "old 1\nold 2\n"},
		{"limit bytes", "/containerLogs/ns/web/main?limitBytes=5", 200, "one\nt"},
		{"since the future", "/containerLogs/ns/web/main?sinceTime=2999-01-01T00:00:00Z", 200, ""},
		{"since a minute ago", "/containerLogs/ns/web/main?sinceSeconds=60", 200, "one\ntwo\nthree\n"},
		{"no previous run", "/containerLogs/ns/fresh/main?previous=true", 400, "previous terminated container \"main\" in pod \"fresh\" not found\n"},
		{"container never started", "/containerLogs/ns/web/sidecar", 400, "container \"sidecar\" in pod \"web\" is waiting to start\n"},
		{"unknown pod", "/containerLogs/ns/nope/main", 404, "pod \"ns/nope\" not found on this node\n"},
		{"bad tail", "/containerLogs/ns/web/main?tailLines=-1", 400, "parameter tailLines: must be greater than or equal to 0\n"},
		{"both since", "/containerLogs/ns/web/main?sinceSeconds=1&sinceTime=2000-01-01T00:00:00Z", 400, "at most one of sinceTime or sinceSeconds may be specified\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := get(t, s, tc.path)
			if code != tc.wantCode || body != tc.want {
				t.Errorf("GET %s = %d %q, want %d %q", tc.path, code, body, tc.wantCode, tc.want)
			}
		})
	}
}

func TestContainerLogsTimestamps(t *testing.T) {
	s, podsDir := newTestServer(t, &runningUntil{})
	path := writeLog(t, podsDir, "web", "main", 0, "")
	first := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	entries := criLines(first, "a\n") + criLines(first.Add(time.Hour), "b\nhalf ") + criLines(first.Add(2*time.Hour), "done\n")
	if err := os.WriteFile(path, []byte(entries), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ query, want string }{
		{"timestamps=true", "2026-01-02T03:04:05.000000006Z a\n2026-01-02T04:04:05.000000006Z b\n2026-01-02T04:04:05.000000006Z half done\n"},
		{"sinceTime=2026-01-02T04:00:00Z", "b\nhalf done\n"},
		{"sinceTime=2026-01-02T04:00:00Z&tailLines=1", "half done\n"},
	} {
		if _, body := get(t, s, "/containerLogs/ns/web/main?"+tc.query); body != tc.want {
			t.Errorf("%s: got %q, want %q", tc.query, body, tc.want)
		}
	}
}

func TestContainerLogsRotated(t *testing.T) {
	s, podsDir := newTestServer(t, &runningUntil{})
	path := writeLog(t, podsDir, "web", "main", 0, "three\n")
	if err := os.WriteFile(path+".20260102-030405.000000000", []byte(criLines(time.Now(), "one\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".20260102-030406.000000000", []byte(criLines(time.Now(), "two\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ query, want string }{
		{"", "one\ntwo\nthree\n"},
		{"tailLines=2", "two\nthree\n"},
	} {
		if _, body := get(t, s, "/containerLogs/ns/web/main?"+tc.query); body != tc.want {
			t.Errorf("%q: got %q, want %q", tc.query, body, tc.want)
		}
	}
}

func TestContainerLogsFollow(t *testing.T) {
	state := &runningUntil{}
	s, podsDir := newTestServer(t, state)
	path := writeLog(t, podsDir, "web", "main", 0, "first\n")
	ts := httptest.NewServer(s)
	defer ts.Close()

	resp, err := http.Get(ts.URL + "/containerLogs/ns/web/main?follow=true")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	readLine := func() string {
		t.Helper()
		buf := make([]byte, 0, 64)
		one := make([]byte, 1)
		for {
			if _, err := io.ReadFull(resp.Body, one); err != nil {
				t.Fatalf("reading followed log after %q: %v", buf, err)
			}
			buf = append(buf, one[0])
			if one[0] == '\n' {
				return string(buf)
			}
		}
	}
	if got := readLine(); got != "first\n" {
		t.Fatalf("got %q", got)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// An entry written in two parts arrives whole.
	entry := criLines(time.Now(), "second\n")
	if _, err := f.WriteString(entry[:10]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if _, err := f.WriteString(entry[10:]); err != nil {
		t.Fatal(err)
	}
	if got := readLine(); got != "second\n" {
		t.Fatalf("got %q", got)
	}
	if _, err := f.WriteString(criLines(time.Now(), "last words")); err != nil {
		t.Fatal(err)
	}
	state.stopped.Store(true)
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if string(rest) != "last words" {
		t.Errorf("after the container stopped got %q, want the unterminated last line", rest)
	}
}

func TestServeRequiresClientCertificateFromCA(t *testing.T) {
	now := time.Now()
	pkiDir := t.TempDir()
	ca, err := pki.LoadOrCreateCA(pkiDir)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := ca.EnsureClientCert(pkiDir, "apiserver-kubelet-client", "kube-apiserver-kubelet-client", nil)
	if err != nil {
		t.Fatal(err)
	}
	clientCert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := ca.Pool()
	serving := mustSelfSigned(t, "node", now)
	s, err := New(Config{PodsDir: t.TempDir(), ClientCAs: pool, Certificate: serving})
	if err != nil {
		t.Fatal(err)
	}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, listener) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	url := "https://" + listener.Addr().String() + "/healthz"
	for _, tc := range []struct {
		name   string
		certs  []tls.Certificate
		wantOK bool
	}{
		{"no client certificate", nil, false},
		{"certificate from another CA", []tls.Certificate{mustSelfSigned(t, "stranger", now)}, false},
		{"certificate from the cluster CA", []tls.Certificate{clientCert}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
				InsecureSkipVerify: true, //nolint:gosec // the node's certificate is self-signed; the client side is under test
				Certificates:       tc.certs,
			}}}
			resp, err := client.Get(url)
			if err == nil {
				resp.Body.Close()
			}
			if ok := err == nil && resp.StatusCode == http.StatusOK; ok != tc.wantOK {
				t.Errorf("request succeeded = %v (err %v), want %v", ok, err, tc.wantOK)
			}
		})
	}
}

func mustSelfSigned(t *testing.T, name string, now time.Time) tls.Certificate {
	t.Helper()
	cert, err := SelfSignedCertificate(name, []string{"127.0.0.1"}, now)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}
