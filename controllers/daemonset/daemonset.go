// Package daemonset runs one pod of each DaemonSet on every eligible node,
// as kube-controller-manager's daemonset controller does: a node is
// eligible when it matches the template's nodeSelector and required node
// affinity and its NoSchedule/NoExecute taints are tolerated; each pod is
// pinned to its node by a required node affinity on metadata.name, so the
// scheduler binds it there; pods on nodes that are no longer eligible are
// deleted, and RollingUpdate replaces outdated pods within maxUnavailable.
package daemonset

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"tower.dev/tower/controllers/deployment"
	"tower.dev/tower/controllers/internal/workload"
	"tower.dev/tower/controllers/replicaset"
)

// Name is the controller's name in --controllers.
const Name = "daemonset"

// revisionHashLabel carries the hash of the template a pod was made from.
const revisionHashLabel = appsv1.ControllerRevisionHashLabelKey

var controllerKind = appsv1.SchemeGroupVersion.WithKind("DaemonSet")

// Reconciler is the DaemonSet controller.
type Reconciler struct {
	Client       client.Client
	Recorder     recorder.EventRecorder
	expectations *workload.Expectations
	now          func() time.Time
}

// SetupWithManager registers the controller with mgr.
func SetupWithManager(mgr ctrl.Manager) error {
	r := &Reconciler{
		Client:       mgr.GetClient(),
		Recorder:     mgr.GetEventRecorder("daemonset-controller"),
		expectations: workload.NewExpectations(),
		now:          time.Now,
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("daemonset").
		For(&appsv1.DaemonSet{}).
		Watches(&corev1.Pod{}, workload.OwnedPodHandler(controllerKind, r.expectations)).
		Watches(&corev1.Node{}, handler.EnqueueRequestsFromMapFunc(r.allDaemonSets)).
		WithOptions(controller.Options{MaxConcurrentReconciles: 4}).
		Complete(r)
}

// allDaemonSets enqueues every DaemonSet: a node change may make any of
// them want or drop a pod there.
func (r *Reconciler) allDaemonSets(ctx context.Context, _ client.Object) []reconcile.Request {
	var sets appsv1.DaemonSetList
	if err := r.Client.List(ctx, &sets); err != nil {
		logr.FromContextOrDiscard(ctx).Error(err, "Listing daemonsets for a node change")
		return nil
	}
	reqs := make([]reconcile.Request, len(sets.Items))
	for i := range sets.Items {
		reqs[i] = reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&sets.Items[i])}
	}
	return reqs
}

// Reconcile syncs one DaemonSet.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	key := req.String()
	ds := &appsv1.DaemonSet{}
	if err := r.Client.Get(ctx, req.NamespacedName, ds); err != nil {
		if apierrors.IsNotFound(err) {
			r.expectations.Forget(key)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, fmt.Errorf("getting daemonset: %w", err)
	}
	satisfied := r.expectations.Satisfied(key)
	var nodes corev1.NodeList
	if err := r.Client.List(ctx, &nodes); err != nil {
		return reconcile.Result{}, fmt.Errorf("listing nodes: %w", err)
	}
	byNode, err := r.podsByNode(ctx, ds)
	if err != nil {
		return reconcile.Result{}, err
	}
	hash := deployment.ComputeHash(&ds.Spec.Template, ds.Status.CollisionCount)
	template := podTemplate(ds, hash)
	now := r.now()

	var toCreate []string
	var toDelete []*corev1.Pod
	status := appsv1.DaemonSetStatus{ObservedGeneration: ds.Generation, CollisionCount: ds.Status.CollisionCount, Conditions: ds.Status.Conditions}
	var outdated []*corev1.Pod
	unavailable := 0
	eligibleNodes := map[string]bool{}
	for i := range nodes.Items {
		node := &nodes.Items[i]
		if !Eligible(template, node) {
			continue
		}
		eligibleNodes[node.Name] = true
		status.DesiredNumberScheduled++
		var live []*corev1.Pod
		for _, pod := range byNode[node.Name] {
			switch {
			case pod.Status.Phase == corev1.PodFailed && pod.DeletionTimestamp == nil:
				// A failed daemon pod is replaced, as upstream does.
				toDelete = append(toDelete, pod)
			case workload.IsPodActive(pod):
				live = append(live, pod)
			}
		}
		if len(live) == 0 {
			toCreate = append(toCreate, node.Name)
			unavailable++
			continue
		}
		sort.Slice(live, func(a, b int) bool { return live[a].CreationTimestamp.Before(&live[b].CreationTimestamp) })
		// Duplicates (a race, or adoption) keep the oldest pod.
		toDelete = append(toDelete, live[1:]...)
		pod := live[0]
		status.CurrentNumberScheduled++
		if workload.IsPodReady(pod) {
			status.NumberReady++
		}
		if workload.IsPodAvailable(pod, ds.Spec.MinReadySeconds, now) {
			status.NumberAvailable++
		} else {
			unavailable++
		}
		if pod.Labels[revisionHashLabel] == hash {
			status.UpdatedNumberScheduled++
		} else {
			outdated = append(outdated, pod)
		}
	}
	for nodeName, pods := range byNode {
		if eligibleNodes[nodeName] {
			continue
		}
		for _, pod := range pods {
			if workload.IsPodActive(pod) {
				status.NumberMisscheduled++
				toDelete = append(toDelete, pod)
			}
		}
	}
	status.NumberUnavailable = status.DesiredNumberScheduled - status.NumberAvailable
	toDelete = append(toDelete, rollingUpdateVictims(ds, int(status.DesiredNumberScheduled), outdated, unavailable)...)

	var manageErr error
	if satisfied && ds.DeletionTimestamp == nil {
		manageErr = r.manage(ctx, ds, key, template, toCreate, toDelete)
	}
	if !apiequality.Semantic.DeepEqual(status, ds.Status) {
		updated := ds.DeepCopy()
		updated.Status = status
		if err := r.Client.Status().Update(ctx, updated); err != nil && !apierrors.IsNotFound(err) {
			return reconcile.Result{}, fmt.Errorf("updating daemonset status: %w", err)
		}
	}
	return reconcile.Result{}, manageErr
}

