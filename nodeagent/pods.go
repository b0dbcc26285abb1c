package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"tower.dev/tower/nodeagent/admission"
	"tower.dev/tower/nodeagent/containers"
	"tower.dev/tower/nodeagent/podnet"
)

// Labels on every container Tower creates, so that an agent that restarts
// finds its containers (and the pod network) again.
const (
	labelPodUID       = "tower.dev/pod-uid"
	labelPodNamespace = "tower.dev/pod-namespace"
	labelPodName      = "tower.dev/pod-name"
	labelContainer    = "tower.dev/container-name"
	labelRestartCount = "tower.dev/restart-count"
	labelStartedAt    = "tower.dev/started-at"
	labelNetNS        = "tower.dev/netns"
	labelPodIP        = "tower.dev/pod-ip"
)

// resyncInterval is how often a worker looks at its pod without an event:
// it notices back-offs that have expired.
const resyncInterval = time.Second

// podWorker owns one pod on this node: it alone touches its containers and
// network, so that operations on a pod never interleave.
type podWorker struct {
	agent *Agent
	uid   types.UID
	wake  chan struct{}
	exits chan containerExit

	mu      sync.Mutex
	pod     *corev1.Pod
	removed bool

	// The fields below belong to the run goroutine.
	sandbox   *podnet.Sandbox
	podIP     string
	records   map[string]*containerRecord
	startTime *metav1.Time
	// initialized is set once the init containers have all completed
	// (sidecars: started); sidecars restarting later do not undo it.
	initialized bool
	// failure is why the agent failed the pod (activeDeadlineSeconds).
	failure *podFailure
	// rejection, set before the worker runs, is why the node refused the
	// pod at admission; such a pod never runs.
	rejection *admission.Result
	// final is the status of a pod finished on this node, reported until
	// the API server has it.
	final      *corev1.PodStatus
	terminated bool
}

// podFailure is the reason and message of a pod the agent failed.
type podFailure struct {
	reason, message string
}

// containerRecord is what the agent knows of one container of the pod.
type containerRecord struct {
	id           string
	imageID      string
	restartCount int32
	everStarted  bool
	state        corev1.ContainerState
	lastState    corev1.ContainerState
	restarts     restartBackoff
	nextStart    time.Time
	// Probe results of the current run.
	startup   probeState
	liveness  probeState
	readiness probeState
}

type containerExit struct {
	name string
	id   string
	exit containers.Exit
}

func newPodWorker(a *Agent, pod *corev1.Pod) *podWorker {
	return &podWorker{
		agent:   a,
		uid:     pod.UID,
		wake:    make(chan struct{}, 1),
		exits:   make(chan containerExit, 16),
		pod:     pod,
		records: map[string]*containerRecord{},
	}
}

// update hands the worker the newest pod; removed means it is gone from
// the API server.
func (w *podWorker) update(pod *corev1.Pod, removed bool) {
	w.mu.Lock()
	w.pod = pod
	w.removed = w.removed || removed
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *podWorker) snapshot() (*corev1.Pod, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pod, w.removed
}

func (w *podWorker) run(ctx context.Context) {
	pod, _ := w.snapshot()
	log := logr.FromContextOrDiscard(ctx).WithValues("pod", pod.Namespace+"/"+pod.Name, "podUID", pod.UID)
	ctx = logr.NewContext(ctx, log)
	// A pod initialized before this agent (re)started does not wait for
	// its sidecars again.
	w.initialized = podConditionTrue(pod, corev1.PodInitialized)
	if err := w.adopt(ctx, pod); err != nil {
		log.Error(err, "adopting existing containers")
	}
	ticker := time.NewTicker(resyncInterval)
	defer ticker.Stop()
	for {
		pod, removed := w.snapshot()
		done, err := w.sync(ctx, w.agent.withMirrorStatus(pod), removed)
		if err != nil && ctx.Err() == nil {
			log.Error(err, "syncing pod")
		}
		if done {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case e := <-w.exits:
			w.recordExit(e)
		case <-ticker.C:
		}
	}
}

