package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/api/validation/path"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// namespaceStrategy: namespaces are born Active with the "kubernetes"
// finalizer; spec.finalizers only change through the finalize subresource
// and status only through the status subresource.
type namespaceStrategy struct{ objectStrategy }

func newNamespaceStrategy() namespaceStrategy {
	return namespaceStrategy{objectStrategy{nameFn: apimachineryvalidation.ValidateNamespaceName}}
}

func (namespaceStrategy) Default(obj runtime.Object) {
	ns := obj.(*corev1.Namespace)
	setNamespaceNameLabel(ns)
	if ns.Status.Phase == "" {
		ns.Status.Phase = corev1.NamespaceActive
	}
}

// setNamespaceNameLabel: every named namespace carries its name as a label
// so label selectors can pick namespaces by name.
func setNamespaceNameLabel(ns *corev1.Namespace) {
	if ns.Name == "" {
		return
	}
	if ns.Labels == nil {
		ns.Labels = map[string]string{}
	}
	ns.Labels[corev1.LabelMetadataName] = ns.Name
}

func (namespaceStrategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	ns := obj.(*corev1.Namespace)
	ns.Status = corev1.NamespaceStatus{Phase: corev1.NamespaceActive}
	hasKubernetes := false
	for _, f := range ns.Spec.Finalizers {
		if f == corev1.FinalizerKubernetes {
			hasKubernetes = true
		}
	}
	if !hasKubernetes {
		ns.Spec.Finalizers = append(ns.Spec.Finalizers, corev1.FinalizerKubernetes)
	}
	setNamespaceNameLabel(ns)
}

func (namespaceStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	ns, oldNs := obj.(*corev1.Namespace), old.(*corev1.Namespace)
	ns.Spec.Finalizers = oldNs.Spec.Finalizers
	ns.Status = oldNs.Status
	setNamespaceNameLabel(ns)
}

func (s namespaceStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	ns := obj.(*corev1.Namespace)
	errs := s.validateMeta(&ns.ObjectMeta)
	return append(errs, validateNamespaceFinalizers(ns.Spec.Finalizers, field.NewPath("spec", "finalizers"))...)
}

func (s namespaceStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	ns, oldNs := obj.(*corev1.Namespace), old.(*corev1.Namespace)
	errs := s.validateMetaUpdate(&ns.ObjectMeta, &oldNs.ObjectMeta)
	return append(errs, validateNamespaceFinalizers(ns.Spec.Finalizers, field.NewPath("spec", "finalizers"))...)
}

func validateNamespaceFinalizers(finalizers []corev1.FinalizerName, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, f := range finalizers {
		errs = append(errs, apimachineryvalidation.ValidateFinalizerName(string(f), p)...)
		if !strings.Contains(string(f), "/") && f != corev1.FinalizerKubernetes {
			errs = append(errs, field.Invalid(p, string(f), "name is neither a standard finalizer name nor is it fully qualified"))
		}
	}
	return errs
}

func (s namespaceStrategy) GetAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	ns, ok := obj.(*corev1.Namespace)
	if !ok {
		return nil, nil, fmt.Errorf("not a namespace: %T", obj)
	}
	return labels.Set(ns.Labels), s.fieldsFor(&ns.ObjectMeta, fields.Set{
		"status.phase": string(ns.Status.Phase),
		"name":         ns.Name,
	}), nil
}

// namespaceStatusStrategy: the namespace controller writes status only.
type namespaceStatusStrategy struct{}

func (namespaceStatusStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	ns, oldNs := obj.(*corev1.Namespace), old.(*corev1.Namespace)
	ns.Spec = oldNs.Spec
	setNamespaceNameLabel(ns)
}

func (namespaceStatusStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	ns, oldNs := obj.(*corev1.Namespace), old.(*corev1.Namespace)
	errs := validateMetaAccessorUpdate(ns, oldNs)
	sp := field.NewPath("status", "phase")
	if ns.DeletionTimestamp == nil && ns.Status.Phase != corev1.NamespaceActive {
		errs = append(errs, field.Invalid(sp, ns.Status.Phase, "may only be 'Active' if `deletionTimestamp` is empty"))
	}
	if ns.DeletionTimestamp != nil && ns.Status.Phase != corev1.NamespaceTerminating {
		errs = append(errs, field.Invalid(sp, ns.Status.Phase, "may only be 'Terminating' if `deletionTimestamp` is not empty"))
	}
	return errs
}

