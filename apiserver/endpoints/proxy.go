package endpoints

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/proxy"
	"k8s.io/apimachinery/pkg/util/validation/field"
	tunnel "k8s.io/apiserver/pkg/util/proxy"
	"k8s.io/streaming/pkg/httpstream/wsstream"

	"tower.dev/tower/apiserver/storage"
)

// defaultKubeletPort is where a node agent listens when its Node does not
// publish a port.
const defaultKubeletPort = 10250

// nodeAddressPreference is the order in which Node addresses are tried
// when dialing its agent (kubeadm's --kubelet-preferred-address-types).
var nodeAddressPreference = []corev1.NodeAddressType{
	corev1.NodeInternalIP, corev1.NodeInternalDNS, corev1.NodeHostName, corev1.NodeExternalIP, corev1.NodeExternalDNS,
}

// NodeSubresources serves the pod subresources node agents answer,
// pods/{name}/log, exec, attach and portforward, by proxying to the agent of the
// pod's node, as kube-apiserver does with its --kubelet-* flags.
type NodeSubresources struct {
	Scope *Scope
	// Pods and Nodes are the stores of the pod and of its node (for the
	// node's address and port).
	Pods, Nodes *Endpoint
	// Transport dials node agents with the API server's client
	// certificate (NewKubeletTransport).
	Transport http.RoundTripper
}

// NewKubeletTransport makes the transport to node agents: it presents the
// client certificate (certFile/keyFile, kube-apiserver's
// --kubelet-client-certificate/--kubelet-client-key) and verifies node
// serving certificates against caFile (--kubelet-certificate-authority).
// Without caFile they are not verified, as kube-apiserver does: node
// agents sign their own serving certificates by default.
func NewKubeletTransport(certFile, keyFile, caFile string) (http.RoundTripper, error) {
	config := &tls.Config{MinVersion: tls.VersionTLS12}
	if certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("loading the kubelet client certificate: %w", err)
		}
		config.Certificates = []tls.Certificate{cert}
	}
	if caFile != "" {
		data, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("reading the kubelet certificate authority: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(data) {
			return nil, fmt.Errorf("kubelet certificate authority %s holds no PEM certificate", caFile)
		}
		config.RootCAs = pool
	} else {
		config.InsecureSkipVerify = true //nolint:gosec // kube-apiserver's behaviour without --kubelet-certificate-authority
	}
	return &http.Transport{
		TLSClientConfig:     config,
		DialContext:         (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 10,
		IdleConnTimeout:     90 * time.Second,
	}, nil
}

// Serves reports whether info is a pods/{name}/log, exec, attach or
// portforward request.
func (p *NodeSubresources) Serves(info *RequestInfo) bool {
	_, streaming := streamingSubresources[info.Subresource]
	return (info.Subresource == "log" || streaming) && info.Resource == "pods" && info.GroupVersion.Group == "" && info.GroupVersion.Version == "v1"
}

// Serve answers GET pods/{name}/log by streaming the container's log from
// the agent of the pod's node, and pods/{name}/exec, attach and
// portforward (GET for WebSocket, POST for SPDY) by proxying the upgraded
// connection to it.
func (p *NodeSubresources) Serve(w http.ResponseWriter, r *http.Request, info *RequestInfo) {
	q := &request{Endpoint: p.Pods, scope: p.Scope, info: info, w: w, r: r}
	_, streaming := streamingSubresources[info.Subresource]
	switch {
	case streaming && (info.Verb == "get" || info.Verb == "create"):
		p.upgrade(r.Context(), q)
	case info.Subresource == "log" && info.Verb == "get":
		p.serve(r.Context(), q)
	default:
		q.fail(apierrors.NewMethodNotSupported(schema.GroupResource{Resource: "pods/" + info.Subresource}, info.Verb))
	}
}

// podLogOptions are the PodLogOptions query parameters.
type podLogOptions struct {
	container  string
	follow     bool
	previous   bool
	timestamps bool
	// The optional ones are kept as given, to be passed on unchanged.
	tailLines, limitBytes, sinceSeconds *int64
	sinceTime                           *metav1.Time
}