// adopt takes over the containers a previous agent left for this pod: the
// running ones keep running.
func (w *podWorker) adopt(ctx context.Context, pod *corev1.Pod) error {
	list, err := w.agent.runtime.List(ctx, labelPodUID)
	if err != nil {
		return err
	}
	for _, c := range list {
		if c.Labels[labelPodUID] != string(pod.UID) {
			continue
		}
		name := c.Labels[labelContainer]
		count, _ := strconv.Atoi(c.Labels[labelRestartCount])
		if netns := c.Labels[labelNetNS]; netns != "" && w.sandbox == nil {
			w.sandbox = &podnet.Sandbox{NetNSPath: netns}
			w.podIP = c.Labels[labelPodIP]
		}
		rec := w.record(name)
		if rec.everStarted && int32(count) < rec.restartCount {
			if err := w.agent.runtime.Remove(ctx, c.ID); err != nil {
				return err
			}
			continue
		}
		rec.everStarted = true
		rec.restartCount = int32(count)
		rec.id = c.ID
		if !c.Running {
			rec.state = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Unknown", ContainerID: containerIDPrefix + c.ID}}
			continue
		}
		exits, ok, err := w.agent.runtime.Watch(ctx, c.ID)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		startedAt := metav1.Now()
		if unix, err := strconv.ParseInt(c.Labels[labelStartedAt], 10, 64); err == nil {
			startedAt = metav1.Unix(unix, 0)
		}
		rec.state = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: startedAt}}
		w.forwardExit(ctx, name, c.ID, exits)
		logr.FromContextOrDiscard(ctx).Info("adopted running container", "container", name, "id", c.ID)
	}
	return nil
}

func (w *podWorker) record(name string) *containerRecord {
	rec, ok := w.records[name]
	if !ok {
		rec = &containerRecord{}
		w.records[name] = rec
	}
	return rec
}

func (w *podWorker) forwardExit(ctx context.Context, name, id string, exits <-chan containers.Exit) {
	go func() {
		select {
		case exit := <-exits:
			select {
			case w.exits <- containerExit{name: name, id: id, exit: exit}:
			case <-ctx.Done():
			}
		case <-ctx.Done():
		}
	}()
}

func (w *podWorker) recordExit(e containerExit) {
	rec := w.record(e.name)
	if rec.id != e.id || rec.state.Running == nil {
		return
	}
	finished := e.exit.At
	if finished.IsZero() {
		finished = time.Now()
	}
	reason := "Completed"
	switch {
	case e.exit.OOMKilled:
		reason = "OOMKilled"
	case e.exit.Code != 0:
		reason = "Error"
	}
	started := rec.state.Running.StartedAt
	rec.state = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
		ExitCode:    e.exit.Code,
		Reason:      reason,
		StartedAt:   started,
		FinishedAt:  metaTime(finished),
		ContainerID: containerIDPrefix + e.id,
	}}
	rec.nextStart = rec.restarts.exited(started.Time, finished)
}

func (w *podWorker) drainExits() {
	for {
		select {
		case e := <-w.exits:
			w.recordExit(e)
		default:
			return
		}
	}
}

