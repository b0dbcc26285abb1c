package simulator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// podIPs hands out addresses of one node's pod CIDR.
type podIPs struct {
	network *net.IPNet
	size    int
	used    map[int]types.NamespacedName
	byPod   map[types.NamespacedName]int
	next    int
}

func newPodIPs(network *net.IPNet) *podIPs {
	ones, bits := network.Mask.Size()
	return &podIPs{network: network, size: 1 << (bits - ones), used: map[int]types.NamespacedName{}, byPod: map[types.NamespacedName]int{}, next: 2}
}

func (p *podIPs) addr(offset int) string {
	ip := p.network.IP.To4()
	v := uint32(ip[0])<<24 | uint32(ip[1])<<16 | uint32(ip[2])<<8 | uint32(ip[3])
	v += uint32(offset)
	return net.IPv4(byte(v>>24), byte(v>>16), byte(v>>8), byte(v)).String()
}

// allocate returns pod's address, a new one from the range when it has
// none yet.
func (p *podIPs) allocate(pod types.NamespacedName) (string, error) {
	if off, ok := p.byPod[pod]; ok {
		return p.addr(off), nil
	}
	// Skip the network address, the gateway (.1) and broadcast.
	for range p.size {
		off := p.next
		p.next++
		if p.next >= p.size-1 {
			p.next = 2
		}
		if _, taken := p.used[off]; !taken {
			p.used[off] = pod
			p.byPod[pod] = off
			return p.addr(off), nil
		}
	}
	return "", fmt.Errorf("pod CIDR %s is exhausted", p.network)
}

func (p *podIPs) release(pod types.NamespacedName) {
	if off, ok := p.byPod[pod]; ok {
		delete(p.byPod, pod)
		delete(p.used, off)
	}
}

// podReconciler plays the kubelet for pods bound to simulated nodes.
type podReconciler struct {
	sim    *Simulator
	client client.Client
}

func (r *podReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	pod := &corev1.Pod{}
	if err := r.client.Get(ctx, req.NamespacedName, pod); err != nil {
		if apierrors.IsNotFound(err) {
			r.sim.releaseIP(req.NamespacedName)
			r.sim.forget("", req.NamespacedName)
		}
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	node := pod.Spec.NodeName
	if _, ours := r.sim.index[node]; !ours {
		return reconcile.Result{}, nil
	}
	if pod.DeletionTimestamp != nil {
		// The containers "stop" at once: confirm the deletion as the
		// kubelet does, with a zero grace period.
		err := r.sim.writer(node).CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
			GracePeriodSeconds: new(int64),
			Preconditions:      metav1.NewUIDPreconditions(string(pod.UID)),
		})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return reconcile.Result{}, fmt.Errorf("finishing deletion of pod %s: %w", req, err)
		}
		r.sim.releaseIP(req.NamespacedName)
		r.sim.forget(node, req.NamespacedName)
		return reconcile.Result{}, nil
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		r.sim.forget(node, req.NamespacedName)
		return reconcile.Result{}, nil
	}
	if r.sim.isSilenced(node) {
		// A node that lost its network reports nothing about its pods;
		// the control plane's view of them (NotReady) stands. Deletions
		// above still complete, so evicted pods do not linger.
		return reconcile.Result{}, nil
	}
	if pod.Status.Phase != corev1.PodRunning {
		result, err := r.sim.admit(ctx, r.client, node, pod)
		if err != nil {
			return reconcile.Result{}, err
		}
		if !result.Admit {
			return reconcile.Result{}, r.sim.reject(ctx, node, pod, result)
		}
	}
	ip, err := r.sim.allocateIP(ctx, node, req.NamespacedName, pod.Status.PodIP)
	if errors.Is(err, errNoPodCIDR) {
		// Like a kubelet, the node runs no pod before node IPAM gave it
		// a subnet.
		return reconcile.Result{RequeueAfter: podCIDRPollInterval}, nil
	}
	if err != nil {
		return reconcile.Result{}, err
	}
	status := runningStatus(pod, ip, r.sim.nodeIPFor(node))
	exit, err := plannedExit(pod)
	if err != nil {
		// A typo in the script must not keep the pod from running.
		ctrl.LoggerFrom(ctx).Error(err, "Ignoring the pod's scripted exit", "pod", req)
	}
	var requeue time.Duration
	if exit != nil {
		if wait := time.Until(status.StartTime.Add(exit.after)); wait > 0 {
			requeue = wait
		} else {
			status = exitedStatus(status, exit.code)
		}
	}
	if apiequality.Semantic.DeepEqual(status, pod.Status) {
		return reconcile.Result{RequeueAfter: requeue}, nil
	}
	updated := pod.DeepCopy()
	updated.Status = status
	if _, err := r.sim.writer(node).CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, updated, metav1.UpdateOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, fmt.Errorf("reporting status of pod %s: %w", req, err)
	}
	return reconcile.Result{RequeueAfter: requeue}, nil
}

