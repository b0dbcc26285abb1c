// Package scheduler is Tower's kube-scheduler: a controller-runtime
// reconciler over pods that name this scheduler and have no node. For
// each it runs upstream's default filters (NodeUnschedulable, NodeName,
// TaintToleration, NodeAffinity and nodeSelector, NodePorts,
// NodeResourcesFit, PodTopologySpread, InterPodAffinity) and scores
// (LeastAllocated, BalancedAllocation, preferred node affinity,
// PreferNoSchedule taints, preferred inter-pod affinity, ScheduleAnyway
// topology spread) over its own cache of node usage, assumes the
// pod on the best node so the next decision counts it at once, and binds
// through pods/binding. A pod that fits nowhere gets PodScheduled=False
// with reason Unschedulable, a FailedScheduling event, and is retried with
// back-off and whenever nodes change or pods go away.
package scheduler

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"tower.dev/tower/internal/kubeclient"
)

// DefaultSchedulerName is the schedulerName pods get by default.
const DefaultSchedulerName = corev1.DefaultSchedulerName

// Back-off for pods that fit nowhere, as upstream's podInitialBackoff and
// podMaxBackoff.
const (
	initialBackoff = time.Second
	maxBackoff     = 10 * time.Second
)

// DefaultParallelism is how many bindings may be in flight by default.
// Upstream binds each pod in its own goroutine without a cap; a cap of
// 16 held throughput down and cost more CPU per pod in every component
// (the API server and etcd batch concurrent writes), so the default is
// high enough never to be what limits a busy scheduler.
const DefaultParallelism = 256

// Options configure the scheduler.
type Options struct {
	// SchedulerName selects the pods this scheduler handles.
	SchedulerName string
	// Parallelism is how many pods are bound at once; decisions are
	// always made one at a time.
	Parallelism int
}

// Scheduler is the scheduling reconciler.
type Scheduler struct {
	client    client.Client
	clientset kubernetes.Interface
	recorder  events.EventRecorder
	cache     *Cache
	name      string

	mu sync.Mutex
	// unschedulable counts failed attempts per pod that fits nowhere.
	unschedulable map[types.NamespacedName]int
}

// CacheOptions are the informer settings the scheduler's manager needs:
// objects are kept without managedFields, which the scheduler never reads
// and which make up much of every pod it holds.
func CacheOptions() cache.Options {
	return cache.Options{DefaultTransform: cache.TransformStripManagedFields()}
}

