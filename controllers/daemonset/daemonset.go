// Package daemonset runs one pod of each DaemonSet on every eligible node,
// as kube-controller-manager's daemonset controller does: a node is
// eligible when it matches the template's nodeSelector and required node
// affinity and its NoSchedule/NoExecute taints are tolerated; each pod is
// pinned to its node by a required node affinity on metadata.name, so the
// scheduler binds it there; pods on nodes that are no longer eligible are
// deleted. Each distinct template is kept as a ControllerRevision whose
// hash labels the pods made from it; RollingUpdate replaces outdated pods
// within maxUnavailable, or with maxSurge starts the new pod beside the
// old one first; OnDelete leaves replacing them to the user.
package daemonset

import (
	"context"
	"fmt"
	"sort"
	"strconv"
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

	"tower.dev/tower/controllers/internal/history"
	"tower.dev/tower/controllers/internal/workload"
	"tower.dev/tower/controllers/replicaset"
)

// Name is the controller's name in --controllers.
const Name = "daemonset"

// revisionHashLabel carries the hash of the template a pod was made from.
const revisionHashLabel = appsv1.ControllerRevisionHashLabelKey

// templateGenerationLabel carries the DaemonSet's generation when the pod
// was made, as upstream labels daemon pods.
const templateGenerationLabel = "pod-template-generation"

var controllerKind = appsv1.SchemeGroupVersion.WithKind("DaemonSet")

// Reconciler is the DaemonSet controller.
type Reconciler struct {
	Client       client.Client
	Recorder     recorder.EventRecorder
	revisions    history.Store
	expectations *workload.Expectations
	now          func() time.Time
}

