package providers

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shopstream/shopstream/schemas/avro"
)

// Shopify's own webhook test vectors, from its Rails library: Shopify/shopify_app,
// test/shopify_app/controller_concerns/webhook_verification_test.rb ("authorized
// requests should be successful" and "... validated with old secret ...").
// The test posts params {foo: 'anything'}, which Rails sends as the form body
// "foo=anything", under config.secret "secret" and config.old_secret
// "old_secret". They prove interoperability, which a round trip through our
// own signer could not; the second one is a rotation.
const (
	shopifyVecSecret    = "secret"
	shopifyVecOldSecret = "old_secret"
	shopifyVecBody      = "foo=anything"
	shopifyVecSig       = "yCGX/RrK4fcuNtr3ztk5tQGsOBjcAzHpGLdMUrbV8yI="
	shopifyVecOldSig    = "XqRcjrSv57VACn6apEO9znyu/wkN1VC7QxdSPwK3Hzs="
)

func shopifyHeaders(prefix, sig, id, triggeredAt string) http.Header {
	h := http.Header{}
	for k, v := range map[string]string{"Hmac-Sha256": sig, "Webhook-Id": id, "Triggered-At": triggeredAt,
		"Topic": "orders/create", "Shop-Domain": "shop.myshopify.com"} {
		if v != "" {
			h.Set(prefix+k, v)
		}
	}
	return h
}

func TestShopifySignReproducesTheTestVectors(t *testing.T) {
	if got := ShopifySign(shopifyVecSecret, []byte(shopifyVecBody)); got != shopifyVecSig {
		t.Errorf("ShopifySign = %s, want %s", got, shopifyVecSig)
	}
	if got := ShopifySign(shopifyVecOldSecret, []byte(shopifyVecBody)); got != shopifyVecOldSig {
		t.Errorf("ShopifySign(old) = %s, want %s", got, shopifyVecOldSig)
	}
}

func TestShopifyVerify(t *testing.T) {
	p, err := NewShopify(ShopifyConfig{Secrets: []string{shopifyVecSecret}})
	if err != nil {
		t.Fatal(err)
	}
	rotating, err := NewShopify(ShopifyConfig{Secrets: []string{shopifyVecSecret, shopifyVecOldSecret}})
	if err != nil {
		t.Fatal(err)
	}
	const id, at = "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043", "2026-11-24T10:00:00.123Z"
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		p    *Shopify
		h    http.Header
		body string
		now  time.Time
		want error
	}{
		{"test vector", p, shopifyHeaders("X-Shopify-", shopifyVecSig, id, at), shopifyVecBody, now, nil},
		{"Events spelling, without X-", p, shopifyHeaders("Shopify-", shopifyVecSig, id, at), shopifyVecBody, now, nil},
		{"old secret during a rotation", rotating, shopifyHeaders("X-Shopify-", shopifyVecOldSig, id, at), shopifyVecBody, now, nil},
		{"old secret after the rotation", p, shopifyHeaders("X-Shopify-", shopifyVecOldSig, id, at), shopifyVecBody, now, ErrInvalidSignature},
		{"a retry hours later", p, shopifyHeaders("X-Shopify-", shopifyVecSig, id, at), shopifyVecBody, now.Add(4 * time.Hour), nil},
		{"no triggered-at", p, shopifyHeaders("X-Shopify-", shopifyVecSig, id, ""), shopifyVecBody, now, nil},
		{"tampered body", p, shopifyHeaders("X-Shopify-", shopifyVecSig, id, at), "foo=anythinG", now, ErrInvalidSignature},
		{"body re-encoded", p, shopifyHeaders("X-Shopify-", shopifyVecSig, id, at), shopifyVecBody + "\n", now, ErrInvalidSignature},
		{"hex, not base64", p, shopifyHeaders("X-Shopify-", "c8219...", id, at), shopifyVecBody, now, ErrInvalidSignature},
		{"truncated", p, shopifyHeaders("X-Shopify-", shopifyVecSig[:20], id, at), shopifyVecBody, now, ErrInvalidSignature},
		{"no signature", p, shopifyHeaders("X-Shopify-", "", id, at), shopifyVecBody, now, ErrMissingSignature},
		{"no webhook id", p, shopifyHeaders("X-Shopify-", shopifyVecSig, "", at), shopifyVecBody, now, ErrMissingSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := tt.p.Verify(tt.h, []byte(tt.body), tt.now)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), shopifyVecSig[:8]) {
				t.Fatalf("the error quotes the signature: %v", err)
			}
			if err == nil && d.ID != id {
				t.Fatalf("delivery %+v", d)
			}
		})
	}
	d, _ := p.Verify(shopifyHeaders("X-Shopify-", shopifyVecSig, id, at), []byte(shopifyVecBody), now)
	if !d.SignedAt.Equal(time.Date(2026, 11, 24, 10, 0, 0, 123e6, time.UTC)) {
		t.Fatalf("SignedAt %v, want X-Shopify-Triggered-At", d.SignedAt)
	}
}

