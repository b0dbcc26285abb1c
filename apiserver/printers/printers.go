// Package printers turns API objects into the metav1.Table that clients such
// as `kubectl get` ask for with `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`.
//
// The columns, their order, types, priorities and cell formats follow
// kube-apiserver's built-in printers, so that kubectl's output against Tower
// reads exactly as it does against Kubernetes. Like kube-apiserver, the server
// always produces every column (priority 0 and the `-o wide` priority 1 ones)
// and leaves it to the client to hide what it does not want.
package printers

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// ConvertToTable builds the Table for one object or a list (a *XxxList or any
// object with an Items slice). Types without dedicated columns get the default
// table: Name and Created At.
func ConvertToTable(ctx context.Context, obj runtime.Object, opts *metav1.TableOptions) (*metav1.Table, error) {
	if c, ok := tableConvertorFrom(ctx); ok {
		return c.ConvertToTable(ctx, obj, opts)
	}
	return convertToTable(ctx, obj, opts, time.Now())
}

// printer renders rows of one item type. row fills Cells (and Conditions
// where the type has them); the caller attaches the object.
type printer struct {
	columns []metav1.TableColumnDefinition
	row     func(obj runtime.Object, now time.Time) (metav1.TableRow, error)
}

// cellPrinter adapts a typed function producing a row's cells.
func cellPrinter[T runtime.Object](columns []metav1.TableColumnDefinition, cells func(T, time.Time) []any) printer {
	return rowPrinter(columns, func(obj T, now time.Time) (metav1.TableRow, error) {
		return metav1.TableRow{Cells: cells(obj, now)}, nil
	})
}

// rowPrinter adapts a typed function producing a whole row.
func rowPrinter[T runtime.Object](columns []metav1.TableColumnDefinition, row func(T, time.Time) (metav1.TableRow, error)) printer {
	return printer{
		columns: columns,
		row: func(obj runtime.Object, now time.Time) (metav1.TableRow, error) {
			typed, ok := obj.(T)
			if !ok {
				var want T
				return metav1.TableRow{}, fmt.Errorf("table printer for %T cannot print %T", want, obj)
			}
			return row(typed, now)
		},
	}
}

func convertToTable(ctx context.Context, obj runtime.Object, opts *metav1.TableOptions, now time.Time) (*metav1.Table, error) {
	items := []runtime.Object{obj}
	prototype := obj
	if meta.IsListType(obj) {
		var err error
		if items, err = meta.ExtractList(obj); err != nil {
			return nil, fmt.Errorf("extracting items of %T for table output: %w", obj, err)
		}
		prototype = listItemPrototype(obj)
	}

	p, ok := printerFor(prototype)
	if !ok {
		logr.FromContextOrDiscard(ctx).V(5).Info("no dedicated table columns, using the default table", "type", fmt.Sprintf("%T", obj))
		p = defaultPrinter()
	}

	table := &metav1.Table{Rows: make([]metav1.TableRow, 0, len(items))}
	for _, item := range items {
		row, err := p.row(item, now)
		if err != nil {
			return nil, err
		}
		row.Object = runtime.RawExtension{Object: item}
		table.Rows = append(table.Rows, row)
	}
	if opts == nil || !opts.NoHeaders {
		table.ColumnDefinitions = p.columns
	}

	if list, err := meta.ListAccessor(obj); err == nil {
		table.ResourceVersion = list.GetResourceVersion()
		table.Continue = list.GetContinue()
		table.RemainingItemCount = list.GetRemainingItemCount()
	} else if common, err := meta.CommonAccessor(obj); err == nil {
		table.ResourceVersion = common.GetResourceVersion()
	}
	return table, nil
}

// listItemPrototype returns a zero item of the list's Items element type, so
// that even an empty list is rendered with its type's columns. Lists whose
// items are not one concrete struct type (metav1.List) get nil, and with it
// the default table.
func listItemPrototype(list runtime.Object) runtime.Object {
	itemsPtr, err := meta.GetItemsPtr(list)
	if err != nil {
		return nil
	}
	elem := reflect.TypeOf(itemsPtr).Elem().Elem()
	if elem.Kind() != reflect.Struct {
		return nil
	}
	prototype, _ := reflect.New(elem).Interface().(runtime.Object)
	return prototype
}

// defaultPrinter is the table kube-apiserver serves for resources without
// printers of their own: the name and the creation time as an RFC 3339 date.
func defaultPrinter() printer {
	return printer{
		columns: []metav1.TableColumnDefinition{
			{Name: "Name", Type: "string", Format: "name", Description: objectMetaDoc("name")},
			{Name: "Created At", Type: "date", Description: objectMetaDoc("creationTimestamp")},
		},
		row: func(obj runtime.Object, _ time.Time) (metav1.TableRow, error) {
			accessor, err := meta.Accessor(obj)
			if err != nil {
				return metav1.TableRow{}, notAcceptable(obj)
			}
			return metav1.TableRow{Cells: []any{
				accessor.GetName(),
				accessor.GetCreationTimestamp().UTC().Format(time.RFC3339),
			}}, nil
		},
	}
}