// configMapStrategy: data keys and total size, and `immutable: true`.
type configMapStrategy struct{ objectStrategy }

func (configMapStrategy) Default(obj runtime.Object) {
	cm := obj.(*corev1.ConfigMap)
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
}

func (configMapStrategy) PrepareForCreate(context.Context, runtime.Object)                 {}
func (configMapStrategy) PrepareForUpdate(context.Context, runtime.Object, runtime.Object) {}

func (s configMapStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	cm := obj.(*corev1.ConfigMap)
	errs := s.validateMeta(&cm.ObjectMeta)
	total := 0
	for key, value := range cm.Data {
		errs = append(errs, invalidEach(field.NewPath("data").Key(key), key, validation.IsConfigMapKey(key))...)
		total += len(value)
	}
	for key, value := range cm.BinaryData {
		errs = append(errs, invalidEach(field.NewPath("binaryData").Key(key), key, validation.IsConfigMapKey(key))...)
		if _, dup := cm.Data[key]; dup {
			errs = append(errs, field.Invalid(field.NewPath("data").Key(key), key, "duplicate of key present in binaryData"))
		}
		total += len(value)
	}
	if total > maxConfigAndSecretLen {
		// The size error refers to the whole object, hence the empty path.
		errs = append(errs, field.TooLong(field.NewPath(""), "", maxConfigAndSecretLen))
	}
	return errs
}

func (s configMapStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	cm, oldCm := obj.(*corev1.ConfigMap), old.(*corev1.ConfigMap)
	errs := apimachineryvalidation.ValidateObjectMetaUpdate(&cm.ObjectMeta, &oldCm.ObjectMeta, metadataPath)
	if oldCm.Immutable != nil && *oldCm.Immutable {
		errs = append(errs, validateImmutableData(cm.Immutable, oldCm.Data, cm.Data, oldCm.BinaryData, cm.BinaryData)...)
	}
	return append(errs, s.Validate(ctx, obj)...)
}

// validateImmutableData enforces `immutable: true` for ConfigMaps and
// Secrets: the flag cannot be cleared and the data cannot change.
func validateImmutableData[D any](immutable *bool, oldData, data map[string]D, oldBinary, binary map[string][]byte) field.ErrorList {
	const msg = "field is immutable when `immutable` is set"
	var errs field.ErrorList
	if immutable == nil || !*immutable {
		errs = append(errs, field.Forbidden(field.NewPath("immutable"), msg))
	}
	if !equality.Semantic.DeepEqual(oldData, data) {
		errs = append(errs, field.Forbidden(field.NewPath("data"), msg))
	}
	if !equality.Semantic.DeepEqual(oldBinary, binary) {
		errs = append(errs, field.Forbidden(field.NewPath("binaryData"), msg))
	}
	return errs
}

// secretStrategy: key syntax, total size, the per-type required keys, and
// immutability of type (and of data when `immutable: true`).
type secretStrategy struct{ objectStrategy }

func (secretStrategy) Default(obj runtime.Object) {
	secret := obj.(*corev1.Secret)
	if secret.Type == "" {
		secret.Type = corev1.SecretTypeOpaque
	}
}

func (secretStrategy) PrepareForCreate(context.Context, runtime.Object)                 {}
func (secretStrategy) PrepareForUpdate(context.Context, runtime.Object, runtime.Object) {}

