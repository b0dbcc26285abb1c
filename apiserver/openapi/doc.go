// Package openapi serves /openapi/v2 and /openapi/v3 as kube-apiserver does:
// the route descriptions of every served resource (collection, item and
// status paths, deprecated watch paths, discovery paths) are assembled by
// k8s.io/kube-openapi's builder and builder3 over the type schemas that
// openapi-gen generated into the generated subpackage, and served by
// kube-openapi's handler and handler3 (JSON or protobuf, ETags, hashed v3
// URLs). kubectl reads these documents for --validate=strict, explain and
// client-side apply.
//
// The schemas are regenerated from the k8s.io/api version in go.mod with
//
//	go generate ./apiserver/openapi
//
// which runs openapi-gen at the kube-openapi version go.mod pins. To serve a
// new group version, add its package to the directive below and regenerate.
// The list holds the GA group versions plus the packages their types refer
// to (scheduling/v1alpha3, used by core/v1's PodSpec);
// TestGeneratedDefinitionsAreClosed fails when a reference is missing.
package openapi

//go:generate go run k8s.io/kube-openapi/cmd/openapi-gen@v0.0.0-20260721132016-d427ff9ee9ad --output-dir generated --output-pkg tower.dev/tower/apiserver/openapi/generated --output-file zz_generated.openapi.go --go-header-file /dev/null --report-filename generated/api-rule-violations.list k8s.io/apimachinery/pkg/apis/meta/v1 k8s.io/apimachinery/pkg/runtime k8s.io/apimachinery/pkg/version k8s.io/apimachinery/pkg/api/resource k8s.io/apimachinery/pkg/util/intstr k8s.io/api/core/v1 k8s.io/api/apps/v1 k8s.io/api/batch/v1 k8s.io/api/autoscaling/v1 k8s.io/api/autoscaling/v2 k8s.io/api/coordination/v1 k8s.io/api/discovery/v1 k8s.io/api/events/v1 k8s.io/api/networking/v1 k8s.io/api/policy/v1 k8s.io/api/rbac/v1 k8s.io/api/admissionregistration/v1 k8s.io/api/authentication/v1 k8s.io/api/authorization/v1 k8s.io/api/certificates/v1 k8s.io/api/flowcontrol/v1 k8s.io/api/node/v1 k8s.io/api/resource/v1 k8s.io/api/scheduling/v1 k8s.io/api/scheduling/v1alpha3 k8s.io/api/storage/v1 k8s.io/api/storagemigration/v1 k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1