// rollingUpdateVictims picks outdated pods to replace now: as many as
// maxUnavailable allows beyond the pods already unavailable, unavailable
// outdated pods first since replacing them costs nothing.
func rollingUpdateVictims(ds *appsv1.DaemonSet, desired int, outdated []*corev1.Pod, unavailable int) []*corev1.Pod {
	if ds.Spec.UpdateStrategy.Type == appsv1.OnDeleteDaemonSetStrategyType || len(outdated) == 0 {
		return nil
	}
	maxUnavailable := intstr.FromInt32(1)
	if ru := ds.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.MaxUnavailable != nil {
		maxUnavailable = *ru.MaxUnavailable
	}
	allowed, err := intstr.GetScaledValueFromIntOrPercent(&maxUnavailable, desired, true)
	if err != nil || allowed < 1 {
		allowed = 1
	}
	var victims []*corev1.Pod
	budget := allowed - unavailable
	for _, pod := range outdated {
		if !workload.IsPodReady(pod) {
			victims = append(victims, pod)
		}
	}
	for _, pod := range outdated {
		if workload.IsPodReady(pod) && budget > 0 {
			victims = append(victims, pod)
			budget--
		}
	}
	return victims
}

func (r *Reconciler) manage(ctx context.Context, ds *appsv1.DaemonSet, key string, template *corev1.Pod, nodes []string, victims []*corev1.Pod) error {
	names := make([]string, len(victims))
	for i, pod := range victims {
		names[i] = pod.Name
	}
	r.expectations.ExpectDeletions(key, names)
	for _, pod := range victims {
		uid := pod.UID
		if err := r.Client.Delete(ctx, pod, client.Preconditions{UID: &uid}); err != nil {
			r.expectations.DeletionObserved(key, pod.Name)
			if !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				return fmt.Errorf("deleting pod %s of daemonset %s: %w", pod.Name, key, err)
			}
			continue
		}
		r.Recorder.Eventf(ds, pod, corev1.EventTypeNormal, "SuccessfulDelete", "Delete", "Deleted pod: %v", pod.Name)
	}
	r.expectations.ExpectCreations(key, len(nodes))
	for i, nodeName := range nodes {
		pod := template.DeepCopy()
		pinToNode(pod, nodeName)
		if err := r.Client.Create(ctx, pod); err != nil {
			for range len(nodes) - i {
				r.expectations.CreationObserved(key)
			}
			r.Recorder.Eventf(ds, nil, corev1.EventTypeWarning, "FailedCreate", "Create", "Error creating: %v", err)
			return fmt.Errorf("creating pod of daemonset %s on node %s: %w", key, nodeName, err)
		}
		r.Recorder.Eventf(ds, pod, corev1.EventTypeNormal, "SuccessfulCreate", "Create", "Created pod: %v", pod.Name)
	}
	return nil
}