func (s secretStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	secret := obj.(*corev1.Secret)
	errs := s.validateMeta(&secret.ObjectMeta)
	dataPath := field.NewPath("data")
	total := 0
	for key, value := range secret.Data {
		errs = append(errs, invalidEach(dataPath.Key(key), key, validation.IsConfigMapKey(key))...)
		total += len(value)
	}
	if total > maxConfigAndSecretLen {
		errs = append(errs, field.TooLong(dataPath, "", maxConfigAndSecretLen))
	}
	requireKey := func(key string) {
		if len(secret.Data[key]) == 0 {
			errs = append(errs, field.Required(dataPath.Key(key), ""))
		}
	}
	switch secret.Type {
	case corev1.SecretTypeServiceAccountToken:
		if secret.Annotations[corev1.ServiceAccountNameKey] == "" {
			errs = append(errs, field.Required(metadataPath.Child("annotations").Key(corev1.ServiceAccountNameKey), ""))
		}
	case corev1.SecretTypeOpaque, "":
	case corev1.SecretTypeDockercfg:
		requireKey(corev1.DockerConfigKey)
		errs = append(errs, validateJSONKey(secret.Data, corev1.DockerConfigKey, dataPath)...)
	case corev1.SecretTypeDockerConfigJson:
		requireKey(corev1.DockerConfigJsonKey)
		errs = append(errs, validateJSONKey(secret.Data, corev1.DockerConfigJsonKey, dataPath)...)
	case corev1.SecretTypeBasicAuth:
		if len(secret.Data[corev1.BasicAuthUsernameKey]) == 0 && len(secret.Data[corev1.BasicAuthPasswordKey]) == 0 {
			errs = append(errs, field.Required(dataPath.Key(corev1.BasicAuthUsernameKey), ""))
			errs = append(errs, field.Required(dataPath.Key(corev1.BasicAuthPasswordKey), ""))
		}
	case corev1.SecretTypeSSHAuth:
		requireKey(corev1.SSHAuthPrivateKey)
	case corev1.SecretTypeTLS:
		requireKey(corev1.TLSCertKey)
		requireKey(corev1.TLSPrivateKeyKey)
	default:
		errs = append(errs, invalidEach(field.NewPath("type"), secret.Type, validation.IsQualifiedName(string(secret.Type)))...)
	}
	return errs
}

func validateJSONKey(data map[string][]byte, key string, dataPath *field.Path) field.ErrorList {
	value, ok := data[key]
	if !ok || len(value) == 0 {
		return nil
	}
	var v map[string]any
	if err := json.Unmarshal(value, &v); err != nil {
		return field.ErrorList{field.Invalid(dataPath.Key(key), "<secret contents redacted>", err.Error())}
	}
	return nil
}

func (s secretStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	secret, oldSecret := obj.(*corev1.Secret), old.(*corev1.Secret)
	errs := apimachineryvalidation.ValidateObjectMetaUpdate(&secret.ObjectMeta, &oldSecret.ObjectMeta, metadataPath)
	errs = append(errs, validateImmutable(secret.Type, oldSecret.Type, field.NewPath("type"))...)
	if oldSecret.Immutable != nil && *oldSecret.Immutable {
		errs = append(errs, validateImmutableData(secret.Immutable, oldSecret.Data, secret.Data, nil, nil)...)
	}
	return append(errs, s.Validate(ctx, obj)...)
}

func (s secretStrategy) GetAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	secret, ok := obj.(*corev1.Secret)
	if !ok {
		return nil, nil, fmt.Errorf("not a secret: %T", obj)
	}
	return labels.Set(secret.Labels), s.fieldsFor(&secret.ObjectMeta, fields.Set{"type": string(secret.Type)}), nil
}

// serviceAccountStrategy: metadata and secret references.
type serviceAccountStrategy struct{ objectStrategy }

func (serviceAccountStrategy) PrepareForCreate(context.Context, runtime.Object)                 {}
func (serviceAccountStrategy) PrepareForUpdate(context.Context, runtime.Object, runtime.Object) {}

func (s serviceAccountStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	sa := obj.(*corev1.ServiceAccount)
	errs := s.validateMeta(&sa.ObjectMeta)
	for i, ref := range sa.ImagePullSecrets {
		if ref.Name == "" {
			errs = append(errs, field.Required(field.NewPath("imagePullSecrets").Index(i).Child("name"), ""))
		}
	}
	return errs
}

func (s serviceAccountStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	return append(validateMetaAccessorUpdate(obj, old), s.Validate(ctx, obj)...)
}

// endpointsStrategy: addresses must be IPs, ports valid.
type endpointsStrategy struct{ objectStrategy }

func (endpointsStrategy) Default(obj runtime.Object) {
	ep := obj.(*corev1.Endpoints)
	for i := range ep.Subsets {
		for j := range ep.Subsets[i].Ports {
			if ep.Subsets[i].Ports[j].Protocol == "" {
				ep.Subsets[i].Ports[j].Protocol = corev1.ProtocolTCP
			}
		}
	}
}

func (endpointsStrategy) PrepareForCreate(context.Context, runtime.Object)                 {}
func (endpointsStrategy) PrepareForUpdate(context.Context, runtime.Object, runtime.Object) {}

