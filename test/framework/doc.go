// Package framework starts Tower control planes for tests and benchmarks.
//
// It is the one place that knows how to assemble a working API server for a
// test: an embedded etcd in a temporary directory, a fresh PKI, the server on
// a loopback port and an admin client. Tests talk to it only through the
// standard clients it hands out (rest.Config, client-go, a kubeconfig file),
// plus a direct etcd client for checking what was stored.
package framework
