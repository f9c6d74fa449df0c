package middleware

import (
	"context"
	"time"

	"github.com/go-kit/kit/metrics"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/stream"
)

// Metrics are what WithMetrics records, in go-kit's metric interfaces so
// that the backend (Prometheus, or an in-memory one in tests) is the
// caller's choice.
type Metrics struct {
	// Records counts handled records by "topic" and "outcome": ok,
	// rejected, or the error class of a batch that failed. A batch that is
	// retried is counted each time: these are handlings, not commits.
	Records metrics.Counter
	// Duration observes each batch's handling, in seconds, by "topic".
	Duration metrics.Histogram
}

// WithMetrics counts every record by outcome and times each batch.
func WithMetrics(m Metrics) Middleware {
	return func(next stream.RunHandler) stream.RunHandler {
		return stream.RunHandlerFunc(func(ctx context.Context, runs [][]*kgo.Record) (stream.Result, error) {
			if len(runs) == 0 {
				return next.HandleRuns(ctx, runs)
			}
			topic := runs[0][0].Topic
			start := time.Now()
			res, err := next.HandleRuns(ctx, runs)
			m.Duration.With("topic", topic).Observe(time.Since(start).Seconds())
			n := float64(count(runs))
			if err != nil {
				m.Records.With("topic", topic, "outcome", stream.Class(err)).Add(n)
				return res, err
			}
			rejected := float64(len(res.Rejected))
			m.Records.With("topic", topic, "outcome", "ok").Add(n - rejected)
			if rejected > 0 {
				m.Records.With("topic", topic, "outcome", "rejected").Add(rejected)
			}
			return res, err
		})
	}
}
