package providers

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/shopstream/shopstream/schemas/avro"
)

// StandardWebhooks verifies deliveries signed the Standard Webhooks way
// (standardwebhooks.com): headers webhook-id, webhook-timestamp (Unix
// seconds) and webhook-signature (space-separated "v1,<base64 HMAC-SHA256>"
// entries, so that a sender rotating its secret can send both), over the
// content "<id>.<timestamp>.<body>".
type StandardWebhooks struct {
	keys      []*key
	tolerance time.Duration
}

// StandardWebhooksConfig configures StandardWebhooks.
type StandardWebhooksConfig struct {
	// Secrets accepted, each "whsec_<base64>" (the prefix is optional, as in
	// the reference libraries). More than one during a rotation. Required.
	Secrets []string
	// Tolerance for the signed timestamp, both in the past and the future.
	// Default 5 minutes, as the reference libraries have it.
	Tolerance time.Duration
}

func init() {
	register(spec{Name: "standardwebhooks", LegacySecret: "webhook-secret", New: func(s settings) (Provider, error) {
		return NewStandardWebhooks(StandardWebhooksConfig{Secrets: s.Secrets, Tolerance: s.Tolerance})
	}})
}

// NewStandardWebhooks returns the provider, or an error for a secret that is
// not base64.
func NewStandardWebhooks(cfg StandardWebhooksConfig) (*StandardWebhooks, error) {
	if len(cfg.Secrets) == 0 {
		return nil, errors.New("standardwebhooks: no secret configured")
	}
	p := &StandardWebhooks{tolerance: cfg.Tolerance}
	if p.tolerance == 0 {
		p.tolerance = DefaultTolerance
	}
	for i, s := range cfg.Secrets {
		key, err := StandardWebhooksKey(s)
		if err != nil {
			return nil, fmt.Errorf("standardwebhooks: secret %d: %w", i+1, err)
		}
		p.keys = append(p.keys, newKey(key))
	}
	return p, nil
}

// StandardWebhooksKey returns the HMAC key of a secret "whsec_<base64>"
// (the prefix is optional, as in the reference libraries).
func StandardWebhooksKey(secret string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(strings.TrimSpace(secret), "whsec_"))
	if err != nil || len(key) == 0 {
		return nil, errors.New("not whsec_<base64>")
	}
	return key, nil
}

// Name implements Provider.
func (p *StandardWebhooks) Name() string { return "standardwebhooks" }

// SecretHeaders implements Provider.
func (p *StandardWebhooks) SecretHeaders() []string { return []string{"Webhook-Signature"} }

// Sign returns the webhook-signature value for a delivery under secret; it is
// what a sender computes, used by the demo, the load generator and tests.
func Sign(secret []byte, id string, ts time.Time, body []byte) string {
	return "v1," + base64.StdEncoding.EncodeToString(mac(hmac.New(sha256.New, secret), nil, id, strconv.FormatInt(ts.Unix(), 10), body))
}

// mac signs "<id>.<timestamp>.<body>" with m, appended to dst.
func mac(m hash.Hash, dst []byte, id, ts string, body []byte) []byte {
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(dst)
}

// Verify implements Provider.
func (p *StandardWebhooks) Verify(h http.Header, body []byte, now time.Time) (Delivery, error) {
	id, ts, sigs := h.Get("Webhook-Id"), h.Get("Webhook-Timestamp"), h.Get("Webhook-Signature")
	if id == "" || ts == "" || sigs == "" {
		return Delivery{}, fmt.Errorf("%w: webhook-id, webhook-timestamp and webhook-signature are required", ErrMissingSignature)
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return Delivery{}, fmt.Errorf("%w: webhook-timestamp is not Unix seconds", ErrInvalidSignature)
	}
	signedAt := time.Unix(secs, 0)
	if d := now.Sub(signedAt); d > p.tolerance || d < -p.tolerance {
		return Delivery{}, fmt.Errorf("%w: signed %s, tolerance %s", ErrStaleTimestamp, signedAt.UTC().Format(time.RFC3339), p.tolerance)
	}
	var buf [sha256.Size]byte
	for _, k := range p.keys {
		m := k.state()
		want := mac(m, buf[:0], id, ts, body)
		k.release(m)
		for _, sig := range strings.Fields(sigs) {
			version, value, ok := strings.Cut(sig, ",")
			if !ok || version != "v1" {
				continue
			}
			got, err := base64.StdEncoding.DecodeString(value)
			if err == nil && hmac.Equal(got, want) {
				return Delivery{ID: id, SignedAt: signedAt}, nil
			}
		}
	}
	return Delivery{}, ErrInvalidSignature
}

