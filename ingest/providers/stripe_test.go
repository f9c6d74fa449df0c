package providers_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	stripe "github.com/stripe/stripe-go/v82"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/shopstream/shopstream/ingest/providers"
	"github.com/shopstream/shopstream/ingest/providers/providertest"
	"github.com/shopstream/shopstream/internal/conf"
	"github.com/shopstream/shopstream/processors/orders"
	"github.com/shopstream/shopstream/schemas/avro"
)

// The test secret of stripe-go's own webhook tests; what matters is that
// the whole string is the key, prefix included.
const stripeSecret = "whsec_test_secret"

var stripeAt = time.Unix(1764583205, 0)

// Stripe's objects as its API reference shows them (API version
// 2025-08-27.basil), personal data included, which Map must leave out.
const (
	piSucceeded = `{
  "id": "pi_3QHk8u2eZvKYlo2C1mD1Jc9x",
  "object": "payment_intent",
  "amount": 4997,
  "amount_capturable": 0,
  "amount_received": 4997,
  "automatic_payment_methods": {"allow_redirects": "always", "enabled": true},
  "capture_method": "automatic_async",
  "client_secret": "pi_3QHk8u2eZvKYlo2C1mD1Jc9x_secret_5bT9dYvHq0RkQx",
  "confirmation_method": "automatic",
  "created": 1764583190,
  "currency": "eur",
  "customer": "cus_R9x2LpWq3eZvKY",
  "description": null,
  "last_payment_error": null,
  "latest_charge": "ch_3QHk8u2eZvKYlo2C1Xz0q7Lm",
  "livemode": false,
  "metadata": {"order_id": "o-1001"},
  "payment_method": "pm_1QHk8t2eZvKYlo2CbQ5m9R2c",
  "payment_method_types": ["card"],
  "receipt_email": "jenny.rosen@example.com",
  "shipping": {"name": "Jenny Rosen", "phone": null, "address": {"city": "Berlin", "country": "DE", "line1": "Unter den Linden 1", "postal_code": "10117"}},
  "status": "succeeded"
}`
	sessionCompleted = `{
  "id": "cs_test_a1Yy3nM0vVQ2t8VZx2Lq5eRb",
  "object": "checkout.session",
  "amount_subtotal": 4997,
  "amount_total": 4997,
  "client_reference_id": null,
  "created": 1764583100,
  "currency": "eur",
  "customer": "cus_R9x2LpWq3eZvKY",
  "customer_details": {"address": {"city": "Berlin", "country": "DE", "line1": "Unter den Linden 1", "postal_code": "10117"}, "email": "jenny.rosen@example.com", "name": "Jenny Rosen", "phone": null, "tax_exempt": "none"},
  "expires_at": 1764669500,
  "livemode": false,
  "metadata": {"order_id": "o-1002"},
  "mode": "payment",
  "payment_intent": "pi_3QHk8u2eZvKYlo2C0Pq4s2Zd",
  "payment_method_types": ["card", "sepa_debit"],
  "payment_status": "paid",
  "status": "complete",
  "success_url": "https://shop.example.com/thanks",
  "url": null
}`
	chargeRefunded = `{
  "id": "ch_3QHk8u2eZvKYlo2C1Xz0q7Lm",
  "object": "charge",
  "amount": 4997,
  "amount_captured": 4997,
  "amount_refunded": 4997,
  "billing_details": {"address": {"city": "Berlin", "country": "DE", "line1": "Unter den Linden 1", "postal_code": "10117"}, "email": "jenny.rosen@example.com", "name": "Jenny Rosen", "phone": null},
  "captured": true,
  "created": 1764583191,
  "currency": "eur",
  "customer": "cus_R9x2LpWq3eZvKY",
  "livemode": false,
  "metadata": {"order_id": "o-1001"},
  "paid": true,
  "payment_intent": "pi_3QHk8u2eZvKYlo2C1mD1Jc9x",
  "payment_method_details": {"card": {"brand": "visa", "country": "US", "exp_month": 8, "exp_year": 2027, "fingerprint": "Xt5EWLLDS7FJjR1c", "last4": "4242"}, "type": "card"},
  "receipt_email": "jenny.rosen@example.com",
  "refunded": true,
  "status": "succeeded"
}`
)

// stripeEvent wraps object in Stripe's Event object, as Stripe delivers it.
func stripeEvent(id, typ string, created time.Time, object string) string {
	return fmt.Sprintf(`{
  "id": %q,
  "object": "event",
  "api_version": %q,
  "created": %d,
  "data": {"object": %s},
  "livemode": false,
  "pending_webhooks": 1,
  "request": {"id": "req_V2c8xQm1Lz0aPd", "idempotency_key": "b7e5c1d2-4f3a-4c1e-9f0a-6d2b8e7c5a10"},
  "type": %q
}`, id, stripe.APIVersion, created.Unix(), object, typ)
}