// SetupWithManager registers the controller with mgr.
func SetupWithManager(mgr ctrl.Manager) error {
	r := &Reconciler{
		Client:       mgr.GetClient(),
		Recorder:     mgr.GetEventRecorder("daemonset-controller"),
		revisions:    history.Store{Client: mgr.GetClient(), Kind: controllerKind, APIReader: mgr.GetAPIReader(), NewOwner: func() client.Object { return &appsv1.DaemonSet{} }},
		expectations: workload.NewExpectations(),
		now:          time.Now,
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("daemonset").
		For(&appsv1.DaemonSet{}).
		Owns(&appsv1.ControllerRevision{}).
		Watches(&corev1.Pod{}, workload.OwnedPodHandler(controllerKind, r.expectations)).
		Watches(&corev1.Pod{}, workload.EnqueueAdopters(mgr.GetClient(), &appsv1.DaemonSetList{}, selectorOf)).
		Watches(&appsv1.ControllerRevision{}, workload.EnqueueAdopters(mgr.GetClient(), &appsv1.DaemonSetList{}, selectorOf)).
		Watches(&corev1.Node{}, handler.EnqueueRequestsFromMapFunc(r.allDaemonSets)).
		WithOptions(controller.Options{MaxConcurrentReconciles: 4}).
		Complete(r)
}

func selectorOf(ds *appsv1.DaemonSet) *metav1.LabelSelector { return ds.Spec.Selector }

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
	if ds.DeletionTimestamp != nil {
		// The garbage collector removes its pods and revisions.
		return reconcile.Result{}, nil
	}
	selector, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil {
		return reconcile.Result{}, reconcile.TerminalError(fmt.Errorf("daemonset %s has an invalid selector: %w", key, err))
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
	claimed, err := r.revisions.Claim(ctx, ds, selector)
	if err != nil {
		return reconcile.Result{}, err
	}
	collisionCount := int32(0)
	if ds.Status.CollisionCount != nil {
		collisionCount = *ds.Status.CollisionCount
	}
	data, err := history.Patch(ds)
	if err != nil {
		return reconcile.Result{}, err
	}
	current, err := r.revisions.Sync(ctx, ds, ds.Spec.Template.Labels, data, claimed, &collisionCount)
	if err != nil {
		return reconcile.Result{}, fmt.Errorf("syncing revisions of daemonset %s: %w", key, err)
	}
	hash := current.Labels[history.HashLabel]
	template := podTemplate(ds, hash)
	plan := planNodes(ds, template, nodes.Items, byNode, hash, r.now())
	status := plan.status
	status.ObservedGeneration = ds.Generation
	status.Conditions = ds.Status.Conditions
	status.CollisionCount = ds.Status.CollisionCount
	if collisionCount != 0 {
		status.CollisionCount = &collisionCount
	}

	var manageErr error
	if satisfied {
		manageErr = r.manage(ctx, ds, key, template, plan.create, plan.delete)
	}
	if !apiequality.Semantic.DeepEqual(status, ds.Status) {
		updated := ds.DeepCopy()
		updated.Status = status
		if err := r.Client.Status().Update(ctx, updated); err != nil && !apierrors.IsNotFound(err) {
			return reconcile.Result{}, fmt.Errorf("updating daemonset status: %w", err)
		}
	}
	if manageErr != nil {
		return reconcile.Result{}, manageErr
	}
	return reconcile.Result{}, r.truncateHistory(ctx, ds, byNode, claimed, current)
}

// truncateHistory deletes the oldest revisions beyond
// revisionHistoryLimit that neither a pod nor the template uses.
func (r *Reconciler) truncateHistory(ctx context.Context, ds *appsv1.DaemonSet, byNode map[string][]*corev1.Pod, claimed []*appsv1.ControllerRevision, current *appsv1.ControllerRevision) error {
	live := map[string]bool{current.Name: true}
	for _, pods := range byNode {
		for _, pod := range pods {
			if hash := pod.Labels[revisionHashLabel]; hash != "" {
				live[history.Name(ds.Name, hash)] = true
			}
		}
	}
	limit := history.DefaultHistoryLimit
	if ds.Spec.RevisionHistoryLimit != nil {
		limit = int(*ds.Spec.RevisionHistoryLimit)
	}
	return r.revisions.Truncate(ctx, claimed, live, limit)
}

// nodePlan is what one pass decides: the status, the nodes that get a new
// pod and the pods to delete.
type nodePlan struct {
	status appsv1.DaemonSetStatus
	create []string
	delete []*corev1.Pod
}

// planNodes compares the DaemonSet's pods with the eligible nodes: a
// missing pod is created, failed, duplicate and misscheduled ones deleted,
// and outdated ones replaced by the update strategy.
func planNodes(ds *appsv1.DaemonSet, template *corev1.Pod, nodes []corev1.Node, byNode map[string][]*corev1.Pod, hash string, now time.Time) nodePlan {
	var plan nodePlan
	surge := allowsSurge(ds)
	kept := map[string][]*corev1.Pod{}
	eligibleNodes := map[string]bool{}
	for i := range nodes {
		node := &nodes[i]
		if !Eligible(template, node) {
			continue
		}
		eligibleNodes[node.Name] = true
		plan.status.DesiredNumberScheduled++
		var live []*corev1.Pod
		for _, pod := range byNode[node.Name] {
			switch {
			case pod.Status.Phase == corev1.PodFailed && pod.DeletionTimestamp == nil:
				// A failed daemon pod is replaced, as upstream does.
				plan.delete = append(plan.delete, pod)
			case workload.IsPodActive(pod):
				live = append(live, pod)
			}
		}
		if len(live) == 0 {
			plan.create = append(plan.create, node.Name)
			continue
		}
		sort.SliceStable(live, func(a, b int) bool { return live[a].CreationTimestamp.Before(&live[b].CreationTimestamp) })
		keep, extra := dedupe(live, hash, surge)
		plan.delete = append(plan.delete, extra...)
		kept[node.Name] = keep
		pod := live[0]
		plan.status.CurrentNumberScheduled++
		if workload.IsPodReady(pod) {
			plan.status.NumberReady++
		}
		if workload.IsPodAvailable(pod, ds.Spec.MinReadySeconds, now) {
			plan.status.NumberAvailable++
		}
		if pod.Labels[revisionHashLabel] == hash {
			plan.status.UpdatedNumberScheduled++
		}
	}
	for nodeName, pods := range byNode {
		if eligibleNodes[nodeName] {
			continue
		}
		for _, pod := range pods {
			if workload.IsPodActive(pod) {
				plan.status.NumberMisscheduled++
				plan.delete = append(plan.delete, pod)
			}
		}
	}
	plan.status.NumberUnavailable = plan.status.DesiredNumberScheduled - plan.status.NumberAvailable
	if ds.Spec.UpdateStrategy.Type != appsv1.OnDeleteDaemonSetStrategyType {
		create, victims := rollingUpdate(ds, int(plan.status.DesiredNumberScheduled), kept, hash, now)
		plan.create = append(plan.create, create...)
		plan.delete = append(plan.delete, victims...)
	}
	return plan
}

// dedupe keeps one live pod per node, the oldest; with maxSurge it keeps
// the oldest outdated pod beside the oldest updated one while the old one
// is ready and the new one is not yet, as upstream does.
func dedupe(live []*corev1.Pod, hash string, surge bool) (keep, extra []*corev1.Pod) {
	if !surge {
		return live[:1], live[1:]
	}
	var updated, outdated *corev1.Pod
	for _, pod := range live {
		switch {
		case pod.Labels[revisionHashLabel] == hash && updated == nil:
			updated = pod
		case pod.Labels[revisionHashLabel] != hash && outdated == nil:
			outdated = pod
		default:
			extra = append(extra, pod)
		}
	}
	if updated != nil && outdated != nil && (!workload.IsPodReady(outdated) || workload.IsPodReady(updated)) {
		return []*corev1.Pod{updated}, append(extra, outdated)
	}
	for _, pod := range []*corev1.Pod{outdated, updated} {
		if pod != nil {
			keep = append(keep, pod)
		}
	}
	return keep, extra
}

// allowsSurge is true when a RollingUpdate may run a new pod beside the
// old one on a node.
func allowsSurge(ds *appsv1.DaemonSet) bool {
	ru := ds.Spec.UpdateStrategy.RollingUpdate
	if ds.Spec.UpdateStrategy.Type == appsv1.OnDeleteDaemonSetStrategyType || ru == nil || ru.MaxSurge == nil {
		return false
	}
	surge, err := intstr.GetScaledValueFromIntOrPercent(ru.MaxSurge, 100, true)
	return err == nil && surge > 0
}

// updateBudget is maxUnavailable and maxSurge scaled to the desired
// nodes, with upstream's fallback of one unavailable when both are zero.
func updateBudget(ds *appsv1.DaemonSet, desired int) (maxUnavailable, maxSurge int) {
	unavailable, surge := intstr.FromInt32(1), intstr.FromInt32(0)
	if ru := ds.Spec.UpdateStrategy.RollingUpdate; ru != nil {
		if ru.MaxUnavailable != nil {
			unavailable = *ru.MaxUnavailable
		}
		if ru.MaxSurge != nil {
			surge = *ru.MaxSurge
		}
	}
	maxUnavailable, errU := intstr.GetScaledValueFromIntOrPercent(&unavailable, desired, true)
	maxSurge, errS := intstr.GetScaledValueFromIntOrPercent(&surge, desired, true)
	if errU != nil || errS != nil || (desired > 0 && maxUnavailable == 0 && maxSurge == 0) {
		return 1, 0
	}
	return maxUnavailable, maxSurge
}

// rollingUpdate decides what to do about outdated pods on the nodes that
// have pods, as upstream does. Without surge, outdated pods are deleted
// (unavailable ones at once, available ones while fewer than
// maxUnavailable nodes are unavailable) and recreated by the next pass.
// With surge, a new pod starts beside the old one (at once when the old
// one is unavailable, otherwise on at most maxSurge nodes at a time) and
// the old one is deleted once the new one is available.
func rollingUpdate(ds *appsv1.DaemonSet, desired int, kept map[string][]*corev1.Pod, hash string, now time.Time) (create []string, victims []*corev1.Pod) {
	maxUnavailable, maxSurge := updateBudget(ds, desired)
	surging := maxSurge > 0
	available := func(pod *corev1.Pod) bool { return workload.IsPodAvailable(pod, ds.Spec.MinReadySeconds, now) }
	nodeNames := make([]string, 0, len(kept))
	for name := range kept {
		nodeNames = append(nodeNames, name)
	}
	sort.Strings(nodeNames)
	busy := 0
	var candidates []string
	outdatedOn := map[string]*corev1.Pod{}
	for _, name := range nodeNames {
		var updated, outdated *corev1.Pod
		for _, pod := range kept[name] {
			if pod.Labels[revisionHashLabel] == hash {
				updated = pod
			} else {
				outdated = pod
			}
		}
		outdatedOn[name] = outdated
		switch {
		case outdated == nil:
			if !available(updated) {
				busy++
			}
		case updated != nil && surging && available(updated):
			victims = append(victims, outdated)
		case updated != nil:
			busy++
		case !available(outdated):
			if surging {
				create = append(create, name)
			} else {
				victims = append(victims, outdated)
			}
		default:
			candidates = append(candidates, name)
		}
	}
	limit := maxUnavailable
	if surging {
		limit = maxSurge
	}
	room := min(max(limit-busy, 0), len(candidates))
	for _, name := range candidates[:room] {
		if surging {
			create = append(create, name)
		} else {
			victims = append(victims, outdatedOn[name])
		}
	}
	return create, victims
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
	labels := map[string]string{revisionHashLabel: hash, templateGenerationLabel: strconv.FormatInt(ds.Generation, 10)}
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

// podsByNode groups the DaemonSet's pods by the node they target, after
// adopting orphans its selector matches and releasing pods it no longer
// does, as upstream's DaemonSet controller claims them (terminated pods
// too: it replaces failed ones itself).
func (r *Reconciler) podsByNode(ctx context.Context, ds *appsv1.DaemonSet) (map[string][]*corev1.Pod, error) {
	selector, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("daemonset selector: %w", err)
	}
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, client.InNamespace(ds.Namespace)); err != nil {
		return nil, fmt.Errorf("listing pods: %w", err)
	}
	owned, err := workload.ClaimPods(ctx, r.Client, r.revisions.APIReader, ds, controllerKind, selector, pods.Items, nil)
	if err != nil {
		return nil, err
	}
	byNode := map[string][]*corev1.Pod{}
	for _, pod := range owned {
		node := targetNode(pod)
		byNode[node] = append(byNode[node], pod)
	}
	return byNode, nil
}