func TestNewShopifyNeedsASecret(t *testing.T) {
	for _, s := range [][]string{nil, {""}} {
		if _, err := NewShopify(ShopifyConfig{Secrets: s}); err == nil {
			t.Errorf("secrets %q accepted", s)
		}
	}
}

func TestShopifyHidesItsSignatures(t *testing.T) {
	p, _ := NewShopify(ShopifyConfig{Secrets: []string{"s"}})
	got := strings.Join(p.SecretHeaders(), ",")
	if got != "X-Shopify-Hmac-Sha256,Shopify-Hmac-Sha256" {
		t.Fatalf("SecretHeaders %s", got)
	}
}

// shopifyOrderBody is an Order as Shopify's orders/* webhooks deliver it,
// shortened: ids past 2^53, prices as decimal strings, personal data, and a
// custom item without a SKU.
func shopifyOrderBody(state string) string {
	return `{"id":5993455321000123457,"admin_graphql_api_id":"gid://shopify/Order/5993455321000123457",
	"email":"jon@example.com","phone":"+15551234567","created_at":"2026-11-24T10:59:00-05:00",
	"updated_at":"2026-11-24T11:00:00.250-05:00","processed_at":"2026-11-24T10:59:00-05:00",
	"currency":"EUR","presentment_currency":"EUR","total_price":"44.97",` + state + `,
	"customer":{"id":207119551,"email":"jon@example.com","first_name":"Jon","last_name":"Snow"},
	"shipping_address":{"first_name":"Jon","address1":"1 Wall St","city":"Winterfell","zip":"K2P 1L4"},
	"line_items":[
		{"id":9007199254740993,"admin_graphql_api_id":"gid://shopify/LineItem/9007199254740993","sku":"SKU-A",
		 "name":"Hoodie","quantity":2,"price":"19.99","price_set":{"shop_money":{"amount":"19.99","currency_code":"EUR"}}},
		{"id":466157050,"sku":"","name":"Gift wrap","quantity":1,"price":"2.00"},
		{"id":466157051,"sku":null,"name":"Engraving","quantity":1,"price":"0.99"},
		{"id":466157052,"sku":"SKU-B","quantity":1,"price":"5"}],
	"refunds":[]}`
}

func TestShopifyMapOrders(t *testing.T) {
	p, _ := NewShopify(ShopifyConfig{Secrets: []string{"s"}})
	d := Delivery{ID: "b54557e4"}
	updated := time.Date(2026, 11, 24, 16, 0, 0, 250e6, time.UTC)
	for _, tt := range []struct {
		name, state, want string
	}{
		{"orders/create, pending", `"financial_status":"pending","fulfillment_status":null,"cancelled_at":null`, avro.OrderCreated},
		{"orders/create, paid at checkout", `"financial_status":"paid","fulfillment_status":null,"cancelled_at":null`, avro.OrderPaid},
		{"orders/paid", `"financial_status":"paid","fulfillment_status":null`, avro.OrderPaid},
		{"orders/updated, partly refunded", `"financial_status":"partially_refunded","fulfillment_status":null`, avro.OrderPaid},
		{"orders/fulfilled", `"financial_status":"paid","fulfillment_status":"fulfilled"`, avro.OrderFulfilled},
		{"orders/updated, partly fulfilled", `"financial_status":"paid","fulfillment_status":"partial"`, avro.OrderPaid},
		{"orders/cancelled", `"financial_status":"voided","cancelled_at":"2026-11-24T11:00:00-05:00","cancel_reason":"customer"`, avro.OrderCancelled},
		{"orders/updated after every SKU line was restocked", `"financial_status":"refunded","fulfillment_status":"fulfilled",
			"refunds":[{"id":1,"refund_line_items":[{"line_item_id":466157052,"quantity":1,"restock_type":"return"}]},
			{"id":2,"refund_line_items":[{"line_item_id":9007199254740993,"quantity":2,"restock_type":"return"}]}]`, avro.OrderRefunded},
		{"orders/updated after a partial restock", `"financial_status":"partially_refunded","fulfillment_status":"fulfilled",
			"refunds":[{"id":1,"restock":true,"refund_line_items":[{"line_item_id":466157052,"quantity":1,"restock_type":"return"}]}]`, avro.OrderFulfilled},
		{"orders/updated after a refund of money only", `"financial_status":"refunded",
			"refunds":[{"id":1,"refund_line_items":[{"line_item_id":466157052,"quantity":1,"restock_type":"no_restock"}]}]`, avro.OrderPaid},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// JSON keeps the last of a repeated key: the fixture's empty
			// refunds would hide the state's.
			body := strings.Replace(shopifyOrderBody(tt.state), `"refunds":[]}`, `"x":0}`, 1)
			e, err := orderOf(p.Map(d, []byte(body)))
			if err != nil {
				t.Fatal(err)
			}
			want := avro.OrderEvent{EventID: "b54557e4", Provider: "shopify", Type: tt.want, OrderID: "5993455321000123457",
				Version: updated.UnixMilli(), OccurredAt: updated, Currency: "EUR", Lines: []avro.LineItem{
					{LineID: "9007199254740993", SKU: "SKU-A", Quantity: 2, UnitPriceMinor: 1999},
					{LineID: "466157052", SKU: "SKU-B", Quantity: 1, UnitPriceMinor: 500}}}
			if got, w := fmt.Sprintf("%+v", *e), fmt.Sprintf("%+v", want); got != w {
				t.Fatalf("mapped\n%s\nwant\n%s", got, w)
			}
			for _, personal := range []string{"jon", "Jon", "Snow", "555", "Wall", "Winterfell", "207119551"} {
				if strings.Contains(fmt.Sprintf("%+v", *e), personal) {
					t.Fatalf("the event carries personal data %q", personal)
				}
			}
		})
	}
}

