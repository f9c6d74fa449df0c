package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shopstream/shopstream/ingest/providers/providertest"
	"github.com/shopstream/shopstream/internal/stream"
	"github.com/shopstream/shopstream/internal/testenv"
	"github.com/shopstream/shopstream/schemas/avro"
	"github.com/shopstream/shopstream/schemas/envelope"
	"github.com/shopstream/shopstream/topology"
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
	// An order of qty units of P, as each provider tells it.
	orderOf := func(n int64, qty int) providertest.Order {
		return providertest.Order{ID: fmt.Sprint("e2e-", n), ShopifyID: n, At: now,
			Lines: []providertest.Line{{ID: 1, Qty: qty, Price: 1999, SKU: "P"}}}
	}
	send := p.sendAs
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

// sendAs posts d to provider name's endpoint, signed by signer, and fails
// the test unless the answer is wantStatus with wantOutcome.
func (p *pipeline) sendAs(name string, signer providertest.Signer, d providertest.Delivery, wantStatus int, wantOutcome string) {
	p.t.Helper()
	if d.At.IsZero() {
		d.At = time.Now()
	}
	url := strings.TrimSuffix(p.url, "/standardwebhooks") + "/" + name
	a, err := providertest.Post(context.Background(), &http.Client{Timeout: 20 * time.Second}, url, signer, d)
	if a.Code != wantStatus || a.Outcome() != wantOutcome {
		p.t.Fatalf("%s %s: %d %q (%v), want %d %q", name, d.ID, a.Code, a.Outcome(), err, wantStatus, wantOutcome)
	}
}

// Inventory webhooks of Shopify and Webflow, signed by each, reach the
// compacted snapshot topic keyed by the SKU the catalog gives their item,
// once per delivery; one whose item the catalog does not know is in the
// DLQ, saying why, and reaches the topic once the item is loaded and it is
// sent again.
func TestInventoryWebhooksBecomeSnapshotsBySKU(t *testing.T) {
	p := newPipeline(t)
	const shopifySecret, webflowSecret = "shpss_e2e_secret", "webflow-e2e-secret"
	p.env = append(p.env, "SHOPSTREAM_SHOPIFY_SECRET="+shopifySecret, "SHOPSTREAM_WEBFLOW_SECRET="+webflowSecret)
	catalog := filepath.Join(t.TempDir(), "catalog.csv")
	if err := os.WriteFile(catalog, []byte("source,item_id,sku,title\nshopify,271878346596884015,HOODIE,Hoodie\nwebflow,5bfedb42bab0ad90fa7dad39,MUG,Mug\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := p.shopstream("catalog", "load", catalog); !strings.Contains(out, "loaded 2 items") {
		t.Fatalf("catalog load: %s", out)
	}
	if out := p.shopstream("catalog", "show", "webflow", "5bfedb42bab0ad90fa7dad39", "nope"); out != "webflow\t5bfedb42bab0ad90fa7dad39\tMUG\nwebflow\tnope\t(unknown)\n" {
		t.Fatalf("catalog show: %q", out)
	}
	p.start()

	shopify := providertest.Shopify{Secret: shopifySecret}
	webflow := providertest.Webflow{Secret: []byte(webflowSecret)}
	level := []byte(`{"inventory_item_id":271878346596884015,"location_id":24826418,"available":6,"updated_at":"` + time.Now().UTC().Format(time.RFC3339) + `"}`)
	p.sendAs("shopify", shopify, providertest.Delivery{ID: "inv-wh-1", Body: level}, 200, "accepted")
	// Shopify's retry of the same delivery is answered, not written again.
	p.sendAs("shopify", shopify, providertest.Delivery{ID: "inv-wh-1", Body: level}, 200, "duplicate")
	p.sendAs("webflow", webflow, providertest.Delivery{Body: []byte(`{"triggerType":"ecomm_inventory_changed","payload":{"id":"5bfedb42bab0ad90fa7dad39","quantity":100,"inventoryType":"finite"}}`)},
		200, "accepted")
	unknown := []byte(`{"triggerType":"ecomm_inventory_changed","payload":{"id":"not-in-the-catalog","quantity":7,"inventoryType":"finite"}}`)
	p.sendAs("webflow", webflow, providertest.Delivery{Body: unknown}, 200, "accepted")

	snaps := testenv.ReadTopic(t, p.names.Snapshots, 2)
	got := map[string]int64{}
	for _, r := range snaps {
		var s avro.StockSnapshot
		if err := avro.Default().Unmarshal(r.Value, &s); err != nil || string(r.Key) != s.SKU {
			t.Fatalf("snapshot %+v keyed %q: %v", s, r.Key, err)
		}
		got[s.SKU] = s.Available
	}
	if len(snaps) != 2 || got["HOODIE"] != 6 || got["MUG"] != 100 {
		t.Fatalf("snapshots %v (%d records), want HOODIE 6 and MUG 100 once each", got, len(snaps))
	}
	dead := testenv.ReadTopic(t, topology.DLQ(p.names.WebhooksRaw), 1)
	if reason, _ := envelope.Header(dead[0], stream.HeaderErrorReason); len(dead) != 1 || !strings.Contains(reason, "no SKU for webflow item not-in-the-catalog") {
		t.Fatalf("dead letters %d, reason %q", len(dead), reason)
	}

	csv := filepath.Join(t.TempDir(), "more.csv")
	if err := os.WriteFile(csv, []byte("source,item_id,sku\nwebflow,not-in-the-catalog,CAP\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.shopstream("catalog", "load", csv)
	p.sendAs("webflow", webflow, providertest.Delivery{Body: unknown, At: time.Now().Add(time.Second)}, 200, "accepted")
	snaps = testenv.ReadTopic(t, p.names.Snapshots, 3)
	keys := map[string]int{}
	for _, r := range snaps {
		keys[string(r.Key)]++
	}
	if len(snaps) != 3 || keys["CAP"] != 1 {
		t.Fatalf("snapshots by key %v; want the loaded item's once, as CAP", keys)
	}
}