// sync moves the pod one step towards what its spec asks and reports its
// status. done means the pod is finished with on this node.
func (w *podWorker) sync(ctx context.Context, pod *corev1.Pod, removed bool) (done bool, err error) {
	w.drainExits()
	if removed || pod.DeletionTimestamp != nil {
		return w.finish(ctx, pod, removed)
	}
	if w.rejection != nil && !w.terminated {
		return false, w.reject(ctx, pod)
	}
	if w.terminated {
		if w.final == nil {
			return false, nil
		}
		return false, w.writeStatus(ctx, pod, *w.final)
	}
	if phase := pod.Status.Phase; phase == corev1.PodSucceeded || phase == corev1.PodFailed {
		// Finished before this agent (re)started: never run it again.
		w.terminated = true
		return false, errors.Join(w.stopAll(ctx, pod, 0), w.teardownNetwork(ctx, pod))
	}
	if w.startTime == nil {
		if pod.Status.StartTime != nil {
			w.startTime = pod.Status.StartTime
		} else {
			w.startTime = ptr.To(metaTime(time.Now()))
		}
	}
	if w.deadlineExceeded(pod, time.Now()) {
		logr.FromContextOrDiscard(ctx).Info("pod exceeded its active deadline, killing it")
		w.agent.recorder.Event(pod, corev1.EventTypeWarning, reasonDeadlineExceeded, messageDeadlineExceeded)
		w.failure = &podFailure{reason: reasonDeadlineExceeded, message: messageDeadlineExceeded}
		return false, w.complete(ctx, pod)
	}
	var errs []error
	if w.sandbox == nil {
		sandbox, err := w.agent.network.Setup(ctx, string(pod.UID), pod.Namespace, pod.Name, hostPorts(pod))
		if err != nil {
			errs = append(errs, err)
		} else {
			w.sandbox = &sandbox
			w.podIP = sandbox.IP.String()
		}
	}
	if w.sandbox != nil {
		errs = append(errs, w.runContainers(ctx, pod))
		w.runProbes(ctx, pod)
	}
	status := w.status(pod)
	if status.Phase == corev1.PodSucceeded || status.Phase == corev1.PodFailed {
		errs = append(errs, w.complete(ctx, pod))
		return false, errors.Join(errs...)
	}
	errs = append(errs, w.writeStatus(ctx, pod, status))
	return false, errors.Join(errs...)
}

// complete ends a pod that has finished for good (its containers are done,
// or the agent failed it): what still runs, the sidecars say, is stopped,
// the network freed, and the final status reported; it stays for whoever
// reads it.
func (w *podWorker) complete(ctx context.Context, pod *corev1.Pod) error {
	if err := w.stopAll(ctx, pod, gracePeriod(pod)); err != nil {
		return err
	}
	if err := w.teardownNetwork(ctx, pod); err != nil {
		return err
	}
	status := w.status(pod)
	w.final = &status
	w.terminated = true
	return w.writeStatus(ctx, pod, status)
}

// runContainers runs the init containers one after another (a sidecar
// counts as done once it has started), then the containers. Sidecars are
// restarted whenever they exit, also after initialization.
func (w *podWorker) runContainers(ctx context.Context, pod *corev1.Pod) error {
	var errs []error
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		rec := w.record(c.Name)
		if isSidecar(c) {
			errs = append(errs, w.ensureContainer(ctx, pod, c, corev1.RestartPolicyAlways))
			if !w.initialized && !sidecarStarted(c, rec) {
				return errors.Join(errs...)
			}
			continue
		}
		if w.initialized {
			continue
		}
		if t := rec.state.Terminated; t != nil && t.ExitCode == 0 {
			continue
		}
		policy := pod.Spec.RestartPolicy
		if policy == corev1.RestartPolicyAlways {
			policy = corev1.RestartPolicyOnFailure
		}
		return errors.Join(append(errs, w.ensureContainer(ctx, pod, c, policy))...)
	}
	w.initialized = true
	for i := range pod.Spec.Containers {
		errs = append(errs, w.ensureContainer(ctx, pod, &pod.Spec.Containers[i], pod.Spec.RestartPolicy))
	}
	return errors.Join(errs...)
}

func shouldRestart(policy corev1.RestartPolicy, exitCode int32) bool {
	switch policy {
	case corev1.RestartPolicyNever:
		return false
	case corev1.RestartPolicyOnFailure:
		return exitCode != 0
	default:
		return true
	}
}

// ensureContainer starts the container if it is not running and may run.
func (w *podWorker) ensureContainer(ctx context.Context, pod *corev1.Pod, c *corev1.Container, policy corev1.RestartPolicy) error {
	rec := w.record(c.Name)
	now := time.Now()
	switch {
	case rec.state.Running != nil:
		return nil
	case rec.state.Terminated != nil:
		if !shouldRestart(policy, rec.state.Terminated.ExitCode) {
			return nil
		}
		if now.Before(rec.nextStart) {
			rec.lastState = rec.state
			rec.state = waiting("CrashLoopBackOff", fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)",
				rec.restarts.current(), c.Name, pod.Name, pod.Namespace, pod.UID))
			return nil
		}
	case rec.state.Waiting != nil && rec.state.Waiting.Reason == "CrashLoopBackOff":
		if now.Before(rec.nextStart) {
			return nil
		}
	}
	return w.startContainer(ctx, pod, c, rec)
}

