package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/remotecommand"
)

// Attacher connects clients to containers' own streams for /attach.
type Attacher interface {
	// AttachContainer connects streams to the given run of the pod's
	// container until the client or the container's output ends.
	AttachContainer(ctx context.Context, podUID, container string, restartCount int, streams ExecStreams) error
}

// Execer runs commands in containers for /exec.
type Execer interface {
	// ExecInContainer runs cmd in the given run of the pod's container
	// with the streams attached and returns its exit code.
	ExecInContainer(ctx context.Context, podUID, container string, restartCount int, cmd []string, streams ExecStreams) (int32, error)
}

// ExecStreams are what an exec is attached to; nil streams are not.
type ExecStreams struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	TTY            bool
	// Resize carries terminal sizes (width, height).
	Resize <-chan [2]uint32
}

// execIdleTimeout closes an exec nobody speaks on, as kubelet's
// streaming idle timeout.
const execIdleTimeout = 4 * time.Hour

type execOptions struct {
	command                    []string
	stdin, stdout, stderr, tty bool
}

func parseExecOptions(r *http.Request) (execOptions, error) {
	opts, err := parseAttachOptions(r)
	if err != nil {
		return opts, err
	}
	opts.command = r.URL.Query()["command"]
	if len(opts.command) == 0 {
		return opts, errors.New("you must specify a command")
	}
	return opts, nil
}

// parseAttachOptions reads the streams a client asks for.
func parseAttachOptions(r *http.Request) (execOptions, error) {
	query := r.URL.Query()
	flag := func(name string) bool {
		v, _ := strconv.ParseBool(query.Get(name))
		return v
	}
	opts := execOptions{
		stdin:  flag("stdin"),
		stdout: flag("stdout"),
		stderr: flag("stderr"),
		tty:    flag("tty"),
	}
	if !opts.stdin && !opts.stdout && !opts.stderr {
		return opts, errors.New("you must specify at least 1 of stdin, stdout, stderr")
	}
	if opts.tty {
		// A terminal merges stderr into stdout.
		opts.stderr = false
	}
	return opts, nil
}

func (s *Server) serveExec(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Exec == nil {
		httpError(w, http.StatusNotImplemented, "exec is not supported by this node")
		return
	}
	opts, err := parseExecOptions(r)
	if err != nil {
		httpError(w, http.StatusBadRequest, "%v", err)
		return
	}
	s.serveStreams(w, r, opts, func(ctx context.Context, uid, container string, run int, streams ExecStreams) (int32, error) {
		return s.cfg.Exec.ExecInContainer(ctx, uid, container, run, opts.command, streams)
	})
}

// serveAttach connects the client to the running container's own
// streams, kubelet's /attach.
func (s *Server) serveAttach(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Attach == nil {
		httpError(w, http.StatusNotImplemented, "attach is not supported by this node")
		return
	}
	opts, err := parseAttachOptions(r)
	if err != nil {
		httpError(w, http.StatusBadRequest, "%v", err)
		return
	}
	s.serveStreams(w, r, opts, func(ctx context.Context, uid, container string, run int, streams ExecStreams) (int32, error) {
		return 0, s.cfg.Attach.AttachContainer(ctx, uid, container, run, streams)
	})
}

// serveStreams finds the current run of the container the request names,
// opens the client's streams and reports how connect, given them, ended.
func (s *Server) serveStreams(w http.ResponseWriter, r *http.Request, opts execOptions, connect func(ctx context.Context, uid, container string, run int, streams ExecStreams) (int32, error)) {
	namespace, podName, container := r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container")
	dir, uid, err := s.podDir(namespace, podName)
	if err != nil {
		httpError(w, http.StatusNotFound, "pod %q not found on this node", namespace+"/"+podName)
		return
	}
	counts, err := runs(dir + "/logs/" + container)
	if err != nil || len(counts) == 0 {
		httpError(w, http.StatusBadRequest, "container %q in pod %q is not running", container, podName)
		return
	}
	remote, err := openRemoteStreams(w, r, opts)
	if err != nil {
		logr.FromContextOrDiscard(r.Context()).V(2).Info("opening streams", "path", r.URL.Path, "err", err.Error())
		return
	}
	defer remote.close()
	code, err := connect(r.Context(), uid, container, counts[len(counts)-1], remote.attach(opts.tty))
	writeExecStatus(remote.errorStream, opts.command, code, err)
}

// attach gives a command in the container the client's streams.
func (remote *remoteStreams) attach(tty bool) ExecStreams {
	attached := ExecStreams{Stdin: remote.stdin, Stdout: remote.stdout, Stderr: remote.stderr, TTY: tty}
	if remote.resize != nil {
		resize := make(chan [2]uint32, 1)
		attached.Resize = resize
		go readResizes(remote.resize, resize)
	}
	return attached
}

// readResizes decodes the terminal sizes the client sends until it stops.
func readResizes(stream io.Reader, sizes chan<- [2]uint32) {
	defer close(sizes)
	decoder := json.NewDecoder(stream)
	for {
		var size struct{ Width, Height uint16 }
		if err := decoder.Decode(&size); err != nil {
			return
		}
		sizes <- [2]uint32{uint32(size.Width), uint32(size.Height)}
	}
}

// writeExecStatus reports how the command (or, without one, the attach)
// ended on the error channel, as
// a Status the client turns into an exit code.
func writeExecStatus(stream io.Writer, command []string, code int32, err error) {
	status := metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusSuccess}
	switch {
	case err != nil && command == nil:
		status = metav1.Status{
			TypeMeta: status.TypeMeta, Status: metav1.StatusFailure, Reason: metav1.StatusReasonInternalError,
			Message: fmt.Sprintf("error attaching to container: %v", err),
		}
	case err != nil:
		status = metav1.Status{
			TypeMeta: status.TypeMeta, Status: metav1.StatusFailure, Reason: metav1.StatusReasonInternalError,
			Message: fmt.Sprintf("error executing command %v: %v", command, err),
		}
	case code != 0:
		status = metav1.Status{
			TypeMeta: status.TypeMeta, Status: metav1.StatusFailure, Reason: remotecommand.NonZeroExitCodeReason,
			Message: fmt.Sprintf("command terminated with non-zero exit code: error executing command [%s], exit code %d", strings.Join(command, " "), code),
			Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{
				Type: remotecommand.ExitCodeCauseType, Message: strconv.Itoa(int(code)),
			}}},
		}
	}
	data, _ := json.Marshal(status)
	_, _ = stream.Write(data)
}