// parsePodLogOptions decodes and validates the query as PodLogOptions;
// core/v1's url.Values conversions live in kubernetes itself, not in a
// library the server can import.
func parsePodLogOptions(query url.Values, podName string) (*podLogOptions, error) {
	opts := &podLogOptions{container: query.Get("container")}
	var errs field.ErrorList
	boolParam := func(name string) bool {
		if !query.Has(name) || query.Get(name) == "" {
			return false
		}
		v, err := strconv.ParseBool(query.Get(name))
		if err != nil {
			errs = append(errs, field.Invalid(field.NewPath(name), query.Get(name), "must be a boolean"))
		}
		return v
	}
	intParam := func(name string) *int64 {
		if !query.Has(name) {
			return nil
		}
		v, err := strconv.ParseInt(query.Get(name), 10, 64)
		if err != nil {
			errs = append(errs, field.Invalid(field.NewPath(name), query.Get(name), "must be an integer"))
			return nil
		}
		return &v
	}
	opts.follow = boolParam("follow")
	opts.previous = boolParam("previous")
	opts.timestamps = boolParam("timestamps")
	opts.tailLines = intParam("tailLines")
	opts.limitBytes = intParam("limitBytes")
	opts.sinceSeconds = intParam("sinceSeconds")
	if query.Has("sinceTime") {
		t, err := time.Parse(time.RFC3339, query.Get("sinceTime"))
		if err != nil {
			errs = append(errs, field.Invalid(field.NewPath("sinceTime"), query.Get("sinceTime"), "must be an RFC3339 time"))
		} else {
			opts.sinceTime = &metav1.Time{Time: t}
		}
	}
	if opts.tailLines != nil && *opts.tailLines < 0 {
		errs = append(errs, field.Invalid(field.NewPath("tailLines"), *opts.tailLines, "must be greater than or equal to 0"))
	}
	if opts.limitBytes != nil && *opts.limitBytes < 1 {
		errs = append(errs, field.Invalid(field.NewPath("limitBytes"), *opts.limitBytes, "must be greater than 0"))
	}
	if opts.sinceSeconds != nil && opts.sinceTime != nil {
		errs = append(errs, field.Forbidden(field.NewPath(""), "at most one of `sinceTime` or `sinceSeconds` may be specified"))
	}
	if opts.sinceSeconds != nil && *opts.sinceSeconds < 1 {
		errs = append(errs, field.Invalid(field.NewPath("sinceSeconds"), *opts.sinceSeconds, "must be greater than 0"))
	}
	if len(errs) > 0 {
		return nil, apierrors.NewInvalid(schema.GroupKind{Kind: "PodLogOptions"}, podName, errs)
	}
	return opts, nil
}

// query is what the node agent's /containerLogs expects.
func (o *podLogOptions) query() url.Values {
	v := url.Values{}
	setBool := func(name string, b bool) {
		if b {
			v.Set(name, "true")
		}
	}
	setInt := func(name string, i *int64) {
		if i != nil {
			v.Set(name, strconv.FormatInt(*i, 10))
		}
	}
	setBool("follow", o.follow)
	setBool("previous", o.previous)
	setBool("timestamps", o.timestamps)
	setInt("tailLines", o.tailLines)
	setInt("limitBytes", o.limitBytes)
	setInt("sinceSeconds", o.sinceSeconds)
	if o.sinceTime != nil {
		v.Set("sinceTime", o.sinceTime.UTC().Format(time.RFC3339))
	}
	return v
}

func (p *NodeSubresources) serve(ctx context.Context, q *request) {
	name := q.info.Name
	opts, err := parsePodLogOptions(q.r.URL.Query(), name)
	if err != nil {
		q.fail(err)
		return
	}
	pod := &corev1.Pod{}
	if err := q.Store.Get(ctx, q.key(name), storage.GetOptions{}, pod); err != nil {
		q.fail(apiError(err, q.gr(), name))
		return
	}
	container, err := logContainer(pod, opts.container)
	if err != nil {
		q.fail(err)
		return
	}
	if err := checkContainerStarted(pod, container); err != nil {
		q.fail(err)
		return
	}
	location, err := p.nodeURL(ctx, pod.Spec.NodeName)
	if err != nil {
		q.fail(err)
		return
	}
	location.Path = "/containerLogs/" + url.PathEscape(pod.Namespace) + "/" + url.PathEscape(pod.Name) + "/" + url.PathEscape(container)
	location.RawQuery = opts.query().Encode()
	q.streamFromNode(ctx, p.Transport, location)
}

// logContainer picks the container whose log is wanted: the one named,
// else the pod's only container.
func logContainer(pod *corev1.Pod, requested string) (string, error) {
	if requested == "" {
		switch len(pod.Spec.Containers) {
		case 1:
			return pod.Spec.Containers[0].Name, nil
		case 0:
			return "", apierrors.NewBadRequest(fmt.Sprintf("a container name must be specified for pod %s", pod.Name))
		}
		names := containerNames(pod.Spec.Containers)
		message := fmt.Sprintf("a container name must be specified for pod %s, choose one of: %s", pod.Name, names)
		if inits := containerNames(pod.Spec.InitContainers); len(inits) > 0 {
			message += fmt.Sprintf(" or one of the init containers: %s", inits)
		}
		return "", apierrors.NewBadRequest(message)
	}
	for _, list := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for _, c := range list {
			if c.Name == requested {
				return requested, nil
			}
		}
	}
	for _, c := range pod.Spec.EphemeralContainers {
		if c.Name == requested {
			return requested, nil
		}
	}
	return "", apierrors.NewBadRequest(fmt.Sprintf("container %s is not valid for pod %s", requested, pod.Name))
}

