package printers

import (
	"context"
	"reflect"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

var now = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// ago is a timestamp the given duration before now.
func ago(d time.Duration) metav1.Time { return metav1.NewTime(now.Add(-d)) }

func microAgo(d time.Duration) metav1.MicroTime { return metav1.NewMicroTime(now.Add(-d)) }

func objectMeta(name string, created time.Duration) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: "default", CreationTimestamp: ago(created)}
}

func convert(t *testing.T, obj runtime.Object) *metav1.Table {
	t.Helper()
	table, err := convertToTable(context.Background(), obj, nil, now)
	if err != nil {
		t.Fatalf("convertToTable(%T): %v", obj, err)
	}
	return table
}

func TestColumns(t *testing.T) {
	tests := []struct {
		obj  runtime.Object
		want []string
		wide []string
	}{
		{&corev1.Namespace{}, []string{"Name", "Status", "Age"}, nil},
		{&corev1.ConfigMap{}, []string{"Name", "Data", "Age"}, nil},
		{&corev1.Secret{}, []string{"Name", "Type", "Data", "Age"}, nil},
		{&corev1.ServiceAccount{}, []string{"Name", "Age"}, nil},
		{&corev1.Pod{}, []string{"Name", "Ready", "Status", "Restarts", "Age"}, []string{"IP", "Node", "Nominated Node", "Readiness Gates"}},
		{&corev1.Service{}, []string{"Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age"}, []string{"Selector"}},
		{&corev1.Endpoints{}, []string{"Name", "Endpoints", "Age"}, nil},
		{&corev1.Node{}, []string{"Name", "Status", "Roles", "Age", "Version"}, []string{"Internal-IP", "External-IP", "OS-Image", "Kernel-Version", "Container-Runtime"}},
		{&corev1.Event{}, []string{"Last Seen", "Type", "Reason", "Object", "Message"}, []string{"Subobject", "Source", "First Seen", "Count", "Name"}},
		{&eventsv1.Event{}, []string{"Last Seen", "Type", "Reason", "Object", "Message"}, []string{"Subobject", "Source", "First Seen", "Count", "Name"}},
		{&corev1.LimitRange{}, []string{"Name", "Created At"}, nil},
		{&corev1.ResourceQuota{}, []string{"Name", "Request", "Limit", "Age"}, nil},
		{&appsv1.Deployment{}, []string{"Name", "Ready", "Up-to-date", "Available", "Age"}, []string{"Containers", "Images", "Selector"}},
		{&appsv1.ReplicaSet{}, []string{"Name", "Desired", "Current", "Ready", "Age"}, []string{"Containers", "Images", "Selector"}},
		{&appsv1.StatefulSet{}, []string{"Name", "Ready", "Age"}, []string{"Containers", "Images"}},
		{&appsv1.DaemonSet{}, []string{"Name", "Desired", "Current", "Ready", "Up-to-date", "Available", "Node Selector", "Age"}, []string{"Containers", "Images", "Selector"}},
		{&appsv1.ControllerRevision{}, []string{"Name", "Controller", "Revision", "Age"}, nil},
		{&batchv1.Job{}, []string{"Name", "Status", "Completions", "Duration", "Age"}, []string{"Containers", "Images", "Selector"}},
		{&batchv1.CronJob{}, []string{"Name", "Schedule", "Timezone", "Suspend", "Active", "Last Schedule", "Age"}, []string{"Containers", "Images", "Selector"}},
		{&coordinationv1.Lease{}, []string{"Name", "Holder", "Age"}, nil},
		{&discoveryv1.EndpointSlice{}, []string{"Name", "AddressType", "Ports", "Endpoints", "Age"}, nil},
		{&metav1.PartialObjectMetadata{}, []string{"Name", "Created At"}, nil},
		{&rbacv1.Role{}, []string{"Name", "Created At"}, nil},
		{&rbacv1.RoleBinding{}, []string{"Name", "Role", "Age"}, []string{"Users", "Groups", "ServiceAccounts"}},
		{&rbacv1.ClusterRoleBinding{}, []string{"Name", "Role", "Age"}, []string{"Users", "Groups", "ServiceAccounts"}},
		{&policyv1.PodDisruptionBudget{}, []string{"Name", "Min Available", "Max Unavailable", "Allowed Disruptions", "Age"}, nil},
		{&admissionregistrationv1.MutatingWebhookConfiguration{}, []string{"Name", "Webhooks", "Age"}, nil},
		{&admissionregistrationv1.ValidatingWebhookConfiguration{}, []string{"Name", "Webhooks", "Age"}, nil},
		{&admissionregistrationv1.ValidatingAdmissionPolicy{}, []string{"Name", "Validations", "ParamKind", "Age"}, nil},
		{&admissionregistrationv1.MutatingAdmissionPolicy{}, []string{"Name", "Mutations", "ParamKind", "Age"}, nil},
		{&admissionregistrationv1.ValidatingAdmissionPolicyBinding{}, []string{"Name", "PolicyName", "ParamRef", "Age"}, nil},
		{&admissionregistrationv1.MutatingAdmissionPolicyBinding{}, []string{"Name", "PolicyName", "ParamRef", "Age"}, nil},
	}
	for _, tt := range tests {
		t.Run(reflect.TypeOf(tt.obj).Elem().String(), func(t *testing.T) {
			table := convert(t, tt.obj)
			var normal, wide []string
			for _, c := range table.ColumnDefinitions {
				if c.Description == "" {
					t.Errorf("column %q has no description", c.Name)
				}
				if c.Priority == 0 {
					normal = append(normal, c.Name)
				} else {
					wide = append(wide, c.Name)
				}
			}
			if !reflect.DeepEqual(normal, tt.want) {
				t.Errorf("columns = %q, want %q", normal, tt.want)
			}
			if !reflect.DeepEqual(wide, tt.wide) {
				t.Errorf("wide columns = %q, want %q", wide, tt.wide)
			}
			if len(table.Rows) != 1 || len(table.Rows[0].Cells) != len(table.ColumnDefinitions) {
				t.Fatalf("want one row with a cell per column, got %d rows for %d columns", len(table.Rows), len(table.ColumnDefinitions))
			}
			if table.Rows[0].Object.Object != tt.obj {
				t.Errorf("row object = %p, want the converted object %p", table.Rows[0].Object.Object, tt.obj)
			}
		})
	}
}

