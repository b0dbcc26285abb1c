package nodeagent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

// Annotations of static pods and their mirror pods, as kubelet sets them.
const (
	annotationConfigSource = "kubernetes.io/config.source"
	annotationConfigHash   = "kubernetes.io/config.hash"
	annotationConfigMirror = "kubernetes.io/config.mirror"
	configSourceFile       = "file"
)

// staticPollInterval is how often the manifests directory is read and the
// mirror pods checked.
const staticPollInterval = time.Second

// isStaticPod reports whether the pod comes from a manifest file.
func isStaticPod(pod *corev1.Pod) bool {
	return pod.Annotations[annotationConfigSource] == configSourceFile
}

// isMirrorPod reports whether the pod is the API server's copy of a static
// pod; the agent runs the static pod, never the mirror.
func isMirrorPod(pod *corev1.Pod) bool {
	_, ok := pod.Annotations[annotationConfigMirror]
	return ok
}

// readManifests reads the pods of the manifests directory: one pod per
// *.yaml, *.yml or *.json file; dot-files are ignored. A file that does not
// decode is reported and skipped, the others still run.
func readManifests(dir, nodeName string) (map[types.UID]*corev1.Pod, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return map[types.UID]*corev1.Pod{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading manifests directory: %w", err)
	}
	pods := map[types.UID]*corev1.Pod{}
	var errs []error
	for _, e := range entries {
		name := e.Name()
		ext := filepath.Ext(name)
		if e.IsDir() || strings.HasPrefix(name, ".") || (ext != ".yaml" && ext != ".yml" && ext != ".json") {
			continue
		}
		path := filepath.Join(dir, name)
		data, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("reading manifest %s: %w", path, err))
			continue
		}
		pod, err := staticPod(data, path, nodeName)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		pods[pod.UID] = pod
	}
	return pods, errors.Join(errs...)
}

// staticPod decodes one manifest into the pod the node runs, as kubelet
// does: named <name>-<node>, bound to the node, with a UID that is a hash
// of the node, the file and its content (so that an edit makes a new pod
// and a restarted agent finds the same one), tolerating NoExecute taints.
func staticPod(data []byte, path, nodeName string) (*corev1.Pod, error) {
	obj, gvk, err := scheme.Codecs.UniversalDeserializer().Decode(data, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("decoding manifest %s: %w", path, err)
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return nil, fmt.Errorf("manifest %s holds a %s, not a Pod", path, gvk.Kind)
	}
	if pod.Name == "" {
		return nil, fmt.Errorf("manifest %s: pod has no name", path)
	}
	hash := sha256.New()
	fmt.Fprintf(hash, "host:%s\nfile:%s\n", nodeName, path)
	hash.Write(data)
	pod.UID = types.UID(hex.EncodeToString(hash.Sum(nil))[:32])
	pod.Name = pod.Name + "-" + strings.ToLower(nodeName)
	if pod.Namespace == "" {
		pod.Namespace = metav1.NamespaceDefault
	}
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[annotationConfigHash] = string(pod.UID)
	pod.Annotations[annotationConfigSource] = configSourceFile
	pod.Spec.NodeName = nodeName
	if pod.Spec.RestartPolicy == "" {
		pod.Spec.RestartPolicy = corev1.RestartPolicyAlways
	}
	pod.Spec.Tolerations = append(pod.Spec.Tolerations, corev1.Toleration{Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute})
	return pod, nil
}

// runStaticPods keeps the static pods in step with the manifests directory
// and, once the API server is reachable, their mirror pods in step with
// them.
func (a *Agent) runStaticPods(ctx context.Context) {
	ticker := time.NewTicker(staticPollInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		a.loadStaticPods(ctx)
		if err := a.syncMirrorPods(ctx); err != nil && ctx.Err() == nil {
			logr.FromContextOrDiscard(ctx).Error(err, "syncing mirror pods")
		}
	}
}

// loadStaticPods reads the manifests and starts, or removes, static pods.
func (a *Agent) loadStaticPods(ctx context.Context) {
	pods, err := readManifests(a.cfg.ManifestsDir, a.cfg.NodeName)
	if err != nil {
		logr.FromContextOrDiscard(ctx).Error(err, "reading static pod manifests", "dir", a.cfg.ManifestsDir)
		if pods == nil {
			return
		}
	}
	a.mu.Lock()
	previous := a.staticPods
	a.staticPods = pods
	a.mu.Unlock()
	for uid, pod := range previous {
		if _, ok := pods[uid]; !ok {
			logr.FromContextOrDiscard(ctx).Info("static pod manifest removed or changed", "pod", pod.Namespace+"/"+pod.Name, "podUID", uid)
			a.podRemoved(pod)
		}
	}
	for uid, pod := range pods {
		if _, ok := previous[uid]; !ok {
			a.podChanged(ctx, pod)
		}
	}
}