func waiting(reason, message string) corev1.ContainerState {
	return corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: message}}
}

func (w *podWorker) startContainer(ctx context.Context, pod *corev1.Pod, c *corev1.Container, rec *containerRecord) error {
	rt := w.agent.runtime
	image := w.ensureImage(ctx, pod, c, rec)
	if image == nil {
		return nil
	}

	if rec.id != "" {
		if err := rt.Remove(ctx, rec.id); err != nil {
			return err
		}
	}
	restartCount := rec.restartCount
	if rec.everStarted {
		restartCount++
	}
	id := containerID(string(pod.UID), c.Name, restartCount)
	// A container of that name may be left from a start that failed half
	// way.
	if err := rt.Remove(ctx, id); err != nil {
		return err
	}
	spec, err := w.containerSpec(ctx, pod, c)
	if err != nil {
		rec.state = waiting("CreateContainerConfigError", err.Error())
		return nil
	}
	startedAt := metaTime(time.Now())
	spec.ID = id
	spec.Image = image
	spec.Labels = map[string]string{
		labelPodUID:       string(pod.UID),
		labelPodNamespace: pod.Namespace,
		labelPodName:      pod.Name,
		labelContainer:    c.Name,
		labelRestartCount: strconv.Itoa(int(restartCount)),
		labelStartedAt:    strconv.FormatInt(startedAt.Unix(), 10),
		labelNetNS:        w.sandbox.NetNSPath,
		labelPodIP:        w.podIP,
	}
	spec.Hostname = pod.Name
	spec.NetNSPath = w.sandbox.NetNSPath
	spec.Stdio = containers.StdioConfig{
		LogPath: w.logPath(pod, c.Name, restartCount),
		Stdin:   c.Stdin, StdinOnce: c.StdinOnce, TTY: c.TTY,
		LogMaxSize: w.agent.cfg.ContainerLogMaxSize, LogMaxFiles: w.agent.cfg.ContainerLogMaxFiles,
	}

	if rec.state.Terminated != nil {
		rec.lastState = rec.state
	}
	rec.everStarted = true
	rec.restartCount = restartCount
	rec.id = id
	rec.imageID = imageID(image)
	if err := rt.Create(ctx, spec); err != nil {
		rec.state = waiting("CreateContainerError", err.Error())
		rec.nextStart = rec.restarts.exited(time.Time{}, time.Now())
		return nil
	}
	_, exits, err := rt.Start(ctx, id)
	if err != nil {
		rec.state = waiting("RunContainerError", err.Error())
		rec.nextStart = rec.restarts.exited(time.Time{}, time.Now())
		return nil
	}
	rec.state = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: startedAt}}
	rec.startup, rec.liveness, rec.readiness = probeState{}, probeState{ok: true}, probeState{}
	w.forwardExit(ctx, c.Name, id, exits)
	logr.FromContextOrDiscard(ctx).V(2).Info("started container", "container", c.Name, "id", id, "restartCount", restartCount)
	w.runPostStart(ctx, pod, c, rec)
	return nil
}

// hostPorts are the ports the pod's containers publish on the node.
func hostPorts(pod *corev1.Pod) []podnet.PortMapping {
	var ports []podnet.PortMapping
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range list {
			for _, p := range c.Ports {
				if p.HostPort == 0 {
					continue
				}
				protocol := p.Protocol
				if protocol == "" {
					protocol = corev1.ProtocolTCP
				}
				ports = append(ports, podnet.PortMapping{
					HostPort:      p.HostPort,
					ContainerPort: p.ContainerPort,
					Protocol:      strings.ToLower(string(protocol)),
					HostIP:        p.HostIP,
				})
			}
		}
	}
	return ports
}

// containerID names one run of a pod's container in containerd.
func containerID(podUID, container string, restartCount int32) string {
	return fmt.Sprintf("%s-%s-%d", podUID, container, restartCount)
}

