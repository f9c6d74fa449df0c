package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shopstream/shopstream/ingest/providers/providertest"
)

// A webhook of each provider, signed by that provider's own scheme, moves
// stock on the real stack: a Standard Webhooks order, a Shopify order paid
// at checkout, a Webflow order, and a Shopify order that Stripe's payment
// makes sell (the storefront lists the lines, the gateway says it is paid).
// Each provider's signature under another's secret changes nothing.
func TestEveryProviderMovesStock(t *testing.T) {
	p := newPipeline(t)
	const shopifySecret, stripeSecret, webflowSecret = "shpss_e2e_secret", "whsec_e2e_stripe_secret", "webflow-e2e-secret"
	p.env = append(p.env, "SHOPSTREAM_SHOPIFY_SECRET="+shopifySecret, "SHOPSTREAM_STRIPE_SECRET="+stripeSecret,
		"SHOPSTREAM_WEBFLOW_SECRET="+webflowSecret)
	p.shopstream("stock", "adjust", "-sku", "P", "-qty", "100", "-id", "seed-P")
	p.start()

	now := time.Now().UTC()
	base := strings.TrimSuffix(p.url, "/standardwebhooks")
	shopifyOrder := func(id int, status string, qty int) string {
		return fmt.Sprintf(`{"id":%d,"admin_graphql_api_id":"gid://shopify/Order/%d","created_at":%q,"updated_at":%q,"currency":"EUR",`+
			`"financial_status":%q,"fulfillment_status":null,"cancelled_at":null,"email":"jane@example.com","customer":{"first_name":"Jane"},`+
			`"line_items":[{"id":%d01,"sku":"P","quantity":%d,"price":"19.99"}]}`,
			id, id, now.Format(time.RFC3339), now.Format(time.RFC3339), status, id, qty)
	}
	send := func(name string, signer providertest.Signer, d providertest.Delivery, wantStatus int, wantOutcome string) {
		t.Helper()
		if d.At.IsZero() {
			d.At = time.Now()
		}
		a, err := providertest.Post(context.Background(), &http.Client{Timeout: 20 * time.Second}, base+"/"+name, signer, d)
		if a.Code != wantStatus || a.Outcome() != wantOutcome {
			t.Fatalf("%s %s: %d %q (%v), want %d %q", name, d.ID, a.Code, a.Outcome(), err, wantStatus, wantOutcome)
		}
	}
	shopify := providertest.Shopify{Secret: shopifySecret}
	stripe := providertest.Stripe{Secrets: []string{stripeSecret}}
	webflow := providertest.Webflow{Secret: []byte(webflowSecret)}

	p.mustSend(delivery{id: "msg_sw_1", body: order("sw-1", "order.paid", now, line{"P", 1})}, 200, "accepted")
	send("shopify", shopify, providertest.Delivery{ID: "shopify-wh-1", Body: []byte(shopifyOrder(1001, "paid", 2))}, 200, "accepted")
	send("webflow", webflow, providertest.Delivery{Body: []byte(fmt.Sprintf(
		`{"triggerType":"ecomm_new_order","payload":{"orderId":"wf-1","status":"unfulfilled","acceptedOn":%q,`+
			`"customerPaid":{"unit":"EUR","value":"3000","string":"€ 30.00 EUR"},"customerInfo":{"fullName":"Jane Doe","email":"jane@example.com"},`+
			`"purchasedItems":[{"count":3,"productId":"p1","variantId":"v1","variantSKU":"P","productName":"Pin",`+
			`"variantPrice":{"unit":"EUR","value":"1000","string":"€ 10.00 EUR"},"rowTotal":{"unit":"EUR","value":"3000","string":"€ 30.00 EUR"}}]}}`,
		now.Format(time.RFC3339Nano)))}, 200, "accepted")
	// The storefront's order, not yet paid: it lists the lines and sells nothing.
	send("shopify", shopify, providertest.Delivery{ID: "shopify-wh-2", Body: []byte(shopifyOrder(1002, "pending", 4))}, 200, "accepted")
	stripeEvent := fmt.Sprintf(`{"id":"evt_e2e_1","object":"event","type":"payment_intent.succeeded","created":%d,`+
		`"data":{"object":{"id":"pi_e2e_1","object":"payment_intent","currency":"eur","metadata":{"order_id":"1002"}}}}`, now.Unix()+1)
	send("stripe", stripe, providertest.Delivery{Body: []byte(stripeEvent)}, 200, "accepted")

	// Each scheme refuses the others' signatures.
	send("stripe", providertest.Stripe{Secrets: []string{"whsec_not_the_secret"}}, providertest.Delivery{Body: []byte(stripeEvent)}, 401, "invalid_signature")
	send("shopify", providertest.Shopify{Secret: stripeSecret}, providertest.Delivery{ID: "shopify-wh-3", Body: []byte(shopifyOrder(1003, "paid", 50))},
		401, "invalid_signature")
	send("webflow", providertest.Webflow{Secret: []byte(shopifySecret)}, providertest.Delivery{Body: []byte(`{"triggerType":"ecomm_new_order","payload":{}}`)},
		401, "invalid_signature")

	// The seed and four sales: 1 + 2 + 3 + 4 units.
	p.settle(5)
	if got := p.stock("P"); got != 100-1-2-3-4 {
		t.Fatalf("stock of P is %d, want %d", got, 100-1-2-3-4)
	}
	if n := p.count("SELECT count() FROM $db.inventory_movements_final WHERE status = 'APPLIED' AND order_id = '1002'"); n != 1 {
		t.Fatalf("%d movements of the order Stripe paid, want 1", n)
	}
	if logs := p.output(); strings.Contains(logs, "jane@example.com") || strings.Contains(logs, stripeSecret) || strings.Contains(logs, shopifySecret) {
		t.Fatal("a secret or personal data appears in the logs")
	}
}
