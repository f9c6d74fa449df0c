package providers

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shopstream/shopstream/schemas/avro"
)

// Each provider names the customer for the edge's hash by email, the same
// person across providers, else by its own customer id; personal data
// reaches neither the event nor the error.
func TestMapNamesTheCustomer(t *testing.T) {
	shopify, _ := NewShopify(ShopifyConfig{Secrets: []string{"s"}})
	webflow, _ := NewWebflow(WebflowConfig{Secrets: []string{"s"}})
	stripe, _ := NewStripe(StripeConfig{Secrets: []string{"whsec_s"}})
	standard, _ := NewStandardWebhooks(StandardWebhooksConfig{Secrets: []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}})
	stripeEvent := func(typ, object string) string {
		return `{"id":"evt_1","type":"` + typ + `","created":1764583205,"data":{"object":` + object + `}}`
	}
	noEmail := strings.Replace(shopifyOrderBody(`"financial_status":"paid"`), `"email":"jon@example.com",`, ``, 1)
	for _, tt := range []struct {
		name string
		p    Provider
		body string
		want string
	}{
		{"shopify order email", shopify, shopifyOrderBody(`"financial_status":"paid"`), "email:jon@example.com"},
		{"shopify customer id", shopify, noEmail, "shopify:207119551"},
		{"shopify guest without email", shopify, strings.Replace(noEmail, `"customer":{"id":207119551,`, `"customer":{`, 1), ""},
		{"webflow", webflow, strings.Replace(wfOrder("ecomm_new_order", "unfulfilled", ""), `"arthur.dent@example.com"`, `" Arthur.Dent@Example.COM "`, 1),
			"email:arthur.dent@example.com"},
		{"webflow without customer", webflow, strings.Replace(wfOrder("ecomm_new_order", "unfulfilled", ""), `"email":"arthur.dent@example.com"`, `"email":null`, 1), ""},
		{"stripe receipt email", stripe, stripeEvent("payment_intent.succeeded", `{"currency":"eur","metadata":{"order_id":"o"},"customer":"cus_1","receipt_email":"Jenny@example.com"}`),
			"email:jenny@example.com"},
		{"stripe session", stripe, stripeEvent("checkout.session.completed", `{"payment_status":"paid","metadata":{"order_id":"o"},"customer":null,"customer_details":{"email":"a@b.c","name":"A"}}`),
			"email:a@b.c"},
		{"stripe charge billing details", stripe, stripeEvent("charge.refunded", `{"refunded":true,"metadata":{"order_id":"o"},"receipt_email":null,"billing_details":{"email":"c@d.e"}}`),
			"email:c@d.e"},
		{"stripe customer id", stripe, stripeEvent("payment_intent.succeeded", `{"metadata":{"order_id":"o"},"customer":"cus_R9x2"}`), "stripe:cus_R9x2"},
		{"stripe expanded customer", stripe, stripeEvent("payment_intent.succeeded", `{"metadata":{"order_id":"o"},"customer":{"id":"cus_R9x3","email":null}}`), "stripe:cus_R9x3"},
		{"stripe guest", stripe, stripeEvent("payment_intent.succeeded", `{"metadata":{"order_id":"o"}}`), ""},
		{"standard webhooks email", standard, `{"type":"order.paid","timestamp":"2026-11-24T10:00:00Z","data":{"order_id":"o","customer_email":"X@Y.z","customer_id":"c-1"}}`, "email:x@y.z"},
		{"standard webhooks id", standard, `{"type":"order.paid","timestamp":"2026-11-24T10:00:00Z","data":{"order_id":"o","customer_id":"c-1"}}`, "standardwebhooks:c-1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := tt.p.Map(Delivery{ID: "d"}, []byte(tt.body))
			if err != nil || m.Order == nil {
				t.Fatalf("mapped %+v, %v", m, err)
			}
			if m.Customer != tt.want {
				t.Fatalf("customer %q, want %q", m.Customer, tt.want)
			}
			if m.Order.CustomerHash != "" {
				t.Fatalf("a provider hashed the customer itself: %q", m.Order.CustomerHash)
			}
		})
	}
}

