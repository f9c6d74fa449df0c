// Package providers holds one file per webhook provider: how it signs its
// deliveries (verified before anything else is done with a body) and how
// its payloads map to shopstream's canonical order events. To add a
// provider, add a file with a type that implements Provider and an init
// function that registers its spec (registry.go), with its test vectors from
// the provider's own documentation and a fuzz target beside it. It is then
// served at /webhooks/<name> once SHOPSTREAM_<NAME>_SECRET is set.
package providers

import (
	"crypto/hmac"
	"crypto/sha256"
	stdjson "encoding/json"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strings"
	"sync"
	"time"

	json "github.com/goccy/go-json"

	"github.com/shopstream/shopstream/schemas/avro"
)

// Errors a Provider returns, wrapped with detail. The ingest server maps each
// to one HTTP status; none of them is worth retrying with the same bytes.
var (
	// ErrMissingSignature: a signature header is absent or empty.
	ErrMissingSignature = errors.New("missing signature headers")
	// ErrInvalidSignature: no signature matches the body under any secret.
	ErrInvalidSignature = errors.New("invalid signature")
	// ErrStaleTimestamp: the signed timestamp is outside the tolerance, so
	// the delivery may be a replay.
	ErrStaleTimestamp = errors.New("timestamp outside tolerance")
	// ErrMalformedPayload: the verified body is not a payload of this provider.
	ErrMalformedPayload = errors.New("malformed payload")
)

// Delivery is a verified delivery.
type Delivery struct {
	// ID is the provider's delivery id, the same on every retry.
	ID string
	// SignedAt is the timestamp the provider signed.
	SignedAt time.Time
	// Type is the provider's name of the event when a header says it
	// (Shopify's topic); Map reports it in Mapped.Type.
	Type string
}

// Provider verifies and maps one provider's webhooks.
type Provider interface {
	// Name is the provider's path segment and the provider header value.
	Name() string
	// Verify checks the delivery's signature and timestamp against now.
	Verify(h http.Header, body []byte, now time.Time) (Delivery, error)
	// Map says what a verified body means: an order event, a stock
	// snapshot, or neither for a kind shopstream keeps only as a receipt.
	Map(d Delivery, body []byte) (Mapped, error)
	// SecretHeaders names the headers that must not be stored or logged.
	SecretHeaders() []string
}

// Mapped is what a verified delivery means to shopstream; its Order and
// Stock are both nil for a kind kept only as a receipt.
type Mapped struct {
	// Type is the provider's own name of the event (orders/paid,
	// payment_intent.succeeded, ecomm_new_order, order.paid), whatever it
	// maps to: what analysts count deliveries by. Empty when the payload
	// has none.
	Type string
	// Order is an order webhook as a canonical order event.
	Order *avro.OrderEvent
	// Stock is an inventory webhook as a stock snapshot. Its SKU is empty
	// when the provider names only its own item id: the deliveries stage
	// names it from the catalog.
	Stock *avro.StockSnapshot
	// Customer names the order's customer for the edge to hash into
	// Order.CustomerHash (customerRef): personal data, which goes nowhere
	// else, neither into an event nor into a log. Empty when the payload
	// names nobody.
	Customer string
}

// customerRef names a customer by what identifies them best: their email,
// trimmed and lower-cased, which is the same person across providers (an
// order on Shopify paid through Stripe); else the provider's own customer
// id, which is stable within that provider. "" when there is neither.
func customerRef(provider, email, id string) string {
	if e := strings.ToLower(strings.TrimSpace(email)); e != "" {
		return "email:" + e
	}
	if id = strings.TrimSpace(id); id != "" {
		return provider + ":" + id
	}
	return ""
}

// decodeJSON decodes body into v with goccy/go-json, four times faster than
// encoding/json on the edge's hot path, but which panics on some truncated
// input (the fuzz targets found `{"\`). Then the standard library decodes
// it instead, so such a body gets encoding/json's answer, an error for a
// malformed one, never a crash.
func decodeJSON(body []byte, v any) (err error) {
	defer func() {
		if recover() != nil {
			err = stdjson.Unmarshal(body, v)
		}
	}()
	return json.Unmarshal(body, v)
}

// jsonError describes why a body did not decode as what, without quoting
// it: a parser's own message can carry the payload's bytes, and problem
// details and logs must not.
func jsonError(err error, what string) string {
	var (
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("not JSON (at byte %d)", syntax.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("%s is not a %s", typ.Field, typ.Type)
	}
	return "not " + what
}

// Every provider signs with HMAC-SHA256 and differs only in what it signs
// and how it writes the result: each has a function that writes what it
// signs into an HMAC state and appends the sum, which a sender calls with
// hmac.New of its secret and a verifier with a state of its key.

// key is a secret a provider verifies with. It keeps its HMAC states for
// reuse: hmac.New hashes the secret into two SHA-256 states, allocated each
// time, which was a third of the time a Standard Webhooks check of a 1 KiB
// body took.
type key struct {
	states sync.Pool
}

func newKey(secret []byte) *key {
	k := &key{}
	k.states.New = func() any { return hmac.New(sha256.New, secret) }
	return k
}

// state returns an HMAC state of k, reset, for one signature; release
// gives it back.
func (k *key) state() hash.Hash {
	m := k.states.Get().(hash.Hash)
	m.Reset()
	return m
}

func (k *key) release(m hash.Hash) { k.states.Put(m) }