// errNoPodCIDR: the node has no spec.podCIDR yet.
var errNoPodCIDR = errors.New("node has no pod CIDR yet")

// podCIDRPollInterval is how often a pod waiting for its node's pod CIDR
// looks again.
const podCIDRPollInterval = time.Second

// allocateIP gives pod an address of its node's pod CIDR (spec.podCIDR,
// assigned by node IPAM), keeping the one it has when that is still in
// the subnet.
func (s *Simulator) allocateIP(ctx context.Context, node string, pod types.NamespacedName, current string) (string, error) {
	s.mu.Lock()
	ipam, ok := s.ipam[node]
	s.mu.Unlock()
	if !ok {
		n := &corev1.Node{}
		if err := s.nodes.Get(ctx, types.NamespacedName{Name: node}, n); err != nil {
			return "", fmt.Errorf("reading node %s: %w", node, err)
		}
		if n.Spec.PodCIDR == "" {
			return "", fmt.Errorf("node %s: %w", node, errNoPodCIDR)
		}
		_, network, err := net.ParseCIDR(n.Spec.PodCIDR)
		if err != nil {
			return "", fmt.Errorf("pod CIDR of node %s: %w", node, err)
		}
		s.mu.Lock()
		if ipam, ok = s.ipam[node]; !ok {
			ipam = newPodIPs(network)
			s.ipam[node] = ipam
		}
		s.mu.Unlock()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if current != "" {
		if off, ok := offsetIn(ipam.network, current); ok {
			ipam.used[off] = pod
			ipam.byPod[pod] = off
			return current, nil
		}
	}
	return ipam.allocate(pod)
}

func offsetIn(network *net.IPNet, addr string) (int, bool) {
	ip := net.ParseIP(addr).To4()
	base := network.IP.To4()
	if ip == nil || base == nil || !network.Contains(ip) {
		return 0, false
	}
	return int(ip[2]-base[2])<<8 | int(ip[3]-base[3]), true
}

func (s *Simulator) releaseIP(pod types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ipam := range s.ipam {
		ipam.release(pod)
	}
}

func (s *Simulator) nodeIPFor(node string) string {
	return nodeIP(s.index[node])
}

// runningStatus is the status of a pod whose containers all started and
// are ready, keeping times the pod already has so that repeated syncs
// write nothing.
func runningStatus(pod *corev1.Pod, ip, hostIP string) corev1.PodStatus {
	now := metav1.Now()
	start := now
	if pod.Status.StartTime != nil {
		start = *pod.Status.StartTime
	}
	condition := func(t corev1.PodConditionType) corev1.PodCondition {
		for _, c := range pod.Status.Conditions {
			if c.Type == t && c.Status == corev1.ConditionTrue {
				return c
			}
		}
		return corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: now}
	}
	status := corev1.PodStatus{
		Phase: corev1.PodRunning,
		Conditions: []corev1.PodCondition{
			condition(corev1.PodReadyToStartContainers),
			condition(corev1.PodInitialized),
			condition(corev1.PodReady),
			condition(corev1.ContainersReady),
			condition(corev1.PodScheduled),
		},
		HostIP:    hostIP,
		HostIPs:   []corev1.HostIP{{IP: hostIP}},
		PodIP:     ip,
		PodIPs:    []corev1.PodIP{{IP: ip}},
		StartTime: &start,
		QOSClass:  pod.Status.QOSClass,
	}
	started := func(name string) metav1.Time {
		for _, cs := range pod.Status.ContainerStatuses {
			if cs.Name == name && cs.State.Running != nil {
				return cs.State.Running.StartedAt
			}
		}
		return start
	}
	for _, c := range pod.Spec.InitContainers {
		status.InitContainerStatuses = append(status.InitContainerStatuses, corev1.ContainerStatus{
			Name:        c.Name,
			Image:       c.Image,
			ImageID:     "simulated://" + c.Image,
			ContainerID: "simulated://" + string(pod.UID) + "/" + c.Name,
			Ready:       true,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: 0, Reason: "Completed", StartedAt: start, FinishedAt: start,
			}},
		})
	}
	yes := true
	for _, c := range pod.Spec.Containers {
		status.ContainerStatuses = append(status.ContainerStatuses, corev1.ContainerStatus{
			Name:        c.Name,
			Image:       c.Image,
			ImageID:     "simulated://" + c.Image,
			ContainerID: "simulated://" + string(pod.UID) + "/" + c.Name,
			Ready:       true,
			Started:     &yes,
			State:       corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started(c.Name)}},
		})
	}
	return status
}

