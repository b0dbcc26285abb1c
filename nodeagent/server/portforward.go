package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/portforward"
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/spdy"
)

// PortForwarder connects to ports inside pods for /portForward.
type PortForwarder interface {
	// PortForward connects stream to port on the loopback interface of
	// the pod's network namespace and copies both ways until the pod's
	// side is done.
	PortForward(ctx context.Context, podUID string, port int32, stream io.ReadWriteCloser) error
}

// streamCreationTimeout bounds how long the second stream of a
// port-forward pair, or the streams of an exec, may keep the client
// waiting, as kubelet's.
const streamCreationTimeout = 30 * time.Second

// spdyPingPeriod keeps idle SPDY connections alive through proxies.
const spdyPingPeriod = 5 * time.Minute

// servePortForward answers kubelet's /portForward/{namespace}/{pod} with
// SPDY (portforward.k8s.io): each forwarded connection is a pair of
// streams sharing a requestID, data and error. The API server tunnels
// kubectl's WebSocket requests into this protocol.
func (s *Server) servePortForward(w http.ResponseWriter, r *http.Request) {
	namespace, podName := r.PathValue("namespace"), r.PathValue("pod")
	if s.cfg.PortForward == nil {
		httpError(w, http.StatusNotImplemented, "port forwarding is not supported by this node")
		return
	}
	_, uid, err := s.podDir(namespace, podName)
	if err != nil {
		httpError(w, http.StatusNotFound, "pod %q not found on this node", namespace+"/"+podName)
		return
	}
	// Handshake answers a request without a protocol both sides speak.
	if _, err := httpstream.Handshake(r, w, []string{portforward.PortForwardV1Name}); err != nil {
		return
	}
	streams := make(chan httpstream.Stream)
	ctx := r.Context()
	conn := spdy.NewResponseUpgraderWithPings(spdyPingPeriod).UpgradeResponse(w, r, func(stream httpstream.Stream, _ <-chan struct{}) error {
		select {
		case streams <- stream:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	// The upgrader has answered a failed upgrade itself.
	if conn == nil {
		return
	}
	defer conn.Close()
	conn.SetIdleTimeout(execIdleTimeout)
	forwarder := &portForwardSession{
		server: s, conn: conn, podName: podName, podUID: uid,
		log:   logr.FromContextOrDiscard(ctx).WithValues("pod", namespace+"/"+podName),
		pairs: map[string]*streamPair{},
	}
	forwarder.run(ctx, streams)
}

// portForwardSession is one SPDY connection of a port-forward client.
type portForwardSession struct {
	server          *Server
	conn            httpstream.Connection
	podName, podUID string
	log             logr.Logger

	mu    sync.Mutex
	pairs map[string]*streamPair
}

// streamPair is the error and data stream of one forwarded connection.
type streamPair struct {
	requestID   string
	data, error httpstream.Stream
	expire      *time.Timer
}

func (f *portForwardSession) run(ctx context.Context, streams <-chan httpstream.Stream) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.conn.CloseChan():
			return
		case stream := <-streams:
			pair, err := f.add(stream)
			if err != nil {
				f.log.V(2).Info("refusing port-forward stream", "err", err.Error())
				_ = stream.Reset()
				continue
			}
			if pair == nil {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				f.forward(ctx, pair)
			}()
		}
	}
}

// add files stream with its requestID and returns the pair once both of
// its streams have arrived.
func (f *portForwardSession) add(stream httpstream.Stream) (*streamPair, error) {
	requestID := stream.Headers().Get(corev1.PortForwardRequestIDHeader)
	if requestID == "" {
		return nil, fmt.Errorf("stream %d has no %s header", stream.Identifier(), corev1.PortForwardRequestIDHeader)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	pair := f.pairs[requestID]
	if pair == nil {
		pair = &streamPair{requestID: requestID}
		pair.expire = time.AfterFunc(streamCreationTimeout, func() { f.expire(pair) })
		f.pairs[requestID] = pair
	}
	switch streamType := stream.Headers().Get(corev1.StreamType); streamType {
	case corev1.StreamTypeData:
		if pair.data != nil {
			return nil, fmt.Errorf("request %s has a data stream already", requestID)
		}
		pair.data = stream
	case corev1.StreamTypeError:
		if pair.error != nil {
			return nil, fmt.Errorf("request %s has an error stream already", requestID)
		}
		pair.error = stream
	default:
		return nil, fmt.Errorf("request %s: unknown stream type %q", requestID, streamType)
	}
	if pair.data == nil || pair.error == nil {
		return nil, nil
	}
	pair.expire.Stop()
	delete(f.pairs, requestID)
	return pair, nil
}

// expire gives up on a pair whose second stream never came.
func (f *portForwardSession) expire(pair *streamPair) {
	f.mu.Lock()
	if f.pairs[pair.requestID] != pair {
		f.mu.Unlock()
		return
	}
	delete(f.pairs, pair.requestID)
	f.mu.Unlock()
	if pair.error != nil {
		_, _ = fmt.Fprintf(pair.error, "timed out waiting for the data stream of request %s", pair.requestID)
		_ = pair.error.Close()
	}
	for _, s := range []httpstream.Stream{pair.data, pair.error} {
		if s != nil {
			_ = s.Reset()
			f.conn.RemoveStreams(s)
		}
	}
}

// forward copies between the pair's data stream and the pod's port; a
// failure is reported on its error stream, whose end tells the client the
// forward is over.
func (f *portForwardSession) forward(ctx context.Context, pair *streamPair) {
	defer f.conn.RemoveStreams(pair.data, pair.error)
	defer pair.error.Close()
	portHeader := pair.data.Headers().Get(corev1.PortHeader)
	port, err := strconv.ParseUint(portHeader, 10, 16)
	if err != nil || port == 0 {
		_, _ = fmt.Fprintf(pair.error, "invalid port %q", portHeader)
		_ = pair.data.Reset()
		return
	}
	err = f.server.cfg.PortForward.PortForward(ctx, f.podUID, int32(port), pair.data)
	if err != nil {
		f.log.V(2).Info("port-forward failed", "port", port, "err", err.Error())
		_, _ = fmt.Fprintf(pair.error, "error forwarding port %d to pod %s, uid %v: %v", port, f.podName, f.podUID, err)
		_ = pair.data.Reset()
		return
	}
	_ = pair.data.Close()
}
