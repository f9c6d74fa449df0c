// Package middleware holds what wraps a stream.Handler: dead-lettering,
// in-place retry, metrics and logging, one file each, each a plain function
// from Handler to Handler that can be tested around a fake handler.
//
// Order matters. Stack builds the order every transactional stage uses:
//
//	DeadLetter(Metrics(Logging(Retry(handler))))
//
// Retry sits innermost so that a blip is retried before anything counts it
// as a failure; Logging and Metrics see every error with its class;
// DeadLetter sits outermost because it turns a permanent error into an
// output, after which nobody else can see that the record failed.
package middleware

import (
	"log/slog"

	"github.com/shopstream/shopstream/internal/stream"
)

// Middleware wraps a Handler.
type Middleware = stream.Middleware

// Chain returns the middleware that wraps a handler in ms, the first
// outermost.
func Chain(ms ...Middleware) Middleware {
	return func(h stream.Handler) stream.Handler {
		for i := len(ms) - 1; i >= 0; i-- {
			h = ms[i](h)
		}
		return h
	}
}

// Stack is the middleware every transactional stage runs with: permanent
// failures go to dlq, every record is counted in m and failures are
// logged, and transient failures are retried in place per retry before they
// abort the batch's transaction.
func Stack(dlq string, log *slog.Logger, m Metrics, retry RetryConfig) Middleware {
	return Chain(DeadLetter(dlq), WithMetrics(m), Logging(log), Retry(retry))
}