func TestColumnFormats(t *testing.T) {
	table := convert(t, &corev1.Pod{})
	if got := table.ColumnDefinitions[0]; got.Format != "name" || got.Type != "string" {
		t.Errorf("pod name column = %+v, want type string, format name", got)
	}
	table = convert(t, &corev1.LimitRange{})
	if got := table.ColumnDefinitions[1]; got.Type != "date" {
		t.Errorf("default Created At column type = %q, want date", got.Type)
	}
}

// running is a container status running and ready.
func running(name string) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}
}

func waiting(name, reason string, restarts int32) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, RestartCount: restarts, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason}}}
}

func terminated(name, reason string, exitCode int32) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: reason, ExitCode: exitCode}}}
}

func containers(names ...string) []corev1.Container {
	var cs []corev1.Container
	for _, n := range names {
		cs = append(cs, corev1.Container{Name: n, Image: n + ":1"})
	}
	return cs
}

func TestPodCells(t *testing.T) {
	restarted := running("sidecar")
	restarted.Ready = false
	restarted.RestartCount = 3
	restarted.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{FinishedAt: ago(5 * time.Minute)}

	tests := []struct {
		name           string
		pod            corev1.Pod
		ready, status  string
		restarts       string
		wantConditions bool
	}{
		{
			name: "one of two ready with three restarts",
			pod: corev1.Pod{
				Spec: corev1.PodSpec{Containers: containers("app", "sidecar")},
				Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{
					running("app"), restarted,
				}},
			},
			ready: "1/2", status: "Running", restarts: "3 (5m ago)",
		},
		{
			name: "crash loop",
			pod: corev1.Pod{
				Spec: corev1.PodSpec{Containers: containers("app")},
				Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{
					waiting("app", "CrashLoopBackOff", 7),
				}},
			},
			ready: "0/1", status: "CrashLoopBackOff", restarts: "7",
		},
		{
			name: "first container in spec order decides the reason",
			pod: corev1.Pod{
				Spec: corev1.PodSpec{Containers: containers("a", "b")},
				Status: corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{
					waiting("a", "ImagePullBackOff", 0), waiting("b", "ContainerCreating", 0),
				}},
			},
			ready: "0/2", status: "ImagePullBackOff", restarts: "0",
		},
		{
			name: "second init container running",
			pod: corev1.Pod{
				Spec: corev1.PodSpec{InitContainers: containers("init-a", "init-b"), Containers: containers("app")},
				Status: corev1.PodStatus{Phase: corev1.PodPending, InitContainerStatuses: []corev1.ContainerStatus{
					terminated("init-a", "Completed", 0), running("init-b"),
				}, ContainerStatuses: []corev1.ContainerStatus{waiting("app", "PodInitializing", 0)}},
			},
			ready: "0/1", status: "Init:1/2", restarts: "0",
		},
		{
			name: "init container crash looping",
			pod: corev1.Pod{
				Spec: corev1.PodSpec{InitContainers: containers("init"), Containers: containers("app")},
				Status: corev1.PodStatus{Phase: corev1.PodPending, InitContainerStatuses: []corev1.ContainerStatus{
					waiting("init", "CrashLoopBackOff", 2),
				}},
			},
			ready: "0/1", status: "Init:CrashLoopBackOff", restarts: "2",
		},
		{
			name: "init container failed without reason",
			pod: corev1.Pod{
				Spec: corev1.PodSpec{InitContainers: containers("init"), Containers: containers("app")},
				Status: corev1.PodStatus{Phase: corev1.PodPending, InitContainerStatuses: []corev1.ContainerStatus{
					terminated("init", "", 3),
				}},
			},
			ready: "0/1", status: "Init:ExitCode:3", restarts: "0",
		},
		{
			name: "started sidecar counts as a container",
			pod: corev1.Pod{
				Spec: corev1.PodSpec{
					InitContainers: []corev1.Container{{Name: "proxy", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways)}},
					Containers:     containers("app"),
				},
				Status: corev1.PodStatus{
					Phase:                 corev1.PodRunning,
					Conditions:            []corev1.PodCondition{{Type: corev1.PodInitialized, Status: corev1.ConditionTrue}},
					InitContainerStatuses: []corev1.ContainerStatus{{Name: "proxy", Ready: true, Started: ptr.To(true), State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}},
					ContainerStatuses:     []corev1.ContainerStatus{running("app")},
				},
			},
			ready: "2/2", status: "Running", restarts: "0",
		},
		{
			name: "completed",
			pod: corev1.Pod{
				Spec: corev1.PodSpec{Containers: containers("app")},
				Status: corev1.PodStatus{Phase: corev1.PodSucceeded, ContainerStatuses: []corev1.ContainerStatus{
					terminated("app", "Completed", 0),
				}},
			},
			ready: "0/1", status: "Completed", restarts: "0", wantConditions: true,
		},
		{
			name: "one container completed, another still running but pod not ready",
			pod: corev1.Pod{
				Spec: corev1.PodSpec{Containers: containers("job", "server")},
				Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{
					terminated("job", "Completed", 0), running("server"),
				}},
			},
			ready: "1/2", status: "NotReady", restarts: "0",
		},
		{
			name: "killed by signal",
			pod: corev1.Pod{
				Spec: corev1.PodSpec{Containers: containers("app")},
				Status: corev1.PodStatus{Phase: corev1.PodFailed, ContainerStatuses: []corev1.ContainerStatus{
					{Name: "app", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Signal: 9, ExitCode: 137}}},
				}},
			},
			ready: "0/1", status: "Signal:9", restarts: "0", wantConditions: true,
		},
		{
			name: "terminating",
			pod: corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: ptr.To(ago(time.Second))},
				Spec:       corev1.PodSpec{Containers: containers("app")},
				Status:     corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{running("app")}},
			},
			ready: "1/1", status: "Terminating", restarts: "0",
		},
		{
			name: "node lost",
			pod: corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: ptr.To(ago(time.Second))},
				Spec:       corev1.PodSpec{Containers: containers("app")},
				Status:     corev1.PodStatus{Phase: corev1.PodRunning, Reason: "NodeLost"},
			},
			ready: "0/1", status: "Unknown", restarts: "0",
		},
		{
			name: "evicted",
			pod: corev1.Pod{
				Spec:   corev1.PodSpec{Containers: containers("app")},
				Status: corev1.PodStatus{Phase: corev1.PodFailed, Reason: "Evicted"},
			},
			ready: "0/1", status: "Evicted", restarts: "0", wantConditions: true,
		},
		{
			name: "scheduling gated",
			pod: corev1.Pod{
				Spec: corev1.PodSpec{Containers: containers("app")},
				Status: corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{
					{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonSchedulingGated},
				}},
			},
			ready: "0/1", status: "SchedulingGated", restarts: "0",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.pod.ObjectMeta.Name = "web"
			tt.pod.ObjectMeta.CreationTimestamp = ago(3 * time.Hour)
			row := convert(t, &tt.pod).Rows[0]
			want := []any{"web", tt.ready, tt.status, tt.restarts, "3h", "<none>", "<none>", "<none>", "<none>"}
			if !reflect.DeepEqual(row.Cells, want) {
				t.Errorf("cells = %#v\nwant    %#v", row.Cells, want)
			}
			if got := len(row.Conditions) > 0; got != tt.wantConditions {
				t.Errorf("row conditions = %v, want Completed condition: %v", row.Conditions, tt.wantConditions)
			}
		})
	}
}

