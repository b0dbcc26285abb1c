package nodeagent

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// probeState is the running result of one probe of one container run.
type probeState struct {
	lastRun   time.Time
	successes int32
	failures  int32
	ok        bool
}

// observe applies one result with the probe's thresholds and reports
// whether the probe just reached its failure threshold.
func (s *probeState) observe(p *corev1.Probe, success bool) (failed bool) {
	if success {
		s.failures = 0
		s.successes++
		if s.successes >= max(p.SuccessThreshold, 1) {
			s.ok = true
		}
		return false
	}
	s.successes = 0
	s.failures++
	if s.failures >= max(p.FailureThreshold, 1) {
		s.ok = false
		return true
	}
	return false
}

// due reports whether the probe should run now for a container started at
// started.
func (s *probeState) due(p *corev1.Probe, started, now time.Time) bool {
	if now.Sub(started) < time.Duration(p.InitialDelaySeconds)*time.Second {
		return false
	}
	period := time.Duration(max(p.PeriodSeconds, 1)) * time.Second
	return s.lastRun.IsZero() || now.Sub(s.lastRun) >= period
}

// runProbes runs the probes that are due for the pod's running
// containers: a startup probe gates the others, a liveness failure
// restarts the container, readiness decides its ready flag.
func (w *podWorker) runProbes(ctx context.Context, pod *corev1.Pod) {
	now := time.Now()
	for _, c := range longRunningContainers(pod) {
		rec, ok := w.records[c.Name]
		if !ok || rec.state.Running == nil {
			continue
		}
		started := rec.state.Running.StartedAt.Time
		if c.StartupProbe != nil && !rec.startup.ok {
			if rec.startup.due(c.StartupProbe, started, now) {
				rec.startup.lastRun = now
				if rec.startup.observe(c.StartupProbe, w.probe(ctx, pod, c, rec, c.StartupProbe)) {
					w.killForProbe(ctx, pod, c, rec, c.StartupProbe, "startup")
				}
			}
			continue
		}
		if c.LivenessProbe != nil && rec.liveness.due(c.LivenessProbe, started, now) {
			rec.liveness.lastRun = now
			if rec.liveness.observe(c.LivenessProbe, w.probe(ctx, pod, c, rec, c.LivenessProbe)) {
				w.killForProbe(ctx, pod, c, rec, c.LivenessProbe, "liveness")
				continue
			}
		}
		if c.ReadinessProbe != nil && rec.readiness.due(c.ReadinessProbe, started, now) {
			rec.readiness.lastRun = now
			rec.readiness.observe(c.ReadinessProbe, w.probe(ctx, pod, c, rec, c.ReadinessProbe))
		}
	}
}

// killForProbe stops a container whose liveness or startup probe failed;
// its exit then goes through the restart policy like any other.
func (w *podWorker) killForProbe(ctx context.Context, pod *corev1.Pod, c *corev1.Container, rec *containerRecord, p *corev1.Probe, kind string) {
	grace := gracePeriod(pod)
	if p.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*p.TerminationGracePeriodSeconds) * time.Second
	}
	logr.FromContextOrDiscard(ctx).Info("probe failed, restarting container", "container", c.Name, "probe", kind)
	if err := w.stopContainer(ctx, pod, c, rec, grace); err != nil {
		logr.FromContextOrDiscard(ctx).Error(err, "stopping container after failed probe", "container", c.Name)
		return
	}
	w.awaitExit(ctx, rec)
}

// probe runs one check and reports success.
func (w *podWorker) probe(ctx context.Context, pod *corev1.Pod, c *corev1.Container, rec *containerRecord, p *corev1.Probe) bool {
	timeout := time.Duration(max(p.TimeoutSeconds, 1)) * time.Second
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var err error
	switch {
	case p.Exec != nil:
		var code int32
		code, err = w.agent.runtime.Exec(ctx, rec.id, "probe-"+randomHex(), p.Exec.Command)
		if err == nil && code != 0 {
			err = fmt.Errorf("exit code %d", code)
		}
	case p.HTTPGet != nil:
		err = w.httpGet(ctx, pod, c, p.HTTPGet)
	case p.TCPSocket != nil:
		var port int
		if port, err = resolvePort(p.TCPSocket.Port, c); err == nil {
			var conn net.Conn
			conn, err = w.agent.network.Dial(ctx, "tcp", net.JoinHostPort(probeHost(p.TCPSocket.Host, w.podIP), strconv.Itoa(port)))
			if err == nil {
				conn.Close()
			}
		}
	case p.GRPC != nil:
		err = w.grpcProbe(ctx, p.GRPC)
	default:
		err = fmt.Errorf("probe has no handler")
	}
	if err != nil {
		logr.FromContextOrDiscard(ctx).V(2).Info("probe failed", "container", c.Name, "err", err.Error())
	}
	return err == nil
}

func probeHost(host, podIP string) string {
	if host != "" {
		return host
	}
	return podIP
}

// httpGet sends the GET of an httpGet probe or hook and fails on an
// answer outside 200-399.
func (w *podWorker) httpGet(ctx context.Context, pod *corev1.Pod, c *corev1.Container, action *corev1.HTTPGetAction) error {
	port, err := resolvePort(action.Port, c)
	if err != nil {
		return err
	}
	scheme := "http"
	if action.Scheme == corev1.URISchemeHTTPS {
		scheme = "https"
	}
	url := fmt.Sprintf("%s://%s%s", scheme, net.JoinHostPort(probeHost(action.Host, w.podIP), strconv.Itoa(port)), action.Path)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "kube-probe/tower")
	for _, h := range action.HTTPHeaders {
		req.Header.Add(h.Name, h.Value)
	}
	transport := &http.Transport{
		DialContext:       w.agent.network.Dial,
		DisableKeepAlives: true,
		// Probes check that the server answers, not who it is, as
		// kubelet's do.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{
		Transport: transport,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

func (w *podWorker) grpcProbe(ctx context.Context, action *corev1.GRPCAction) error {
	address := net.JoinHostPort(w.podIP, strconv.Itoa(int(action.Port)))
	conn, err := grpc.NewClient(address,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return w.agent.network.Dial(ctx, "tcp", addr)
		}))
	if err != nil {
		return err
	}
	defer conn.Close()
	service := ""
	if action.Service != nil {
		service = *action.Service
	}
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return err
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("gRPC health: %s", resp.GetStatus())
	}
	return nil
}

// resolvePort turns a probe's port, a number or a container port's name,
// into a number.
func resolvePort(port intstr.IntOrString, c *corev1.Container) (int, error) {
	if port.Type == intstr.Int {
		return port.IntValue(), nil
	}
	for _, p := range c.Ports {
		if p.Name == port.StrVal {
			return int(p.ContainerPort), nil
		}
	}
	return 0, fmt.Errorf("container %s has no port named %q", c.Name, port.StrVal)
}

func randomHex() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