// replace changes one field of a fixture, and fails when it is not there.
func replace(t *testing.T, s, old, new string) string {
	t.Helper()
	if !strings.Contains(s, old) {
		t.Fatalf("fixture has no %s", old)
	}
	return strings.Replace(s, old, new, 1)
}

func newStripe(t testing.TB, cfg providers.StripeConfig) *providers.Stripe {
	t.Helper()
	p, err := providers.NewStripe(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func stripeHeader(sig string) http.Header {
	h := http.Header{}
	if sig != "" {
		h.Set("Stripe-Signature", sig)
	}
	return h
}

// officialHeader is the Stripe-Signature stripe-go generates for body.
func officialHeader(body []byte, secret string, at time.Time, scheme string) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: at, Scheme: scheme}).Header
}

func TestStripeVerify(t *testing.T) {
	body := []byte(stripeEvent("evt_3QHk8u2eZvKYlo2C1aB2cD3e", "payment_intent.succeeded", stripeAt, piSucceeded))
	good := officialHeader(body, stripeSecret, stripeAt, "v1")
	goodSig := good[strings.Index(good, "v1="):]
	ts := fmt.Sprintf("t=%d", stripeAt.Unix())
	other := officialHeader(body, "whsec_other", stripeAt, "v1")
	otherSig := other[strings.Index(other, "v1="):]

	p := newStripe(t, providers.StripeConfig{Secrets: []string{stripeSecret}})
	rotated := newStripe(t, providers.StripeConfig{Secrets: []string{"whsec_new", stripeSecret}})
	strict := newStripe(t, providers.StripeConfig{Secrets: []string{stripeSecret}, Tolerance: time.Minute})
	notJSON := []byte(`not json`)
	noID := []byte(`{"object":"event","type":"payment_intent.succeeded"}`)
	tests := []struct {
		name string
		p    *providers.Stripe
		sig  string
		body []byte
		now  time.Time
		want error
	}{
		{"stripe-go's header", p, good, body, stripeAt, nil},
		{"second secret during a rotation", rotated, good, body, stripeAt, nil},
		{"one good v1 among several, and a v0", p, ts + "," + otherSig + "," + goodSig + ",v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39", body, stripeAt, nil},
		{"both secrets signed, as Stripe does during a roll", p, providers.StripeSign(stripeAt, body, "whsec_new", stripeSecret), body, stripeAt, nil},
		{"unknown schemes ignored", p, good + ",v2=abc,x=y", body, stripeAt, nil},
		{"within tolerance, late", p, good, body, stripeAt.Add(300 * time.Second), nil},
		{"within tolerance, early clock", p, good, body, stripeAt.Add(-300 * time.Second), nil},
		{"wrong secret", p, other, body, stripeAt, providers.ErrInvalidSignature},
		{"tampered body", p, good, append(append([]byte{}, body...), ' '), stripeAt, providers.ErrInvalidSignature},
		{"timestamp moved within tolerance", p, fmt.Sprintf("t=%d,", stripeAt.Unix()+1) + goodSig, body, stripeAt, providers.ErrInvalidSignature},
		{"v0 only", p, officialHeader(body, stripeSecret, stripeAt, "v0"), body, stripeAt, providers.ErrInvalidSignature},
		{"v1 not hex", p, ts + ",v1=zz" + goodSig[5:], body, stripeAt, providers.ErrInvalidSignature},
		{"no timestamp", p, goodSig, body, stripeAt, providers.ErrInvalidSignature},
		{"timestamp not seconds", p, "t=2025-12-01T10:00:05Z," + goodSig, body, stripeAt, providers.ErrInvalidSignature},
		{"two timestamps", p, good + ",t=1", body, stripeAt, providers.ErrInvalidSignature},
		{"not key=value", p, "garbage", body, stripeAt, providers.ErrInvalidSignature},
		{"missing header", p, "", body, stripeAt, providers.ErrMissingSignature},
		{"stale", p, good, body, stripeAt.Add(301 * time.Second), providers.ErrStaleTimestamp},
		{"from the future", p, good, body, stripeAt.Add(-301 * time.Second), providers.ErrStaleTimestamp},
		{"the configured tolerance", strict, good, body, stripeAt.Add(61 * time.Second), providers.ErrStaleTimestamp},
		{"signed, not JSON", p, officialHeader(notJSON, stripeSecret, stripeAt, "v1"), notJSON, stripeAt, providers.ErrMalformedPayload},
		{"signed, no event id", p, officialHeader(noID, stripeSecret, stripeAt, "v1"), noID, stripeAt, providers.ErrMalformedPayload},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := tt.p.Verify(stripeHeader(tt.sig), tt.body, tt.now)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
			if err == nil && (d.ID != "evt_3QHk8u2eZvKYlo2C1aB2cD3e" || !d.SignedAt.Equal(stripeAt)) {
				t.Fatalf("delivery %+v", d)
			}
			if err != nil && (strings.Contains(err.Error(), stripeSecret) || strings.Contains(err.Error(), goodSig[3:13]) || strings.Contains(err.Error(), "not json")) {
				t.Fatalf("error %q quotes a secret, a signature or the payload", err)
			}
		})
	}
}

