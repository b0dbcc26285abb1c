// Package kubeclient holds client settings Tower's own components share.
package kubeclient

import (
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
)

// Protobuf returns a copy of cfg that sends and prefers protobuf, as
// kube-scheduler, kube-controller-manager and the kubelet talk to the API
// server: built-in types cost the server and the client much less to
// encode and decode than in JSON. Only clientsets of built-in types may
// use it; custom resources have no protobuf encoding.
func Protobuf(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.ContentType = runtime.ContentTypeProtobuf
	cfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	return cfg
}