func TestPodWideCells(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: objectMeta("web", 90*time.Second),
		Spec: corev1.PodSpec{
			NodeName:       "gate-1",
			Containers:     containers("app"),
			ReadinessGates: []corev1.PodReadinessGate{{ConditionType: "example.com/lb"}, {ConditionType: "example.com/dns"}},
		},
		Status: corev1.PodStatus{
			Phase:             corev1.PodRunning,
			PodIPs:            []corev1.PodIP{{IP: "10.0.0.7"}, {IP: "fd00::7"}},
			NominatedNodeName: "gate-2",
			Conditions: []corev1.PodCondition{
				{Type: "example.com/lb", Status: corev1.ConditionTrue},
				{Type: "example.com/dns", Status: corev1.ConditionFalse},
			},
			ContainerStatuses: []corev1.ContainerStatus{running("app")},
		},
	}
	want := []any{"web", "1/1", "Running", "0", "90s", "10.0.0.7", "gate-1", "gate-2", "1/2"}
	if got := convert(t, pod).Rows[0].Cells; !reflect.DeepEqual(got, want) {
		t.Errorf("cells = %#v\nwant    %#v", got, want)
	}
}

func TestCells(t *testing.T) {
	lbService := &corev1.Service{
		ObjectMeta: objectMeta("lb", time.Hour),
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer, ClusterIP: "10.96.0.20",
			Ports: []corev1.ServicePort{{Port: 443, NodePort: 31443, Protocol: corev1.ProtocolTCP}},
		},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{
			{IP: "192.0.2.9"}, {Hostname: "lb.example.com"}, {IP: "192.0.2.1"},
		}}},
	}
	tests := []struct {
		name string
		obj  runtime.Object
		want []any
	}{
		{
			name: "namespace",
			obj:  &corev1.Namespace{ObjectMeta: objectMeta("prod", 48*time.Hour), Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive}},
			want: []any{"prod", "Active", "2d"},
		},
		{
			name: "configmap counts data and binary data",
			obj: &corev1.ConfigMap{ObjectMeta: objectMeta("cfg", 10*time.Minute),
				Data: map[string]string{"a": "1", "b": "2"}, BinaryData: map[string][]byte{"c": {1}}},
			want: []any{"cfg", int64(3), "10m"},
		},
		{
			name: "secret",
			obj: &corev1.Secret{ObjectMeta: objectMeta("tls", 5*time.Second), Type: corev1.SecretTypeTLS,
				Data: map[string][]byte{"tls.crt": nil, "tls.key": nil}},
			want: []any{"tls", "kubernetes.io/tls", int64(2), "5s"},
		},
		{
			name: "service account",
			obj:  &corev1.ServiceAccount{ObjectMeta: objectMeta("default", 400*24*time.Hour)},
			want: []any{"default", "400d"},
		},
		{
			name: "NodePort service",
			obj: &corev1.Service{
				ObjectMeta: objectMeta("web", 2*time.Hour),
				Spec: corev1.ServiceSpec{
					Type: corev1.ServiceTypeNodePort, ClusterIP: "10.96.0.10", ClusterIPs: []string{"10.96.0.10"},
					Ports: []corev1.ServicePort{
						{Port: 80, NodePort: 30080, Protocol: corev1.ProtocolTCP},
						{Port: 53, NodePort: 30053, Protocol: corev1.ProtocolUDP},
					},
					Selector: map[string]string{"app": "web"},
				},
			},
			want: []any{"web", "NodePort", "10.96.0.10", "<none>", "80:30080/TCP,53:30053/UDP", "120m", "app=web"},
		},
		{
			name: "headless service without ports",
			obj: &corev1.Service{
				ObjectMeta: objectMeta("db", time.Hour),
				Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: "None"},
			},
			want: []any{"db", "ClusterIP", "None", "<none>", "<none>", "60m", "<none>"},
		},
		{
			name: "load balancer lists ingress points sorted",
			obj:  lbService,
			want: []any{"lb", "LoadBalancer", "10.96.0.20", "192.0.2.1,192.0.2.9,lb.example.com", "443:31443/TCP", "60m", "<none>"},
		},
		{
			name: "load balancer still pending",
			obj: &corev1.Service{
				ObjectMeta: objectMeta("lb", time.Minute),
				Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ClusterIP: "10.96.0.21"},
			},
			want: []any{"lb", "LoadBalancer", "10.96.0.21", "<pending>", "<none>", "60s", "<none>"},
		},
		{
			name: "external name service",
			obj: &corev1.Service{
				ObjectMeta: objectMeta("ext", time.Minute),
				Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.com"},
			},
			want: []any{"ext", "ExternalName", "<none>", "example.com", "<none>", "60s", "<none>"},
		},
		{
			name: "endpoints beyond three are summarised",
			obj: &corev1.Endpoints{
				ObjectMeta: objectMeta("web", time.Minute),
				Subsets: []corev1.EndpointSubset{{
					Addresses: []corev1.EndpointAddress{{IP: "10.0.0.1"}, {IP: "10.0.0.2"}},
					Ports:     []corev1.EndpointPort{{Port: 80}, {Port: 443}},
				}},
			},
			want: []any{"web", "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more...", "60s"},
		},
		{
			name: "endpoints without subsets",
			obj:  &corev1.Endpoints{ObjectMeta: objectMeta("web", time.Minute)},
			want: []any{"web", "<none>", "60s"},
		},
		{
			name: "cordoned control-plane node",
			obj: &corev1.Node{
				ObjectMeta: metav1.ObjectMeta{Name: "tower-1", CreationTimestamp: ago(26 * time.Hour), Labels: map[string]string{
					"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "gate",
				}},
				Spec: corev1.NodeSpec{Unschedulable: true},
				Status: corev1.NodeStatus{
					Conditions: []corev1.NodeCondition{{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse}, {Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
					Addresses:  []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: "tower-1"}, {Type: corev1.NodeInternalIP, Address: "192.168.1.10"}},
					NodeInfo:   corev1.NodeSystemInfo{KubeletVersion: "v1.37.2", OSImage: "Debian GNU/Linux 12 (bookworm)", KernelVersion: "6.18.0", ContainerRuntimeVersion: "containerd://2.4.2"},
				},
			},
			want: []any{"tower-1", "Ready,SchedulingDisabled", "control-plane,gate", "26h", "v1.37.2", "192.168.1.10", "<none>", "Debian GNU/Linux 12 (bookworm)", "6.18.0", "containerd://2.4.2"},
		},
		{
			name: "node without status",
			obj:  &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "new"}},
			want: []any{"new", "Unknown", "<none>", "<unknown>", "", "<none>", "<none>", "<unknown>", "<unknown>", "<unknown>"},
		},
		{
			name: "core event",
			obj: &corev1.Event{
				ObjectMeta:     objectMeta("web.17a", time.Hour),
				InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "web", FieldPath: "spec.containers{app}"},
				Type:           corev1.EventTypeWarning, Reason: "BackOff", Message: "Back-off restarting failed container\n",
				Source:         corev1.EventSource{Component: "kubelet", Host: "gate-1"},
				FirstTimestamp: ago(10 * time.Minute), LastTimestamp: ago(30 * time.Second), Count: 12,
			},
			want: []any{"30s", "Warning", "BackOff", "pod/web", "spec.containers{app}", "kubelet, gate-1", "Back-off restarting failed container", "10m", int64(12), "web.17a"},
		},
		{
			name: "events.k8s.io singleton event",
			obj: &eventsv1.Event{
				ObjectMeta: objectMeta("web.17b", time.Minute),
				EventTime:  microAgo(45 * time.Second), ReportingController: "tower/scheduler", ReportingInstance: "tower-1",
				Regarding: corev1.ObjectReference{Kind: "Pod", Name: "web"}, Type: corev1.EventTypeNormal,
				Reason: "Scheduled", Note: "Successfully assigned default/web to gate-1",
			},
			want: []any{"45s", "Normal", "Scheduled", "pod/web", "", "tower/scheduler, tower-1", "Successfully assigned default/web to gate-1", "45s", int64(1), "web.17b"},
		},
		{
			name: "events.k8s.io series",
			obj: &eventsv1.Event{
				ObjectMeta: objectMeta("node.17c", time.Hour),
				EventTime:  microAgo(time.Hour), ReportingController: "kubelet",
				Regarding: corev1.ObjectReference{Kind: "Node"}, Type: corev1.EventTypeNormal, Reason: "Starting",
				Series: &eventsv1.EventSeries{Count: 4, LastObservedTime: microAgo(2 * time.Minute)},
			},
			want: []any{"2m", "Normal", "Starting", "node", "", "kubelet", "", "60m", int64(4), "node.17c"},
		},
		{
			name: "resource quota splits requests and limits",
			obj: &corev1.ResourceQuota{
				ObjectMeta: objectMeta("compute", time.Hour),
				Status: corev1.ResourceQuotaStatus{
					Hard: corev1.ResourceList{"pods": resource.MustParse("10"), "requests.cpu": resource.MustParse("4"), "limits.memory": resource.MustParse("8Gi")},
					Used: corev1.ResourceList{"pods": resource.MustParse("3"), "requests.cpu": resource.MustParse("500m")},
				},
			},
			want: []any{"compute", "pods: 3/10, requests.cpu: 500m/4", "limits.memory: 0/8Gi", "60m"},
		},
		{
			name: "limit range gets the default table",
			obj:  &corev1.LimitRange{ObjectMeta: objectMeta("limits", time.Hour)},
			want: []any{"limits", "2026-11-24T11:00:00Z"},
		},
		{
			name: "deployment two of three ready",
			obj: &appsv1.Deployment{
				ObjectMeta: objectMeta("web", 5*time.Minute),
				Spec: appsv1.DeploymentSpec{
					Replicas: ptr.To[int32](3),
					Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
					Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: containers("nginx", "sidecar")}},
				},
				Status: appsv1.DeploymentStatus{ReadyReplicas: 2, UpdatedReplicas: 3, AvailableReplicas: 2},
			},
			want: []any{"web", "2/3", int64(3), int64(2), "5m", "nginx,sidecar", "nginx:1,sidecar:1", "app=web"},
		},
		{
			name: "deployment with an invalid selector",
			obj: &appsv1.Deployment{
				ObjectMeta: objectMeta("bad", time.Minute),
				Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
					{Key: "app", Operator: "Sometimes"},
				}}},
			},
			want: []any{"bad", "0/0", int64(0), int64(0), "60s", "", "", "<invalid>"},
		},
		{
			name: "replicaset",
			obj: &appsv1.ReplicaSet{
				ObjectMeta: objectMeta("web-5d4f", 5*time.Minute),
				Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](3), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
					Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: containers("nginx")}}},
				Status: appsv1.ReplicaSetStatus{Replicas: 3, ReadyReplicas: 1},
			},
			want: []any{"web-5d4f", int64(3), int64(3), int64(1), "5m", "nginx", "nginx:1", "app=web"},
		},
		{
			name: "statefulset",
			obj: &appsv1.StatefulSet{
				ObjectMeta: objectMeta("db", 5*time.Minute),
				Spec:       appsv1.StatefulSetSpec{Replicas: ptr.To[int32](3), Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: containers("postgres")}}},
				Status:     appsv1.StatefulSetStatus{ReadyReplicas: 3},
			},
			want: []any{"db", "3/3", "5m", "postgres", "postgres:1"},
		},
		{
			name: "daemonset",
			obj: &appsv1.DaemonSet{
				ObjectMeta: objectMeta("proxy", 5*time.Minute),
				Spec: appsv1.DaemonSetSpec{
					Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "proxy"}},
					Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: containers("proxy"), NodeSelector: map[string]string{"kubernetes.io/os": "linux"}}},
				},
				Status: appsv1.DaemonSetStatus{DesiredNumberScheduled: 3, CurrentNumberScheduled: 3, NumberReady: 2, UpdatedNumberScheduled: 3, NumberAvailable: 2},
			},
			want: []any{"proxy", int64(3), int64(3), int64(2), int64(3), int64(2), "kubernetes.io/os=linux", "5m", "proxy", "proxy:1", "app=proxy"},
		},
		{
			name: "controller revision",
			obj: &appsv1.ControllerRevision{
				ObjectMeta: metav1.ObjectMeta{Name: "proxy-7c9", CreationTimestamp: ago(time.Minute), OwnerReferences: []metav1.OwnerReference{
					{APIVersion: "apps/v1", Kind: "DaemonSet", Name: "proxy", Controller: ptr.To(true)},
				}},
				Revision: 2,
			},
			want: []any{"proxy-7c9", "daemonset.apps/proxy", int64(2), "60s"},
		},
		{
			name: "completed job",
			obj: &batchv1.Job{
				ObjectMeta: objectMeta("pi", 10*time.Minute),
				Spec: batchv1.JobSpec{Completions: ptr.To[int32](3), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"batch.kubernetes.io/controller-uid": "abc"}},
					Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: containers("pi")}}},
				Status: batchv1.JobStatus{
					Succeeded: 3, StartTime: ptr.To(ago(10 * time.Minute)), CompletionTime: ptr.To(ago(10*time.Minute - 47*time.Second)),
					Conditions: []batchv1.JobCondition{
						{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue},
						{Type: batchv1.JobComplete, Status: corev1.ConditionTrue},
					},
				},
			},
			want: []any{"pi", "Complete", "3/3", "47s", "10m", "pi", "pi:1", "batch.kubernetes.io/controller-uid=abc"},
		},
		{
			name: "running parallel job",
			obj: &batchv1.Job{
				ObjectMeta: objectMeta("work", 3*time.Minute),
				Spec:       batchv1.JobSpec{Parallelism: ptr.To[int32](4)},
				Status:     batchv1.JobStatus{Succeeded: 1, StartTime: ptr.To(ago(3 * time.Minute))},
			},
			want: []any{"work", "Running", "1/1 of 4", "3m", "3m", "", "", "<none>"},
		},
		{
			name: "suspended job not started",
			obj: &batchv1.Job{
				ObjectMeta: objectMeta("later", time.Minute),
				Status:     batchv1.JobStatus{Conditions: []batchv1.JobCondition{{Type: batchv1.JobSuspended, Status: corev1.ConditionTrue}}},
			},
			want: []any{"later", "Suspended", "0/1", "", "60s", "", "", "<none>"},
		},
		{
			name: "cronjob",
			obj: &batchv1.CronJob{
				ObjectMeta: objectMeta("backup", 48*time.Hour),
				Spec: batchv1.CronJobSpec{Schedule: "0 3 * * *", Suspend: ptr.To(false),
					JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: containers("backup")}}}}},
				Status: batchv1.CronJobStatus{Active: []corev1.ObjectReference{{Name: "backup-1"}}, LastScheduleTime: ptr.To(ago(9 * time.Hour))},
			},
			want: []any{"backup", "0 3 * * *", "<none>", "False", int64(1), "9h", "2d", "backup", "backup:1", "<none>"},
		},
		{
			name: "lease",
			obj: &coordinationv1.Lease{
				ObjectMeta: objectMeta("gate-1", time.Hour),
				Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptr.To("gate-1")},
			},
			want: []any{"gate-1", "gate-1", "60m"},
		},
		{
			name: "endpointslice",
			obj: &discoveryv1.EndpointSlice{
				ObjectMeta:  objectMeta("web-abcde", time.Hour),
				AddressType: discoveryv1.AddressTypeIPv4,
				Ports:       []discoveryv1.EndpointPort{{Port: ptr.To[int32](80)}, {Name: ptr.To("metrics")}},
				Endpoints: []discoveryv1.Endpoint{
					{Addresses: []string{"10.0.0.1"}}, {Addresses: []string{"10.0.0.2"}}, {Addresses: []string{"10.0.0.3"}}, {Addresses: []string{"10.0.0.4"}},
				},
			},
			want: []any{"web-abcde", "IPv4", "80,metrics", "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...", "60m"},
		},
		{
			name: "role binding",
			obj: &rbacv1.RoleBinding{
				ObjectMeta: objectMeta("readers", time.Hour),
				RoleRef:    rbacv1.RoleRef{Kind: "ClusterRole", Name: "view"},
				Subjects: []rbacv1.Subject{
					{Kind: rbacv1.UserKind, Name: "alice"}, {Kind: rbacv1.UserKind, Name: "bob"},
					{Kind: rbacv1.GroupKind, Name: "devs"},
					{Kind: rbacv1.ServiceAccountKind, Namespace: "ci", Name: "runner"},
				},
			},
			want: []any{"readers", "ClusterRole/view", "60m", "alice, bob", "devs", "ci/runner"},
		},
		{
			name: "pod disruption budget",
			obj: &policyv1.PodDisruptionBudget{
				ObjectMeta: objectMeta("web", time.Hour),
				Spec:       policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromString("50%"))},
				Status:     policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: 1},
			},
			want: []any{"web", "50%", "N/A", int64(1), "60m"},
		},
		{
			name: "validating admission policy binding",
			obj: &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
				ObjectMeta: metav1.ObjectMeta{Name: "replicas", CreationTimestamp: ago(time.Hour)},
				Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
					PolicyName: "max-replicas", ParamRef: &admissionregistrationv1.ParamRef{Name: "limits"},
				},
			},
			want: []any{"replicas", "max-replicas", "*/limits", "60m"},
		},
		{
			name: "validating admission policy",
			obj: &admissionregistrationv1.ValidatingAdmissionPolicy{
				ObjectMeta: metav1.ObjectMeta{Name: "max-replicas", CreationTimestamp: ago(time.Hour)},
				Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
					ParamKind:   &admissionregistrationv1.ParamKind{APIVersion: "v1", Kind: "ConfigMap"},
					Validations: []admissionregistrationv1.Validation{{Expression: "true"}},
				},
			},
			want: []any{"max-replicas", int64(1), "v1/ConfigMap", "60m"},
		},
		{
			name: "empty endpointslice",
			obj:  &discoveryv1.EndpointSlice{ObjectMeta: objectMeta("web-empty", time.Hour), AddressType: discoveryv1.AddressTypeIPv6},
			want: []any{"web-empty", "IPv6", "<unset>", "<unset>", "60m"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := convert(t, tt.obj).Rows[0].Cells; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("cells = %#v\nwant    %#v", got, tt.want)
			}
		})
	}
}