func (s endpointsStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	ep := obj.(*corev1.Endpoints)
	errs := s.validateMeta(&ep.ObjectMeta)
	for i, ss := range ep.Subsets {
		sp := field.NewPath("subsets").Index(i)
		if len(ss.Addresses) == 0 && len(ss.NotReadyAddresses) == 0 {
			errs = append(errs, field.Required(sp, "must specify `addresses` or `notReadyAddresses`"))
		}
		for j, a := range ss.Addresses {
			errs = append(errs, validateEndpointAddress(a, sp.Child("addresses").Index(j))...)
		}
		for j, a := range ss.NotReadyAddresses {
			errs = append(errs, validateEndpointAddress(a, sp.Child("notReadyAddresses").Index(j))...)
		}
		requireName := len(ss.Ports) > 1
		for j, port := range ss.Ports {
			pp := sp.Child("ports").Index(j)
			if port.Name == "" && requireName {
				errs = append(errs, field.Required(pp.Child("name"), ""))
			} else if port.Name != "" {
				errs = append(errs, validateDNSLabel(port.Name, pp.Child("name"))...)
			}
			errs = append(errs, validatePortNumber(port.Port, pp.Child("port"))...)
			errs = append(errs, validateProtocol(port.Protocol, pp.Child("protocol"))...)
		}
	}
	return errs
}

func validateEndpointAddress(a corev1.EndpointAddress, p *field.Path) field.ErrorList {
	errs := validation.IsValidIP(p.Child("ip"), a.IP)
	if a.Hostname != "" {
		errs = append(errs, validateDNSLabel(a.Hostname, p.Child("hostname"))...)
	}
	if a.NodeName != nil {
		errs = append(errs, validateDNSSubdomain(*a.NodeName, p.Child("nodeName"))...)
	}
	return errs
}

func (s endpointsStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	return append(validateMetaAccessorUpdate(obj, old), s.Validate(ctx, obj)...)
}

// nodeStrategy: a node registers with its status; later status changes go
// through nodes/status. podCIDRs and providerID are set once.
type nodeStrategy struct{ objectStrategy }

func newNodeStrategy() nodeStrategy { return nodeStrategy{objectStrategy{}} }

func (nodeStrategy) Default(obj runtime.Object) {
	node := obj.(*corev1.Node)
	if node.Status.Allocatable == nil && node.Status.Capacity != nil {
		node.Status.Allocatable = node.Status.Capacity.DeepCopy()
	}
}

// PrepareForCreate keeps status: the node agent registers with it.
func (nodeStrategy) PrepareForCreate(context.Context, runtime.Object) {}

func (nodeStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	obj.(*corev1.Node).Status = old.(*corev1.Node).Status
}

var taintPath = field.NewPath("spec", "taints")

func (s nodeStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	node := obj.(*corev1.Node)
	errs := s.validateMeta(&node.ObjectMeta)
	specPath := field.NewPath("spec")
	for i, cidr := range node.Spec.PodCIDRs {
		errs = append(errs, validation.IsValidCIDR(specPath.Child("podCIDRs").Index(i), cidr)...)
	}
	if len(node.Spec.PodCIDRs) > 2 {
		errs = append(errs, field.Invalid(specPath.Child("podCIDRs"), node.Spec.PodCIDRs, "may specify no more than one CIDR for each IP family"))
	}
	if node.Spec.PodCIDR != "" && len(node.Spec.PodCIDRs) > 0 && node.Spec.PodCIDR != node.Spec.PodCIDRs[0] {
		errs = append(errs, field.Invalid(specPath.Child("podCIDR"), node.Spec.PodCIDR, "must match the first element of `podCIDRs`"))
	}
	seen := sets.New[string]()
	for i, t := range node.Spec.Taints {
		tp := taintPath.Index(i)
		errs = append(errs, metav1validation.ValidateLabelName(t.Key, tp.Child("key"))...)
		errs = append(errs, invalidEach(tp.Child("value"), t.Value, validation.IsValidLabelValue(t.Value))...)
		errs = append(errs, validateEnum(t.Effect, taintEffects, tp.Child("effect"))...)
		key := t.Key + "/" + string(t.Effect)
		if seen.Has(key) {
			errs = append(errs, field.Duplicate(tp, fmt.Sprintf("%s=%s:%s", t.Key, t.Value, t.Effect)))
		}
		seen.Insert(key)
	}
	return errs
}

func (s nodeStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	node, oldNode := obj.(*corev1.Node), old.(*corev1.Node)
	errs := s.validateMetaUpdate(&node.ObjectMeta, &oldNode.ObjectMeta)
	errs = append(errs, s.Validate(ctx, obj)...)
	return append(errs, validateNodeSpecUpdate(node, oldNode)...)
}

