package admission

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"
)

// The names and paths kube-apiserver's ServiceAccount plugin uses.
const (
	DefaultServiceAccountName = "default"
	// ServiceAccountTokenMountPath is where every container finds token,
	// ca.crt and namespace.
	ServiceAccountTokenMountPath = "/var/run/secrets/kubernetes.io/serviceaccount"
	serviceAccountVolumePrefix   = "kube-api-access-"
	rootCAConfigMapName          = "kube-root-ca.crt"
	// boundTokenExpirationSeconds is the token lifetime the projected
	// volume asks for: one hour plus the 7 s by which kube-apiserver marks
	// tokens it extends for legacy clients.
	boundTokenExpirationSeconds = 3607
	mirrorPodAnnotation         = "kubernetes.io/config.mirror"
	// defaultServiceAccountAttempts: the default service account is
	// created by a controller right after its namespace, so a pod created
	// in a new namespace waits for it a little, as upstream does.
	defaultServiceAccountAttempts = 10
)

// ServiceAccount gives pods the default service account, refuses pods
// whose service account does not exist, and mounts the projected API
// credentials (token, cluster CA, namespace) into every container unless
// automounting is off for the pod or its service account.
type ServiceAccount struct {
	ServiceAccounts Objects
}

// Admit implements Mutator.
func (s *ServiceAccount) Admit(ctx context.Context, a *Attributes) error {
	if !a.isPod() || a.Operation != Create {
		return nil
	}
	pod, ok := a.Object.(*corev1.Pod)
	if !ok {
		return nil
	}
	if _, mirror := pod.Annotations[mirrorPodAnnotation]; mirror {
		return nil
	}
	if pod.Spec.ServiceAccountName == "" {
		pod.Spec.ServiceAccountName = DefaultServiceAccountName
	}
	sa, err := s.serviceAccount(ctx, a.Namespace, pod.Spec.ServiceAccountName)
	if err != nil {
		return forbidden(a, fmt.Sprintf("error looking up service account %s/%s: %v", a.Namespace, pod.Spec.ServiceAccountName, err))
	}
	if automount(sa, pod) {
		mountAPICredentials(pod)
	}
	if len(pod.Spec.ImagePullSecrets) == 0 && len(sa.ImagePullSecrets) > 0 {
		pod.Spec.ImagePullSecrets = append([]corev1.LocalObjectReference(nil), sa.ImagePullSecrets...)
	}
	return nil
}

// serviceAccount reads the service account, retrying for a moment when it
// is the default one that its controller may not have created yet.
func (s *ServiceAccount) serviceAccount(ctx context.Context, namespace, name string) (*corev1.ServiceAccount, error) {
	attempts := 1
	if name == DefaultServiceAccountName {
		attempts = defaultServiceAccountAttempts
	}
	retryInterval := time.Duration(100+rand.IntN(100)) * time.Millisecond
	for i := 0; ; i++ {
		sa := &corev1.ServiceAccount{}
		err := s.ServiceAccounts.Get(ctx, namespace, name, sa)
		if err == nil {
			return sa, nil
		}
		if !apierrors.IsNotFound(err) {
			return nil, err
		}
		if i+1 >= attempts {
			return nil, apierrors.NewNotFound(corev1.Resource("serviceaccount"), name)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(retryInterval):
		}
	}
}

// automount: the pod's setting wins over the service account's; both
// unset means mount.
func automount(sa *corev1.ServiceAccount, pod *corev1.Pod) bool {
	if pod.Spec.AutomountServiceAccountToken != nil {
		return *pod.Spec.AutomountServiceAccountToken
	}
	if sa.AutomountServiceAccountToken != nil {
		return *sa.AutomountServiceAccountToken
	}
	return true
}

// mountAPICredentials mounts the kube-api-access volume read-only at
// ServiceAccountTokenMountPath in every container and init container that
// has nothing mounted there, adding the volume when one needs it.
func mountAPICredentials(pod *corev1.Pod) {
	volumeName := ""
	for _, v := range pod.Spec.Volumes {
		if strings.HasPrefix(v.Name, serviceAccountVolumePrefix) {
			volumeName = v.Name
			break
		}
	}
	hasVolume := volumeName != ""
	if !hasVolume {
		volumeName = serviceAccountVolumePrefix + utilrand.String(5)
	}
	mount := corev1.VolumeMount{Name: volumeName, ReadOnly: true, MountPath: ServiceAccountTokenMountPath}
	needsVolume := false
	for _, containers := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range containers {
			if mountsAt(&containers[i], ServiceAccountTokenMountPath) {
				continue
			}
			containers[i].VolumeMounts = append(containers[i].VolumeMounts, mount)
			needsVolume = true
		}
	}
	if needsVolume && !hasVolume {
		pod.Spec.Volumes = append(pod.Spec.Volumes, apiAccessVolume(volumeName))
	}
}

func mountsAt(c *corev1.Container, path string) bool {
	for _, m := range c.VolumeMounts {
		if m.MountPath == path {
			return true
		}
	}
	return false
}

// apiAccessVolume projects a bound token, the cluster CA bundle published
// in every namespace, and the pod's namespace.
func apiAccessVolume(name string) corev1.Volume {
	return corev1.Volume{
		Name: name,
		VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{
				{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
					ExpirationSeconds: ptr.To[int64](boundTokenExpirationSeconds),
					Path:              "token",
				}},
				{ConfigMap: &corev1.ConfigMapProjection{
					LocalObjectReference: corev1.LocalObjectReference{Name: rootCAConfigMapName},
					Items:                []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}},
				}},
				{DownwardAPI: &corev1.DownwardAPIProjection{
					Items: []corev1.DownwardAPIVolumeFile{{
						Path:     "namespace",
						FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"},
					}},
				}},
			},
			DefaultMode: ptr.To(corev1.ProjectedVolumeSourceDefaultMode),
		}},
	}
}