// Stripe's official library signs, we verify; we sign, it verifies. A
// round trip through our own code could not show that the key is the whole
// whsec_ string, the payload "<t>.<body>" and the signature hex.
func TestStripeAgreesWithStripeGo(t *testing.T) {
	now := time.Now()
	body := []byte(stripeEvent("evt_1QHk9a2eZvKYlo2CXq8Lm2Zt", "payment_intent.succeeded", now, piSucceeded))
	p := newStripe(t, providers.StripeConfig{Secrets: []string{stripeSecret}})

	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: stripeSecret})
	d, err := p.Verify(stripeHeader(signed.Header), body, now)
	if err != nil || d.ID != "evt_1QHk9a2eZvKYlo2CXq8Lm2Zt" {
		t.Fatalf("stripe-go's signature: %+v, %v", d, err)
	}

	h := http.Header{}
	providertest.Stripe{Secrets: []string{"whsec_old", stripeSecret}}.Sign(h, providertest.Delivery{Body: body, At: now})
	for _, secret := range []string{"whsec_old", stripeSecret} {
		ev, err := webhook.ConstructEventWithOptions(body, h.Get("Stripe-Signature"), secret, webhook.ConstructEventOptions{})
		if err != nil || ev.ID != d.ID || ev.Type != "payment_intent.succeeded" {
			t.Fatalf("stripe-go refuses our signature under %s: %v", secret[:8], err)
		}
	}
	if err := webhook.ValidatePayload(body, h.Get("Stripe-Signature"), "whsec_other"); !errors.Is(err, webhook.ErrNoValidSignature) {
		t.Fatalf("stripe-go accepts our signature under another secret: %v", err)
	}
	if h.Get("Content-Type") != "application/json; charset=utf-8" {
		t.Fatalf("content type %q is not Stripe's", h.Get("Content-Type"))
	}
}

func TestNewStripeRejectsBadSecrets(t *testing.T) {
	for _, s := range [][]string{nil, {"whsec_"}, {"sk_test_4eC39HqLyjWDarjtT1zdp7dc"}, {"whsec_ok", "rk_live_x"}} {
		_, err := providers.NewStripe(providers.StripeConfig{Secrets: s})
		if err == nil {
			t.Errorf("secret %q accepted", s)
		} else if strings.Contains(err.Error(), "4eC39") || strings.Contains(err.Error(), "rk_live") {
			t.Errorf("error %q quotes the secret", err)
		}
	}
}