func validateNodeSpecUpdate(node, oldNode *corev1.Node) field.ErrorList {
	var errs field.ErrorList
	specPath := field.NewPath("spec")
	if len(oldNode.Spec.PodCIDRs) > 0 && !equality.Semantic.DeepEqual(oldNode.Spec.PodCIDRs, node.Spec.PodCIDRs) {
		errs = append(errs, field.Forbidden(specPath.Child("podCIDRs"), "node updates may not change podCIDR except from \"\" to valid"))
	}
	if oldNode.Spec.ProviderID != "" && oldNode.Spec.ProviderID != node.Spec.ProviderID {
		errs = append(errs, field.Forbidden(specPath.Child("providerID"), "node updates may not change providerID except from \"\" to valid"))
	}
	return errs
}

func (s nodeStrategy) GetAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	node, ok := obj.(*corev1.Node)
	if !ok {
		return nil, nil, fmt.Errorf("not a node: %T", obj)
	}
	return labels.Set(node.Labels), s.fieldsFor(&node.ObjectMeta, fields.Set{
		"spec.unschedulable": strconv.FormatBool(node.Spec.Unschedulable),
	}), nil
}

// nodeStatusStrategy: the node agent's heartbeat and capacity writes.
type nodeStatusStrategy struct{}

func (nodeStatusStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	node, oldNode := obj.(*corev1.Node), old.(*corev1.Node)
	node.Spec = oldNode.Spec
}

func (nodeStatusStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	node := obj.(*corev1.Node)
	errs := validateMetaAccessorUpdate(obj, old)
	sp := field.NewPath("status")
	for i, a := range node.Status.Addresses {
		if a.Type == "" {
			errs = append(errs, field.Required(sp.Child("addresses").Index(i).Child("type"), ""))
		}
	}
	for name, q := range node.Status.Capacity {
		errs = append(errs, validateResourceQuantity(q, sp.Child("capacity").Key(string(name)))...)
	}
	for name, q := range node.Status.Allocatable {
		errs = append(errs, validateResourceQuantity(q, sp.Child("allocatable").Key(string(name)))...)
	}
	return errs
}

var limitTypes = []corev1.LimitType{corev1.LimitTypeContainer, corev1.LimitTypePersistentVolumeClaim, corev1.LimitTypePod}

// limitRangeStrategy: LimitRangeItem defaults and min <= default <= max.
type limitRangeStrategy struct{ objectStrategy }

func (limitRangeStrategy) Default(obj runtime.Object) {
	lr := obj.(*corev1.LimitRange)
	for i := range lr.Spec.Limits {
		item := &lr.Spec.Limits[i]
		if item.Type != corev1.LimitTypeContainer {
			continue
		}
		if item.Default == nil {
			item.Default = corev1.ResourceList{}
		}
		if item.DefaultRequest == nil {
			item.DefaultRequest = corev1.ResourceList{}
		}
		fillMissing(item.Default, item.Max)
		fillMissing(item.DefaultRequest, item.Default)
		fillMissing(item.DefaultRequest, item.Min)
	}
}

func fillMissing(dst, src corev1.ResourceList) {
	for name, q := range src {
		if _, ok := dst[name]; !ok {
			dst[name] = q.DeepCopy()
		}
	}
}

func (limitRangeStrategy) PrepareForCreate(context.Context, runtime.Object)                 {}
func (limitRangeStrategy) PrepareForUpdate(context.Context, runtime.Object, runtime.Object) {}

