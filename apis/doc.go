// Package apis will hold Tower's own API groups (under the tower.dev
// domain), each in apis/<group>/<version> as kubebuilder lays them out:
// Go types with their deepcopy and CRD markers. The first is the address
// pools the load-balancer controller hands out to Services of type
// LoadBalancer. The API server serves them like any built-in resource.
package apis
