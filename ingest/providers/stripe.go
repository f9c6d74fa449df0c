package providers

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"time"

	json "github.com/goccy/go-json"

	"github.com/shopstream/shopstream/schemas/avro"
)

// Stripe verifies and maps Stripe's webhooks (docs.stripe.com/webhooks),
// as stripe-go's webhook package checks them: the header Stripe-Signature
// is "t=<Unix seconds>,v1=<hex HMAC-SHA256>", with one v1 per secret while
// a secret is rolled, over "<t>.<body>". The HMAC key is the endpoint
// secret's own bytes, the whole "whsec_..." string: unlike Standard
// Webhooks, Stripe does not base64-decode it. The delivery id is the
// event's id ("evt_..."), the same on every retry.
//
// Stripe is the source of truth for payment finality, not for what an
// order contains: its events name the order (metadata.order_id) but list
// no lines, so the events it maps carry none, and the storefront's own
// events supply them.
type Stripe struct {
	keys      []*key
	tolerance time.Duration
}

// StripeConfig configures Stripe.
type StripeConfig struct {
	// Secrets accepted, each an endpoint's signing secret "whsec_...". More
	// than one during a rotation. Required.
	Secrets []string
	// Tolerance for the signed timestamp, both in the past and the future.
	// Default 5 minutes, stripe-go's DefaultTolerance (which checks only the
	// past; a timestamp from the future is as much a replay risk).
	Tolerance time.Duration
}

func init() {
	register(spec{Name: "stripe", New: func(s settings) (Provider, error) {
		return NewStripe(StripeConfig{Secrets: s.Secrets, Tolerance: s.Tolerance})
	}})
}

// NewStripe returns the provider, or an error for a secret that is not an
// endpoint signing secret.
func NewStripe(cfg StripeConfig) (*Stripe, error) {
	if len(cfg.Secrets) == 0 {
		return nil, errors.New("stripe: no secret configured")
	}
	p := &Stripe{tolerance: cfg.Tolerance}
	if p.tolerance == 0 {
		p.tolerance = DefaultTolerance
	}
	for i, s := range cfg.Secrets {
		// The prefix catches the usual mistake, an API key (sk_..., rk_...)
		// pasted where the endpoint's secret belongs, which would otherwise
		// only show as every delivery refused.
		if !strings.HasPrefix(s, "whsec_") || len(s) == len("whsec_") {
			return nil, fmt.Errorf("stripe: secret %d: not an endpoint signing secret whsec_...", i+1)
		}
		p.keys = append(p.keys, newKey([]byte(s)))
	}
	return p, nil
}

// Name implements Provider.
func (p *Stripe) Name() string { return "stripe" }

// SecretHeaders implements Provider.
func (p *Stripe) SecretHeaders() []string { return []string{"Stripe-Signature"} }

// StripeSign returns the Stripe-Signature value Stripe sends for body signed
// at ts, one v1 per secret as during a rotation; it is what a sender
// computes, used by the demo, the load generator and tests.
func StripeSign(ts time.Time, body []byte, secrets ...string) string {
	t := strconv.FormatInt(ts.Unix(), 10)
	var b strings.Builder
	b.WriteString("t=" + t)
	for _, s := range secrets {
		b.WriteString(",v1=" + hex.EncodeToString(stripeMAC(hmac.New(sha256.New, []byte(s)), nil, t, body)))
	}
	return b.String()
}

// stripeMAC signs "<t>.<body>" with m, appended to dst.
func stripeMAC(m hash.Hash, dst []byte, ts string, body []byte) []byte {
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(dst)
}

