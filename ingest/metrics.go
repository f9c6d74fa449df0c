package ingest

import "github.com/prometheus/client_golang/prometheus"

// Metrics are what ingest records. They are the Prometheus client's own
// types, not go-kit's interfaces as the stream stages use: go-kit's
// Prometheus adapter builds a label map on every Add, which on a path that
// runs tens of thousands of times a second cost a measurable share of
// ingest's CPU; a child resolved once per provider costs nothing.
type Metrics struct {
	// Requests counts every answer, by "provider" and "outcome": accepted,
	// duplicate, or the problem's code (invalid_signature, rate_limited,
	// overloaded, ...), so rejections by reason are a query.
	Requests *prometheus.CounterVec
	// AckSeconds observes, by "provider", the time from a webhook's
	// arrival to its 2xx, that is to Kafka's acknowledgement.
	AckSeconds *prometheus.HistogramVec
	// InFlight is the webhooks admitted and not yet answered.
	InFlight prometheus.Gauge
}

// NewMetrics returns ingest's metrics, registered with reg when it is not
// nil.
func NewMetrics(reg prometheus.Registerer) Metrics {
	m := Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "shopstream", Subsystem: "ingest", Name: "requests_total",
			Help: "Webhooks answered, by provider and outcome: accepted, duplicate, or the problem's code (invalid_signature, rate_limited, overloaded, ...)."},
			[]string{"provider", "outcome"}),
		AckSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "shopstream", Subsystem: "ingest", Name: "ack_seconds",
			Help:    "Time from a webhook's arrival to its 2xx, after Kafka acknowledged it, by provider.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"provider"}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "shopstream", Subsystem: "ingest", Name: "in_flight",
			Help: "Webhooks admitted and not yet answered."}),
	}
	if reg != nil {
		reg.MustRegister(m.Requests, m.AckSeconds, m.InFlight)
	}
	return m
}

func (m *Metrics) setDefaults() {
	if m.Requests == nil || m.AckSeconds == nil || m.InFlight == nil {
		*m = NewMetrics(nil)
	}
}

// outcome returns a counter of provider's answers by code.
func (m Metrics) outcome(provider string) func(code string) {
	return func(code string) { m.Requests.WithLabelValues(provider, code).Inc() }
}
