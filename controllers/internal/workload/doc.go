// Package workload holds what the workload controllers share: pod
// readiness and availability, controller references, and expectations
// that keep a controller from acting twice on one change before its cache
// has seen the first.
package workload