// shopifyRefundBody is a Refund as refunds/create delivers it, shortened.
func shopifyRefundBody(restock string) string {
	return `{"id":929361462,"order_id":5993455321000123457,"admin_graphql_api_id":"gid://shopify/Refund/929361462",
	"created_at":"2026-11-25T09:30:00-05:00","processed_at":"2026-11-25T09:30:00-05:00","note":"damaged","user_id":548380009,` + restock + `,
	"refund_line_items":[
		{"id":1,"line_item_id":9007199254740993,"quantity":1,"restock_type":"return","location_id":24826418,"subtotal":19.99,
		 "line_item":{"id":9007199254740993,"sku":"SKU-A","quantity":2,"price":"19.99","price_set":{"shop_money":{"amount":"19.99","currency_code":"EUR"}}}},
		{"id":2,"line_item_id":466157052,"quantity":1,"restock_type":"no_restock",
		 "line_item":{"id":466157052,"sku":"SKU-B","quantity":1,"price":"5.00","price_set":{"shop_money":{"amount":"5.00","currency_code":"EUR"}}}},
		{"id":3,"line_item_id":466157050,"quantity":1,"restock_type":"return",
		 "line_item":{"id":466157050,"sku":"","quantity":1,"price":"2.00"}}],
	"transactions":[{"id":1,"kind":"refund","amount":"19.99","currency":"EUR"}],"order_adjustments":[]}`
}

// A Refund resource is a receipt only: it lists the lines it refunds, not
// the order's, so it cannot tell a whole restock from a partial one, and
// REFUNDED would give the whole order back. So is anything that is not an
// order.
func TestShopifyRefundsAndOtherResourcesAreReceipts(t *testing.T) {
	p, _ := NewShopify(ShopifyConfig{Secrets: []string{"s"}})
	for name, body := range map[string]string{
		"a restocking refund":     shopifyRefundBody(`"restock":true`),
		"a refund of money only":  shopifyRefundBody(`"restock":false`),
		"an inventory level":      `{"inventory_item_id":271878346596884015,"location_id":24826418,"available":7,"updated_at":"2026-11-24T11:00:00-05:00"}`,
		"another resource (null)": `null`,
	} {
		if e, err := orderOf(p.Map(Delivery{ID: "r1"}, []byte(body))); err != nil || e != nil {
			t.Errorf("%s: %+v, %v; want a receipt only", name, e, err)
		}
	}
}

