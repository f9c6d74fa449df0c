package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
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
	errContentType     = errors.New("webhooks are application/json")
	errRateLimited     = errors.New("more webhooks than this provider's rate limit")
	errPaused          = errors.New("this provider is paused by an operator; retry later")
	errForbiddenSource = errors.New("this address may not send this provider's webhooks")
)

// Problem is the body of every error answer: RFC 9457 problem details
// (application/problem+json), with the error's code as an extension member
// so a client can branch on it without parsing the type URI.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Code   string `json:"code"`
}

// problemType is the type URI of code: a URN, since the problem types are
// documented in the README's status table rather than at a URL of their own.
func problemType(code string) string { return "urn:shopstream:problem:" + code }

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
	case errors.Is(err, errContentType):
		return http.StatusUnsupportedMediaType, "unsupported_media_type", false
	case errors.Is(err, errInFlight):
		return http.StatusConflict, "delivery_in_flight", true
	case errors.Is(err, errUnavailable):
		return http.StatusServiceUnavailable, "unavailable", true
	case errors.Is(err, errOverloaded):
		return http.StatusServiceUnavailable, "overloaded", true
	case errors.Is(err, errForbiddenSource):
		return http.StatusForbidden, "forbidden_source", false
	case errors.Is(err, errPaused):
		return http.StatusServiceUnavailable, "paused", true
	case errors.Is(err, errRateLimited):
		return http.StatusTooManyRequests, "rate_limited", false
	default:
		return http.StatusInternalServerError, "internal", true
	}
}

// encodeError writes err as problem details. The detail is the error's
// text, which this package composes without quoting payloads or secrets;
// Kafka's detail stays in the log.
// refused is told every answer's status and code, with the context the
// error encoder is given.
func encodeError(retryAfter time.Duration, log *slog.Logger, refused func(ctx context.Context, status int, code string)) func(context.Context, error, http.ResponseWriter) {
	return func(ctx context.Context, err error, w http.ResponseWriter) {
		a := answerTo(err, retryAfter)
		refused(ctx, a.status, a.code)
		// A pause is answered thousands of times a second, as an overload
		// is (admit writes that answer itself); one line each would make it
		// worse. Its count is in the metrics.
		if (a.status >= 500 || a.status == http.StatusConflict) && !errors.Is(err, errPaused) {
			log.Warn("webhook not accepted", "status", a.status, "code", a.code, "correlation_id", w.Header().Get("X-Request-Id"), "err", err)
		}
		a.write(w)
	}
}

// errorAnswer is what an error is answered with. One that says nothing of the
// request it refuses can be made once and written many times (an
// overload's, in admit).
type errorAnswer struct {
	status int
	code   string
	// retryAfter is the Retry-After header's value, nil when there is none.
	retryAfter []string
	body       []byte
}

func answerTo(err error, retryAfter time.Duration) errorAnswer {
	status, code, retry := classify(err)
	body := Problem{Type: problemType(code), Title: http.StatusText(status), Status: status, Detail: err.Error(), Code: code}
	switch {
	case errors.Is(err, errUnavailable):
		body.Detail = errUnavailable.Error()
	case status == http.StatusInternalServerError:
		body.Detail = "internal error"
	}
	a := errorAnswer{status: status, code: code}
	var limited rateLimited
	switch {
	case errors.As(err, &limited):
		a.retryAfter = retryAfterHeader(limited.after)
	case retry:
		a.retryAfter = retryAfterHeader(retryAfter)
	}
	// What json.Encoder writes, as the answers have always been written.
	b, _ := json.Marshal(body)
	a.body = append(b, '\n')
	return a
}

// retryAfterHeader is Retry-After's value for a wait of d: whole seconds,
// rounded up, and at least one, so that a client never retries at once.
func retryAfterHeader(d time.Duration) []string {
	return []string{strconv.Itoa(int(max(1, math.Ceil(d.Seconds()))))}
}

var problemContentType = []string{"application/problem+json"}

// write writes a. Its header values are shared by every answer it writes:
// each is a slice of one value, which net/http only reads and an Add would
// copy.
func (a errorAnswer) write(w http.ResponseWriter) {
	h := w.Header()
	if a.retryAfter != nil {
		h["Retry-After"] = a.retryAfter
	}
	h["Content-Type"] = problemContentType
	w.WriteHeader(a.status)
	_, _ = w.Write(a.body)
}
