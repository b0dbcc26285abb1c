package nodeagent

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/distribution/reference"
	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/kubernetes/scheme"
	objectreference "k8s.io/client-go/tools/reference"
	"k8s.io/client-go/util/flowcontrol"

	"tower.dev/tower/nodeagent/containers"
	"tower.dev/tower/nodeagent/keyring"
)

// Image pull back-off, as kubelet's: 10 s after a failed pull, doubling
// up to 5 min.
const (
	initialPullBackoff = 10 * time.Second
	maxPullBackoff     = 5 * time.Minute
)

// Waiting reasons and event reasons of the image step, as kubelet's.
const (
	reasonErrImagePull      = "ErrImagePull"
	reasonImagePullBackOff  = "ImagePullBackOff"
	reasonErrImageNeverPull = "ErrImageNeverPull"
	reasonImageInspectError = "ImageInspectError"
	reasonPulling           = "Pulling"
	reasonPulled            = "Pulled"
	reasonFailed            = "Failed"
	reasonBackOff           = "BackOff"
	reasonFailedPullSecret  = "FailedToRetrieveImagePullSecret"
	reasonInspectFailed     = "InspectFailed"
)

// imagePulls is the node's image pull back-off, by pod and image as
// kubelet keys it, and the error of each key's latest failed pull, which
// the back-off message repeats.
type imagePulls struct {
	backoff *flowcontrol.Backoff

	mu sync.Mutex
	// lastErrors holds "ErrImagePull: <message>" by back-off key.
	lastErrors map[string]string
}

func newImagePulls() *imagePulls {
	return &imagePulls{backoff: flowcontrol.NewBackOff(initialPullBackoff, maxPullBackoff), lastErrors: map[string]string{}}
}

// ensureImage gets the container's image as its imagePullPolicy says:
// Never uses only what the node has, IfNotPresent pulls when the node
// lacks it, Always pulls at every start, with the pod's pull secrets. When
// there is no image it returns nil with the container's waiting state set
// (ErrImageNeverPull, ErrImagePull, ImagePullBackOff) and the events
// kubelet posts.
func (w *podWorker) ensureImage(ctx context.Context, pod *corev1.Pod, c *corev1.Container, rec *containerRecord) client.Image {
	rt := w.agent.runtime
	ref := containerRef(pod, c)
	event := func(eventType, reason, message string) {
		w.agent.recorder.Event(ref, eventType, reason, message)
	}
	policy := c.ImagePullPolicy
	if policy == "" {
		policy = defaultPullPolicy(c.Image)
	}
	if policy != corev1.PullAlways {
		image, present, err := rt.LocalImage(ctx, c.Image)
		switch {
		case err != nil:
			msg := fmt.Sprintf("Failed to inspect image %q: %v", c.Image, err)
			event(corev1.EventTypeWarning, reasonInspectFailed, msg)
			rec.state = waiting(reasonImageInspectError, msg)
			return nil
		case present:
			event(corev1.EventTypeNormal, reasonPulled, fmt.Sprintf("Container image %q already present on machine", c.Image))
			return image
		case policy == corev1.PullNever:
			msg := fmt.Sprintf("Container image %q is not present with pull policy of Never", c.Image)
			event(corev1.EventTypeWarning, reasonErrImageNeverPull, msg)
			rec.state = waiting(reasonErrImageNeverPull, msg)
			return nil
		}
	}

	pulls := w.agent.imagePulls
	key := string(pod.UID) + "_" + c.Image
	now := pulls.backoff.Clock.Now()
	if pulls.backoff.IsInBackOffSinceUpdate(key, now) {
		msg := fmt.Sprintf("Back-off pulling image %q", c.Image)
		event(corev1.EventTypeNormal, reasonBackOff, msg)
		pulls.mu.Lock()
		if last, ok := pulls.lastErrors[key]; ok {
			msg += ": " + last
		}
		pulls.mu.Unlock()
		rec.state = waiting(reasonImagePullBackOff, msg)
		return nil
	}
	pulls.mu.Lock()
	delete(pulls.lastErrors, key)
	pulls.mu.Unlock()

	event(corev1.EventTypeNormal, reasonPulling, fmt.Sprintf("Pulling image %q", c.Image))
	start := time.Now()
	image, err := w.pull(ctx, pod, c.Image)
	if err != nil {
		event(corev1.EventTypeWarning, reasonFailed, fmt.Sprintf("Failed to pull image %q: %v", c.Image, err))
		pulls.backoff.Next(key, pulls.backoff.Clock.Now())
		pulls.mu.Lock()
		pulls.lastErrors[key] = reasonErrImagePull + ": " + err.Error()
		pulls.mu.Unlock()
		rec.state = waiting(reasonErrImagePull, err.Error())
		return nil
	}
	took := time.Since(start).Truncate(time.Millisecond)
	size, err := image.Size(ctx)
	if err != nil {
		logr.FromContextOrDiscard(ctx).V(2).Info("reading the size of a pulled image", "image", c.Image, "err", err)
	}
	event(corev1.EventTypeNormal, reasonPulled, fmt.Sprintf("Successfully pulled image %q in %v (%v including waiting). Image size: %v bytes.", c.Image, took, took, size))
	pulls.backoff.GC()
	return image
}

