package nodeagent

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"tower.dev/tower/nodeagent/containers"
)

// containerSpec turns a pod's container into what containerd runs: its
// environment resolved, its volumes prepared and mounted, its resources
// and security settings.
func (w *podWorker) containerSpec(ctx context.Context, pod *corev1.Pod, c *corev1.Container) (containers.ContainerSpec, error) {
	env, err := w.environment(ctx, pod, c)
	if err != nil {
		return containers.ContainerSpec{}, err
	}
	lookup := func(name string) (string, bool) {
		for i := len(env) - 1; i >= 0; i-- {
			if k, v, _ := strings.Cut(env[i], "="); k == name {
				return v, true
			}
		}
		return "", false
	}
	spec := containers.ContainerSpec{
		Command:    expandAll(c.Command, lookup),
		Args:       expandAll(c.Args, lookup),
		Env:        env,
		WorkingDir: c.WorkingDir,
	}
	volumes, err := w.prepareVolumes(ctx, pod)
	if err != nil {
		return containers.ContainerSpec{}, err
	}
	for _, vm := range c.VolumeMounts {
		source, ok := volumes[vm.Name]
		if !ok {
			return containers.ContainerSpec{}, fmt.Errorf("volume %q of mount %s is not defined", vm.Name, vm.MountPath)
		}
		if vm.SubPath != "" {
			source = filepath.Join(source, filepath.Clean("/"+vm.SubPath))
			if err := os.MkdirAll(source, 0o755); err != nil {
				return containers.ContainerSpec{}, fmt.Errorf("creating subPath %s: %w", vm.SubPath, err)
			}
		}
		mode := "rw"
		if vm.ReadOnly {
			mode = "ro"
		}
		spec.Mounts = append(spec.Mounts, specs.Mount{Destination: vm.MountPath, Type: "bind", Source: source, Options: []string{"rbind", mode}})
	}

	if memory, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
		spec.MemoryLimitBytes = uint64(memory.Value())
	}
	if cpu, ok := c.Resources.Limits[corev1.ResourceCPU]; ok {
		spec.CPUQuotaMicros = max(cpu.MilliValue()*100, 1000)
	}
	if cpu, ok := c.Resources.Requests[corev1.ResourceCPU]; ok {
		spec.CPUShares = uint64(max(cpu.MilliValue()*1024/1000, 2))
	}

	if psc := pod.Spec.SecurityContext; psc != nil {
		spec.UID = psc.RunAsUser
		spec.GID = psc.RunAsGroup
	}
	if sc := c.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			spec.UID = sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			spec.GID = sc.RunAsGroup
		}
		spec.Privileged = sc.Privileged != nil && *sc.Privileged
		spec.ReadOnlyRootFilesystem = sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem
		spec.NoNewPrivileges = sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation
		if caps := sc.Capabilities; caps != nil {
			spec.AddCapabilities = capabilityNames(caps.Add)
			spec.DropCapabilities = capabilityNames(caps.Drop)
		}
	}
	return spec, nil
}

// capabilityNames turns Kubernetes' NET_ADMIN into the runtime's
// CAP_NET_ADMIN; ALL stays ALL.
func capabilityNames(caps []corev1.Capability) []string {
	names := make([]string, 0, len(caps))
	for _, c := range caps {
		name := strings.ToUpper(string(c))
		if name != "ALL" && !strings.HasPrefix(name, "CAP_") {
			name = "CAP_" + name
		}
		names = append(names, name)
	}
	return names
}

// environment resolves env and envFrom in the order Kubernetes defines:
// envFrom first, then env, later entries overriding earlier ones.
func (w *podWorker) environment(ctx context.Context, pod *corev1.Pod, c *corev1.Container) ([]string, error) {
	var env []string
	for _, from := range c.EnvFrom {
		data, err := w.envSource(ctx, pod.Namespace, from)
		if err != nil {
			return nil, err
		}
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			env = append(env, from.Prefix+k+"="+data[k])
		}
	}
	lookup := func(name string) (string, bool) {
		for i := len(env) - 1; i >= 0; i-- {
			if k, v, _ := strings.Cut(env[i], "="); k == name {
				return v, true
			}
		}
		return "", false
	}
	for _, e := range c.Env {
		value := expand(e.Value, lookup)
		if src := e.ValueFrom; src != nil {
			var err error
			var ok bool
			value, ok, err = w.envValueFrom(ctx, pod, c, src)
			if err != nil {
				return nil, fmt.Errorf("env %s: %w", e.Name, err)
			}
			if !ok {
				continue
			}
		}
		env = append(env, e.Name+"="+value)
	}
	return env, nil
}

