package nodeagent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// projectedFile is one file of a configMap, secret, downwardAPI or
// projected volume.
type projectedFile struct {
	data []byte
	mode os.FileMode
}

const defaultVolumeMode = 0o644

// projectedFiles computes the files a data volume holds now.
func (w *podWorker) projectedFiles(ctx context.Context, pod *corev1.Pod, v corev1.Volume) (map[string]projectedFile, error) {
	files := map[string]projectedFile{}
	var err error
	switch {
	case v.ConfigMap != nil:
		err = w.configMapFiles(ctx, pod.Namespace, v.ConfigMap.Name, v.ConfigMap.Items, v.ConfigMap.Optional, modeOr(v.ConfigMap.DefaultMode), files)
	case v.Secret != nil:
		err = w.secretFiles(ctx, pod.Namespace, v.Secret.SecretName, v.Secret.Items, v.Secret.Optional, modeOr(v.Secret.DefaultMode), files)
	case v.DownwardAPI != nil:
		err = w.downwardAPIFiles(pod, v.DownwardAPI.Items, modeOr(v.DownwardAPI.DefaultMode), files)
	case v.Projected != nil:
		mode := modeOr(v.Projected.DefaultMode)
		for _, source := range v.Projected.Sources {
			switch {
			case source.ConfigMap != nil:
				err = w.configMapFiles(ctx, pod.Namespace, source.ConfigMap.Name, source.ConfigMap.Items, source.ConfigMap.Optional, mode, files)
			case source.Secret != nil:
				err = w.secretFiles(ctx, pod.Namespace, source.Secret.Name, source.Secret.Items, source.Secret.Optional, mode, files)
			case source.DownwardAPI != nil:
				err = w.downwardAPIFiles(pod, source.DownwardAPI.Items, mode, files)
			case source.ServiceAccountToken != nil:
				err = w.tokenFile(ctx, pod, source.ServiceAccountToken, mode, files)
			}
			if err != nil {
				break
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("volume %q: %w", v.Name, err)
	}
	return files, nil
}

func modeOr(mode *int32) os.FileMode {
	if mode == nil {
		return defaultVolumeMode
	}
	return os.FileMode(*mode)
}

func itemMode(mode *int32, fallback os.FileMode) os.FileMode {
	if mode == nil {
		return fallback
	}
	return os.FileMode(*mode)
}

// keyFiles places data by items, or every key under its own name.
func keyFiles(data map[string][]byte, items []corev1.KeyToPath, mode os.FileMode, files map[string]projectedFile, what string) error {
	if len(items) == 0 {
		for k, v := range data {
			files[k] = projectedFile{data: v, mode: mode}
		}
		return nil
	}
	for _, item := range items {
		v, ok := data[item.Key]
		if !ok {
			return fmt.Errorf("key %q not in %s", item.Key, what)
		}
		files[item.Path] = projectedFile{data: v, mode: itemMode(item.Mode, mode)}
	}
	return nil
}

func (w *podWorker) configMapFiles(ctx context.Context, namespace, name string, items []corev1.KeyToPath, optional *bool, mode os.FileMode, files map[string]projectedFile) error {
	cm, err := w.agent.client.CoreV1().ConfigMaps(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) && optional != nil && *optional {
			return nil
		}
		return fmt.Errorf("configmap %q: %w", name, err)
	}
	data := make(map[string][]byte, len(cm.Data)+len(cm.BinaryData))
	for k, v := range cm.Data {
		data[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		data[k] = v
	}
	return keyFiles(data, items, mode, files, "configmap "+name)
}

func (w *podWorker) secretFiles(ctx context.Context, namespace, name string, items []corev1.KeyToPath, optional *bool, mode os.FileMode, files map[string]projectedFile) error {
	secret, err := w.agent.client.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) && optional != nil && *optional {
			return nil
		}
		return fmt.Errorf("secret %q: %w", name, err)
	}
	return keyFiles(secret.Data, items, mode, files, "secret "+name)
}