// podDir holds the pod's logs and volumes.
func (w *podWorker) podDir(pod *corev1.Pod) string {
	return filepath.Join(w.agent.cfg.RootDir, "pods", pod.Namespace+"_"+pod.Name+"_"+string(pod.UID))
}

// logPath is where one run of a container writes its output.
func (w *podWorker) logPath(pod *corev1.Pod, container string, restartCount int32) string {
	return filepath.Join(w.podDir(pod), "logs", container, fmt.Sprintf("%d.log", restartCount))
}

// gracePeriod is how long the pod's containers get between SIGTERM and
// SIGKILL: what the deletion asked for, else the spec's.
func gracePeriod(pod *corev1.Pod) time.Duration {
	switch {
	case pod.DeletionGracePeriodSeconds != nil:
		return time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second
	case pod.Spec.TerminationGracePeriodSeconds != nil:
		return time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
	default:
		return corev1.DefaultTerminationGracePeriodSeconds * time.Second
	}
}

// finish stops the pod's containers within its grace period, frees its
// network and, when the API server still has the pod, reports the final
// status and removes it.
func (w *podWorker) finish(ctx context.Context, pod *corev1.Pod, removed bool) (bool, error) {
	grace := gracePeriod(pod)
	if removed && !isStaticPod(pod) {
		// Gone from the API server: nobody waits for it any more. A
		// static pod whose manifest went stops gracefully.
		grace = 0
	}
	if err := w.stopAll(ctx, pod, grace); err != nil {
		return false, err
	}
	var errs []error
	for _, rec := range w.records {
		if rec.id != "" {
			errs = append(errs, w.agent.runtime.Remove(ctx, rec.id))
		}
	}
	errs = append(errs, w.teardownNetwork(ctx, pod), w.removePodDir(pod))
	if err := errors.Join(errs...); err != nil {
		return false, err
	}
	if removed || isStaticPod(pod) {
		return true, nil
	}
	status := w.status(pod)
	status.Phase = finalPhase(status)
	if w.rejection != nil && w.final != nil {
		status = *w.final
	}
	if err := w.writeStatus(ctx, pod, status); err != nil && !apierrors.IsNotFound(err) {
		logr.FromContextOrDiscard(ctx).Error(err, "reporting final status")
	}
	err := w.agent.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0),
		Preconditions:      &metav1.Preconditions{UID: &pod.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return false, fmt.Errorf("removing pod: %w", err)
	}
	return true, nil
}

// finalPhase is the phase of a pod stopped by its deletion: Succeeded
// when every container that ran exited 0, else Failed; a pod whose
// containers never ran keeps its phase.
func finalPhase(status corev1.PodStatus) corev1.PodPhase {
	ran := false
	for _, cs := range status.ContainerStatuses {
		t := cs.State.Terminated
		if t == nil {
			t = cs.LastTerminationState.Terminated
		}
		if t == nil {
			continue
		}
		ran = true
		if t.ExitCode != 0 {
			return corev1.PodFailed
		}
	}
	if !ran {
		return status.Phase
	}
	return corev1.PodSucceeded
}

func (w *podWorker) anyRunning() bool {
	for _, rec := range w.records {
		if rec.state.Running != nil {
			return true
		}
	}
	return false
}

func (w *podWorker) teardownNetwork(ctx context.Context, pod *corev1.Pod) error {
	if w.sandbox == nil {
		return nil
	}
	if err := w.agent.network.Teardown(ctx, string(pod.UID), pod.Namespace, pod.Name, w.sandbox.NetNSPath); err != nil {
		return err
	}
	w.sandbox = nil
	return nil
}

// writeStatus reports status through pods/status when it differs from what
// the API server has. A conflict is left for the next sync, which sees the
// newer pod.
func (w *podWorker) writeStatus(ctx context.Context, pod *corev1.Pod, status corev1.PodStatus) error {
	if isStaticPod(pod) {
		// A static pod's status shows on its mirror pod, once there is one.
		if pod = w.agent.mirrorOf(pod); pod == nil {
			return nil
		}
	}
	if statusEqual(pod.Status, status) {
		return nil
	}
	updated := pod.DeepCopy()
	updated.Status = status
	_, err := w.agent.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, updated, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reporting pod status: %w", err)
	}
	return nil
}