func (w *podWorker) envSource(ctx context.Context, namespace string, from corev1.EnvFromSource) (map[string]string, error) {
	switch {
	case from.ConfigMapRef != nil:
		cm, err := w.agent.client.CoreV1().ConfigMaps(namespace).Get(ctx, from.ConfigMapRef.Name, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) && from.ConfigMapRef.Optional != nil && *from.ConfigMapRef.Optional {
				return nil, nil
			}
			return nil, fmt.Errorf("configmap %q: %w", from.ConfigMapRef.Name, err)
		}
		return cm.Data, nil
	case from.SecretRef != nil:
		secret, err := w.agent.client.CoreV1().Secrets(namespace).Get(ctx, from.SecretRef.Name, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) && from.SecretRef.Optional != nil && *from.SecretRef.Optional {
				return nil, nil
			}
			return nil, fmt.Errorf("secret %q: %w", from.SecretRef.Name, err)
		}
		data := make(map[string]string, len(secret.Data))
		for k, v := range secret.Data {
			data[k] = string(v)
		}
		return data, nil
	}
	return nil, nil
}

// envValueFrom resolves one valueFrom; ok is false for an optional key
// that is missing, which leaves the variable unset.
func (w *podWorker) envValueFrom(ctx context.Context, pod *corev1.Pod, c *corev1.Container, src *corev1.EnvVarSource) (string, bool, error) {
	switch {
	case src.FieldRef != nil:
		value, err := w.fieldValue(pod, src.FieldRef.FieldPath)
		return value, err == nil, err
	case src.ResourceFieldRef != nil:
		value, err := w.resourceValue(c, src.ResourceFieldRef)
		return value, err == nil, err
	case src.ConfigMapKeyRef != nil:
		ref := src.ConfigMapKeyRef
		optional := ref.Optional != nil && *ref.Optional
		cm, err := w.agent.client.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) && optional {
				return "", false, nil
			}
			return "", false, fmt.Errorf("configmap %q: %w", ref.Name, err)
		}
		value, ok := cm.Data[ref.Key]
		if !ok && !optional {
			return "", false, fmt.Errorf("key %q not in configmap %q", ref.Key, ref.Name)
		}
		return value, ok, nil
	case src.SecretKeyRef != nil:
		ref := src.SecretKeyRef
		optional := ref.Optional != nil && *ref.Optional
		secret, err := w.agent.client.CoreV1().Secrets(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) && optional {
				return "", false, nil
			}
			return "", false, fmt.Errorf("secret %q: %w", ref.Name, err)
		}
		value, ok := secret.Data[ref.Key]
		if !ok && !optional {
			return "", false, fmt.Errorf("key %q not in secret %q", ref.Key, ref.Name)
		}
		return string(value), ok, nil
	}
	return "", false, nil
}

// fieldValue reads a downward API field of the pod.
func (w *podWorker) fieldValue(pod *corev1.Pod, path string) (string, error) {
	if key, ok := subscript(path, "metadata.labels"); ok {
		return pod.Labels[key], nil
	}
	if key, ok := subscript(path, "metadata.annotations"); ok {
		return pod.Annotations[key], nil
	}
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "metadata.labels":
		return formatMap(pod.Labels), nil
	case "metadata.annotations":
		return formatMap(pod.Annotations), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.hostIP", "status.hostIPs":
		return w.agent.nodeIP.String(), nil
	case "status.podIP", "status.podIPs":
		return w.podIP, nil
	}
	return "", fmt.Errorf("unsupported fieldPath %q", path)
}

// subscript parses prefix['key'].
func subscript(path, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(path, prefix+"['")
	if !ok {
		return "", false
	}
	return strings.CutSuffix(rest, "']")
}

func formatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	lines := make([]string, 0, len(keys))
	for _, k := range keys {
		lines = append(lines, fmt.Sprintf("%s=%q", k, m[k]))
	}
	return strings.Join(lines, "\n")
}