func (s limitRangeStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	lr := obj.(*corev1.LimitRange)
	errs := s.validateMeta(&lr.ObjectMeta)
	for i, item := range lr.Spec.Limits {
		ip := field.NewPath("spec", "limits").Index(i)
		errs = append(errs, validateEnum(item.Type, limitTypes, ip.Child("type"))...)
		if item.Type == corev1.LimitTypePod {
			if len(item.Default) > 0 {
				errs = append(errs, field.Forbidden(ip.Child("default"), "may not be specified when `type` is 'Pod'"))
			}
			if len(item.DefaultRequest) > 0 {
				errs = append(errs, field.Forbidden(ip.Child("defaultRequest"), "may not be specified when `type` is 'Pod'"))
			}
		}
		for _, list := range []struct {
			name string
			list corev1.ResourceList
		}{{"max", item.Max}, {"min", item.Min}, {"default", item.Default}, {"defaultRequest", item.DefaultRequest}} {
			for name, q := range list.list {
				errs = append(errs, validateResourceName(name, ip.Child(list.name).Key(string(name)))...)
				errs = append(errs, validateResourceQuantity(q, ip.Child(list.name).Key(string(name)))...)
			}
		}
		for name, min := range item.Min {
			if max, ok := item.Max[name]; ok && min.Cmp(max) > 0 {
				errs = append(errs, field.Invalid(ip.Child("min").Key(string(name)), min.String(), fmt.Sprintf("min value %s is greater than max value %s", min.String(), max.String())))
			}
		}
		for name, def := range item.Default {
			if max, ok := item.Max[name]; ok && def.Cmp(max) > 0 {
				errs = append(errs, field.Invalid(ip.Child("default").Key(string(name)), def.String(), fmt.Sprintf("default value %s is greater than max value %s", def.String(), max.String())))
			}
			if req, ok := item.DefaultRequest[name]; ok && req.Cmp(def) > 0 {
				errs = append(errs, field.Invalid(ip.Child("defaultRequest").Key(string(name)), req.String(), fmt.Sprintf("default request value %s is greater than default limit value %s", req.String(), def.String())))
			}
		}
		for name, req := range item.DefaultRequest {
			if min, ok := item.Min[name]; ok && min.Cmp(req) > 0 {
				errs = append(errs, field.Invalid(ip.Child("defaultRequest").Key(string(name)), req.String(), fmt.Sprintf("min value %s is greater than default request value %s", min.String(), req.String())))
			}
		}
	}
	return errs
}

func (s limitRangeStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	return append(validateMetaAccessorUpdate(obj, old), s.Validate(ctx, obj)...)
}

var quotaScopes = []corev1.ResourceQuotaScope{
	corev1.ResourceQuotaScopeBestEffort, corev1.ResourceQuotaScopeCrossNamespacePodAffinity, corev1.ResourceQuotaScopeNotBestEffort,
	corev1.ResourceQuotaScopeNotTerminating, corev1.ResourceQuotaScopePriorityClass, corev1.ResourceQuotaScopeTerminating,
	corev1.ResourceQuotaScopeVolumeAttributesClass,
}

// resourceQuotaStrategy: hard limits are valid quantities; status belongs
// to the quota controller.
type resourceQuotaStrategy struct{ objectStrategy }

func (s resourceQuotaStrategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	rq := obj.(*corev1.ResourceQuota)
	errs := s.validateMeta(&rq.ObjectMeta)
	return append(errs, validateQuotaSpec(&rq.Spec, field.NewPath("spec"))...)
}

func validateQuotaSpec(spec *corev1.ResourceQuotaSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for name, q := range spec.Hard {
		hp := p.Child("hard").Key(string(name))
		errs = append(errs, validateResourceName(name, hp)...)
		errs = append(errs, validateResourceQuantity(q, hp)...)
	}
	for i, scope := range spec.Scopes {
		errs = append(errs, validateEnum(scope, quotaScopes, p.Child("scopes").Index(i))...)
	}
	if spec.ScopeSelector != nil {
		for i, expr := range spec.ScopeSelector.MatchExpressions {
			errs = append(errs, validateEnum(expr.ScopeName, quotaScopes, p.Child("scopeSelector", "matchExpressions").Index(i).Child("scopeName"))...)
		}
	}
	return errs
}

func (s resourceQuotaStrategy) ValidateUpdate(ctx context.Context, obj, old runtime.Object) field.ErrorList {
	return append(validateMetaAccessorUpdate(obj, old), s.Validate(ctx, obj)...)
}

func validateQuotaStatus(obj, _ runtime.Object) field.ErrorList {
	rq := obj.(*corev1.ResourceQuota)
	var errs field.ErrorList
	for name, q := range rq.Status.Hard {
		errs = append(errs, validateResourceQuantity(q, field.NewPath("status", "hard").Key(string(name)))...)
	}
	for name, q := range rq.Status.Used {
		errs = append(errs, validateResourceQuantity(q, field.NewPath("status", "used").Key(string(name)))...)
	}
	return errs
}

// validatePathSegmentName is the weakest name rule: anything that fits in a
// URL path segment (used by types upstream does not validate further).
func validatePathSegmentName(name string, prefix bool) []string {
	return path.ValidatePathSegmentName(name, prefix)
}