func TestStripeIsServedOnceItsSecretIsSet(t *testing.T) {
	var c providers.Config
	fs := conf.New("t")
	c.RegisterFlags(fs)
	env := map[string]string{"SHOPSTREAM_STRIPE_SECRET": "whsec_old, " + stripeSecret, "SHOPSTREAM_SIGNATURE_TOLERANCE": "1m"}
	if _, err := fs.Parse(nil, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	enabled, err := c.Enabled()
	if err != nil || len(enabled) != 1 || enabled[0].Name() != "stripe" {
		t.Fatalf("enabled %v, %v; want stripe alone", enabled, err)
	}
	p := enabled[0]
	if h := p.SecretHeaders(); len(h) != 1 || h[0] != "Stripe-Signature" {
		t.Fatalf("secret headers %v", h)
	}
	body := []byte(stripeEvent("evt_1", "payment_intent.succeeded", stripeAt, piSucceeded))
	if _, err := p.Verify(stripeHeader(officialHeader(body, stripeSecret, stripeAt, "v1")), body, stripeAt.Add(time.Minute)); err != nil {
		t.Fatalf("second secret: %v", err)
	}
	if _, err := p.Verify(stripeHeader(officialHeader(body, stripeSecret, stripeAt, "v1")), body, stripeAt.Add(61*time.Second)); !errors.Is(err, providers.ErrStaleTimestamp) {
		t.Fatalf("the tolerance setting is not applied: %v", err)
	}
}

func TestStripeMap(t *testing.T) {
	p := newStripe(t, providers.StripeConfig{Secrets: []string{stripeSecret}})
	d := providers.Delivery{ID: "evt_x"}
	at := time.Date(2025, 12, 1, 10, 0, 5, 0, time.UTC)
	paidSession := func(o string) string { return replace(t, sessionCompleted, `"paid"`, o) }
	noMetadata := replace(t, sessionCompleted, `{"order_id": "o-1002"}`, `{}`)
	for _, tt := range []struct {
		name, typ, object string
		want              string // type; "" for a receipt
		order             string
	}{
		{"payment intent succeeded", "payment_intent.succeeded", piSucceeded, avro.OrderPaid, "o-1001"},
		{"session paid", "checkout.session.completed", sessionCompleted, avro.OrderPaid, "o-1002"},
		{"session with nothing to pay", "checkout.session.completed", paidSession(`"no_payment_required"`), avro.OrderPaid, "o-1002"},
		{"session unpaid: a delayed method", "checkout.session.completed", paidSession(`"unpaid"`), "", ""},
		{"delayed payment settled", "checkout.session.async_payment_succeeded", sessionCompleted, avro.OrderPaid, "o-1002"},
		{"delayed payment failed", "checkout.session.async_payment_failed", paidSession(`"unpaid"`), "", ""},
		{"client_reference_id when no metadata", "checkout.session.completed", replace(t, noMetadata, `"client_reference_id": null`, `"client_reference_id": "o-77"`), avro.OrderPaid, "o-77"},
		{"metadata over client_reference_id", "checkout.session.completed", replace(t, sessionCompleted, `"client_reference_id": null`, `"client_reference_id": "cart-9"`), avro.OrderPaid, "o-1002"},
		{"session naming no order", "checkout.session.completed", noMetadata, "", ""},
		{"charge refunded in full", "charge.refunded", chargeRefunded, avro.OrderRefunded, "o-1001"},
		{"charge refunded in part", "charge.refunded", replace(t, replace(t, chargeRefunded, `"refunded": true`, `"refunded": false`), `"amount_refunded": 4997`, `"amount_refunded": 1000`), "", ""},
		{"payment failed", "payment_intent.payment_failed", replace(t, piSucceeded, `"status": "succeeded"`, `"status": "requires_payment_method"`), "", ""},
		{"payment naming no order", "payment_intent.succeeded", replace(t, piSucceeded, `{"order_id": "o-1001"}`, `{}`), "", ""},
		{"another kind, another shape", "customer.created", `{"id": "cus_1", "object": "customer", "metadata": [], "currency": 3}`, "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e, err := orderOf(p.Map(d, []byte(stripeEvent("evt_1", tt.typ, at, tt.object))))
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == "" {
				if e != nil {
					t.Fatalf("mapped %+v; want a receipt", e)
				}
				return
			}
			want := avro.OrderEvent{EventID: "evt_x", Provider: "stripe", Type: tt.want, OrderID: tt.order,
				Version: at.UnixMilli(), OccurredAt: at, Currency: "EUR"}
			if e == nil || e.EventID != want.EventID || e.Provider != want.Provider || e.Type != want.Type || e.OrderID != want.OrderID ||
				e.Version != want.Version || !e.OccurredAt.Equal(want.OccurredAt) || e.Currency != want.Currency || len(e.Lines) != 0 {
				t.Fatalf("mapped %+v, want %+v", e, want)
			}
			if s := fmt.Sprintf("%+v", *e); strings.Contains(s, "jenny") || strings.Contains(s, "Jenny") || strings.Contains(s, "4242") || strings.Contains(s, "Linden") {
				t.Fatalf("personal data in %s", s)
			}
		})
	}
	for name, body := range map[string]string{
		"not json":                  `{"type":`,
		"no type":                   stripeEvent("evt_1", "", at, piSucceeded),
		"no object":                 `{"id":"evt_1","type":"payment_intent.succeeded","created":1764583205,"data":{}}`,
		"null object":               `{"id":"evt_1","type":"charge.refunded","created":1764583205,"data":{"object":null}}`,
		"object not an object":      `{"id":"evt_1","type":"charge.refunded","created":1764583205,"data":{"object":"ch_1"}}`,
		"metadata not strings":      stripeEvent("evt_1", "payment_intent.succeeded", at, replace(t, piSucceeded, `"o-1001"`, `1001`)),
		"no created":                `{"id":"evt_1","type":"payment_intent.succeeded","data":{"object":{"currency":"eur","metadata":{"order_id":"o"}}}}`,
		"created as text":           `{"id":"evt_1","type":"payment_intent.succeeded","created":"1764583205","data":{"object":{}}}`,
		"the event is not a object": `[]`,
	} {
		_, err := orderOf(p.Map(d, []byte(body)))
		if !errors.Is(err, providers.ErrMalformedPayload) {
			t.Errorf("%s: err %v, want ErrMalformedPayload", name, err)
		} else if strings.Contains(err.Error(), "1001") || strings.Contains(err.Error(), "1764583205") {
			t.Errorf("%s: error %q quotes the payload", name, err)
		}
	}
}

