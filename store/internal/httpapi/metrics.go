package httpapi

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the API's Prometheus series.
type Metrics struct {
	Requests     *prometheus.CounterVec
	Latency      *prometheus.HistogramVec
	AuthFailures *prometheus.CounterVec
}

// StateStats reports what the local replica holds, for gauges.
type StateStats interface {
	Stats() (keys int, bytes int64)
	Watchers() int
}

// NewMetrics creates the series, and the key, byte and watcher gauges when
// stats is given; reg nil registers nothing (tests).
func NewMetrics(reg prometheus.Registerer, stats StateStats) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ephemeral_store_http_requests_total", Help: "Client API requests by route, method and status code.",
		}, []string{"route", "method", "code"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ephemeral_store_http_request_duration_seconds", Help: "Client API latency by route and status code.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route", "code"}),
		AuthFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ephemeral_store_auth_failures_total", Help: "Refused requests by reason.",
		}, []string{"reason"}),
	}
	// Every reason is exported from the start, at zero, so alerts can
	// use rate() without waiting for a first failure.
	for _, reason := range []string{"no_tls", "no_certificate_user", "unknown_user", "forbidden"} {
		m.AuthFailures.WithLabelValues(reason)
	}
	if reg == nil {
		return m
	}
	reg.MustRegister(m.Requests, m.Latency, m.AuthFailures)
	if stats != nil {
		reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ephemeral_store_keys", Help: "Keys held by this replica."},
				func() float64 { k, _ := stats.Stats(); return float64(k) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ephemeral_store_bytes", Help: "Bytes of keys and values held by this replica."},
				func() float64 { _, b := stats.Stats(); return float64(b) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ephemeral_store_watchers", Help: "Open watch streams on this node."},
				func() float64 { return float64(stats.Watchers()) }),
		)
	}
	return m
}

func (m *Metrics) observe(route, method string, status int, d time.Duration) {
	switch method {
	case "GET", "HEAD", "PUT", "DELETE", "POST":
	default:
		method = "other" // clients choose methods; labels must stay bounded
	}
	code := strconv.Itoa(status)
	m.Requests.WithLabelValues(route, method, code).Inc()
	m.Latency.WithLabelValues(route, code).Observe(d.Seconds())
}
