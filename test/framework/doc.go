// Package framework starts Tower control planes for tests and benchmarks.
//
// It is the one place that knows how to assemble a working API server for a
// test: an embedded etcd in a temporary directory, a fresh PKI, the server on
// a loopback port and an admin client. Tests talk to it only through the
// standard clients it hands out (rest.Config, client-go, a kubeconfig file),
// plus a direct etcd client for checking what was stored.
//
// With TOWER_TEST_AGAINST=reference in the environment every control plane
// is upstream kube-apiserver on upstream etcd from the reference build
// ($REF/bin, default ~/.cache/tower-reference/bin), run as child
// processes: a test that fails there pins the wrong behaviour.
//
//	TOWER_TEST_AGAINST=reference go test ./test/integration/
//
// StartProcesses runs any pair of binaries (TowerBinaries, ReferenceBinaries)
// as child processes, for benchmarks that measure each server's CPU and
// memory on its own.
package framework
