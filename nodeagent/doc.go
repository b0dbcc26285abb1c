// Package nodeagent will hold `tower node`, Tower's kubelet: it registers
// its Node, renews its Lease, and runs the Pods bound to it in containerd
// (network namespaces via CNI, images, containers, probes, restarts, status
// through pods/status). Its proxy subpackage keeps Services programmed in
// one nftables table, as kube-proxy's nftables mode does.
package nodeagent