// mirrorOf is the mirror pod of a static pod in the agent's view of the
// API server, if any.
func (a *Agent) mirrorOf(pod *corev1.Pod) *corev1.Pod {
	a.mu.Lock()
	store := a.podStore
	a.mu.Unlock()
	if store == nil {
		return nil
	}
	obj, ok, err := store.GetByKey(pod.Namespace + "/" + pod.Name)
	if err != nil || !ok {
		return nil
	}
	mirror, ok := obj.(*corev1.Pod)
	if !ok || mirror.Annotations[annotationConfigMirror] != string(pod.UID) {
		return nil
	}
	return mirror
}

// syncMirrorPods makes the API server show each static pod as a mirror
// pod: missing ones are created, ones of an older manifest or being
// deleted are removed (the next round creates them anew), and ones whose
// manifest is gone are removed. A regular pod holding a static pod's name
// is left alone, as kubelet does.
func (a *Agent) syncMirrorPods(ctx context.Context) error {
	a.mu.Lock()
	store := a.podStore
	static := make(map[string]*corev1.Pod, len(a.staticPods))
	for _, pod := range a.staticPods {
		static[pod.Namespace+"/"+pod.Name] = pod
	}
	a.mu.Unlock()
	if store == nil {
		return nil
	}
	var errs []error
	for key, pod := range static {
		obj, exists, err := store.GetByKey(key)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !exists {
			errs = append(errs, a.createMirrorPod(ctx, pod))
			continue
		}
		existing, ok := obj.(*corev1.Pod)
		if !ok || !isMirrorPod(existing) {
			continue
		}
		if existing.Annotations[annotationConfigMirror] != string(pod.UID) || existing.DeletionTimestamp != nil {
			errs = append(errs, a.deleteMirrorPod(ctx, existing))
		}
	}
	for _, obj := range store.List() {
		if existing, ok := obj.(*corev1.Pod); ok && isMirrorPod(existing) && static[existing.Namespace+"/"+existing.Name] == nil {
			errs = append(errs, a.deleteMirrorPod(ctx, existing))
		}
	}
	return errors.Join(errs...)
}

func (a *Agent) createMirrorPod(ctx context.Context, pod *corev1.Pod) error {
	node, err := a.client.CoreV1().Nodes().Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("reading node for mirror pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	mirror := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:        pod.Name,
			Namespace:   pod.Namespace,
			Labels:      pod.Labels,
			Annotations: map[string]string{annotationConfigMirror: string(pod.UID)},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID,
				// NodeRestriction admits only mirror pods their Node
				// controls, as the kubelet makes them.
				Controller: ptr.To(true),
			}},
		},
		Spec: *pod.Spec.DeepCopy(),
	}
	for k, v := range pod.Annotations {
		mirror.Annotations[k] = v
	}
	_, err = a.client.CoreV1().Pods(pod.Namespace).Create(ctx, mirror, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating mirror pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	logr.FromContextOrDiscard(ctx).Info("created mirror pod", "pod", pod.Namespace+"/"+pod.Name, "podUID", pod.UID)
	return nil
}

func (a *Agent) deleteMirrorPod(ctx context.Context, mirror *corev1.Pod) error {
	err := a.client.CoreV1().Pods(mirror.Namespace).Delete(ctx, mirror.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0),
		Preconditions:      &metav1.Preconditions{UID: &mirror.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("deleting mirror pod %s/%s: %w", mirror.Namespace, mirror.Name, err)
	}
	return nil
}

// withMirrorStatus gives a static pod the status and generation its mirror
// pod holds, so the worker computes its status against what the API
// server shows.
func (a *Agent) withMirrorStatus(pod *corev1.Pod) *corev1.Pod {
	if !isStaticPod(pod) {
		return pod
	}
	mirror := a.mirrorOf(pod)
	if mirror == nil {
		return pod
	}
	pod = pod.DeepCopy()
	pod.Status = *mirror.Status.DeepCopy()
	pod.Generation = mirror.Generation
	return pod
}

// setPodStore records the informer's store for mirror pod lookups.
func (a *Agent) setPodStore(store cache.Store) {
	a.mu.Lock()
	a.podStore = store
	a.mu.Unlock()
}
