package ingest

import (
	"github.com/go-kit/kit/metrics"
	"github.com/go-kit/kit/metrics/discard"
)

// Metrics are what ingest records, through go-kit's interfaces; the
// composition root backs them with Prometheus.
type Metrics struct {
	// Requests counts every answer, with labels "provider" and "outcome":
	// accepted, duplicate, or the problem's code (invalid_signature,
	// rate_limited, overloaded, ...), so rejections by reason are a query.
	Requests metrics.Counter
	// AckSeconds observes, per "provider", the time from a webhook's
	// arrival to its 2xx, that is to Kafka's acknowledgement.
	AckSeconds metrics.Histogram
	// InFlight is the webhooks admitted and not yet answered.
	InFlight metrics.Gauge
}

func (m *Metrics) setDefaults() {
	if m.Requests == nil {
		m.Requests = discard.NewCounter()
	}
	if m.AckSeconds == nil {
		m.AckSeconds = discard.NewHistogram()
	}
	if m.InFlight == nil {
		m.InFlight = discard.NewGauge()
	}
}

// outcome returns a counter of provider's answers by code.
func (m Metrics) outcome(provider string) func(code string) {
	return func(code string) { m.Requests.With("provider", provider, "outcome", code).Add(1) }
}
