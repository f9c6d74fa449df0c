package middleware

import (
	"context"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/stream"
)

// Logging logs a batch that failed, with how many records and where it
// starts, at warn, and a batch handled well at debug. A rejected record is
// left to the loop, which logs it where it dead-letters it. It logs
// coordinates and the error, never a record's value, which may hold what a
// customer typed.
func Logging(log *slog.Logger) Middleware {
	return func(next stream.RunHandler) stream.RunHandler {
		return stream.RunHandlerFunc(func(ctx context.Context, runs [][]*kgo.Record) (stream.Result, error) {
			res, err := next.HandleRuns(ctx, runs)
			attrs := []any{"runs", len(runs), "records", count(runs)}
			if len(runs) > 0 {
				attrs = append(attrs, "topic", runs[0][0].Topic)
			}
			if err != nil {
				log.Warn("batch failed; it will be retried", append(attrs, "class", stream.Class(err), "err", err)...)
			} else {
				log.Debug("batch handled", append(attrs, "outputs", len(res.Outputs), "rejected", len(res.Rejected))...)
			}
			return res, err
		})
	}
}

func count(runs [][]*kgo.Record) int {
	n := 0
	for _, r := range runs {
		n += len(r)
	}
	return n
}
