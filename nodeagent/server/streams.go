package server

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/remotecommand"
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/spdy"
	"k8s.io/streaming/pkg/httpstream/wsstream"
)

// Channel numbers of the remote command protocols over WebSocket.
const (
	stdinChannel = iota
	stdoutChannel
	stderrChannel
	errorChannel
	resizeChannel
)

// remoteStreams are the client's side of an exec or attach, over
// WebSocket or SPDY; nil streams were not asked for.
type remoteStreams struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// errorStream receives the Status that tells how the command ended.
	errorStream io.Writer
	// resize carries terminal sizes as JSON.
	resize io.Reader
	close  func()
}

// openRemoteStreams upgrades the request to the streams opts ask for:
// WebSocket (v5/v4.channel.k8s.io, kubectl's default) or SPDY (v5 and
// v4, kubectl's fallback). On failure the client has been answered.
func openRemoteStreams(w http.ResponseWriter, r *http.Request, opts execOptions) (*remoteStreams, error) {
	if wsstream.IsWebSocketRequest(r) {
		return openWebSocketStreams(w, r, opts)
	}
	if httpstream.IsUpgradeRequest(r) {
		return openSPDYStreams(w, r, opts)
	}
	httpError(w, http.StatusBadRequest, "needs a WebSocket (%s) or SPDY upgrade", remotecommand.StreamProtocolV5Name)
	return nil, errors.New("not an upgrade request")
}

func openWebSocketStreams(w http.ResponseWriter, r *http.Request, opts execOptions) (*remoteStreams, error) {
	channel := func(wanted bool, kind wsstream.ChannelType) wsstream.ChannelType {
		if wanted {
			return kind
		}
		return wsstream.IgnoreChannel
	}
	channels := []wsstream.ChannelType{
		channel(opts.stdin, wsstream.ReadChannel),
		channel(opts.stdout, wsstream.WriteChannel),
		channel(opts.stderr, wsstream.WriteChannel),
		wsstream.WriteChannel,
		channel(opts.tty, wsstream.ReadChannel),
	}
	protocols := map[string]wsstream.ChannelProtocolConfig{}
	for _, p := range []string{remotecommand.StreamProtocolV5Name, remotecommand.StreamProtocolV4Name} {
		protocols[p] = wsstream.ChannelProtocolConfig{Binary: true, Channels: channels}
	}
	conn := wsstream.NewConn(protocols)
	conn.SetIdleTimeout(execIdleTimeout)
	_, streams, err := conn.Open(w, r)
	if err != nil {
		return nil, fmt.Errorf("opening WebSocket streams: %w", err)
	}
	remote := &remoteStreams{errorStream: streams[errorChannel], close: func() { _ = conn.Close() }}
	if opts.stdin {
		remote.stdin = streams[stdinChannel]
	}
	if opts.stdout {
		remote.stdout = streams[stdoutChannel]
	}
	if opts.stderr {
		remote.stderr = streams[stderrChannel]
	}
	if opts.tty {
		remote.resize = streams[resizeChannel]
	}
	return remote, nil
}

// openSPDYStreams upgrades to SPDY and waits for the streams the client
// creates, one per stream type it was asked for, each named by its
// streamType header.
func openSPDYStreams(w http.ResponseWriter, r *http.Request, opts execOptions) (*remoteStreams, error) {
	// v5 over SPDY is v4: the stdin close signal exists for WebSocket only.
	if _, err := httpstream.Handshake(r, w, []string{remotecommand.StreamProtocolV5Name, remotecommand.StreamProtocolV4Name}); err != nil {
		return nil, fmt.Errorf("SPDY handshake: %w", err)
	}
	type arrival struct {
		stream    httpstream.Stream
		replySent <-chan struct{}
	}
	arrivals := make(chan arrival)
	done := make(chan struct{})
	conn := spdy.NewResponseUpgraderWithPings(spdyPingPeriod).UpgradeResponse(w, r, func(stream httpstream.Stream, replySent <-chan struct{}) error {
		select {
		case arrivals <- arrival{stream, replySent}:
			return nil
		case <-done:
			return errors.New("no more streams are expected")
		}
	})
	if conn == nil {
		close(done)
		return nil, errors.New("SPDY upgrade failed")
	}
	conn.SetIdleTimeout(execIdleTimeout)
	expected := map[string]bool{corev1.StreamTypeError: true}
	expected[corev1.StreamTypeStdin] = opts.stdin
	expected[corev1.StreamTypeStdout] = opts.stdout
	expected[corev1.StreamTypeStderr] = opts.stderr
	expected[corev1.StreamTypeResize] = opts.tty
	wanted := 0
	for _, want := range expected {
		if want {
			wanted++
		}
	}
	received := map[string]httpstream.Stream{}
	var replies []<-chan struct{}
	timeout := time.NewTimer(streamCreationTimeout)
	defer timeout.Stop()
	fail := func(err error) (*remoteStreams, error) {
		close(done)
		_ = conn.Close()
		return nil, err
	}
	for len(received) < wanted {
		select {
		case a := <-arrivals:
			streamType := a.stream.Headers().Get(corev1.StreamType)
			if !expected[streamType] || received[streamType] != nil {
				_ = a.stream.Reset()
				continue
			}
			received[streamType] = a.stream
			replies = append(replies, a.replySent)
		case <-timeout.C:
			return fail(fmt.Errorf("timed out waiting for the client's streams (%d of %d arrived)", len(received), wanted))
		case <-conn.CloseChan():
			return fail(errors.New("the client closed the connection before creating its streams"))
		}
	}
	close(done)
	// Output written before a stream's reply has gone out would reach a
	// client that does not know the stream yet.
	for _, replySent := range replies {
		select {
		case <-replySent:
		case <-timeout.C:
			return fail(errors.New("timed out replying to the client's streams"))
		}
	}
	remote := &remoteStreams{errorStream: received[corev1.StreamTypeError]}
	if s := received[corev1.StreamTypeStdin]; s != nil {
		remote.stdin = s
	}
	if s := received[corev1.StreamTypeStdout]; s != nil {
		remote.stdout = s
	}
	if s := received[corev1.StreamTypeStderr]; s != nil {
		remote.stderr = s
	}
	if s := received[corev1.StreamTypeResize]; s != nil {
		remote.resize = s
	}
	remote.close = func() {
		// Each stream ends with its FIN, so the client has read all
		// output and the status before the connection goes.
		for _, s := range received {
			_ = s.Close()
		}
		_ = conn.Close()
	}
	return remote, nil
}