// An inventory webhook is a stock snapshot of the provider's item, the
// payloads from the providers' own documentation.
func TestMapInventoryWebhooksToSnapshots(t *testing.T) {
	shopify, _ := NewShopify(ShopifyConfig{Secrets: []string{"s"}})
	webflow, _ := NewWebflow(WebflowConfig{Secrets: []string{"s"}})
	signed := time.Date(2026, 12, 1, 10, 0, 0, 123e6, time.UTC)
	// shopify.dev, webhook topic inventory_levels/update, its example body.
	const level = `{"inventory_item_id":271878346596884015,"location_id":24826418,"available":6,` +
		`"updated_at":"2021-12-31T19:00:00-05:00","admin_graphql_api_id":"gid://shopify/InventoryLevel/24826418?inventory_item_id=271878346596884015"}`
	// developers.webflow.com, ecomm_inventory_changed: v2 and v1 payloads.
	const item = `{"triggerType":"ecomm_inventory_changed","payload":{"id":"5bfedb42bab0ad90fa7dad39","quantity":100,"inventoryType":"finite"}}`
	const itemV1 = `{"triggerType":"ecomm_inventory_changed","payload":{"_id":"5bfedb42bab0ad90fa7dad39","quantity":83,"inventoryType":"finite"}}`
	for _, tt := range []struct {
		name string
		p    Provider
		body string
		want *avro.StockSnapshot
	}{
		{"shopify level", shopify, level, &avro.StockSnapshot{SnapshotID: "d", Source: "shopify", ItemID: "271878346596884015", LocationID: "24826418",
			Available: 6, ObservedAt: time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{"shopify oversold location", shopify, strings.Replace(level, `"available":6`, `"available":-2`, 1), &avro.StockSnapshot{SnapshotID: "d", Source: "shopify",
			ItemID: "271878346596884015", LocationID: "24826418", Available: -2, ObservedAt: time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{"shopify untracked", shopify, strings.Replace(level, `"available":6`, `"available":null`, 1), nil},
		{"webflow v2", webflow, item, &avro.StockSnapshot{SnapshotID: "d", Source: "webflow", ItemID: "5bfedb42bab0ad90fa7dad39", Available: 100, ObservedAt: signed}},
		{"webflow v1", webflow, itemV1, &avro.StockSnapshot{SnapshotID: "d", Source: "webflow", ItemID: "5bfedb42bab0ad90fa7dad39", Available: 83, ObservedAt: signed}},
		{"webflow infinite", webflow, `{"triggerType":"ecomm_inventory_changed","payload":{"id":"5bfedb42bab0ad90fa7dad39","inventoryType":"infinite"}}`, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := tt.p.Map(Delivery{ID: "d", SignedAt: signed}, []byte(tt.body))
			if err != nil || m.Order != nil {
				t.Fatalf("mapped %+v, %v", m, err)
			}
			if (m.Stock == nil) != (tt.want == nil) || m.Stock != nil && *m.Stock != *tt.want {
				t.Fatalf("snapshot %+v, want %+v", m.Stock, tt.want)
			}
		})
	}
	for name, c := range map[string]struct {
		p    Provider
		body string
	}{
		"shopify level without location":  {shopify, strings.Replace(level, `"location_id":24826418,`, ``, 1)},
		"shopify level without time":      {shopify, strings.Replace(level, `"updated_at":"2021-12-31T19:00:00-05:00",`, ``, 1)},
		"webflow without item":            {webflow, `{"triggerType":"ecomm_inventory_changed","payload":{"quantity":1,"inventoryType":"finite"}}`},
		"webflow finite without quantity": {webflow, `{"triggerType":"ecomm_inventory_changed","payload":{"id":"i","inventoryType":"finite"}}`},
		"webflow half a unit":             {webflow, `{"triggerType":"ecomm_inventory_changed","payload":{"id":"i","quantity":1.5,"inventoryType":"finite"}}`},
		"webflow unknown inventory type":  {webflow, `{"triggerType":"ecomm_inventory_changed","payload":{"id":"i","quantity":1,"inventoryType":"some"}}`},
	} {
		if _, err := c.p.Map(Delivery{ID: "d", SignedAt: signed}, []byte(c.body)); !errors.Is(err, ErrMalformedPayload) {
			t.Errorf("%s: err %v, want ErrMalformedPayload", name, err)
		}
	}
}

// Map reports the provider's own name of the event, whatever it maps to:
// orders, snapshots and receipts alike.
func TestMapReportsTheProvidersEventType(t *testing.T) {
	shopify, _ := NewShopify(ShopifyConfig{Secrets: []string{"s"}})
	webflow, _ := NewWebflow(WebflowConfig{Secrets: []string{"s"}})
	stripe, _ := NewStripe(StripeConfig{Secrets: []string{"whsec_s"}})
	standard, _ := NewStandardWebhooks(StandardWebhooksConfig{Secrets: []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}})
	for _, tt := range []struct {
		p    Provider
		d    Delivery
		body string
		want string
	}{
		{shopify, Delivery{ID: "d", Type: "orders/paid"}, shopifyOrderBody(`"financial_status":"paid"`), "orders/paid"},
		{shopify, Delivery{ID: "d", Type: "products/update"}, `{"id":1,"title":"Mug"}`, "products/update"},
		{webflow, Delivery{ID: "d"}, wfOrder("ecomm_new_order", "unfulfilled", ""), "ecomm_new_order"},
		{webflow, Delivery{ID: "d"}, `{"triggerType":"form_submission","payload":{}}`, "form_submission"},
		{stripe, Delivery{ID: "d"}, `{"id":"evt_1","type":"customer.created","created":1,"data":{"object":{}}}`, "customer.created"},
		{standard, Delivery{ID: "d"}, `{"type":"order.paid","timestamp":"2026-11-24T10:00:00Z","data":{"order_id":"o"}}`, "order.paid"},
	} {
		if m, err := tt.p.Map(tt.d, []byte(tt.body)); err != nil || m.Type != tt.want {
			t.Errorf("%s %s: type %q, %v; want %q", tt.p.Name(), tt.want, m.Type, err, tt.want)
		}
	}
}