// SetupWithManager registers the scheduler with mgr.
func SetupWithManager(mgr ctrl.Manager, o Options) error {
	if o.SchedulerName == "" {
		o.SchedulerName = DefaultSchedulerName
	}
	if o.Parallelism <= 0 {
		o.Parallelism = DefaultParallelism
	}
	// Every scheduled pod costs a binding and an event: both in protobuf.
	cs, err := kubernetes.NewForConfigAndClient(kubeclient.Protobuf(mgr.GetConfig()), mgr.GetHTTPClient())
	if err != nil {
		return fmt.Errorf("building clientset: %w", err)
	}
	broadcaster := events.NewBroadcaster(&events.EventSinkImpl{Interface: cs.EventsV1()})
	if err := mgr.Add(eventSink{broadcaster}); err != nil {
		return fmt.Errorf("adding the event sink: %w", err)
	}
	s := &Scheduler{
		client:        mgr.GetClient(),
		clientset:     cs,
		recorder:      broadcaster.NewRecorder(mgr.GetScheme(), o.SchedulerName),
		cache:         NewCache(),
		name:          o.SchedulerName,
		unschedulable: map[types.NamespacedName]int{},
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("scheduler").
		Watches(&corev1.Pod{}, s.podHandler()).
		Watches(&corev1.Node{}, s.nodeHandler()).
		Watches(&corev1.Namespace{}, s.namespaceHandler()).
		WithOptions(controller.Options{MaxConcurrentReconciles: o.Parallelism}).
		Complete(s)
}

// eventSink sends the scheduler's events while the manager runs, also
// before this instance leads (so none recorded early are lost), and
// flushes them when it stops.
type eventSink struct{ broadcaster events.EventBroadcaster }

var _ manager.LeaderElectionRunnable = eventSink{}

func (e eventSink) Start(ctx context.Context) error {
	if err := e.broadcaster.StartRecordingToSinkWithContext(ctx); err != nil {
		return fmt.Errorf("recording events: %w", err)
	}
	<-ctx.Done()
	e.broadcaster.Shutdown()
	return nil
}

func (eventSink) NeedLeaderElection() bool { return false }

// Reconcile schedules one pod.
func (s *Scheduler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	// The informer's own copy: scheduling only reads it, and the one
	// write that returns an object (setUnschedulable) works on a copy.
	pod := &corev1.Pod{}
	if err := s.client.Get(ctx, req.NamespacedName, pod, client.UnsafeDisableDeepCopy); err != nil {
		if apierrors.IsNotFound(err) {
			s.forgetAttempts(req.NamespacedName)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	if !s.responsibleFor(pod) || s.cache.Has(pod.UID) {
		return reconcile.Result{}, nil
	}
	node, fitErr := s.cache.place(newPodSpec(pod))
	if fitErr != nil {
		return s.recordFailure(ctx, pod, fitErr)
	}
	binding := &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: node},
	}
	if err := s.clientset.CoreV1().Pods(pod.Namespace).Bind(ctx, binding, metav1.CreateOptions{}); err != nil {
		s.cache.RemovePod(pod.UID)
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			// Deleted, or bound by someone else; the informer will tell.
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, fmt.Errorf("binding pod %s to %s: %w", req, node, err)
	}
	s.forgetAttempts(req.NamespacedName)
	s.recorder.Eventf(pod, nil, corev1.EventTypeNormal, "Scheduled", "Binding", "Successfully assigned %s/%s to %s", pod.Namespace, pod.Name, node)
	return reconcile.Result{}, nil
}

func (s *Scheduler) responsibleFor(pod *corev1.Pod) bool {
	return pod.Spec.NodeName == "" && pod.DeletionTimestamp == nil && pod.Spec.SchedulerName == s.name &&
		pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed
}

// recordFailure marks pod unschedulable, as upstream does, and schedules
// the next attempt with back-off.
func (s *Scheduler) recordFailure(ctx context.Context, pod *corev1.Pod, fitErr *FitError) (reconcile.Result, error) {
	key := client.ObjectKeyFromObject(pod)
	s.mu.Lock()
	attempts := s.unschedulable[key]
	s.unschedulable[key] = attempts + 1
	s.mu.Unlock()

	msg := fitErr.Error()
	s.recorder.Eventf(pod, nil, corev1.EventTypeWarning, "FailedScheduling", "Scheduling", "%s", msg)
	if err := s.setUnschedulable(ctx, pod, msg); err != nil {
		return reconcile.Result{}, err
	}
	wait := initialBackoff << min(attempts, 4)
	return reconcile.Result{RequeueAfter: min(wait, maxBackoff)}, nil
}

func (s *Scheduler) setUnschedulable(ctx context.Context, pod *corev1.Pod, msg string) error {
	want := corev1.PodCondition{
		Type:    corev1.PodScheduled,
		Status:  corev1.ConditionFalse,
		Reason:  corev1.PodReasonUnschedulable,
		Message: msg,
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == want.Status && c.Reason == want.Reason && c.Message == want.Message {
			return nil
		}
	}
	now := metav1.Now()
	want.LastTransitionTime = now
	want.LastProbeTime = metav1.Time{}
	patch, err := json.Marshal(map[string]any{
		"status": map[string]any{"conditions": []corev1.PodCondition{want}},
	})
	if err != nil {
		return err
	}
	err = s.client.Status().Patch(ctx, pod.DeepCopy(), client.RawPatch(types.StrategicMergePatchType, patch))
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("marking pod %s unschedulable: %w", pod.Name, err)
	}
	return nil
}

func (s *Scheduler) forgetAttempts(key types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.unschedulable, key)
}

type queue = workqueue.TypedRateLimitingInterface[reconcile.Request]

// retryUnschedulable queues every pod that fit nowhere, after a change
// that may make room.
func (s *Scheduler) retryUnschedulable(q queue) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for key := range s.unschedulable {
		q.Add(reconcile.Request{NamespacedName: key})
	}
}

