package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/shopstream/shopstream/ingest/providers"
)

var (
	errUnavailable     = errors.New("kafka did not acknowledge the delivery")
	errInFlight        = errors.New("the same delivery is being processed")
	errOverloaded      = errors.New("too many webhooks in flight")
	errUnknownProvider = errors.New("no such provider")
	errMethod          = errors.New("only POST is accepted")
)

// apiError is the body of every error answer:
// {"error":{"code":"invalid_signature","message":"..."}}.
type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// classify maps an error to its HTTP status and code. It is the one place
// that does: a new error kind gets its status here.
func classify(err error) (status int, code string, retry bool) {
	var (
		tooLarge *http.MaxBytesError
		netErr   net.Error
	)
	switch {
	case errors.As(err, &tooLarge):
		return http.StatusRequestEntityTooLarge, "body_too_large", false
	case errors.As(err, &netErr) && netErr.Timeout():
		return http.StatusRequestTimeout, "request_timeout", true
	case errors.Is(err, providers.ErrMissingSignature):
		return http.StatusUnauthorized, "missing_signature", false
	case errors.Is(err, providers.ErrInvalidSignature):
		return http.StatusUnauthorized, "invalid_signature", false
	case errors.Is(err, providers.ErrStaleTimestamp):
		return http.StatusUnauthorized, "stale_timestamp", false
	case errors.Is(err, providers.ErrMalformedPayload):
		return http.StatusBadRequest, "malformed_payload", false
	case errors.Is(err, errUnknownProvider):
		return http.StatusNotFound, "unknown_provider", false
	case errors.Is(err, errMethod):
		return http.StatusMethodNotAllowed, "method_not_allowed", false
	case errors.Is(err, errInFlight):
		return http.StatusConflict, "delivery_in_flight", true
	case errors.Is(err, errUnavailable):
		return http.StatusServiceUnavailable, "unavailable", true
	case errors.Is(err, errOverloaded):
		return http.StatusServiceUnavailable, "overloaded", true
	default:
		return http.StatusInternalServerError, "internal", true
	}
}

// encodeError writes err as a JSON error. The message is the error's text,
// which this package composes without quoting payloads or secrets; Kafka's
// detail stays in the log.
func encodeError(retryAfter time.Duration, log *slog.Logger) func(context.Context, error, http.ResponseWriter) {
	return func(_ context.Context, err error, w http.ResponseWriter) {
		status, code, retry := classify(err)
		var body apiError
		body.Error.Code = code
		body.Error.Message = err.Error()
		// An overload is answered thousands of times a second; one line
		// each would make it worse.
		if (status >= 500 || status == http.StatusConflict) && !errors.Is(err, errOverloaded) {
			log.Warn("webhook not accepted", "status", status, "code", code, "err", err)
			switch {
			case errors.Is(err, errUnavailable):
				body.Error.Message = errUnavailable.Error()
			case status == http.StatusInternalServerError:
				body.Error.Message = "internal error"
			}
		}
		if retry {
			w.Header().Set("Retry-After", strconv.Itoa(int(retryAfter.Seconds())))
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(body)
	}
}
