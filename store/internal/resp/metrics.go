package resp

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the RESP port's Prometheus series. Authentication failures
// share the HTTP API's series (ephemeral_store_auth_failures_total): an
// alert on refused clients should not depend on the door they used.
type Metrics struct {
	Commands     *prometheus.CounterVec
	Latency      *prometheus.HistogramVec
	Connections  prometheus.Gauge
	AuthFailures *prometheus.CounterVec

	byCommand map[string]series // every name of commandNames
}

// NewMetrics creates the series and registers them on reg (nil: none, for
// tests). authFailures is the HTTP API's counter; nil makes a private one.
func NewMetrics(reg prometheus.Registerer, authFailures *prometheus.CounterVec) *Metrics {
	m := &Metrics{
		Commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ephemeral_store_resp_commands_total", Help: "Commands on the RESP port by command and result (ok or error).",
		}, []string{"command", "result"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ephemeral_store_resp_command_duration_seconds",
			Help:    "RESP command latency, from the parsed command to its reply written to the buffer.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"command"}),
		Connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ephemeral_store_resp_connections", Help: "Open authenticated connections on the RESP port.",
		}),
		AuthFailures: authFailures,
	}
	if m.AuthFailures == nil {
		m.AuthFailures = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ephemeral_store_auth_failures_total"}, []string{"reason"})
	}
	// Every command's series exist from the start, at zero, so that
	// dashboards and rate() see the port before its first read.
	m.byCommand = map[string]series{}
	for _, name := range commandNames {
		m.byCommand[name] = series{
			ok: m.Commands.WithLabelValues(name, "ok"), failed: m.Commands.WithLabelValues(name, "error"),
			latency: m.Latency.WithLabelValues(name),
		}
	}
	if reg != nil {
		reg.MustRegister(m.Commands, m.Latency, m.Connections)
	}
	return m
}

// series are one command's children, looked up once: a read costs a
// few microseconds, and hashing label values on each would be a visible
// part of it.
type series struct {
	ok, failed prometheus.Counter
	latency    prometheus.Observer
}

func (m *Metrics) command(name string, ok bool, d time.Duration) {
	s, known := m.byCommand[name]
	if !known {
		s = m.byCommand["other"]
	}
	if ok {
		s.ok.Inc()
	} else {
		s.failed.Inc()
	}
	s.latency.Observe(d.Seconds())
}

func (m *Metrics) authFailure(reason string) { m.AuthFailures.WithLabelValues(reason).Inc() }