func (w *podWorker) downwardAPIFiles(pod *corev1.Pod, items []corev1.DownwardAPIVolumeFile, mode os.FileMode, files map[string]projectedFile) error {
	for _, item := range items {
		var value string
		var err error
		switch {
		case item.FieldRef != nil:
			value, err = w.fieldValue(pod, item.FieldRef.FieldPath)
		case item.ResourceFieldRef != nil:
			c := containerNamed(pod, item.ResourceFieldRef.ContainerName)
			if c == nil {
				return fmt.Errorf("container %q not in pod", item.ResourceFieldRef.ContainerName)
			}
			value, err = w.resourceValue(c, item.ResourceFieldRef)
		}
		if err != nil {
			return err
		}
		files[item.Path] = projectedFile{data: []byte(value), mode: itemMode(item.Mode, mode)}
	}
	return nil
}

// tokenFile asks the API server for a token bound to the pod.
func (w *podWorker) tokenFile(ctx context.Context, pod *corev1.Pod, source *corev1.ServiceAccountTokenProjection, mode os.FileMode, files map[string]projectedFile) error {
	account := pod.Spec.ServiceAccountName
	if account == "" {
		account = "default"
	}
	var audiences []string
	if source.Audience != "" {
		audiences = []string{source.Audience}
	}
	expiration := int64(time.Hour / time.Second)
	if source.ExpirationSeconds != nil {
		expiration = *source.ExpirationSeconds
	}
	request := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		Audiences:         audiences,
		ExpirationSeconds: ptr.To(expiration),
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	token, err := w.agent.client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, account, request, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("token for service account %q: %w", account, err)
	}
	files[source.Path] = projectedFile{data: []byte(token.Status.Token), mode: mode}
	return nil
}

// writeAtomicDir replaces the contents of dir with files in one step, as
// a container reading it sees either the old set or the new one: the
// files go into a fresh directory, a ..data link swings to it, and each
// top-level name links through ..data.
func writeAtomicDir(dir string, files map[string]projectedFile) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	stamp := "..data_" + strconv.FormatInt(time.Now().UnixNano(), 10)
	staging := filepath.Join(dir, stamp)
	if err := os.Mkdir(staging, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", staging, err)
	}
	topLevel := map[string]bool{}
	for name, f := range files {
		clean := filepath.Clean("/" + name)[1:]
		if clean == "" || strings.HasPrefix(clean, "..") {
			return fmt.Errorf("invalid file path %q", name)
		}
		path := filepath.Join(staging, clean)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
		}
		if err := os.WriteFile(path, f.data, f.mode); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
		if err := os.Chmod(path, f.mode); err != nil {
			return fmt.Errorf("chmod %s: %w", path, err)
		}
		topLevel[strings.SplitN(clean, "/", 2)[0]] = true
	}
	dataLink := filepath.Join(dir, "..data")
	previous, _ := os.Readlink(dataLink)
	tmpLink := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmpLink)
	if err := os.Symlink(stamp, tmpLink); err != nil {
		return fmt.Errorf("linking %s: %w", tmpLink, err)
	}
	if err := os.Rename(tmpLink, dataLink); err != nil {
		return fmt.Errorf("swapping %s: %w", dataLink, err)
	}
	for name := range topLevel {
		link := filepath.Join(dir, name)
		if target, err := os.Readlink(link); err == nil && target == filepath.Join("..data", name) {
			continue
		}
		_ = os.RemoveAll(link)
		if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
			return fmt.Errorf("linking %s: %w", link, err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("reading %s: %w", dir, err)
	}
	for _, e := range entries {
		name := e.Name()
		stale := (name == previous && name != stamp) || (!strings.HasPrefix(name, "..") && !topLevel[name])
		if stale {
			if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
				return fmt.Errorf("removing %s: %w", name, err)
			}
		}
	}
	return nil
}
