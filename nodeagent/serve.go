package nodeagent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/go-logr/logr"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"tower.dev/tower/nodeagent/containers"
	"tower.dev/tower/nodeagent/podnet"
	"tower.dev/tower/nodeagent/server"
)

// newServer listens on the agent's server address (in the agent's own
// network namespace, where the API server reaches it) and builds the
// server that answers there.
func (a *Agent) newServer() (net.Listener, *server.Server, error) {
	cert, err := a.servingCertificate()
	if err != nil {
		return nil, nil, err
	}
	clientCAs, err := a.clientCAs()
	if err != nil {
		return nil, nil, err
	}
	s, err := server.New(server.Config{
		PodsDir:     filepath.Join(a.cfg.RootDir, "pods"),
		Certificate: cert,
		ClientCAs:   clientCAs,
		Containers:  a,
		Exec:        a,
		Attach:      a,
		PortForward: a,
		Authorizer:  a,
	})
	if err != nil {
		return nil, nil, err
	}
	listener, err := net.Listen("tcp", a.cfg.ServerAddress)
	if err != nil {
		return nil, nil, fmt.Errorf("listening for the API server on %s: %w", a.cfg.ServerAddress, err)
	}
	a.serverPort = int32(listener.Addr().(*net.TCPAddr).Port)
	return listener, s, nil
}

func (a *Agent) servingCertificate() (tls.Certificate, error) {
	if a.cfg.ServerCertFile != "" || a.cfg.ServerKeyFile != "" {
		cert, err := tls.LoadX509KeyPair(a.cfg.ServerCertFile, a.cfg.ServerKeyFile)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("loading the node's serving certificate: %w", err)
		}
		return cert, nil
	}
	return server.SelfSignedCertificate(a.cfg.NodeName, []string{a.cfg.NodeName, a.nodeIP.String(), "localhost", "127.0.0.1"}, time.Now())
}

// clientCAs are the authorities whose client certificates the server
// accepts: the configured file, else the cluster CA the agent trusts for
// the API server (Tower signs both with one CA).
func (a *Agent) clientCAs() (*x509.CertPool, error) {
	pemData := a.cfg.RESTConfig.CAData
	file := a.cfg.ClientCAFile
	if file == "" && len(pemData) == 0 {
		file = a.cfg.RESTConfig.CAFile
	}
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("reading client CA: %w", err)
		}
		pemData = data
	}
	if len(pemData) == 0 {
		return nil, errors.New("no client CA for the node server: set one, or give the agent a kubeconfig with the cluster's CA")
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemData) {
		return nil, errors.New("client CA holds no PEM certificate")
	}
	return pool, nil
}

// ContainerRunning tells the server whether one run of a container still
// runs, so that followed logs end with it.
func (a *Agent) ContainerRunning(ctx context.Context, podUID, container string, restartCount int) bool {
	running, err := a.runtime.Running(ctx, containerID(podUID, container, int32(restartCount)))
	if err != nil {
		logr.FromContextOrDiscard(ctx).V(4).Info("checking whether a container runs", "podUID", podUID, "container", container, "err", err.Error())
	}
	return running
}

// ExecInContainer runs cmd in one run of a pod's container for the
// server's /exec.
func (a *Agent) ExecInContainer(ctx context.Context, podUID, container string, restartCount int, cmd []string, streams server.ExecStreams) (int32, error) {
	execID := fmt.Sprintf("exec-%d", time.Now().UnixNano())
	return a.runtime.ExecAttached(ctx, containerID(podUID, container, int32(restartCount)), execID, cmd, containers.ExecStreams{
		Stdin: streams.Stdin, Stdout: streams.Stdout, Stderr: streams.Stderr, TTY: streams.TTY, Resize: streams.Resize,
	})
}

// AttachContainer connects streams to one run of a pod's container for
// the server's /attach.
func (a *Agent) AttachContainer(ctx context.Context, podUID, container string, restartCount int, streams server.ExecStreams) error {
	return a.runtime.Attach(ctx, containerID(podUID, container, int32(restartCount)), containers.ExecStreams{
		Stdin: streams.Stdin, Stdout: streams.Stdout, Stderr: streams.Stderr, TTY: streams.TTY, Resize: streams.Resize,
	})
}

// PortForward connects stream to port on loopback inside the pod's
// network namespace, for the server's /portForward. The client's end of
// its data closes the write half of the connection, so that the pod sees
// end of file and still answers; the forward ends when the pod's side
// does.
func (a *Agent) PortForward(ctx context.Context, podUID string, port int32, stream io.ReadWriteCloser) error {
	netnsPath, err := a.podNetNS(ctx, podUID)
	if err != nil {
		return err
	}
	conn, err := podnet.DialInPod(ctx, netnsPath, "tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
	if err != nil {
		return err
	}
	defer conn.Close()
	go func() {
		_, _ = io.Copy(conn, stream)
		if tcp, ok := conn.(*net.TCPConn); ok {
			_ = tcp.CloseWrite()
		}
	}()
	if _, err := io.Copy(stream, conn); err != nil {
		return fmt.Errorf("copying from port %d: %w", port, err)
	}
	return nil
}

// podNetNS finds the network namespace of a pod from the labels of its
// containers.
func (a *Agent) podNetNS(ctx context.Context, podUID string) (string, error) {
	list, err := a.runtime.List(ctx, labelPodUID)
	if err != nil {
		return "", err
	}
	for _, c := range list {
		if c.Labels[labelPodUID] == podUID && c.Labels[labelNetNS] != "" {
			return c.Labels[labelNetNS], nil
		}
	}
	return "", fmt.Errorf("pod %s has no network namespace on this node", podUID)
}

// Authorize asks the API server, with a SubjectAccessReview, whether a
// client of the agent's server may reach this node's proxy subresource.
func (a *Agent) Authorize(ctx context.Context, user string, groups []string, verb string) (bool, string, error) {
	review, err := a.client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User:   user,
			Groups: groups,
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Verb: verb, Resource: "nodes", Subresource: "proxy", Name: a.cfg.NodeName,
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return false, "", fmt.Errorf("reviewing access of %s: %w", user, err)
	}
	return review.Status.Allowed, review.Status.Reason, nil
}
