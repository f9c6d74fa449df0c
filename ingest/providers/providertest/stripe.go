package providertest

import (
	"net/http"

	"github.com/shopstream/shopstream/ingest/providers"
)

// Stripe signs as Stripe does, with one v1 signature per secret in
// Secrets (whole "whsec_..." strings): more than one is how Stripe signs
// while an endpoint's secret is rolled. Stripe's delivery id is the event's
// id inside Body, so Delivery.ID is not sent.
type Stripe struct{ Secrets []string }

// Sign implements Signer. The Content-Type is the one Stripe sends, with
// its charset, so a receiver that wanted exactly application/json would
// fail here as it would in production.
func (s Stripe) Sign(h http.Header, d Delivery) {
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Stripe-Signature", providers.StripeSign(d.At, d.Body, s.Secrets...))
}