// pull fetches the image with each credential the pod's pull secrets hold
// for its repository in turn, or anonymously when they hold none, as
// kubelet does.
func (w *podWorker) pull(ctx context.Context, pod *corev1.Pod, image string) (client.Image, error) {
	repository, err := containers.Repository(image)
	if err != nil {
		return nil, err
	}
	ring, err := keyring.FromSecrets(w.pullSecrets(ctx, pod))
	if err != nil {
		return nil, err
	}
	creds := ring.Lookup(repository)
	if len(creds) == 0 {
		return w.agent.runtime.Pull(ctx, image, nil)
	}
	var errs []error
	for _, cred := range creds {
		pulled, err := w.agent.runtime.Pull(ctx, image, &containers.Credential{Username: cred.Username, Password: cred.Password})
		if err == nil {
			return pulled, nil
		}
		errs = append(errs, err)
	}
	return nil, utilerrors.NewAggregate(errs)
}

// pullSecrets reads the pod's imagePullSecrets; those it cannot read are
// skipped with kubelet's warning event, and the pull goes on without them.
func (w *podWorker) pullSecrets(ctx context.Context, pod *corev1.Pod) []corev1.Secret {
	var secrets []corev1.Secret
	var failed []string
	for _, ref := range pod.Spec.ImagePullSecrets {
		if ref.Name == "" {
			continue
		}
		secret, err := w.agent.client.CoreV1().Secrets(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			logr.FromContextOrDiscard(ctx).Info("Unable to retrieve pull secret, the image pull may not succeed.", "secret", ref.Name, "err", err)
			failed = append(failed, ref.Name)
			continue
		}
		secrets = append(secrets, *secret)
	}
	if len(failed) > 0 {
		w.agent.recorder.Eventf(pod, corev1.EventTypeWarning, reasonFailedPullSecret,
			"Unable to retrieve some image pull secrets (%s); attempting to pull the image may not succeed.", strings.Join(failed, ", "))
	}
	return secrets
}

// defaultPullPolicy is the API's default for a container that has none
// (a static pod's): Always for an image tagged latest or not at all,
// IfNotPresent for one pinned by another tag or a digest.
func defaultPullPolicy(image string) corev1.PullPolicy {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return corev1.PullIfNotPresent
	}
	if tagged, ok := named.(reference.Tagged); ok {
		if tagged.Tag() == "latest" {
			return corev1.PullAlways
		}
		return corev1.PullIfNotPresent
	}
	if _, ok := named.(reference.Digested); ok {
		return corev1.PullIfNotPresent
	}
	return corev1.PullAlways
}

// containerRef is the container as events name it: the pod with the
// container's field path, as kubelet's events carry.
func containerRef(pod *corev1.Pod, c *corev1.Container) *corev1.ObjectReference {
	ref, err := objectreference.GetReference(scheme.Scheme, pod)
	if err != nil {
		ref = &corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID}
	}
	ref.FieldPath = fmt.Sprintf("spec.containers{%s}", c.Name)
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == c.Name {
			ref.FieldPath = fmt.Sprintf("spec.initContainers{%s}", c.Name)
		}
	}
	return ref
}
