// Package podgc collects pods nobody else will, as kube-controller-manager's
// pod garbage collector does on a period: terminated pods beyond
// --terminated-pod-gc-threshold (oldest first), pods bound to nodes that
// no longer exist, and pods being deleted that were never scheduled (no
// kubelet will ever confirm their deletion).
package podgc

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// Name is the controller's name in --controllers.
const Name = "podgc"

// Defaults of kube-controller-manager.
const (
	DefaultTerminatedPodThreshold = 12500
	DefaultPeriod                 = 20 * time.Second
)

// Options tune the collector.
type Options struct {
	// TerminatedPodThreshold is how many terminated pods may exist before
	// the oldest are deleted; zero or less turns that collection off.
	TerminatedPodThreshold int
	// Period is how often the collector runs.
	Period time.Duration
}

// Collector is the pod garbage collector.
type Collector struct {
	// Client reads through the cache; APIReader confirms with the API
	// server that a node is really gone before its pods are deleted.
	Client    client.Client
	APIReader client.Reader
	Options   Options
}

// SetupWithManager adds the collector to mgr; it runs only on the leader.
func SetupWithManager(mgr ctrl.Manager, o Options) error {
	if o.Period <= 0 {
		o.Period = DefaultPeriod
	}
	c := &Collector{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Options: o}
	// Ask for the informers now so the first pass does not wait for them.
	if _, err := mgr.GetCache().GetInformer(context.Background(), &corev1.Pod{}); err != nil {
		return fmt.Errorf("pod informer: %w", err)
	}
	if _, err := mgr.GetCache().GetInformer(context.Background(), &corev1.Node{}); err != nil {
		return fmt.Errorf("node informer: %w", err)
	}
	return mgr.Add(manager.RunnableFunc(c.Run))
}

// Run collects every period until ctx ends.
func (c *Collector) Run(ctx context.Context) error {
	log := logr.FromContextOrDiscard(ctx).WithName("podgc")
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		if err := c.Collect(ctx); err != nil && ctx.Err() == nil {
			log.Error(err, "Collecting pods")
		}
	}, c.Options.Period)
	return nil
}

// Collect runs one pass.
func (c *Collector) Collect(ctx context.Context) error {
	var pods corev1.PodList
	if err := c.Client.List(ctx, &pods); err != nil {
		return fmt.Errorf("listing pods: %w", err)
	}
	var nodes corev1.NodeList
	if err := c.Client.List(ctx, &nodes); err != nil {
		return fmt.Errorf("listing nodes: %w", err)
	}
	known := map[string]bool{}
	for _, n := range nodes.Items {
		known[n.Name] = true
	}
	var errs []error
	for _, pod := range TerminatedBeyondThreshold(pods.Items, c.Options.TerminatedPodThreshold) {
		if err := c.delete(ctx, pod, nil); err != nil {
			errs = append(errs, err)
		}
	}
	gone := map[string]bool{}
	for i := range pods.Items {
		pod := &pods.Items[i]
		switch {
		case pod.Spec.NodeName == "" && pod.DeletionTimestamp != nil:
			if err := c.delete(ctx, pod, ptr.To[int64](0)); err != nil {
				errs = append(errs, err)
			}
		case pod.Spec.NodeName != "" && !known[pod.Spec.NodeName]:
			missing, err := c.nodeGone(ctx, pod.Spec.NodeName, gone)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if missing {
				if err := c.deleteOrphan(ctx, pod); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d pods not collected, first: %w", len(errs), errs[0])
	}
	return nil
}

// TerminatedBeyondThreshold returns the oldest terminated pods that
// exceed threshold.
func TerminatedBeyondThreshold(pods []corev1.Pod, threshold int) []*corev1.Pod {
	if threshold <= 0 {
		return nil
	}
	var terminated []*corev1.Pod
	for i := range pods {
		p := &pods[i]
		if (p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed) && p.DeletionTimestamp == nil {
			terminated = append(terminated, p)
		}
	}
	excess := len(terminated) - threshold
	if excess <= 0 {
		return nil
	}
	sort.SliceStable(terminated, func(i, j int) bool {
		return terminated[i].CreationTimestamp.Before(&terminated[j].CreationTimestamp)
	})
	return terminated[:excess]
}

// nodeGone asks the API server, once per pass and node, whether a node
// missing from the cache is really gone.
func (c *Collector) nodeGone(ctx context.Context, name string, checked map[string]bool) (bool, error) {
	if missing, ok := checked[name]; ok {
		return missing, nil
	}
	err := c.APIReader.Get(ctx, client.ObjectKey{Name: name}, &corev1.Node{})
	switch {
	case err == nil:
		checked[name] = false
	case apierrors.IsNotFound(err):
		checked[name] = true
	default:
		return false, fmt.Errorf("checking node %s: %w", name, err)
	}
	return checked[name], nil
}

// deleteOrphan marks a pod of a deleted node Failed, as upstream does,
// and deletes it at once: no kubelet is left to confirm a graceful
// deletion.
func (c *Collector) deleteOrphan(ctx context.Context, pod *corev1.Pod) error {
	if pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed {
		updated := pod.DeepCopy()
		updated.Status.Phase = corev1.PodFailed
		updated.Status.Conditions = append(updated.Status.Conditions, corev1.PodCondition{
			Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, Reason: "DeletionByPodGC",
			Message: "PodGC: node no longer exists", LastTransitionTime: metav1.Now(),
		})
		if err := c.Client.Status().Update(ctx, updated); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			logr.FromContextOrDiscard(ctx).Error(err, "Marking orphaned pod failed", "pod", client.ObjectKeyFromObject(pod))
		}
	}
	return c.delete(ctx, pod, ptr.To[int64](0))
}

func (c *Collector) delete(ctx context.Context, pod *corev1.Pod, grace *int64) error {
	uid := pod.UID
	opts := []client.DeleteOption{client.Preconditions{UID: &uid}}
	if grace != nil {
		opts = append(opts, client.GracePeriodSeconds(*grace))
	}
	if err := c.Client.Delete(ctx, pod, opts...); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("deleting pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	logr.FromContextOrDiscard(ctx).V(1).Info("Collected pod", "pod", client.ObjectKeyFromObject(pod), "node", pod.Spec.NodeName)
	return nil
}
