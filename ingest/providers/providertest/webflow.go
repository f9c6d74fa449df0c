package providertest

import (
	"net/http"

	"github.com/shopstream/shopstream/ingest/providers"
)

// Webflow signs as Webflow does, with Secret (the OAuth app's client secret
// or the webhook's secret, as written). Webflow sends no delivery id, so
// Delivery.ID is not sent: the receiver derives it from the body.
type Webflow struct{ Secret []byte }

// Sign implements Signer.
func (s Webflow) Sign(h http.Header, d Delivery) {
	h.Set("X-Webflow-Timestamp", providers.WebflowTimestamp(d.At))
	h.Set("X-Webflow-Signature", providers.WebflowSign(s.Secret, d.At, d.Body))
}
