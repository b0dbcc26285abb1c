// Package controllers will hold Tower's reconcilers, one per directory
// (controllers/<name>), each a controller-runtime reconciler with its own
// SetupWithManager: the scheduler, the workload controllers (deployment,
// replicaset, statefulset, daemonset, job, cronjob), endpoints and
// endpointslices, namespace and garbage collection, service accounts, node
// lifecycle and the load balancer. They talk only to the API server, never
// to etcd, and run in `tower controller-manager` and `tower scheduler` (or
// inside `tower up`).
package controllers
