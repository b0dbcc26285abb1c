package nodeagent

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
)

// Event reasons and messages as kubelet records them. Hook messages stay
// generic: a hook's output may hold secrets.
const (
	reasonFailedPostStartHook = "FailedPostStartHook"
	reasonFailedPreStopHook   = "FailedPreStopHook"
	reasonDeadlineExceeded    = "DeadlineExceeded"
	messageDeadlineExceeded   = "Pod was active on the node longer than the specified deadline"
)

// minimumGraceAfterPreStop is what kubelet leaves a container between
// its preStop hook and SIGKILL, however long the hook took.
const minimumGraceAfterPreStop = 2 * time.Second

// isSidecar reports whether an init container is a restartable one: it
// starts in order with the init containers but keeps running beside the
// pod's containers.
func isSidecar(c *corev1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

// sidecarStarted reports whether a sidecar has started far enough for the
// next init container: it runs and its startup probe, if any, passed.
func sidecarStarted(c *corev1.Container, rec *containerRecord) bool {
	return rec.state.Running != nil && (c.StartupProbe == nil || rec.startup.ok)
}

// containerNamed finds a container of the pod's spec, init or not.
func containerNamed(pod *corev1.Pod, name string) *corev1.Container {
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

// longRunningContainers are the containers probes watch: the pod's
// containers and its sidecars.
func longRunningContainers(pod *corev1.Pod) []*corev1.Container {
	var list []*corev1.Container
	for i := range pod.Spec.InitContainers {
		if isSidecar(&pod.Spec.InitContainers[i]) {
			list = append(list, &pod.Spec.InitContainers[i])
		}
	}
	for i := range pod.Spec.Containers {
		list = append(list, &pod.Spec.Containers[i])
	}
	return list
}

// runHook runs one lifecycle handler against a running container.
func (w *podWorker) runHook(ctx context.Context, pod *corev1.Pod, c *corev1.Container, rec *containerRecord, h *corev1.LifecycleHandler) error {
	switch {
	case h.Exec != nil:
		code, err := w.agent.runtime.Exec(ctx, rec.id, "hook-"+randomHex(), h.Exec.Command)
		if err != nil {
			return err
		}
		if code != 0 {
			return fmt.Errorf("hook command %v exited with %d", h.Exec.Command, code)
		}
		return nil
	case h.HTTPGet != nil:
		return w.httpGet(ctx, pod, c, h.HTTPGet)
	case h.Sleep != nil:
		timer := time.NewTimer(time.Duration(h.Sleep.Seconds) * time.Second)
		defer timer.Stop()
		select {
		case <-timer.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	default:
		// tcpSocket is accepted by the API for compatibility and, as in
		// kubelet, never run.
		return nil
	}
}

// runPostStart runs the container's postStart hook right after it
// started. A failing hook kills the container, whose exit then goes
// through the restart policy like any other.
func (w *podWorker) runPostStart(ctx context.Context, pod *corev1.Pod, c *corev1.Container, rec *containerRecord) {
	if c.Lifecycle == nil || c.Lifecycle.PostStart == nil {
		return
	}
	err := w.runHook(ctx, pod, c, rec, c.Lifecycle.PostStart)
	if err == nil || ctx.Err() != nil {
		return
	}
	log := logr.FromContextOrDiscard(ctx)
	log.Info("postStart hook failed, killing container", "container", c.Name, "err", err.Error())
	w.agent.recorder.Event(pod, corev1.EventTypeWarning, reasonFailedPostStartHook, "PostStartHook failed")
	if err := w.stopContainer(ctx, pod, c, rec, gracePeriod(pod)); err != nil {
		log.Error(err, "stopping container after its postStart hook failed", "container", c.Name)
		return
	}
	w.awaitExit(ctx, rec)
}

// stopContainer ends one running container: its preStop hook first, then
// SIGTERM with what is left of grace, then SIGKILL. A grace of zero kills
// at once, hook or not.
func (w *podWorker) stopContainer(ctx context.Context, pod *corev1.Pod, c *corev1.Container, rec *containerRecord, grace time.Duration) error {
	if grace > 0 && c != nil && c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
		start := time.Now()
		hookCtx, cancel := context.WithTimeout(ctx, grace)
		err := w.runHook(hookCtx, pod, c, rec, c.Lifecycle.PreStop)
		cancel()
		if err != nil && ctx.Err() == nil {
			logr.FromContextOrDiscard(ctx).Info("preStop hook failed", "container", c.Name, "err", err.Error())
			w.agent.recorder.Event(pod, corev1.EventTypeWarning, reasonFailedPreStopHook, "PreStopHook failed")
		}
		grace = max(grace-time.Since(start), minimumGraceAfterPreStop)
	}
	return w.agent.runtime.Stop(ctx, rec.id, grace)
}

// stopAll stops every running container of the pod: the containers (and
// init containers still running) at once, each with the grace period,
// then the sidecars one by one in reverse order with what is left of it,
// so that they serve the others to the end.
func (w *podWorker) stopAll(ctx context.Context, pod *corev1.Pod, grace time.Duration) error {
	deadline := time.Now().Add(grace)
	var sidecars []*corev1.Container
	for i := range pod.Spec.InitContainers {
		if isSidecar(&pod.Spec.InitContainers[i]) {
			sidecars = append(sidecars, &pod.Spec.InitContainers[i])
		}
	}
	isSidecarName := func(name string) bool {
		for _, c := range sidecars {
			if c.Name == name {
				return true
			}
		}
		return false
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for name, rec := range w.records {
		if rec.id == "" || rec.state.Running == nil || isSidecarName(name) {
			continue
		}
		c := containerNamed(pod, name)
		wg.Go(func() {
			err := w.stopContainer(ctx, pod, c, rec, grace)
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		})
	}
	wg.Wait()
	for i := len(sidecars) - 1; i >= 0; i-- {
		rec, ok := w.records[sidecars[i].Name]
		if !ok || rec.id == "" || rec.state.Running == nil {
			continue
		}
		errs = append(errs, w.stopContainer(ctx, pod, sidecars[i], rec, max(time.Until(deadline), 0)))
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	// The exits of what was just stopped are in flight; wait for them so
	// the final status shows the containers terminated.
	wait := time.After(5 * time.Second)
	for w.anyRunning() {
		select {
		case e := <-w.exits:
			w.recordExit(e)
		case <-wait:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// awaitExit waits (briefly) until the exit of a container just stopped is
// recorded.
func (w *podWorker) awaitExit(ctx context.Context, rec *containerRecord) {
	deadline := time.After(5 * time.Second)
	for rec.state.Running != nil {
		select {
		case e := <-w.exits:
			w.recordExit(e)
		case <-deadline:
			return
		case <-ctx.Done():
			return
		}
	}
}

// deadlineExceeded reports whether the pod has been active on the node
// longer than its activeDeadlineSeconds.
func (w *podWorker) deadlineExceeded(pod *corev1.Pod, now time.Time) bool {
	d := pod.Spec.ActiveDeadlineSeconds
	return d != nil && w.startTime != nil && now.Sub(w.startTime.Time) >= time.Duration(*d)*time.Second
}
