package registry

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Messages kube-apiserver uses verbatim; clients and tests match on them.
const (
	msgImmutable          = "field is immutable"
	msgSelectorMismatch   = "`selector` does not match template `labels`"
	msgNonNegative        = "must be greater than or equal to 0"
	msgPositive           = "must be greater than 0"
	maxConfigAndSecretLen = 1024 * 1024
)

var supportedPortProtocols = []string{string(corev1.ProtocolSCTP), string(corev1.ProtocolTCP), string(corev1.ProtocolUDP)}

func validateNonNegative(v int64, p *field.Path) field.ErrorList {
	if v < 0 {
		return field.ErrorList{field.Invalid(p, v, msgNonNegative)}
	}
	return nil
}

func validateNonNegativePtr[T ~int32 | ~int64](v *T, p *field.Path) field.ErrorList {
	if v == nil {
		return nil
	}
	return validateNonNegative(int64(*v), p)
}

func validateImmutable(newVal, oldVal any, p *field.Path) field.ErrorList {
	return apimachineryvalidation.ValidateImmutableField(newVal, oldVal, p)
}

// invalidEach turns validator messages into Invalid errors at p.
func invalidEach(p *field.Path, value any, msgs []string) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range msgs {
		errs = append(errs, field.Invalid(p, value, msg))
	}
	return errs
}

func validateDNSLabel(v string, p *field.Path) field.ErrorList {
	return invalidEach(p, v, validation.IsDNS1123Label(v))
}

func validateDNSSubdomain(v string, p *field.Path) field.ErrorList {
	return invalidEach(p, v, validation.IsDNS1123Subdomain(v))
}

func validatePortNumber(port int32, p *field.Path) field.ErrorList {
	return invalidEach(p, port, validation.IsValidPortNum(int(port)))
}

// validatePortNumOrName accepts a port number or an IANA service name, as
// probes and service targetPorts do.
func validatePortNumOrName(port intstr.IntOrString, p *field.Path) field.ErrorList {
	switch port.Type {
	case intstr.Int:
		return invalidEach(p, port.IntValue(), validation.IsValidPortNum(port.IntValue()))
	case intstr.String:
		return invalidEach(p, port.StrVal, validation.IsValidPortName(port.StrVal))
	}
	return field.ErrorList{field.InternalError(p, fmt.Errorf("unknown type: %v", port.Type))}
}

func validateProtocol(protocol corev1.Protocol, p *field.Path) field.ErrorList {
	if protocol == "" {
		return field.ErrorList{field.Required(p, "")}
	}
	if !sets.New(supportedPortProtocols...).Has(string(protocol)) {
		return field.ErrorList{field.NotSupported(p, protocol, supportedPortProtocols)}
	}
	return nil
}

// validateEnum reports Required for "" and NotSupported for values outside
// supported (listed in the order kube-apiserver prints them).
func validateEnum[T ~string](v T, supported []T, p *field.Path) field.ErrorList {
	if v == "" {
		return field.ErrorList{field.Required(p, "")}
	}
	for _, s := range supported {
		if v == s {
			return nil
		}
	}
	return field.ErrorList{field.NotSupported(p, v, supported)}
}

// validateWorkloadSelector checks a controller's selector and that it selects
// the pod template's labels, the rules every apps/v1 workload shares.
func validateWorkloadSelector(selector *metav1.LabelSelector, templateLabels map[string]string, kind string, specPath *field.Path) field.ErrorList {
	selPath := specPath.Child("selector")
	if selector == nil {
		return field.ErrorList{field.Required(selPath, "")}
	}
	errs := metav1validation.ValidateLabelSelector(selector, metav1validation.LabelSelectorValidationOptions{}, selPath)
	if len(selector.MatchLabels)+len(selector.MatchExpressions) == 0 {
		errs = append(errs, field.Invalid(selPath, selector, "empty selector is invalid for "+kind))
	}
	sel, err := metav1.LabelSelectorAsSelector(selector)
	if err != nil {
		return append(errs, field.Invalid(selPath, selector, "invalid label selector"))
	}
	if !sel.Empty() && !sel.Matches(labels.Set(templateLabels)) {
		errs = append(errs, field.Invalid(specPath.Child("template", "metadata", "labels"), templateLabels, msgSelectorMismatch))
	}
	return errs
}

// validateIntOrPercent checks a rolling-update bound: a non-negative integer
// or a percentage.
func validateIntOrPercent(v *intstr.IntOrString, p *field.Path) field.ErrorList {
	if v == nil {
		return nil
	}
	if v.Type == intstr.String {
		if msgs := validation.IsValidPercent(v.StrVal); len(msgs) != 0 {
			return field.ErrorList{field.Invalid(p, v, "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')")}
		}
		if percent(v) < 0 {
			return field.ErrorList{field.Invalid(p, v, msgNonNegative)}
		}
		return nil
	}
	return validateNonNegative(int64(v.IntValue()), p)
}

// percent returns the numeric part of a percentage, or -1.
func percent(v *intstr.IntOrString) int {
	if v == nil || v.Type != intstr.String || !strings.HasSuffix(v.StrVal, "%") {
		return -1
	}
	var n int
	if _, err := fmt.Sscanf(strings.TrimSuffix(v.StrVal, "%"), "%d", &n); err != nil {
		return -1
	}
	return n
}

func isZeroIntOrPercent(v *intstr.IntOrString) bool {
	if v == nil {
		return true
	}
	if v.Type == intstr.Int {
		return v.IntValue() == 0
	}
	return percent(v) == 0
}

func validateNotOver100Percent(v *intstr.IntOrString, p *field.Path) field.ErrorList {
	if percent(v) > 100 {
		return field.ErrorList{field.Invalid(p, v, "must not be greater than 100%")}
	}
	return nil
}

// validateResourceQuantity rejects negative quantities.
func validateResourceQuantity(q resource.Quantity, p *field.Path) field.ErrorList {
	if q.Sign() < 0 {
		return field.ErrorList{field.Invalid(p, q.String(), msgNonNegative)}
	}
	return nil
}

// validateResourceName accepts the standard names and any qualified
// (domain-prefixed) extended resource name.
func validateResourceName(name corev1.ResourceName, p *field.Path) field.ErrorList {
	errs := invalidEach(p, name, validation.IsQualifiedName(string(name)))
	if len(errs) != 0 {
		return errs
	}
	if !strings.Contains(string(name), "/") && !standardResourceNames.Has(string(name)) &&
		!strings.HasPrefix(string(name), corev1.ResourceHugePagesPrefix) &&
		!strings.HasPrefix(string(name), corev1.DefaultResourceRequestsPrefix) {
		return field.ErrorList{field.Invalid(p, name, "must be a standard resource type or fully qualified")}
	}
	return nil
}

var standardResourceNames = sets.New(
	"cpu", "memory", "ephemeral-storage", "storage", "pods", "services", "replicationcontrollers",
	"resourcequotas", "secrets", "configmaps", "persistentvolumeclaims", "services.nodeports",
	"services.loadbalancers", "limits.cpu", "limits.memory", "limits.ephemeral-storage",
	"requests.cpu", "requests.memory", "requests.storage", "requests.ephemeral-storage",
)