func TestAges(t *testing.T) {
	tests := []struct {
		created metav1.Time
		want    string
	}{
		{metav1.Time{}, "<unknown>"},
		{ago(0), "0s"},
		{ago(119 * time.Second), "119s"},
		{ago(7*time.Minute + 30*time.Second), "7m30s"},
		{ago(3*time.Hour + 20*time.Minute), "3h20m"},
		{ago(-time.Hour), "<invalid>"},
	}
	for _, tt := range tests {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns", CreationTimestamp: tt.created}}
		if got := convert(t, ns).Rows[0].Cells[2]; got != tt.want {
			t.Errorf("age of %v = %q, want %q", tt.created, got, tt.want)
		}
	}
}

func TestList(t *testing.T) {
	list := &corev1.PodList{
		ListMeta: metav1.ListMeta{ResourceVersion: "42", Continue: "token", RemainingItemCount: ptr.To[int64](7)},
		Items: []corev1.Pod{
			{ObjectMeta: objectMeta("a", time.Minute), Spec: corev1.PodSpec{Containers: containers("app")}},
			{ObjectMeta: objectMeta("b", time.Minute), Spec: corev1.PodSpec{Containers: containers("app")}},
		},
	}
	table := convert(t, list)
	if table.ResourceVersion != "42" || table.Continue != "token" || table.RemainingItemCount == nil || *table.RemainingItemCount != 7 {
		t.Errorf("list meta = %+v, want the list's resourceVersion, continue and remainingItemCount", table.ListMeta)
	}
	if len(table.ColumnDefinitions) != 9 {
		t.Errorf("got %d columns, want the 9 pod columns", len(table.ColumnDefinitions))
	}
	if len(table.Rows) != 2 {
		t.Fatalf("got %d rows, want 2", len(table.Rows))
	}
	for i, row := range table.Rows {
		if row.Object.Object != &list.Items[i] {
			t.Errorf("row %d object = %p, want the list item %p", i, row.Object.Object, &list.Items[i])
		}
	}
}

