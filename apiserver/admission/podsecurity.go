package admission

import (
	"context"
	"fmt"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	psadmission "k8s.io/pod-security-admission/admission"
	"k8s.io/pod-security-admission/admission/api/load"
	psapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/metrics"
	"k8s.io/pod-security-admission/policy"

	"tower.dev/tower/apiserver/authentication"
)

// PodSecurity enforces the Pod Security Standards that namespaces choose
// with their pod-security.kubernetes.io/enforce, audit and warn labels,
// using the k8s.io/pod-security-admission library kube-apiserver runs:
// enforce refuses pods, warn answers with Warning headers (also for
// workload templates), audit adds audit annotations. Nothing is exempt.
type PodSecurity struct {
	admission *psadmission.Admission
}

// NewPodSecurity builds the plugin with the default configuration
// (privileged everywhere unless a namespace says otherwise).
func NewPodSecurity(namespaces, pods Objects) (*PodSecurity, error) {
	config, err := load.LoadFromFile("")
	if err != nil {
		return nil, fmt.Errorf("pod security configuration: %w", err)
	}
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		return nil, fmt.Errorf("pod security checks: %w", err)
	}
	a := &psadmission.Admission{
		Configuration:    config,
		Evaluator:        evaluator,
		Metrics:          metrics.NewPrometheusRecorder(psapi.LatestVersion()),
		PodSpecExtractor: psadmission.DefaultPodSpecExtractor{},
		NamespaceGetter:  namespaceGetter{namespaces},
		PodLister:        podLister{pods},
	}
	if err := a.CompleteConfiguration(); err != nil {
		return nil, fmt.Errorf("pod security configuration: %w", err)
	}
	if err := a.ValidateConfiguration(); err != nil {
		return nil, fmt.Errorf("pod security configuration: %w", err)
	}
	return &PodSecurity{admission: a}, nil
}

// Validate implements Validator.
func (p *PodSecurity) Validate(ctx context.Context, a *Attributes) error {
	if a.Operation == Delete {
		return nil
	}
	// As kube-apiserver's plugin: only pods, namespaces and workloads with a
	// pod template are judged, so other writes cost no namespace lookup.
	gr := a.Resource.GroupResource()
	if gr != corev1.Resource("pods") && gr != corev1.Resource("namespaces") && !p.admission.PodSpecExtractor.HasPodSpec(gr) {
		return nil
	}
	user := ""
	if u, ok := authentication.UserFrom(ctx); ok {
		user = u.Name
	}
	resp := p.admission.Validate(ctx, &psapi.AttributesRecord{
		Name:        a.Name,
		Namespace:   a.Namespace,
		Kind:        a.Resource.GroupVersionKind(),
		Resource:    a.Resource.GroupVersionResource,
		Subresource: a.Subresource,
		Operation:   admissionv1.Operation(a.Operation),
		Object:      a.Object,
		OldObject:   a.OldObject,
		Username:    user,
	})
	for _, w := range resp.Warnings {
		a.AddWarning(w)
	}
	for k, v := range resp.AuditAnnotations {
		a.AddAnnotation("pod-security.kubernetes.io/"+k, v)
	}
	if resp.Allowed {
		return nil
	}
	status := metav1.Status{Status: metav1.StatusFailure, Code: http.StatusForbidden, Reason: metav1.StatusReasonForbidden}
	if resp.Result != nil {
		status = *resp.Result
	}
	return &apierrors.StatusError{ErrStatus: status}
}

type namespaceGetter struct{ Objects }

func (g namespaceGetter) GetNamespace(ctx context.Context, name string) (*corev1.Namespace, error) {
	ns := &corev1.Namespace{}
	return ns, g.Get(ctx, "", name, ns)
}

type podLister struct{ Objects }

func (l podLister) ListPods(ctx context.Context, namespace string) ([]*corev1.Pod, error) {
	list := &corev1.PodList{}
	if err := l.List(ctx, namespace, list); err != nil {
		return nil, err
	}
	out := make([]*corev1.Pod, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	return out, nil
}
