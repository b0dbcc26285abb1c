package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/uuid"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

// Log writes events as JSON lines, one per line, as kube-apiserver's log
// backend does.
type Log struct {
	mu sync.Mutex
	w  io.Writer
	c  io.Closer
}

// OpenLog opens path for appending; "-" is standard output.
func OpenLog(path string) (*Log, error) {
	if path == "-" {
		return &Log{w: os.Stdout}, nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	return &Log{w: f, c: f}, nil
}

// Close closes the file.
func (l *Log) Close() error {
	if l.c == nil {
		return nil
	}
	return l.c.Close()
}

func (l *Log) write(ev *auditv1.Event) {
	line, err := json.Marshal(ev)
	if err != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = l.w.Write(append(line, '\n'))
}

// Config is what the filter needs from the server.
type Config struct {
	Policy *Policy
	Log    *Log
	// Describe tells who sent a request and what it asks for.
	Describe func(r *http.Request) (Request, authnv1.UserInfo)
	// ToJSON turns a request or response body in any served encoding
	// into JSON for the event, or returns nil when it cannot.
	ToJSON func(contentType string, body []byte) []byte
}

// eventKey carries the request's event so that later filters can add to
// it (the impersonated user).
type eventKey struct{}

// SetImpersonatedUser records the user a request acts as.
func SetImpersonatedUser(r *http.Request, user authnv1.UserInfo) {
	if ev, ok := r.Context().Value(eventKey{}).(*auditv1.Event); ok {
		ev.ImpersonatedUser = &user
	}
}

// AddAnnotations adds annotations (admission decisions) to the audit
// event of the request ctx belongs to; without an event it does nothing.
func AddAnnotations(ctx context.Context, annotations map[string]string) {
	ev, ok := ctx.Value(eventKey{}).(*auditv1.Event)
	if !ok || len(annotations) == 0 {
		return
	}
	if ev.Annotations == nil {
		ev.Annotations = map[string]string{}
	}
	for k, v := range annotations {
		ev.Annotations[k] = v
	}
}

// maxCapturedBody bounds the request and response bodies copied into
// events.
const maxCapturedBody = 3 << 20

// Handler records each request that the policy audits: RequestReceived
// first, ResponseStarted for long-running requests when their response
// begins, ResponseComplete (or Panic) at the end. It answers with an
// Audit-Id header, as kube-apiserver does.
func Handler(next http.Handler, cfg Config) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, user := cfg.Describe(r)
		level, omit := cfg.Policy.Decide(&req)
		if level == auditv1.LevelNone {
			next.ServeHTTP(w, r)
			return
		}
		ev := newEvent(r, &req, user, level)
		w.Header().Set("Audit-Id", string(ev.AuditID))
		record := func(stage auditv1.Stage) {
			if slices.Contains(omit, stage) {
				return
			}
			out := ev.DeepCopy()
			out.Stage = stage
			out.StageTimestamp = metav1.NewMicroTime(time.Now())
			cfg.Log.write(out)
		}
		if atLeast(level, auditv1.LevelRequest) && r.Body != nil && r.Method != http.MethodGet {
			body, err := io.ReadAll(io.LimitReader(r.Body, maxCapturedBody+1))
			if err == nil {
				r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), r.Body))
				ev.RequestObject = jsonObject(cfg.ToJSON(r.Header.Get("Content-Type"), body))
			}
		}
		record(auditv1.StageRequestReceived)
		rec := &responseRecorder{ResponseWriter: w, code: http.StatusOK, keepBody: level == auditv1.LevelRequestResponse && req.Verb != "watch"}
		if req.Verb == "watch" {
			rec.onStart = func(code int) {
				ev.ResponseStatus = &metav1.Status{Code: int32(code)}
				record(auditv1.StageResponseStarted)
			}
		}
		defer func() {
			if p := recover(); p != nil {
				ev.ResponseStatus = &metav1.Status{Code: http.StatusInternalServerError, Message: fmt.Sprintf("APIServer panic'd: %v", p)}
				record(auditv1.StagePanic)
				panic(p)
			}
			ev.ResponseStatus = responseStatus(rec, cfg.ToJSON)
			if rec.keepBody {
				ev.ResponseObject = jsonObject(cfg.ToJSON(rec.Header().Get("Content-Type"), rec.body.Bytes()))
			}
			record(auditv1.StageResponseComplete)
		}()
		next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), eventKey{}, ev)))
	})
}

func newEvent(r *http.Request, req *Request, user authnv1.UserInfo, level auditv1.Level) *auditv1.Event {
	ev := &auditv1.Event{
		TypeMeta:                 metav1.TypeMeta{APIVersion: auditv1.SchemeGroupVersion.String(), Kind: "Event"},
		Level:                    level,
		AuditID:                  uuid.NewUUID(),
		RequestURI:               r.URL.RequestURI(),
		Verb:                     req.Verb,
		User:                     user,
		SourceIPs:                sourceIPs(r),
		UserAgent:                r.UserAgent(),
		RequestReceivedTimestamp: metav1.NewMicroTime(time.Now()),
	}
	if req.IsResource {
		ev.ObjectRef = &auditv1.ObjectReference{
			Resource: req.Resource, Subresource: req.Subresource, Namespace: req.Namespace, Name: req.Name,
			APIGroup: req.APIGroup,
		}
	}
	return ev
}

// responseStatus is the code of the response, with the Status body's
// reason and message for failures, as upstream records them.
func responseStatus(rec *responseRecorder, toJSON func(string, []byte) []byte) *metav1.Status {
	status := &metav1.Status{Code: int32(rec.code)}
	if rec.code >= http.StatusBadRequest {
		status.Status = metav1.StatusFailure
		var body metav1.Status
		if json.Unmarshal(toJSON(rec.Header().Get("Content-Type"), rec.failure.Bytes()), &body) == nil {
			status.Reason, status.Message = body.Reason, body.Message
		}
	} else {
		status.Status = metav1.StatusSuccess
	}
	return status
}

// jsonObject embeds a JSON body in an event.
func jsonObject(body []byte) *runtime.Unknown {
	if len(body) == 0 || len(body) > maxCapturedBody || !json.Valid(body) {
		return nil
	}
	return &runtime.Unknown{Raw: body, ContentType: runtime.ContentTypeJSON}
}

var levelOrder = map[auditv1.Level]int{
	auditv1.LevelNone: 0, auditv1.LevelMetadata: 1, auditv1.LevelRequest: 2, auditv1.LevelRequestResponse: 3,
}

func atLeast(level, than auditv1.Level) bool { return levelOrder[level] >= levelOrder[than] }

func sourceIPs(r *http.Request) []string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return nil
	}
	return []string{host}
}

// responseRecorder keeps the response code, the body of failures (for
// their reason) and, at RequestResponse level, the whole body.
type responseRecorder struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
	keepBody    bool
	body        bytes.Buffer
	failure     bytes.Buffer
	onStart     func(code int)
}

func (r *responseRecorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.code, r.wroteHeader = code, true
		if r.onStart != nil {
			r.onStart(code)
		}
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *responseRecorder) Write(p []byte) (int, error) {
	if !r.wroteHeader {
		r.WriteHeader(http.StatusOK)
	}
	if r.keepBody && r.body.Len() < maxCapturedBody {
		r.body.Write(p)
	}
	if r.code >= http.StatusBadRequest && r.failure.Len() < 64<<10 {
		r.failure.Write(p)
	}
	return r.ResponseWriter.Write(p)
}

func (r *responseRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (r *responseRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
