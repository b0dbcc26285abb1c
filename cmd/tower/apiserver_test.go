package main

import (
	"slices"
	"testing"

	"github.com/spf13/cobra"
)

// envtestArgs are the arguments controller-runtime's envtest (v0.25) starts
// kube-apiserver with.
var envtestArgs = []string{
	"--advertise-address=127.0.0.1",
	"--allow-privileged=true",
	"--authorization-mode=RBAC",
	"--bind-address=127.0.0.1",
	"--cert-dir=/tmp/envtest-certs",
	"--client-ca-file=/tmp/envtest-certs/client-cert-auth-ca.crt",
	"--disable-admission-plugins=ServiceAccount",
	"--etcd-servers=http://127.0.0.1:2379",
	"--secure-port=34567",
	"--service-account-issuer=https://127.0.0.1:34567/",
	"--service-account-key-file=/tmp/envtest-certs/sa-signer.crt",
	"--service-account-signing-key-file=/tmp/envtest-certs/sa-signer.key",
	"--service-cluster-ip-range=10.0.0.0/24",
}

func TestAPIServerAcceptsKubeAPIServerFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{name: "envtest defaults", args: envtestArgs},
		{name: "repeated and extra flags", args: append(slices.Clone(envtestArgs),
			"--service-account-issuer=https://kubernetes.default.svc",
			"--service-account-key-file=/tmp/other.pub",
			"--enable-priority-and-fairness=false",
			"--token-auth-file=/tmp/tokens.csv",
			"--feature-gates=WatchList=true,InPlacePodVerticalScaling=false",
			"--runtime-config=api/all=true",
			"--enable-admission-plugins=NamespaceLifecycle",
			"--anonymous-auth=false",
			"--audit-log-path=-",
		)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := newAPIServerCommand("kube-apiserver")
			if err := cmd.ParseFlags(tt.args); err != nil {
				t.Fatalf("parsing %v: %v", tt.args, err)
			}
		})
	}
}

func TestAPIServerFlagsReachServerOptions(t *testing.T) {
	cmd := newAPIServerCommand("kube-apiserver")
	if err := cmd.ParseFlags(envtestArgs); err != nil {
		t.Fatal(err)
	}
	tests := map[string]string{
		"secure-port":              "34567",
		"bind-address":             "127.0.0.1",
		"etcd-servers":             "[http://127.0.0.1:2379]",
		"cert-dir":                 "/tmp/envtest-certs",
		"service-account-issuer":   "[https://127.0.0.1:34567/]",
		"authorization-mode":       "[RBAC]",
		"service-cluster-ip-range": "10.0.0.0/24",
		"event-ttl":                "1h0m0s",
	}
	for name, want := range tests {
		if got := cmd.Flags().Lookup(name).Value.String(); got != want {
			t.Errorf("--%s = %q, want %q", name, got, want)
		}
	}
}

func TestEventTTLFlag(t *testing.T) {
	for name, cmd := range map[string]*cobra.Command{"apiserver": newAPIServerCommand("kube-apiserver"), "up": newUpCommand()} {
		if got := cmd.Flags().Lookup("event-ttl").Value.String(); got != "1h0m0s" {
			t.Errorf("%s: default --event-ttl %s, want kube-apiserver's 1h0m0s", name, got)
		}
		if err := cmd.ParseFlags([]string{"--event-ttl=90s"}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := cmd.Flags().Lookup("event-ttl").Value.String(); got != "1m30s" {
			t.Errorf("%s: --event-ttl=90s parsed as %s", name, got)
		}
	}
}

func TestAPIServerRejectsUnknownFlags(t *testing.T) {
	cmd := newAPIServerCommand("kube-apiserver")
	if err := cmd.ParseFlags([]string{"--no-such-flag=1"}); err == nil {
		t.Fatal("unknown flag accepted")
	}
}