// standardPayload is the Standard Webhooks envelope with shopstream's
// order payload as data.
type standardPayload struct {
	Type      string `json:"type"`
	Timestamp string `json:"timestamp"`
	Data      struct {
		OrderID  string `json:"order_id"`
		Version  int64  `json:"version"`
		Currency string `json:"currency"`
		// The customer, by email or by the sender's own id, decoded only
		// to be hashed at the edge.
		CustomerEmail string `json:"customer_email"`
		CustomerID    string `json:"customer_id"`
		LineItems     []struct {
			ID             string `json:"id"`
			SKU            string `json:"sku"`
			Quantity       int64  `json:"quantity"`
			UnitPriceMinor int64  `json:"unit_price_minor"`
		} `json:"line_items"`
	} `json:"data"`
}

var standardTypes = map[string]string{
	"order.created":   avro.OrderCreated,
	"order.paid":      avro.OrderPaid,
	"order.cancelled": avro.OrderCancelled,
	"order.refunded":  avro.OrderRefunded,
	"order.fulfilled": avro.OrderFulfilled,
}

// Map implements Provider. The order's version is data.version when the
// sender has one, else the event timestamp in milliseconds.
func (p *StandardWebhooks) Map(d Delivery, body []byte) (Mapped, error) {
	var pl standardPayload
	e, err := p.mapEvent(d, body, &pl)
	if err != nil || e == nil {
		return Mapped{Type: pl.Type}, err
	}
	return Mapped{Type: pl.Type, Order: e, Customer: customerRef(p.Name(), pl.Data.CustomerEmail, pl.Data.CustomerID)}, nil
}

func (p *StandardWebhooks) mapEvent(d Delivery, body []byte, pl *standardPayload) (*avro.OrderEvent, error) {
	if err := decodeJSON(body, pl); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrMalformedPayload, jsonError(err, "a Standard Webhooks payload"))
	}
	if pl.Type == "" {
		return nil, fmt.Errorf("%w: no type", ErrMalformedPayload)
	}
	typ, ok := standardTypes[pl.Type]
	if !ok {
		return nil, nil
	}
	at, err := time.Parse(time.RFC3339Nano, pl.Timestamp)
	if err != nil {
		return nil, fmt.Errorf("%w: timestamp is not RFC 3339", ErrMalformedPayload)
	}
	if pl.Data.OrderID == "" {
		return nil, fmt.Errorf("%w: data.order_id is required", ErrMalformedPayload)
	}
	e := &avro.OrderEvent{
		EventID:    d.ID,
		Provider:   p.Name(),
		Type:       typ,
		OrderID:    pl.Data.OrderID,
		Version:    pl.Data.Version,
		OccurredAt: at.UTC().Truncate(time.Millisecond),
		Currency:   pl.Data.Currency,
		Lines:      make([]avro.LineItem, len(pl.Data.LineItems)),
	}
	if e.Version == 0 {
		e.Version = at.UnixMilli()
	}
	for i, l := range pl.Data.LineItems {
		if l.SKU == "" || l.Quantity <= 0 {
			return nil, fmt.Errorf("%w: line %d needs a sku and a positive quantity", ErrMalformedPayload, i+1)
		}
		id := l.ID
		if id == "" {
			id = strconv.Itoa(i + 1)
		}
		e.Lines[i] = avro.LineItem{LineID: id, SKU: l.SKU, Quantity: l.Quantity, UnitPriceMinor: l.UnitPriceMinor}
	}
	return e, nil
}
