package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"tower.dev/tower/apiserver/endpoints"
)

// metrics are the server's Prometheus series, named as kube-apiserver's so
// existing dashboards read them.
type metrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	inflight *prometheus.GaugeVec
	dropped  *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apiserver_request_total",
			Help: "Counter of apiserver requests broken out for each verb, group, version, resource, subresource and HTTP response code.",
		}, []string{"verb", "group", "version", "resource", "subresource", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "apiserver_request_duration_seconds",
			Help:    "Response latency distribution in seconds for each verb, group, version, resource and subresource.",
			Buckets: []float64{0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 45, 60},
		}, []string{"verb", "group", "version", "resource", "subresource"}),
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "apiserver_current_inflight_requests",
			Help: "Maximal number of currently used inflight request limit of this apiserver per request kind.",
		}, []string{"request_kind"}),
	}
	m.dropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "apiserver_dropped_requests_total",
		Help: "Number of requests dropped with 'Try again later' response.",
	}, []string{"request_kind"})
	m.registry.MustRegister(m.requests, m.latency, m.inflight, m.dropped,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// rejected counts a request refused by the in-flight limits.
func (m *metrics) rejected(mutating bool) {
	kind := "readOnly"
	if mutating {
		kind = "mutating"
	}
	m.dropped.WithLabelValues(kind).Inc()
}

// instrument counts requests and their latency; watches are counted when
// they end.
func (m *metrics) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info, isResource := endpoints.ParseRequestInfo(r)
		if !isResource {
			info = &endpoints.RequestInfo{Verb: r.Method}
		}
		kind := "readOnly"
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			kind = "mutating"
		}
		gauge := m.inflight.WithLabelValues(kind)
		gauge.Inc()
		defer gauge.Dec()
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(rec, r)
		verb := info.Verb
		labels := []string{verb, info.GroupVersion.Group, info.GroupVersion.Version, info.Resource, info.Subresource}
		m.requests.WithLabelValues(append(labels, strconv.Itoa(rec.code))...).Inc()
		if verb != "watch" {
			m.latency.WithLabelValues(labels...).Observe(time.Since(start).Seconds())
		}
	})
}

// statusRecorder remembers the response code and keeps streaming working.
type statusRecorder struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wroteHeader {
		s.code, s.wroteHeader = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
