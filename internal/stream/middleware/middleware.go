// Package middleware holds what wraps a stream.RunHandler: in-place retry,
// metrics and logging, one file each, each a plain function from handler to
// handler that can be tested around a fake one. They wrap a whole batch,
// so they cost nothing per record.
//
// Order matters. Stack builds the order every transactional stage uses:
//
//	Metrics(Logging(Retry(handler)))
//
// Retry sits innermost so that a blip is retried before anything counts it
// as a failure; Logging and Metrics see every error with its class.
// Dead-lettering is not here: the loop does it (stream.Transform), in the
// same transaction as the record's offset, so that no chain can leave it
// out and let a poison record stall its partition.
package middleware

import (
	"log/slog"

	"github.com/shopstream/shopstream/internal/stream"
)

// Middleware wraps a RunHandler.
type Middleware = stream.Middleware

// chain returns the middleware that wraps a handler in ms, the first
// outermost.
func chain(ms ...Middleware) Middleware {
	return func(h stream.RunHandler) stream.RunHandler {
		for i := len(ms) - 1; i >= 0; i-- {
			h = ms[i](h)
		}
		return h
	}
}

// Stack is the middleware every transactional stage runs with: every
// record is counted in m, transient failures are logged, and they are
// retried in place per retry before they abort the batch's transaction.
func Stack(log *slog.Logger, m Metrics, retry RetryConfig) Middleware {
	return chain(WithMetrics(m), Logging(log), Retry(retry))
}
