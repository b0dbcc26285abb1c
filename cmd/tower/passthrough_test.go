package main

import (
	"slices"
	"testing"
)

func TestWithLoneMemberTiming(t *testing.T) {
	envtestArgs := []string{"--advertise-client-urls=http://127.0.0.1:2379", "--data-dir=/tmp/d", "--listen-client-urls=http://127.0.0.1:2379", "--listen-peer-urls=http://127.0.0.1:2380", "--unsafe-no-fsync=true"}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want bool
	}{
		{name: "envtest's flags", args: envtestArgs, want: true},
		{name: "no flags", want: true},
		{name: "space-separated values", args: []string{"--data-dir", "/tmp/d"}, want: true},
		{name: "own heartbeat", args: append([]string{"--heartbeat-interval", "50"}, envtestArgs...)},
		{name: "own election timeout", args: []string{"-election-timeout=500"}},
		{name: "a cluster of several", args: []string{"--initial-cluster=a=http://a:2380,b=http://b:2380"}},
		{name: "discovery", args: []string{"--discovery-srv=example.com"}},
		{name: "config file", args: []string{"--config-file", "etcd.yaml"}},
		{name: "timing from the environment", args: envtestArgs, env: map[string]string{"ETCD_HEARTBEAT_INTERVAL": "50"}},
		{name: "help", args: []string{"--help"}},
		{name: "version", args: []string{"--version"}},
		{name: "subcommand", args: []string{"grpc-proxy", "start"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := withLoneMemberTiming(tt.args, func(key string) string { return tt.env[key] })
			added := len(got) == len(tt.args)+len(loneMemberTiming) && slices.Equal(got[len(loneMemberTiming):], tt.args)
			if added != tt.want || (!tt.want && !slices.Equal(got, tt.args)) {
				t.Errorf("withLoneMemberTiming(%q) = %q, want timing added: %v", tt.args, got, tt.want)
			}
		})
	}
}
