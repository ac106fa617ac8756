package api

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Health is the body of /healthz and /readyz.
type Health struct {
	Status string `json:"status" enum:"ok" doc:"ok"`
}

type healthOutput struct {
	Body Health
}

// readyTimeout bounds one readiness check.
const readyTimeout = 5 * time.Second

func (s *Server) registerHealth(api huma.API, mux *http.ServeMux) {
	huma.Register(api, huma.Operation{
		OperationID: "healthz",
		Method:      http.MethodGet,
		Path:        "/healthz",
		Summary:     "Liveness: the process serves requests",
		Tags:        []string{"operations"},
	}, func(context.Context, *struct{}) (*healthOutput, error) {
		return &healthOutput{Body: Health{Status: "ok"}}, nil
	})

	huma.Register(api, huma.Operation{
		OperationID: "readyz",
		Method:      http.MethodGet,
		Path:        "/readyz",
		Summary:     "Readiness: the database answers and, on a replica with workers, the queue runs",
		Tags:        []string{"operations"},
		Errors:      []int{http.StatusServiceUnavailable},
	}, func(ctx context.Context, _ *struct{}) (*healthOutput, error) {
		ctx, cancel := context.WithTimeout(ctx, readyTimeout)
		defer cancel()
		if err := s.backend.Ready(ctx); err != nil {
			// The reason goes to the server log only: it may name internal hosts.
			s.log.Warn("not ready", "error", err)
			return nil, problem(http.StatusServiceUnavailable, "not ready")
		}
		return &healthOutput{Body: Health{Status: "ok"}}, nil
	})

	// /metrics is promhttp's own handler (it negotiates the exposition format); the document
	// describes it.
	if s.metrics != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{}))
	}
	api.OpenAPI().AddOperation(&huma.Operation{
		OperationID: "metrics",
		Method:      http.MethodGet,
		Path:        "/metrics",
		Summary:     "Prometheus metrics",
		Description: "Queue depth (imagebuilder_queue_jobs), invocations by state (imagebuilder_invocations), " +
			"build durations and counts of this replica (imagebuilder_build_duration_seconds, imagebuilder_builds_total), " +
			"HTTP requests (imagebuilder_http_requests_total, imagebuilder_http_request_duration_seconds), Go runtime and process.",
		Tags: []string{"operations"},
		Responses: map[string]*huma.Response{
			"200": {Description: "Prometheus text exposition format", Content: map[string]*huma.MediaType{
				"text/plain": {Schema: &huma.Schema{Type: huma.TypeString}},
			}},
		},
	})
}

// httpMetrics counts the API's requests; its registry also holds the service's collector.
type httpMetrics struct {
	registry  *prometheus.Registry
	requests  *prometheus.CounterVec
	durations *prometheus.HistogramVec
}

func newHTTPMetrics(service prometheus.Collector) (*httpMetrics, error) {
	m := &httpMetrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imagebuilder_http_requests_total",
			Help: "HTTP requests served, by route (the matched pattern) and status code.",
		}, []string{"route", "code"}),
		durations: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "imagebuilder_http_request_duration_seconds",
			Help:    "Time to serve an HTTP request (a log stream: its whole length), by route.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
	}
	cs := []prometheus.Collector{m.requests, m.durations,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})}
	if service != nil {
		cs = append(cs, service)
	}
	for _, c := range cs {
		if err := m.registry.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// statusRecorder remembers the status code written.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (flushes, deadlines).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// serve serves r with h and counts it by the pattern net/http's mux matched.
func (m *httpMetrics) serve(h http.Handler, w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w}
	h.ServeHTTP(rec, r)
	route := r.Pattern // set by the mux on r itself
	if route == "" {
		route = "unmatched"
	}
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	m.requests.WithLabelValues(route, strconv.Itoa(rec.status)).Inc()
	m.durations.WithLabelValues(route).Observe(time.Since(start).Seconds())
}