// podTemplate is the pod the DaemonSet creates, before it is pinned to a
// node: the template with the revision hash label and the tolerations
// upstream adds to every daemon pod.
func podTemplate(ds *appsv1.DaemonSet, hash string) *corev1.Pod {
	pod := replicaset.PodFromTemplate(&ds.Spec.Template, ds, workload.NewControllerRef(ds, controllerKind.GroupVersion().String(), controllerKind.Kind))
	labels := map[string]string{revisionHashLabel: hash}
	for k, v := range pod.Labels {
		labels[k] = v
	}
	pod.Labels = labels
	add := func(key string, effect corev1.TaintEffect) {
		for _, t := range pod.Spec.Tolerations {
			if t.Key == key && t.Effect == effect && t.Operator == corev1.TolerationOpExists {
				return
			}
		}
		pod.Spec.Tolerations = append(pod.Spec.Tolerations, corev1.Toleration{Key: key, Operator: corev1.TolerationOpExists, Effect: effect})
	}
	add(corev1.TaintNodeNotReady, corev1.TaintEffectNoExecute)
	add(corev1.TaintNodeUnreachable, corev1.TaintEffectNoExecute)
	add(corev1.TaintNodeDiskPressure, corev1.TaintEffectNoSchedule)
	add(corev1.TaintNodeMemoryPressure, corev1.TaintEffectNoSchedule)
	add(corev1.TaintNodePIDPressure, corev1.TaintEffectNoSchedule)
	add(corev1.TaintNodeUnschedulable, corev1.TaintEffectNoSchedule)
	if pod.Spec.HostNetwork {
		add(corev1.TaintNodeNetworkUnavailable, corev1.TaintEffectNoSchedule)
	}
	return pod
}

// Eligible reports whether a daemon pod belongs on node: it matches the
// node's labels and tolerates its NoSchedule and NoExecute taints.
func Eligible(pod *corev1.Pod, node *corev1.Node) bool {
	if node.DeletionTimestamp != nil {
		return false
	}
	if ok, _ := nodeaffinity.GetRequiredNodeAffinity(pod).Match(node); !ok {
		return false
	}
	_, untolerated := corev1helpers.FindMatchingUntoleratedTaint(logr.Discard(), node.Spec.Taints, pod.Spec.Tolerations, func(t *corev1.Taint) bool {
		return t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute
	}, true)
	return !untolerated
}

// pinToNode replaces the pod's required node affinity with one that only
// node's name satisfies, as upstream does; the node was already checked
// against the template's own terms.
func pinToNode(pod *corev1.Pod, nodeName string) {
	if pod.Spec.Affinity == nil {
		pod.Spec.Affinity = &corev1.Affinity{}
	}
	if pod.Spec.Affinity.NodeAffinity == nil {
		pod.Spec.Affinity.NodeAffinity = &corev1.NodeAffinity{}
	}
	pod.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution = &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{{
			MatchFields: []corev1.NodeSelectorRequirement{{
				Key: metav1.ObjectNameField, Operator: corev1.NodeSelectorOpIn, Values: []string{nodeName},
			}},
		}},
	}
}

// targetNode is the node a daemon pod runs on, or is pinned to.
func targetNode(pod *corev1.Pod) string {
	if pod.Spec.NodeName != "" {
		return pod.Spec.NodeName
	}
	a := pod.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return ""
	}
	for _, term := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		for _, req := range term.MatchFields {
			if req.Key == metav1.ObjectNameField && req.Operator == corev1.NodeSelectorOpIn && len(req.Values) == 1 {
				return req.Values[0]
			}
		}
	}
	return ""
}

// podsByNode groups the DaemonSet's pods by the node they target.
func (r *Reconciler) podsByNode(ctx context.Context, ds *appsv1.DaemonSet) (map[string][]*corev1.Pod, error) {
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, client.InNamespace(ds.Namespace)); err != nil {
		return nil, fmt.Errorf("listing pods: %w", err)
	}
	byNode := map[string][]*corev1.Pod{}
	for i := range pods.Items {
		pod := &pods.Items[i]
		if ref := workload.ControllerRef(pod); ref == nil || ref.UID != ds.UID {
			continue
		}
		node := targetNode(pod)
		byNode[node] = append(byNode[node], pod)
	}
	return byNode, nil
}