// podHandler keeps the usage cache in step with bound pods and queues
// pods waiting for a node.
func (s *Scheduler) podHandler() handler.EventHandler {
	observe := func(pod *corev1.Pod, q queue) {
		if pod.Spec.NodeName == "" {
			if s.responsibleFor(pod) {
				q.Add(reconcile.Request{NamespacedName: client.ObjectKeyFromObject(pod)})
			}
			return
		}
		if s.cache.SetPod(pod) {
			// A pod placed by someone else, or relabelled, may satisfy
			// a waiting pod's affinity or spreading.
			s.retryUnschedulable(q)
		}
	}
	return handler.Funcs{
		CreateFunc: func(_ context.Context, e event.CreateEvent, q queue) {
			observe(e.Object.(*corev1.Pod), q)
		},
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q queue) {
			oldPod, newPod := e.ObjectOld.(*corev1.Pod), e.ObjectNew.(*corev1.Pod)
			if newPod.Spec.NodeName == "" && statusOnlyChange(oldPod, newPod) {
				// Our own PodScheduled=False write; back-off decides
				// when to look again.
				return
			}
			counted := s.cache.Has(newPod.UID)
			observe(newPod, q)
			if counted && !s.cache.Has(newPod.UID) {
				// It finished: its node has room again.
				s.retryUnschedulable(q)
			}
		},
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, q queue) {
			pod, ok := e.Object.(*corev1.Pod)
			if !ok {
				return
			}
			s.forgetAttempts(client.ObjectKeyFromObject(pod))
			if pod.Spec.NodeName != "" || s.cache.Has(pod.UID) {
				s.cache.RemovePod(pod.UID)
				s.retryUnschedulable(q)
			}
		},
	}
}

// nodeHandler keeps nodes in the cache and retries unschedulable pods
// when a node appears or changes in a way that could let them fit.
func (s *Scheduler) nodeHandler() handler.EventHandler {
	return handler.Funcs{
		CreateFunc: func(_ context.Context, e event.CreateEvent, q queue) {
			s.cache.SetNode(e.Object.(*corev1.Node))
			s.retryUnschedulable(q)
		},
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q queue) {
			oldNode, newNode := e.ObjectOld.(*corev1.Node), e.ObjectNew.(*corev1.Node)
			s.cache.SetNode(newNode)
			if schedulingRelevantChange(oldNode, newNode) {
				s.retryUnschedulable(q)
			}
		},
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, _ queue) {
			if node, ok := e.Object.(*corev1.Node); ok {
				s.cache.RemoveNode(node.Name)
			}
		},
	}
}

// namespaceHandler keeps namespace labels in the cache for affinity
// terms' namespace selectors; a relabelled namespace may let waiting pods
// fit.
func (s *Scheduler) namespaceHandler() handler.EventHandler {
	return handler.Funcs{
		CreateFunc: func(_ context.Context, e event.CreateEvent, _ queue) {
			s.cache.SetNamespace(e.Object.(*corev1.Namespace))
		},
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q queue) {
			s.cache.SetNamespace(e.ObjectNew.(*corev1.Namespace))
			if !maps.Equal(e.ObjectOld.GetLabels(), e.ObjectNew.GetLabels()) {
				s.retryUnschedulable(q)
			}
		},
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, _ queue) {
			s.cache.RemoveNamespace(e.Object.GetName())
		},
	}
}

// schedulingRelevantChange ignores heartbeats: only what filters look at
// counts.
func schedulingRelevantChange(a, b *corev1.Node) bool {
	return !apiequality.Semantic.DeepEqual(a.Spec, b.Spec) ||
		!apiequality.Semantic.DeepEqual(a.Labels, b.Labels) ||
		!apiequality.Semantic.DeepEqual(a.Status.Allocatable, b.Status.Allocatable)
}

func statusOnlyChange(a, b *corev1.Pod) bool {
	return apiequality.Semantic.DeepEqual(a.Spec, b.Spec) &&
		apiequality.Semantic.DeepEqual(a.Labels, b.Labels) &&
		apiequality.Semantic.DeepEqual(a.Annotations, b.Annotations) &&
		(a.DeletionTimestamp == nil) == (b.DeletionTimestamp == nil)
}