// Verify implements Provider. The body is checked exactly as received;
// only once a signature matches is it parsed, for the event id alone. That
// is safe because the bytes are then Stripe's own under our secret, so the
// parser sees nothing an attacker chose, and the id read is the one Stripe
// signed.
func (p *Stripe) Verify(h http.Header, body []byte, now time.Time) (Delivery, error) {
	header := h.Get("Stripe-Signature")
	if header == "" {
		return Delivery{}, fmt.Errorf("%w: stripe-signature is required", ErrMissingSignature)
	}
	var (
		ts   string
		sigs [][]byte
	)
	for _, item := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(item, "=")
		if !ok {
			return Delivery{}, fmt.Errorf("%w: stripe-signature is not key=value pairs", ErrInvalidSignature)
		}
		switch k {
		case "t":
			// Two timestamps would leave which one was signed open.
			if ts != "" {
				return Delivery{}, fmt.Errorf("%w: stripe-signature has two timestamps", ErrInvalidSignature)
			}
			ts = v
		case "v1":
			// Other schemes (v0, test-mode only) are not HMAC-SHA256 under
			// this secret; a v1 that is not hex cannot match, as in stripe-go.
			if sig, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, sig)
			}
		}
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return Delivery{}, fmt.Errorf("%w: stripe-signature has no t=<Unix seconds>", ErrInvalidSignature)
	}
	if len(sigs) == 0 {
		return Delivery{}, fmt.Errorf("%w: stripe-signature has no v1 signature", ErrInvalidSignature)
	}
	signedAt := time.Unix(secs, 0)
	if d := now.Sub(signedAt); d > p.tolerance || d < -p.tolerance {
		return Delivery{}, fmt.Errorf("%w: signed %s, tolerance %s", ErrStaleTimestamp, signedAt.UTC().Format(time.RFC3339), p.tolerance)
	}
	if !p.matches(ts, body, sigs) {
		return Delivery{}, ErrInvalidSignature
	}
	var ev struct {
		ID string `json:"id"`
	}
	if err := decodeJSON(body, &ev); err != nil {
		return Delivery{}, fmt.Errorf("%w: %s", ErrMalformedPayload, jsonError(err, "a JSON object"))
	}
	if ev.ID == "" {
		return Delivery{}, fmt.Errorf("%w: the event has no id", ErrMalformedPayload)
	}
	return Delivery{ID: ev.ID, SignedAt: signedAt}, nil
}

func (p *Stripe) matches(ts string, body []byte, sigs [][]byte) bool {
	var buf [sha256.Size]byte
	for _, k := range p.keys {
		m := k.state()
		want := stripeMAC(m, buf[:0], ts, body)
		k.release(m)
		for _, sig := range sigs {
			if hmac.Equal(sig, want) {
				return true
			}
		}
	}
	return false
}

// stripeEvent is the part of Stripe's Event object that Map reads. The
// object stays raw until the type says it is one Map maps, so an event of
// another kind, whatever its shape, is a receipt and never a refusal that
// Stripe would retry for days before disabling the endpoint.
type stripeEvent struct {
	Type    string `json:"type"`
	Created int64  `json:"created"`
	Data    struct {
		Object json.RawMessage `json:"object"`
	} `json:"data"`
}

// stripeObject is the part of a PaymentIntent, Checkout Session or Charge
// that Map reads: fields that are the same in every API version. Of the
// customer, only the emails and the customer id are decoded, and only to be
// hashed at the edge; names, addresses and card data never are, so they
// cannot reach an OrderEvent.
type stripeObject struct {
	Currency          string            `json:"currency"`
	Metadata          map[string]string `json:"metadata"`
	ClientReferenceID string            `json:"client_reference_id"`
	PaymentStatus     string            `json:"payment_status"`
	Refunded          bool              `json:"refunded"`

	// The customer's email is in one of these, by object: a session's
	// customer_details (or customer_email, which prefilled it), a
	// PaymentIntent's or Charge's receipt_email, a Charge's
	// billing_details.
	CustomerDetails *stripeEmail `json:"customer_details"`
	CustomerEmail   string       `json:"customer_email"`
	ReceiptEmail    string       `json:"receipt_email"`
	BillingDetails  *stripeEmail `json:"billing_details"`
	// Customer is the customer's id ("cus_..."), or the Customer object
	// when the endpoint expands it.
	Customer stripeCustomer `json:"customer"`
}

type stripeEmail struct {
	Email string `json:"email"`
}

type stripeCustomer string

func (c *stripeCustomer) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '{' {
		var o struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(b, &o); err != nil {
			return err
		}
		*c = stripeCustomer(o.ID)
		return nil
	}
	var id *string
	if err := json.Unmarshal(b, &id); err != nil {
		return err
	}
	if id != nil {
		*c = stripeCustomer(*id)
	}
	return nil
}

// customer names the object's customer for customerRef.
func (o *stripeObject) customer() string {
	email := o.ReceiptEmail
	for _, e := range []*stripeEmail{o.CustomerDetails, o.BillingDetails, {Email: o.CustomerEmail}} {
		if email == "" && e != nil {
			email = e.Email
		}
	}
	return customerRef("stripe", email, string(o.Customer))
}

