package registry

import (
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// workloadScale is where Deployments, ReplicaSets and StatefulSets keep
// what their scale subresource shows.
var workloadScale = &ScaleSubresource{
	SpecReplicasPath:   ".spec.replicas",
	StatusReplicasPath: ".status.replicas",
	LabelSelectorPath:  ".spec.selector",
}

var (
	allVerbs       = []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
	namespaceVerbs = []string{"create", "delete", "get", "list", "patch", "update", "watch"}
	categoryAll    = []string{"all"}
	coreV1         = schema.GroupVersion{Version: "v1"}
	appsV1         = appsv1.SchemeGroupVersion
	batchV1        = batchv1.SchemeGroupVersion
	coordinationV1 = coordinationv1.SchemeGroupVersion
	discoveryV1    = discoveryv1.SchemeGroupVersion
	eventsV1       = eventsv1.SchemeGroupVersion
)

// createOnUpdate are the resources whose upstream strategies let a PUT of a
// missing object create it.
var createOnUpdate = map[schema.GroupResource]bool{
	{Resource: "services"}: true, {Resource: "endpoints"}: true, {Resource: "events"}: true,
	{Resource: "limitranges"}: true, {Resource: "serviceaccounts"}: true,
	{Group: "events.k8s.io", Resource: "events"}: true, {Group: "coordination.k8s.io", Resource: "leases"}: true,
	{Group: "rbac.authorization.k8s.io", Resource: "roles"}: true, {Group: "rbac.authorization.k8s.io", Resource: "rolebindings"}: true,
	{Group: "rbac.authorization.k8s.io", Resource: "clusterroles"}: true, {Group: "rbac.authorization.k8s.io", Resource: "clusterrolebindings"}: true,
}

// returnsDeletedObject are the resources whose delete answers with the
// object instead of a Status, as their upstream stores do.
var returnsDeletedObject = map[schema.GroupResource]bool{
	{Resource: "pods"}: true, {Resource: "namespaces"}: true, {Resource: "services"}: true,
}

// spec is the compact form of a catalog entry.
type spec struct {
	gv         schema.GroupVersion
	resource   string
	kind       string
	short      []string
	categories []string
	namespaced bool
	prefix     string
	newObj     func() runtime.Object
	newList    func() runtime.Object
	strategy   Strategy
	status     StatusStrategy
	scale      *ScaleSubresource
	verbs      []string
	notStored  bool
}

func (s spec) build() *Resource {
	verbs := s.verbs
	if verbs == nil {
		verbs = allVerbs
	}
	return &Resource{
		GroupVersionResource: s.gv.WithResource(s.resource),
		Kind:                 s.kind,
		SingularName:         singular(s.kind),
		ShortNames:           s.short,
		Categories:           s.categories,
		Namespaced:           s.namespaced,
		Verbs:                verbs,
		StoragePrefix:        s.prefix,
		New:                  s.newObj,
		NewList:              s.newList,
		Strategy:             s.strategy,
		Status:               s.status,
		Scale:                s.scale,
		NotStored:            s.notStored,
	}
}

func singular(kind string) string {
	b := []byte(kind)
	for i := range b {
		if b[i] >= 'A' && b[i] <= 'Z' {
			b[i] += 'a' - 'A'
		}
	}
	return string(b)
}

// DefaultEventTTL is kube-apiserver's default --event-ttl.
const DefaultEventTTL = time.Hour

// BuiltinOptions are the server settings that change how built-in
// resources are kept.
type BuiltinOptions struct {
	// EventTTL is how long an event lives after its last write
	// (--event-ttl); zero keeps events until they are deleted.
	EventTTL time.Duration
}

// Builtins returns the built-in resources Tower serves.
func Builtins(opts BuiltinOptions) *Catalog {
	nsd := namespacedStrategy
	specs := []spec{
		{gv: coreV1, resource: "namespaces", kind: "Namespace", short: []string{"ns"}, prefix: "/registry/namespaces",
			newObj: func() runtime.Object { return &corev1.Namespace{} }, newList: func() runtime.Object { return &corev1.NamespaceList{} },
			strategy: newNamespaceStrategy(), status: namespaceStatusStrategy{}, verbs: namespaceVerbs},
		{gv: coreV1, resource: "configmaps", kind: "ConfigMap", short: []string{"cm"}, namespaced: true, prefix: "/registry/configmaps",
			newObj: func() runtime.Object { return &corev1.ConfigMap{} }, newList: func() runtime.Object { return &corev1.ConfigMapList{} },
			strategy: configMapStrategy{nsd(false)}},
		{gv: coreV1, resource: "secrets", kind: "Secret", namespaced: true, prefix: "/registry/secrets",
			newObj: func() runtime.Object { return &corev1.Secret{} }, newList: func() runtime.Object { return &corev1.SecretList{} },
			strategy: secretStrategy{nsd(false)}},
		{gv: coreV1, resource: "serviceaccounts", kind: "ServiceAccount", short: []string{"sa"}, namespaced: true, prefix: "/registry/serviceaccounts",
			newObj: func() runtime.Object { return &corev1.ServiceAccount{} }, newList: func() runtime.Object { return &corev1.ServiceAccountList{} },
			strategy: serviceAccountStrategy{nsd(false)}},
		{gv: coreV1, resource: "pods", kind: "Pod", short: []string{"po"}, categories: categoryAll, namespaced: true, prefix: "/registry/pods",
			newObj: func() runtime.Object { return &corev1.Pod{} }, newList: func() runtime.Object { return &corev1.PodList{} },
			strategy: newPodStrategy(), status: podStatusStrategy{}},
		{gv: coreV1, resource: "services", kind: "Service", short: []string{"svc"}, categories: categoryAll, namespaced: true, prefix: "/registry/services/specs",
			newObj: func() runtime.Object { return &corev1.Service{} }, newList: func() runtime.Object { return &corev1.ServiceList{} },
			strategy: newServiceStrategy(), status: serviceStatusStrategy{}},
		{gv: coreV1, resource: "endpoints", kind: "Endpoints", short: []string{"ep"}, namespaced: true, prefix: "/registry/services/endpoints",
			newObj: func() runtime.Object { return &corev1.Endpoints{} }, newList: func() runtime.Object { return &corev1.EndpointsList{} },
			strategy: endpointsStrategy{nsd(false)}},
		{gv: coreV1, resource: "nodes", kind: "Node", short: []string{"no"}, prefix: "/registry/minions",
			newObj: func() runtime.Object { return &corev1.Node{} }, newList: func() runtime.Object { return &corev1.NodeList{} },
			strategy: newNodeStrategy(), status: nodeStatusStrategy{}},
		{gv: coreV1, resource: "events", kind: "Event", short: []string{"ev"}, namespaced: true, prefix: "/registry/events",
			newObj: func() runtime.Object { return &corev1.Event{} }, newList: func() runtime.Object { return &corev1.EventList{} },
			strategy: newEventStrategy(false)},
		{gv: coreV1, resource: "limitranges", kind: "LimitRange", short: []string{"limits"}, namespaced: true, prefix: "/registry/limitranges",
			newObj: func() runtime.Object { return &corev1.LimitRange{} }, newList: func() runtime.Object { return &corev1.LimitRangeList{} },
			strategy: limitRangeStrategy{nsd(false)}},
		{gv: coreV1, resource: "resourcequotas", kind: "ResourceQuota", short: []string{"quota"}, namespaced: true, prefix: "/registry/resourcequotas",
			newObj: func() runtime.Object { return &corev1.ResourceQuota{} }, newList: func() runtime.Object { return &corev1.ResourceQuotaList{} },
			strategy: resourceQuotaStrategy{nsd(false)}, status: statusStrategy{validateStatus: validateQuotaStatus}},
		{gv: appsV1, resource: "deployments", kind: "Deployment", short: []string{"deploy"}, categories: categoryAll, namespaced: true, prefix: "/registry/deployments",
			newObj: func() runtime.Object { return &appsv1.Deployment{} }, newList: func() runtime.Object { return &appsv1.DeploymentList{} },
			strategy: deploymentStrategy{nsd(true)}, status: statusStrategy{keepsLabels: true, validateStatus: validateDeploymentStatus}, scale: workloadScale},
		{gv: appsV1, resource: "replicasets", kind: "ReplicaSet", short: []string{"rs"}, categories: categoryAll, namespaced: true, prefix: "/registry/replicasets",
			newObj: func() runtime.Object { return &appsv1.ReplicaSet{} }, newList: func() runtime.Object { return &appsv1.ReplicaSetList{} },
			strategy: replicaSetStrategy{nsd(true)}, status: statusStrategy{validateStatus: validateReplicaSetStatus}, scale: workloadScale},
		{gv: appsV1, resource: "statefulsets", kind: "StatefulSet", short: []string{"sts"}, categories: categoryAll, namespaced: true, prefix: "/registry/statefulsets",
			newObj: func() runtime.Object { return &appsv1.StatefulSet{} }, newList: func() runtime.Object { return &appsv1.StatefulSetList{} },
			strategy: statefulSetStrategy{nsd(true)}, status: statusStrategy{validateStatus: validateStatefulSetStatus}, scale: workloadScale},
		{gv: appsV1, resource: "daemonsets", kind: "DaemonSet", short: []string{"ds"}, categories: categoryAll, namespaced: true, prefix: "/registry/daemonsets",
			newObj: func() runtime.Object { return &appsv1.DaemonSet{} }, newList: func() runtime.Object { return &appsv1.DaemonSetList{} },
			strategy: daemonSetStrategy{nsd(true)}, status: statusStrategy{validateStatus: validateDaemonSetStatus}},
		{gv: appsV1, resource: "controllerrevisions", kind: "ControllerRevision", namespaced: true, prefix: "/registry/controllerrevisions",
			newObj: func() runtime.Object { return &appsv1.ControllerRevision{} }, newList: func() runtime.Object { return &appsv1.ControllerRevisionList{} },
			strategy: controllerRevisionStrategy{nsd(false)}},
		{gv: batchV1, resource: "jobs", kind: "Job", categories: categoryAll, namespaced: true, prefix: "/registry/jobs",
			newObj: func() runtime.Object { return &batchv1.Job{} }, newList: func() runtime.Object { return &batchv1.JobList{} },
			strategy: jobStrategy{nsd(true)}, status: statusStrategy{validateStatus: validateJobStatus}},
		{gv: batchV1, resource: "cronjobs", kind: "CronJob", short: []string{"cj"}, categories: categoryAll, namespaced: true, prefix: "/registry/cronjobs",
			newObj: func() runtime.Object { return &batchv1.CronJob{} }, newList: func() runtime.Object { return &batchv1.CronJobList{} },
			strategy: cronJobStrategy{nsd(true)}, status: statusStrategy{}},
		{gv: coordinationV1, resource: "leases", kind: "Lease", namespaced: true, prefix: "/registry/leases",
			newObj: func() runtime.Object { return &coordinationv1.Lease{} }, newList: func() runtime.Object { return &coordinationv1.LeaseList{} },
			strategy: leaseStrategy{nsd(false)}},
		{gv: discoveryV1, resource: "endpointslices", kind: "EndpointSlice", namespaced: true, prefix: "/registry/endpointslices",
			newObj: func() runtime.Object { return &discoveryv1.EndpointSlice{} }, newList: func() runtime.Object { return &discoveryv1.EndpointSliceList{} },
			strategy: endpointSliceStrategy{nsd(false)}},
		{gv: eventsV1, resource: "events", kind: "Event", short: []string{"ev"}, namespaced: true, prefix: "/registry/events",
			newObj: func() runtime.Object { return &eventsv1.Event{} }, newList: func() runtime.Object { return &eventsv1.EventList{} },
			strategy: newEventsV1Strategy()},
	}
	specs = append(specs, rbacSpecs()...)
	specs = append(specs, schedulingSpecs()...)
	specs = append(specs, reviewSpecs()...)
	specs = append(specs, policySpecs()...)
	specs = append(specs, admissionRegistrationSpecs()...)
	resources := make([]*Resource, 0, len(specs))
	byGVR := map[schema.GroupVersionResource]*Resource{}
	for _, s := range specs {
		r := s.build()
		r.AllowCreateOnUpdate = createOnUpdate[r.GroupResource()]
		r.ReturnDeletedObject = returnsDeletedObject[r.GroupResource()]
		resources = append(resources, r)
		byGVR[r.GroupVersionResource] = r
	}
	// events.k8s.io/v1 events are a view of the core/v1 events storage,
	// so the TTL of that storage covers both.
	coreEvents := byGVR[coreV1.WithResource("events")]
	coreEvents.TTL = opts.EventTTL
	byGVR[eventsV1.WithResource("events")].StoredAs = eventsV1View(coreEvents)
	return NewCatalog(resources)
}
