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
	// An order of qty units of P, as each provider tells it.
	orderOf := func(n int64, qty int) providertest.Order {
		return providertest.Order{ID: fmt.Sprint("e2e-", n), ShopifyID: n, At: now,
			Lines: []providertest.Line{{ID: 1, Qty: qty, Price: 1999, SKU: "P"}}}
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
	send("shopify", shopify, providertest.Delivery{ID: "shopify-wh-1", Body: orderOf(1001, 2).Shopify("paid", now, false)}, 200, "accepted")
	send("webflow", webflow, providertest.Delivery{Body: orderOf(2001, 3).Webflow("ecomm_new_order", "unfulfilled", now)}, 200, "accepted")
	// The storefront's order, not yet paid: it lists the lines and sells nothing.
	send("shopify", shopify, providertest.Delivery{ID: "shopify-wh-2", Body: orderOf(1002, 4).Shopify("pending", now, false)}, 200, "accepted")
	stripeEvent := orderOf(1002, 4).Stripe("payment_intent.succeeded", now.Add(time.Second))
	send("stripe", stripe, providertest.Delivery{Body: stripeEvent}, 200, "accepted")

	// Each scheme refuses the others' signatures.
	send("stripe", providertest.Stripe{Secrets: []string{"whsec_not_the_secret"}}, providertest.Delivery{Body: stripeEvent}, 401, "invalid_signature")
	send("shopify", providertest.Shopify{Secret: stripeSecret}, providertest.Delivery{ID: "shopify-wh-3", Body: orderOf(1003, 50).Shopify("paid", now, false)},
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
	if logs := p.output(); strings.Contains(logs, "customer@example.com") || strings.Contains(logs, "Demo Customer") || strings.Contains(logs, stripeSecret) || strings.Contains(logs, shopifySecret) {
		t.Fatal("a secret or personal data appears in the logs")
	}
}