// Annotations that script a simulated pod's end, for workloads that run
// to completion (Jobs): a pod with restartPolicy Never or OnFailure and
// ExitAfterAnnotation (a Go duration) has all its containers exit that
// long after the pod started, with ExitCodeAnnotation (default 0), and
// the pod ends Succeeded (code 0) or Failed. Pods without the annotation,
// or with restartPolicy Always, run until deleted.
const (
	ExitAfterAnnotation = "simulator.tower.dev/exit-after"
	ExitCodeAnnotation  = "simulator.tower.dev/exit-code"
)

type exit struct {
	after time.Duration
	code  int32
}

// plannedExit reads the pod's scripted exit; nil when it runs forever.
// Malformed annotations are an error: the pod then stays as it is rather
// than guess.
func plannedExit(pod *corev1.Pod) (*exit, error) {
	after, ok := pod.Annotations[ExitAfterAnnotation]
	if !ok || pod.Spec.RestartPolicy == corev1.RestartPolicyAlways {
		return nil, nil
	}
	d, err := time.ParseDuration(after)
	if err != nil {
		return nil, fmt.Errorf("annotation %s: %w", ExitAfterAnnotation, err)
	}
	e := &exit{after: d}
	if v, ok := pod.Annotations[ExitCodeAnnotation]; ok {
		code, err := strconv.ParseInt(v, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("annotation %s: %w", ExitCodeAnnotation, err)
		}
		e.code = int32(code)
	}
	return e, nil
}

// exitedStatus turns a running status into the terminal one of a pod
// whose containers all exited with code.
func exitedStatus(running corev1.PodStatus, code int32) corev1.PodStatus {
	status := *running.DeepCopy()
	status.Phase = corev1.PodSucceeded
	reason := "Completed"
	if code != 0 {
		status.Phase = corev1.PodFailed
		reason = "Error"
	}
	finished := metav1.Now()
	for i := range status.ContainerStatuses {
		cs := &status.ContainerStatuses[i]
		started := cs.State.Running.StartedAt
		cs.Ready = false
		cs.Started = new(bool)
		cs.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode: code, Reason: reason, StartedAt: started, FinishedAt: finished,
			ContainerID: cs.ContainerID,
		}}
	}
	for i := range status.Conditions {
		c := &status.Conditions[i]
		if c.Type == corev1.PodReady || c.Type == corev1.ContainersReady {
			c.Status = corev1.ConditionFalse
			c.Reason = "PodCompleted"
			c.LastTransitionTime = finished
		}
	}
	return status
}