// resourceValue reads a container's request or limit in units of the
// divisor, rounded up; an unset limit is the node's capacity.
func (w *podWorker) resourceValue(c *corev1.Container, ref *corev1.ResourceFieldSelector) (string, error) {
	var list corev1.ResourceList
	kind, name, ok := strings.Cut(ref.Resource, ".")
	if !ok {
		return "", fmt.Errorf("unsupported resource %q", ref.Resource)
	}
	switch kind {
	case "limits":
		list = c.Resources.Limits
	case "requests":
		list = c.Resources.Requests
	default:
		return "", fmt.Errorf("unsupported resource %q", ref.Resource)
	}
	quantity, ok := list[corev1.ResourceName(name)]
	if !ok {
		capacity, err := w.agent.capacity()
		if err != nil {
			return "", err
		}
		if quantity, ok = capacity[corev1.ResourceName(name)]; !ok && kind == "limits" {
			return "", fmt.Errorf("unknown resource %q", name)
		}
		if kind == "requests" {
			quantity = resource.Quantity{}
		}
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	value := math.Ceil(float64(quantity.MilliValue()) / float64(divisor.MilliValue()))
	return fmt.Sprintf("%d", int64(value)), nil
}

// expand replaces $(NAME) with the variable's value when it is defined;
// $$ escapes a dollar, and an undefined reference stays as written.
func expand(s string, lookup func(string) (string, bool)) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if value, ok := lookup(name); ok {
				b.WriteString(value)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

func expandAll(values []string, lookup func(string) (string, bool)) []string {
	if values == nil {
		return nil
	}
	out := make([]string, len(values))
	for i, v := range values {
		out[i] = expand(v, lookup)
	}
	return out
}

// prepareVolumes makes every volume of the pod exist on the node and
// returns the host directory of each. ConfigMap, Secret and downward API
// contents are rewritten each time, so containers started later see
// current data.
func (w *podWorker) prepareVolumes(ctx context.Context, pod *corev1.Pod) (map[string]string, error) {
	paths := map[string]string{}
	for _, v := range pod.Spec.Volumes {
		dir := filepath.Join(w.podDir(pod), "volumes", v.Name)
		var err error
		switch {
		case v.EmptyDir != nil:
			err = w.emptyDir(dir, v.EmptyDir)
		case v.HostPath != nil:
			dir = v.HostPath.Path
			if v.HostPath.Type != nil && (*v.HostPath.Type == corev1.HostPathDirectoryOrCreate) {
				err = os.MkdirAll(dir, 0o755)
			}
		case v.ConfigMap != nil, v.Secret != nil, v.DownwardAPI != nil, v.Projected != nil:
			var files map[string]projectedFile
			files, err = w.projectedFiles(ctx, pod, v)
			if err == nil {
				err = writeAtomicDir(dir, files)
			}
		default:
			err = fmt.Errorf("volume %q: only emptyDir, hostPath, configMap, secret, downwardAPI and projected volumes are supported", v.Name)
		}
		if err != nil {
			return nil, err
		}
		paths[v.Name] = dir
	}
	return paths, nil
}

func (w *podWorker) emptyDir(dir string, source *corev1.EmptyDirVolumeSource) error {
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return fmt.Errorf("creating emptyDir %s: %w", dir, err)
	}
	if source.Medium != corev1.StorageMediumMemory {
		return nil
	}
	var st, parent unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return fmt.Errorf("stat %s: %w", dir, err)
	}
	if err := unix.Stat(filepath.Dir(dir), &parent); err != nil {
		return fmt.Errorf("stat %s: %w", filepath.Dir(dir), err)
	}
	if st.Dev != parent.Dev {
		return nil
	}
	options := ""
	if source.SizeLimit != nil {
		options = fmt.Sprintf("size=%d", source.SizeLimit.Value())
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, options); err != nil {
		return fmt.Errorf("mounting tmpfs on %s: %w", dir, err)
	}
	return nil
}

// removePodDir unmounts what prepareVolumes mounted and removes the pod's
// directory.
func (w *podWorker) removePodDir(pod *corev1.Pod) error {
	dir := w.podDir(pod)
	for _, v := range pod.Spec.Volumes {
		if v.EmptyDir != nil && v.EmptyDir.Medium == corev1.StorageMediumMemory {
			_ = unix.Unmount(filepath.Join(dir, "volumes", v.Name), unix.MNT_DETACH)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("removing pod dir: %w", err)
	}
	return nil
}