// Stripe stamps whole seconds, so a payment and its refund can share a
// version. The orders state machine's rank must then put them in order: in
// every arrival order, with the storefront's lines, the order ends
// refunded and the stock where it began.
func TestStripeEventsOfOneSecondOrderByRank(t *testing.T) {
	p := newStripe(t, providers.StripeConfig{Secrets: []string{stripeSecret}})
	paid, err := orderOf(p.Map(providers.Delivery{ID: "evt_paid"}, []byte(stripeEvent("evt_paid", "payment_intent.succeeded", stripeAt, piSucceeded))))
	if err != nil {
		t.Fatal(err)
	}
	refunded, err := orderOf(p.Map(providers.Delivery{ID: "evt_refund"}, []byte(stripeEvent("evt_refund", "charge.refunded", stripeAt, chargeRefunded))))
	if err != nil {
		t.Fatal(err)
	}
	created := &avro.OrderEvent{EventID: "shop-1", Type: avro.OrderCreated, OrderID: "o-1001", Version: stripeAt.Add(-time.Minute).UnixMilli(),
		Lines: []avro.LineItem{{LineID: "1", SKU: "SKU-A", Quantity: 2}}}
	for _, arrival := range [][]*avro.OrderEvent{
		{created, paid, refunded}, {created, refunded, paid}, {paid, created, refunded},
		{paid, refunded, created}, {refunded, created, paid}, {refunded, paid, created},
	} {
		var (
			s     *orders.State
			stock int64
			seen  []string
		)
		for _, e := range arrival {
			next, _, tr := orders.Step(s, e)
			for _, delta := range orders.Deltas(next, e, tr) {
				stock += delta.Quantity
			}
			s = &next
			seen = append(seen, e.EventID)
		}
		if s.Status != avro.OrderRefunded || stock != 0 {
			t.Errorf("arrival %v: status %s, stock moved by %d", seen, s.Status, stock)
		}
	}
}

func FuzzStripe(f *testing.F) {
	p := newStripe(f, providers.StripeConfig{Secrets: []string{stripeSecret}})
	body := []byte(stripeEvent("evt_1", "payment_intent.succeeded", stripeAt, piSucceeded))
	header := officialHeader(body, stripeSecret, stripeAt, "v1")
	f.Add(header, body)
	f.Add("t=1764583205,v1=00,v0=zz", []byte(stripeEvent("evt_2", "charge.refunded", stripeAt, chargeRefunded)))
	f.Add("t=1764583205,v1=", []byte(stripeEvent("evt_3", "checkout.session.completed", stripeAt, sessionCompleted)))
	f.Fuzz(func(t *testing.T, sig string, b []byte) {
		d, err := p.Verify(stripeHeader(sig), b, stripeAt)
		if err == nil && (string(b) != string(body) || !strings.HasPrefix(sig, "t=1764583205,") && !strings.Contains(sig, ",t=1764583205")) {
			t.Fatalf("verified a delivery that is not the signed one: %q %q", sig, b)
		}
		if err == nil && d.ID != "evt_1" {
			t.Fatalf("delivery id %q", d.ID)
		}
		e, err := orderOf(p.Map(providers.Delivery{ID: "x"}, b))
		if err != nil && !errors.Is(err, providers.ErrMalformedPayload) {
			t.Fatalf("unclassified error %v", err)
		}
		if e != nil && (e.OrderID == "" || e.Version <= 0 || len(e.Lines) != 0 || e.Type != avro.OrderPaid && e.Type != avro.OrderRefunded) {
			t.Fatalf("mapped an invalid event %+v", e)
		}
	})
}

// orderOf is Map's order event, for the tests of order mapping.
func orderOf(m providers.Mapped, err error) (*avro.OrderEvent, error) { return m.Order, err }