func TestEmptyListHasItsTypeColumns(t *testing.T) {
	table := convert(t, &appsv1.DeploymentList{ListMeta: metav1.ListMeta{ResourceVersion: "9"}})
	if len(table.Rows) != 0 || len(table.ColumnDefinitions) != 8 || table.ColumnDefinitions[1].Name != "Ready" {
		t.Errorf("table = %+v, want no rows and the deployment columns", table)
	}
	if table.ResourceVersion != "9" {
		t.Errorf("resourceVersion = %q, want 9", table.ResourceVersion)
	}
}

func TestSingleObjectCarriesResourceVersion(t *testing.T) {
	table := convert(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns", ResourceVersion: "17"}})
	if table.ResourceVersion != "17" {
		t.Errorf("resourceVersion = %q, want 17", table.ResourceVersion)
	}
}

func TestPartialObjectMetadataList(t *testing.T) {
	list := &metav1.PartialObjectMetadataList{
		ListMeta: metav1.ListMeta{ResourceVersion: "5"},
		Items: []metav1.PartialObjectMetadata{
			{ObjectMeta: metav1.ObjectMeta{Name: "web", CreationTimestamp: metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("CET", 3600)))}},
		},
	}
	table, err := ConvertToTable(context.Background(), list, &metav1.TableOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []any{"web", "2026-01-02T02:04:05Z"}
	if len(table.Rows) != 1 || !reflect.DeepEqual(table.Rows[0].Cells, want) {
		t.Fatalf("rows = %+v, want one row with cells %v", table.Rows, want)
	}
	if table.Rows[0].Object.Object != &list.Items[0] || table.ResourceVersion != "5" {
		t.Errorf("row object or resourceVersion wrong: %+v", table)
	}
}

