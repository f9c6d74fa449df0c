package providertest

import (
	"net/http"
	"time"

	"github.com/shopstream/shopstream/ingest/providers"
)

// Shopify signs as Shopify does, with Secret (the app's client secret),
// and sends the headers of its webhooks: the topic (Topic, default
// orders/create) and the shop (Shop, default shopstream-demo.myshopify.com)
// as well as the signature, the webhook id and the time it was triggered.
type Shopify struct {
	Secret, Topic, Shop string
}

// Sign implements Signer.
func (s Shopify) Sign(h http.Header, d Delivery) {
	topic, shop := s.Topic, s.Shop
	if topic == "" {
		topic = "orders/create"
	}
	if shop == "" {
		shop = "shopstream-demo.myshopify.com"
	}
	h.Set("X-Shopify-Topic", topic)
	h.Set("X-Shopify-Shop-Domain", shop)
	h.Set("X-Shopify-Webhook-Id", d.ID)
	h.Set("X-Shopify-Triggered-At", d.At.UTC().Format(time.RFC3339Nano))
	h.Set("X-Shopify-Hmac-Sha256", providers.ShopifySign(s.Secret, d.Body))
}