func containerNames(containers []corev1.Container) []string {
	names := make([]string, 0, len(containers))
	for _, c := range containers {
		names = append(names, c.Name)
	}
	return names
}

// checkContainerStarted refuses a pod that is not on a node yet, and a
// container that never ran, with the reason it waits, as users see it
// from a kubelet.
func checkContainerStarted(pod *corev1.Pod, container string) error {
	if pod.Spec.NodeName == "" {
		return apierrors.NewBadRequest(fmt.Sprintf("pod %s does not have a host assigned", pod.Name))
	}
	statuses := append(append(append([]corev1.ContainerStatus{}, pod.Status.ContainerStatuses...), pod.Status.InitContainerStatuses...), pod.Status.EphemeralContainerStatuses...)
	for _, s := range statuses {
		if s.Name != container {
			continue
		}
		if s.State.Waiting != nil && s.LastTerminationState.Terminated == nil && s.RestartCount == 0 {
			return apierrors.NewBadRequest(fmt.Sprintf("container %q in pod %q is waiting to start: %s", container, pod.Name, s.State.Waiting.Reason))
		}
		return nil
	}
	if pod.Status.Phase == corev1.PodPending {
		return apierrors.NewBadRequest(fmt.Sprintf("container %q in pod %q is waiting to start: ContainerCreating", container, pod.Name))
	}
	return nil
}

// nodeURL is the base URL of the agent of the node named nodeName.
func (p *NodeSubresources) nodeURL(ctx context.Context, nodeName string) (*url.URL, error) {
	node := &corev1.Node{}
	if err := p.Nodes.Store.Get(ctx, p.Nodes.KeyPrefix+"/"+nodeName, storage.GetOptions{}, node); err != nil {
		return nil, apiError(err, p.Nodes.Resource.GroupResource(), nodeName)
	}
	host := ""
	for _, t := range nodeAddressPreference {
		for _, a := range node.Status.Addresses {
			if a.Type == t && a.Address != "" {
				host = a.Address
				break
			}
		}
		if host != "" {
			break
		}
	}
	if host == "" {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("no preferred addresses found; known addresses: %v", node.Status.Addresses))
	}
	port := int(node.Status.DaemonEndpoints.KubeletEndpoint.Port)
	if port <= 0 {
		port = defaultKubeletPort
	}
	return &url.URL{Scheme: "https", Host: net.JoinHostPort(host, strconv.Itoa(port))}, nil
}

// maxNodeErrorBytes bounds how much of a node's error answer is read.
const maxNodeErrorBytes = 16 * 1024

// streamFromNode copies the node's answer at location to the client as it
// arrives, so that followed logs reach it line by line.
func (q *request) streamFromNode(ctx context.Context, transport http.RoundTripper, location *url.URL) {
	log := logr.FromContextOrDiscard(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, location.String(), nil)
	if err != nil {
		q.fail(apierrors.NewInternalError(fmt.Errorf("building node request: %w", err)))
		return
	}
	resp, err := transport.RoundTrip(req)
	if err != nil {
		q.fail(apierrors.NewInternalError(fmt.Errorf("reaching node agent: %w", err)))
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxNodeErrorBytes))
		q.fail(nodeError(resp.StatusCode, strings.TrimSpace(string(body))))
		return
	}
	contentType := resp.Header.Get("Content-Type")
	if contentType == "" {
		contentType = "text/plain"
	}
	q.w.Header().Set("Content-Type", contentType)
	q.w.WriteHeader(http.StatusOK)
	flusher := http.NewResponseController(q.w)
	buf := make([]byte, 32*1024)
	for {
		n, readErr := resp.Body.Read(buf)
		if n > 0 {
			if _, err := q.w.Write(buf[:n]); err != nil {
				return
			}
			if err := flusher.Flush(); err != nil {
				return
			}
		}
		if readErr != nil {
			if !errors.Is(readErr, io.EOF) && ctx.Err() == nil {
				log.V(2).Info("node log stream ended early", "url", location.String(), "err", readErr.Error())
			}
			return
		}
	}
}

