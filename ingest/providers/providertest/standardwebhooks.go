package providertest

import (
	"net/http"
	"strconv"

	"github.com/shopstream/shopstream/ingest/providers"
)

// StandardWebhooks signs as a Standard Webhooks sender does, with Key (the
// secret's bytes, after "whsec_" and base64).
type StandardWebhooks struct{ Key []byte }

// Sign implements Signer.
func (s StandardWebhooks) Sign(h http.Header, d Delivery) {
	h.Set("Webhook-Id", d.ID)
	h.Set("Webhook-Timestamp", strconv.FormatInt(d.At.Unix(), 10))
	h.Set("Webhook-Signature", providers.Sign(s.Key, d.ID, d.At, d.Body))
}