func TestShopifyMapRefusesMalformedPayloads(t *testing.T) {
	p, _ := NewShopify(ShopifyConfig{Secrets: []string{"s"}})
	order := shopifyOrderBody(`"financial_status":"paid"`)
	for name, body := range map[string]string{
		"not json":              `{"id":`,
		"not an object":         `[1]`,
		"id as float":           strings.Replace(order, `"id":5993455321000123457`, `"id":5.99e18`, 1),
		"id past int64":         strings.Replace(order, `"id":5993455321000123457`, `"id":99999999999999999999`, 1),
		"no id":                 strings.Replace(order, `"id":5993455321000123457`, `"idx":1`, 1),
		"no updated_at":         strings.Replace(order, `"updated_at"`, `"x_updated_at"`, 1),
		"updated_at not a time": strings.Replace(order, `"2026-11-24T11:00:00.250-05:00"`, `"yesterday"`, 1),
		"quantity as text":      strings.Replace(order, `"quantity":2`, `"quantity":"2"`, 1),
		"zero quantity":         strings.Replace(order, `"quantity":2`, `"quantity":0`, 1),
		"price as a number":     strings.Replace(order, `"price":"19.99"`, `"price":19.99`, 1),
		"price with 3 decimals": strings.Replace(order, `"price":"19.99"`, `"price":"19.995"`, 1),
		"negative price":        strings.Replace(order, `"price":"19.99"`, `"price":"-19.99"`, 1),
		"price in exponent":     strings.Replace(order, `"price":"19.99"`, `"price":"1e3"`, 1),
		"empty price":           strings.Replace(order, `"price":"19.99"`, `"price":""`, 1),
	} {
		_, err := orderOf(p.Map(Delivery{ID: "x"}, []byte(body)))
		if !errors.Is(err, ErrMalformedPayload) {
			t.Errorf("%s: err %v, want ErrMalformedPayload", name, err)
			continue
		}
		for _, leak := range []string{"jon", "19.99", "yesterday", "5993455321000123457"} {
			if strings.Contains(err.Error(), leak) {
				t.Errorf("%s: the error quotes the payload: %v", name, err)
			}
		}
	}
}

func TestShopifyMinorUnits(t *testing.T) {
	for _, tt := range []struct {
		price    string
		currency string
		want     int64
		ok       bool
	}{
		{"19.99", "EUR", 1999, true},
		{"19.9", "USD", 1990, true},
		{"19", "", 1900, true},
		{"0.00", "EUR", 0, true},
		{"1000", "JPY", 1000, true},
		{"1000.00", "JPY", 1000, true},
		{"1000.50", "JPY", 0, false},
		{"1.234", "KWD", 1234, true},
		{"1.2345", "KWD", 0, false},
		{"92233720368547758.07", "EUR", 9223372036854775807, true},
		{"92233720368547758.08", "EUR", 0, false},
		{".5", "EUR", 0, false},
		{"1.", "EUR", 100, true},
		{"1,50", "EUR", 0, false},
		{"+1", "EUR", 0, false},
	} {
		got, err := shopifyMinorUnits(tt.price, shopifyCurrencyExponent(tt.currency))
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("%s %s = %d, %v; want %d", tt.price, tt.currency, got, err, tt.want)
		}
	}
}

func FuzzShopify(f *testing.F) {
	p, _ := NewShopify(ShopifyConfig{Secrets: []string{shopifyVecSecret}})
	f.Add(shopifyVecSig, "", "id", "2026-11-24T10:00:00Z", []byte(shopifyVecBody))
	f.Add("", shopifyVecOldSig, "id", "", []byte(shopifyOrderBody(`"financial_status":"paid"`)))
	f.Add("x", "", "", "", []byte(shopifyRefundBody(`"restock":true`)))
	f.Add("x", "", "", "", []byte(`{"inventory_item_id":271878346596884015,"location_id":24826418,"available":6,"updated_at":"2021-12-31T19:00:00-05:00"}`))
	f.Fuzz(func(t *testing.T, sig, plainSig, id, triggeredAt string, body []byte) {
		h := shopifyHeaders("X-Shopify-", sig, id, triggeredAt)
		if plainSig != "" {
			h.Set("Shopify-Hmac-Sha256", plainSig)
		}
		d, err := p.Verify(h, body, time.Unix(0, 0))
		if err == nil && (string(body) != shopifyVecBody || d.ID != id) {
			t.Fatalf("verified a delivery that is not the vector: %q", body)
		}
		m, err := p.Map(Delivery{ID: "x"}, body)
		if err != nil && !errors.Is(err, ErrMalformedPayload) {
			t.Fatalf("unclassified error %v", err)
		}
		if s := m.Stock; s != nil && (m.Order != nil || s.SnapshotID != "x" || s.ItemID == "" || s.LocationID == "" || s.ObservedAt.IsZero()) {
			t.Fatalf("mapped an invalid snapshot %+v", m)
		}
		e := m.Order
		if e == nil {
			return
		}
		if e.OrderID == "" || strings.Trim(e.OrderID, "0123456789") != "" || e.Version != e.OccurredAt.UnixMilli() {
			t.Fatalf("mapped an invalid event %+v", e)
		}
		for _, l := range e.Lines {
			if l.SKU == "" || l.Quantity <= 0 || l.UnitPriceMinor < 0 || l.LineID == "" {
				t.Fatalf("mapped an invalid line %+v", l)
			}
		}
	})
}