// nodeError turns a node agent's refusal into the Status a client sees.
func nodeError(code int, message string) error {
	if message == "" {
		message = http.StatusText(code)
	}
	switch code {
	case http.StatusBadRequest:
		return apierrors.NewBadRequest(message)
	case http.StatusNotFound:
		return newStatusError(http.StatusNotFound, metav1.StatusReasonNotFound, message)
	case http.StatusUnauthorized, http.StatusForbidden:
		return apierrors.NewInternalError(fmt.Errorf("the node agent refused the API server (%d): %s; check --kubelet-client-certificate", code, message))
	default:
		return apierrors.NewInternalError(errors.New(message))
	}
}

// streamingSubresources are the pod subresources whose connections are
// upgraded and proxied to the node agent, with the agent's path for each.
var streamingSubresources = map[string]string{"exec": "/exec/", "attach": "/attach/", "portforward": "/portForward/"}

// upgrade proxies pods/{name}/exec, attach and portforward to the node
// agent; the connection is upgraded end to end (WebSocket or SPDY,
// whichever the client asked). A WebSocket port-forward, kubectl's
// default, tunnels SPDY frames: it is turned into a SPDY upgrade to the
// agent, as kube-apiserver does.
func (p *NodeSubresources) upgrade(ctx context.Context, q *request) {
	name := q.info.Name
	query := q.r.URL.Query()
	pod := &corev1.Pod{}
	if err := q.Store.Get(ctx, q.key(name), storage.GetOptions{}, pod); err != nil {
		q.fail(apiError(err, q.gr(), name))
		return
	}
	subresource := q.info.Subresource
	path := "/" + url.PathEscape(pod.Namespace) + "/" + url.PathEscape(pod.Name)
	if subresource == "portforward" {
		if err := validatePorts(query["ports"]); err != nil {
			q.fail(err)
			return
		}
	} else {
		container, err := logContainer(pod, query.Get("container"))
		if err != nil {
			q.fail(err)
			return
		}
		path += "/" + url.PathEscape(container)
		flag := func(name string) bool {
			v, _ := strconv.ParseBool(query.Get(name))
			return v
		}
		if !flag("stdin") && !flag("stdout") && !flag("stderr") {
			q.fail(apierrors.NewBadRequest("you must specify at least 1 of stdin, stdout, stderr"))
			return
		}
		if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			verb := "exec into"
			if subresource == "attach" {
				verb = "attach to"
			}
			q.fail(apierrors.NewBadRequest(fmt.Sprintf("cannot %s a container in a completed pod; current phase is %s", verb, pod.Status.Phase)))
			return
		}
	}
	if pod.Spec.NodeName == "" {
		q.fail(apierrors.NewBadRequest(fmt.Sprintf("pod %s does not have a host assigned", pod.Name)))
		return
	}
	location, err := p.nodeURL(ctx, pod.Spec.NodeName)
	if err != nil {
		q.fail(err)
		return
	}
	location.Path = streamingSubresources[subresource] + strings.TrimPrefix(path, "/")
	location.RawQuery = q.r.URL.RawQuery
	var handler http.Handler
	upgradeAware := proxy.NewUpgradeAwareHandler(location, p.Transport, false, true, proxyErrors{q})
	upgradeAware.UseLocationHost = true
	handler = upgradeAware
	if subresource == "portforward" && wsstream.IsWebSocketRequestWithTunnelingProtocol(q.r) {
		handler = tunnel.NewTunnelingHandler(upgradeAware)
	}
	handler.ServeHTTP(hijackable(q.w), q.r)
}

// validatePorts checks the ports a port-forward names, when it names any
// (SPDY clients name theirs per stream).
func validatePorts(ports []string) error {
	for _, list := range ports {
		for _, port := range strings.Split(list, ",") {
			n, err := strconv.ParseUint(strings.TrimSpace(port), 10, 16)
			if err != nil || n == 0 {
				return apierrors.NewBadRequest(fmt.Sprintf("invalid port %q: must be between 1 and 65535", port))
			}
		}
	}
	return nil
}

// hijackable finds, under the filters' wrappers, the writer whose
// connection the upgraded stream takes over.
func hijackable(w http.ResponseWriter) http.ResponseWriter {
	for {
		if _, ok := w.(http.Hijacker); ok {
			return w
		}
		wrapper, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return w
		}
		w = wrapper.Unwrap()
	}
}

// proxyErrors answers a failed proxy with a Status.
type proxyErrors struct{ q *request }

func (e proxyErrors) Error(_ http.ResponseWriter, _ *http.Request, err error) {
	e.q.fail(apierrors.NewInternalError(fmt.Errorf("proxying to the node agent: %w", err)))
}
