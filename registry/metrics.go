package registry

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sigil-project/sigil/signing/policy"
)

// metrics are the registry's Prometheus series, in a registry of their
// own so two Registry values in one process (tests) do not collide.
// /metrics also serves the process default registry, where distribution
// and the Go runtime put theirs.
type metrics struct {
	reg         *prometheus.Registry
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	enforced    *prometheus.CounterVec
	logins      *prometheus.CounterVec
	auditErrors prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sigil_registry_http_requests_total",
			Help: "HTTP requests by route, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sigil_registry_http_request_duration_seconds",
			Help:    "Time to answer HTTP requests, by route and method.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route", "method"}),
		enforced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sigil_registry_enforcement_total",
			Help: "Manifest pulls judged by the trust policy, by outcome and reason code.",
		}, []string{"outcome", "reason"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sigil_registry_logins_total",
			Help: "Token requests with credentials, by outcome and status code.",
		}, []string{"outcome", "code"}),
		auditErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sigil_registry_audit_write_errors_total",
			Help: "Audit events that could not be written.",
		}),
	}
	m.reg.MustRegister(m.requests, m.duration, m.enforced, m.logins, m.auditErrors)
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(prometheus.Gatherers{m.reg, prometheus.DefaultGatherer}, promhttp.HandlerOpts{})
}

func (m *metrics) observe(route, method string, code int, d time.Duration) {
	m.requests.WithLabelValues(route, method, strconv.Itoa(code)).Inc()
	m.duration.WithLabelValues(route, method).Observe(d.Seconds())
}

func (m *metrics) enforcement(err error) {
	var rej *policy.RejectedError
	switch {
	case err == nil:
		m.enforced.WithLabelValues("accepted", "").Inc()
	case errors.As(err, &rej):
		m.enforced.WithLabelValues("refused", string(rej.Code)).Inc()
	default:
		m.enforced.WithLabelValues("error", "").Inc()
	}
}

func (m *metrics) login(outcome string, code int) {
	m.logins.WithLabelValues(outcome, strconv.Itoa(code)).Inc()
}