// notAcceptable is kube-apiserver's answer (406) when an object has no
// metadata to put in a table.
func notAcceptable(obj runtime.Object) error {
	kind := obj.GetObjectKind().GroupVersionKind().Kind
	if kind == "" {
		kind = fmt.Sprintf("%T", obj)
	}
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status:  metav1.StatusFailure,
		Code:    http.StatusNotAcceptable,
		Reason:  metav1.StatusReason("NotAcceptable"),
		Message: fmt.Sprintf("the resource %s does not support being converted to a Table", kind),
	}}
}

// printerFor picks the columns for an object's type. Types that kube-apiserver
// serves with the default table (LimitRange, Role, ClusterRole, CRDs among
// them) have none here.
func printerFor(obj runtime.Object) (printer, bool) {
	switch obj.(type) {
	case *corev1.Namespace:
		return cellPrinter(namespaceColumns(), namespaceCells), true
	case *corev1.ConfigMap:
		return cellPrinter(configMapColumns(), configMapCells), true
	case *corev1.Secret:
		return cellPrinter(secretColumns(), secretCells), true
	case *corev1.ServiceAccount:
		return cellPrinter(serviceAccountColumns(), serviceAccountCells), true
	case *corev1.Pod:
		return rowPrinter(podColumns(), podRow), true
	case *corev1.Service:
		return cellPrinter(serviceColumns(), serviceCells), true
	case *corev1.Endpoints:
		return cellPrinter(endpointsColumns(), endpointsCells), true
	case *corev1.Node:
		return cellPrinter(nodeColumns(), nodeCells), true
	case *corev1.Event:
		return cellPrinter(eventColumns(), coreEventCells), true
	case *corev1.ResourceQuota:
		return cellPrinter(resourceQuotaColumns(), resourceQuotaCells), true
	case *appsv1.Deployment:
		return cellPrinter(deploymentColumns(), deploymentCells), true
	case *appsv1.ReplicaSet:
		return cellPrinter(replicaSetColumns(), replicaSetCells), true
	case *appsv1.StatefulSet:
		return cellPrinter(statefulSetColumns(), statefulSetCells), true
	case *appsv1.DaemonSet:
		return cellPrinter(daemonSetColumns(), daemonSetCells), true
	case *appsv1.ControllerRevision:
		return rowPrinter(controllerRevisionColumns(), controllerRevisionRow), true
	case *batchv1.Job:
		return cellPrinter(jobColumns(), jobCells), true
	case *batchv1.CronJob:
		return cellPrinter(cronJobColumns(), cronJobCells), true
	case *coordinationv1.Lease:
		return cellPrinter(leaseColumns(), leaseCells), true
	case *discoveryv1.EndpointSlice:
		return cellPrinter(endpointSliceColumns(), endpointSliceCells), true
	case *eventsv1.Event:
		return cellPrinter(eventColumns(), eventsV1EventCells), true
	case *rbacv1.RoleBinding:
		return cellPrinter(roleBindingColumns("roleBinding"), roleBindingCells), true
	case *rbacv1.ClusterRoleBinding:
		return cellPrinter(roleBindingColumns("clusterRoleBinding"), clusterRoleBindingCells), true
	case *schedulingv1.PriorityClass:
		return cellPrinter(priorityClassColumns(), priorityClassCells), true
	case *policyv1.PodDisruptionBudget:
		return cellPrinter(podDisruptionBudgetColumns(), podDisruptionBudgetCells), true
	case *admissionregistrationv1.MutatingWebhookConfiguration:
		return cellPrinter(webhookConfigurationColumns(), mutatingWebhookConfigurationCells), true
	case *admissionregistrationv1.ValidatingWebhookConfiguration:
		return cellPrinter(webhookConfigurationColumns(), validatingWebhookConfigurationCells), true
	case *admissionregistrationv1.ValidatingAdmissionPolicy:
		return cellPrinter(admissionPolicyColumns("Validations", "Validations indicates the number of validation rules defined in this configuration"), validatingAdmissionPolicyCells), true
	case *admissionregistrationv1.MutatingAdmissionPolicy:
		return cellPrinter(admissionPolicyColumns("Mutations", "Mutation indicates the number of mutations rules defined in this configuration"), mutatingAdmissionPolicyCells), true
	case *admissionregistrationv1.ValidatingAdmissionPolicyBinding:
		return cellPrinter(admissionPolicyBindingColumns(), validatingAdmissionPolicyBindingCells), true
	case *admissionregistrationv1.MutatingAdmissionPolicyBinding:
		return cellPrinter(admissionPolicyBindingColumns(), mutatingAdmissionPolicyBindingCells), true
	}
	return printer{}, false
}