func TestNoHeaders(t *testing.T) {
	table, err := ConvertToTable(context.Background(), &corev1.Namespace{}, &metav1.TableOptions{NoHeaders: true})
	if err != nil {
		t.Fatal(err)
	}
	if table.ColumnDefinitions != nil || len(table.Rows) != 1 {
		t.Errorf("table = %+v, want rows without column definitions", table)
	}
}

func TestObjectWithoutMetadataIsNotAcceptable(t *testing.T) {
	_, err := ConvertToTable(context.Background(), &metav1.Status{}, nil)
	if !apierrors.IsNotAcceptable(err) {
		t.Errorf("err = %v, want a NotAcceptable status error", err)
	}
}

func TestControllerRevisionWithMalformedOwnerFails(t *testing.T) {
	cr := &appsv1.ControllerRevision{ObjectMeta: metav1.ObjectMeta{Name: "x", OwnerReferences: []metav1.OwnerReference{
		{APIVersion: "a/b/c", Kind: "DaemonSet", Name: "proxy", Controller: ptr.To(true)},
	}}}
	if _, err := ConvertToTable(context.Background(), cr, nil); err == nil {
		t.Error("want an error for an unparseable owner apiVersion")
	}
}

func TestUnstructuredListGetsDefaultTable(t *testing.T) {
	list := &unstructured.UnstructuredList{Object: map[string]any{"metadata": map[string]any{"resourceVersion": "3"}}}
	list.Items = []unstructured.Unstructured{{Object: map[string]any{
		"apiVersion": "example.com/v1", "kind": "Widget",
		"metadata": map[string]any{"name": "w", "creationTimestamp": "2026-11-24T10:00:00Z"},
	}}}
	table := convert(t, list)
	want := []any{"w", "2026-11-24T10:00:00Z"}
	if len(table.Rows) != 1 || !reflect.DeepEqual(table.Rows[0].Cells, want) || table.ResourceVersion != "3" {
		t.Errorf("table = %+v, want one default row %v at resourceVersion 3", table, want)
	}
}