// stripeTypes are the Stripe events that may map, each to its order event
// type given its object, or to "" for a receipt.
//
//   - payment_intent.succeeded: the payment is final.
//   - checkout.session.completed: only when payment_status says the money is
//     in. A delayed method (SEPA, ACH, Boleto) completes the session
//     "unpaid" and settles days later as async_payment_succeeded, or fails
//     as async_payment_failed; "no_payment_required" (a 100% discount) is as
//     final as paid, and no later event would ever sell that order.
//   - charge.refunded: only when the charge is refunded in full. Stripe
//     sends it for partial refunds too, which name no lines, and restocking
//     the whole order for one returned item would be wrong.
//
// payment_intent.payment_failed is a receipt, not CANCELLED: a failed
// attempt returns the intent to requires_payment_method, and the customer
// may pay on it a minute later; the order never sold, so there is no stock
// to give back, and cancelling the order is the storefront's decision. The
// same holds for async_payment_failed, payment_intent.canceled and
// checkout.session.expired.
var stripeTypes = map[string]func(stripeObject) string{
	"payment_intent.succeeded":                 func(stripeObject) string { return avro.OrderPaid },
	"checkout.session.completed":               stripeSessionPaid,
	"checkout.session.async_payment_succeeded": stripeSessionPaid,
	"charge.refunded": func(o stripeObject) string {
		if o.Refunded {
			return avro.OrderRefunded
		}
		return ""
	},
}

func stripeSessionPaid(o stripeObject) string {
	if o.PaymentStatus == "paid" || o.PaymentStatus == "no_payment_required" {
		return avro.OrderPaid
	}
	return ""
}

// Map implements Provider. The order is the object's metadata.order_id;
// a Checkout Session without one falls back to its client_reference_id.
// The metadata wins because it is the one key the shop can set on all three
// objects (a session's payment_intent_data.metadata reaches its
// PaymentIntent, and a PaymentIntent's metadata is copied to its Charge),
// so every event of one payment names the same order; client_reference_id
// exists on sessions alone and often holds a cart or customer id.
//
// An event that names no order is a receipt, not an error: one Stripe
// account sends every payment it takes (invoices, subscriptions, Payment
// Links, charges made in the Dashboard), and refusing those would only
// have Stripe retry them for three days and then disable the endpoint.
//
// The version is the event's created time in milliseconds. Stripe stamps
// whole seconds, so events of one payment in the same second share a
// version, and the orders state machine then orders them by type rank.
// That suffices because the events mapped here only ever happen in rank
// order (PAID before REFUNDED); two PAIDs of one payment (the session's and
// its PaymentIntent's) are the same fact, and the second sells nothing
// again.
func (p *Stripe) Map(d Delivery, body []byte) (Mapped, error) {
	var ev stripeEvent
	if err := decodeJSON(body, &ev); err != nil {
		return Mapped{}, fmt.Errorf("%w: %s", ErrMalformedPayload, jsonError(err, "a JSON object"))
	}
	e, o, err := p.mapEvent(d, &ev)
	if err != nil || e == nil {
		return Mapped{Type: ev.Type}, err
	}
	return Mapped{Type: ev.Type, Order: e, Customer: o.customer()}, nil
}

func (p *Stripe) mapEvent(d Delivery, ev *stripeEvent) (*avro.OrderEvent, *stripeObject, error) {
	if ev.Type == "" {
		return nil, nil, fmt.Errorf("%w: the event has no type", ErrMalformedPayload)
	}
	typeOf, ok := stripeTypes[ev.Type]
	if !ok {
		return nil, nil, nil
	}
	var o *stripeObject
	if len(ev.Data.Object) > 0 {
		if err := decodeJSON(ev.Data.Object, &o); err != nil {
			return nil, nil, fmt.Errorf("%w: data.object: %s", ErrMalformedPayload, jsonError(err, "a JSON object"))
		}
	}
	if o == nil {
		return nil, nil, fmt.Errorf("%w: %s has no data.object", ErrMalformedPayload, ev.Type)
	}
	if ev.Created <= 0 {
		return nil, nil, fmt.Errorf("%w: the event has no created time", ErrMalformedPayload)
	}
	typ := typeOf(*o)
	order := o.Metadata["order_id"]
	if order == "" {
		order = o.ClientReferenceID
	}
	if typ == "" || order == "" {
		return nil, nil, nil
	}
	at := time.Unix(ev.Created, 0).UTC()
	return &avro.OrderEvent{
		EventID:    d.ID,
		Provider:   p.Name(),
		Type:       typ,
		OrderID:    order,
		Version:    at.UnixMilli(),
		OccurredAt: at,
		Currency:   strings.ToUpper(o.Currency),
	}, o, nil
}
