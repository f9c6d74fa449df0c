package providers

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shopstream/shopstream/schemas/avro"
)

// Webflow publishes no complete test vector: its "Verifying requests" page
// shows a timestamp (1663849649733) and a signature (db37faac…) but neither
// the body nor the secret, and its SDK's verifySignature has no test. So
// this vector keeps the page's timestamp and was computed with an
// independent tool, not our own signer:
//
//	printf '%s' "$wfVecBody" > body.raw
//	{ printf '1663849649733:'; cat body.raw; } |
//		openssl dgst -sha256 -hmac 'shopstream-test-client-secret-0123456789abcdef'
//	SHA2-256(stdin)= 228245caeea7af264f5c854a6932a895a301e4ac0f7adff0d7040e29e51da4de
//
// (OpenSSL 3.0.19). The body is a new order as Webflow sends it, compact,
// its fields those of the v2 Data API's Order example (js-webflow-api,
// tests/wire/orders.test.ts), with the example's fictional customer.
const (
	wfVecSecret = "shopstream-test-client-secret-0123456789abcdef"
	wfVecTS     = "1663849649733"
	wfVecSig    = "228245caeea7af264f5c854a6932a895a301e4ac0f7adff0d7040e29e51da4de"
	wfVecBody   = `{"triggerType":"ecomm_new_order","payload":{"orderId":"7c1-9fd","status":"unfulfilled","comment":"","orderComment":"Please gift wrap","acceptedOn":"2022-09-22T12:27:29.733Z","fulfilledOn":null,"refundedOn":null,"disputedOn":null,"disputeUpdatedOn":null,"disputeLastStatus":null,"customerPaid":{"unit":"USD","value":"21155","string":"$ 211.55 USD"},"shippingAddress":{"type":"shipping","addressee":"Arthur Dent","line1":"20 W 34th St","city":"New York","state":"New York","country":"US","postalCode":"10118"},"customerInfo":{"fullName":"Arthur Dent","email":"arthur.dent@example.com"},"purchasedItems":[{"count":2,"rowTotal":{"unit":"USD","value":"11122","string":"$ 111.22 USD"},"productId":"66072fb61b89448912e26791","productName":"Luxurious Fresh Ball","variantId":"66072fb71b89448912e2683f","variantSKU":"luxurious-fresh-ball-bronze","variantPrice":{"unit":"USD","value":"5561","string":"$ 55.61 USD"}},{"count":1,"rowTotal":{"unit":"USD","value":"8309","string":"$ 83.09 USD"},"productId":"66072fb61b89448912e2678b","productName":"Gift card","variantId":"66072fb71b89448912e2681e","variantSKU":"","variantPrice":{"unit":"USD","value":"8309","string":"$ 83.09 USD"}}],"purchasedItemsCount":3,"totals":{"subtotal":{"unit":"USD","value":"19431","string":"$ 194.31 USD"},"total":{"unit":"USD","value":"21155","string":"$ 211.55 USD"}}}}`
	wfVecID     = "ecomm_new_order:7c1-9fd:unfulfilled:1663849649733"
)

var wfVecTime = time.UnixMilli(1663849649733)

func wfHeaders(ts, sig string) http.Header {
	h := http.Header{}
	if ts != "" {
		h.Set("x-webflow-timestamp", ts)
	}
	if sig != "" {
		h.Set("x-webflow-signature", sig)
	}
	return h
}

func newWebflow(t testing.TB, secrets ...string) *Webflow {
	t.Helper()
	p, err := NewWebflow(WebflowConfig{Secrets: secrets})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestWebflowSignReproducesTheTestVector(t *testing.T) {
	if got := WebflowSign([]byte(wfVecSecret), wfVecTime, []byte(wfVecBody)); got != wfVecSig {
		t.Fatalf("WebflowSign = %s, want %s", got, wfVecSig)
	}
}

func TestWebflowVerify(t *testing.T) {
	p := newWebflow(t, wfVecSecret)
	rotated := newWebflow(t, "the-new-client-secret", wfVecSecret)
	wrong := newWebflow(t, "another-apps-client-secret")
	tests := []struct {
		name string
		p    *Webflow
		h    http.Header
		body string
		now  time.Time
		want error
	}{
		{"test vector", p, wfHeaders(wfVecTS, wfVecSig), wfVecBody, wfVecTime, nil},
		{"second secret during a rotation", rotated, wfHeaders(wfVecTS, wfVecSig), wfVecBody, wfVecTime, nil},
		{"upper-case hex", p, wfHeaders(wfVecTS, strings.ToUpper(wfVecSig)), wfVecBody, wfVecTime, nil},
		{"within tolerance, late", p, wfHeaders(wfVecTS, wfVecSig), wfVecBody, wfVecTime.Add(299 * time.Second), nil},
		{"within tolerance, early clock", p, wfHeaders(wfVecTS, wfVecSig), wfVecBody, wfVecTime.Add(-299 * time.Second), nil},
		{"wrong secret", wrong, wfHeaders(wfVecTS, wfVecSig), wfVecBody, wfVecTime, ErrInvalidSignature},
		{"tampered body", p, wfHeaders(wfVecTS, wfVecSig), strings.Replace(wfVecBody, `"count":2`, `"count":20`, 1), wfVecTime, ErrInvalidSignature},
		{"body re-encoded with spaces", p, wfHeaders(wfVecTS, wfVecSig), strings.Replace(wfVecBody, `":`, `": `, 1), wfVecTime, ErrInvalidSignature},
		{"timestamp moved within tolerance", p, wfHeaders("1663849649734", wfVecSig), wfVecBody, wfVecTime, ErrInvalidSignature},
		{"signature truncated", p, wfHeaders(wfVecTS, wfVecSig[:62]), wfVecBody, wfVecTime, ErrInvalidSignature},
		{"signature not hex", p, wfHeaders(wfVecTS, "sha256="+wfVecSig), wfVecBody, wfVecTime, ErrInvalidSignature},
		{"timestamp not a number", p, wfHeaders("2022-09-22T12:27:29Z", wfVecSig), wfVecBody, wfVecTime, ErrInvalidSignature},
		{"timestamp in seconds", p, wfHeaders("1663849649", wfVecSig), wfVecBody, wfVecTime, ErrStaleTimestamp},
		{"stale", p, wfHeaders(wfVecTS, wfVecSig), wfVecBody, wfVecTime.Add(301 * time.Second), ErrStaleTimestamp},
		{"from the future", p, wfHeaders(wfVecTS, wfVecSig), wfVecBody, wfVecTime.Add(-301 * time.Second), ErrStaleTimestamp},
		{"no timestamp", p, wfHeaders("", wfVecSig), wfVecBody, wfVecTime, ErrMissingSignature},
		{"no signature", p, wfHeaders(wfVecTS, ""), wfVecBody, wfVecTime, ErrMissingSignature},
		{"no headers", p, http.Header{}, wfVecBody, wfVecTime, ErrMissingSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := tt.p.Verify(tt.h, []byte(tt.body), tt.now)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
			if err == nil && (d.ID != wfVecID || !d.SignedAt.Equal(wfVecTime)) {
				t.Fatalf("delivery %+v", d)
			}
			if err != nil && (strings.Contains(err.Error(), wfVecSig[:16]) || strings.Contains(err.Error(), "arthur")) {
				t.Fatalf("error %q shows the signature or the payload", err)
			}
		})
	}
}

func TestNewWebflowNeedsASecret(t *testing.T) {
	for _, s := range [][]string{nil, {""}} {
		if _, err := NewWebflow(WebflowConfig{Secrets: s}); err == nil {
			t.Errorf("secrets %q accepted", s)
		}
	}
	if p := newWebflow(t, "s"); p.tolerance != DefaultTolerance {
		t.Errorf("default tolerance %s, want %s", p.tolerance, DefaultTolerance)
	}
}

// wfOrder is a Webflow webhook for order o-1 with the given trigger, status
// and order fields (already JSON).
func wfOrder(trigger, status, fields string) string {
	return `{"triggerType":"` + trigger + `","payload":{"orderId":"o-1","status":"` + status + `",` +
		`"acceptedOn":"2026-11-24T10:00:00.123Z",` + fields +
		`"customerInfo":{"fullName":"Arthur Dent","email":"arthur.dent@example.com"},` +
		`"purchasedItems":[{"count":1,"variantId":"v1","variantSKU":"SKU-A","variantPrice":{"unit":"EUR","value":"1999","string":"€ 19.99 EUR"}}]}}`
}

func TestWebflowMap(t *testing.T) {
	p := newWebflow(t, wfVecSecret)
	e, err := orderOf(p.Map(Delivery{ID: wfVecID}, []byte(wfVecBody)))
	if err != nil {
		t.Fatal(err)
	}
	accepted := time.Date(2022, 9, 22, 12, 27, 29, 733e6, time.UTC)
	if e.EventID != wfVecID || e.Provider != "webflow" || e.Type != avro.OrderPaid || e.OrderID != "7c1-9fd" ||
		e.Version != accepted.UnixMilli() || !e.OccurredAt.Equal(accepted) || e.Currency != "USD" || len(e.Lines) != 1 ||
		e.Lines[0] != (avro.LineItem{LineID: "66072fb71b89448912e2683f", SKU: "luxurious-fresh-ball-bronze", Quantity: 2, UnitPriceMinor: 5561}) {
		t.Fatalf("mapped %+v", e)
	}
	if s := strings.ToLower(e.OrderID + e.Currency + e.EventID); strings.Contains(s, "arthur") || strings.Contains(s, "34th") {
		t.Fatalf("personal data in %+v", e)
	}

	for _, tt := range []struct {
		name, body string
		typ        string
		at         time.Time
	}{
		{"fulfilled", wfOrder("ecomm_order_changed", "fulfilled", `"fulfilledOn":"2026-11-25T08:30:00Z",`), avro.OrderFulfilled, time.Date(2026, 11, 25, 8, 30, 0, 0, time.UTC)},
		{"refunded", wfOrder("ecomm_order_changed", "refunded", `"fulfilledOn":"2026-11-25T08:30:00Z","refundedOn":"2026-11-26T09:00:00.5Z",`), avro.OrderRefunded, time.Date(2026, 11, 26, 9, 0, 0, 5e8, time.UTC)},
		{"unfulfilled is paid, at acceptance", wfOrder("ecomm_order_changed", "unfulfilled", `"fulfilledOn":null,`), avro.OrderPaid, time.Date(2026, 11, 24, 10, 0, 0, 123e6, time.UTC)},
		{"a pending new order is paid", wfOrder("ecomm_new_order", "pending", ""), avro.OrderPaid, time.Date(2026, 11, 24, 10, 0, 0, 123e6, time.UTC)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e, err := orderOf(p.Map(Delivery{ID: "x"}, []byte(tt.body)))
			if err != nil {
				t.Fatal(err)
			}
			if e.Type != tt.typ || e.Version != tt.at.UnixMilli() || !e.OccurredAt.Equal(tt.at) || e.Currency != "EUR" ||
				len(e.Lines) != 1 || e.Lines[0] != (avro.LineItem{LineID: "v1", SKU: "SKU-A", Quantity: 1, UnitPriceMinor: 1999}) {
				t.Fatalf("mapped %+v", e)
			}
		})
	}

	numbers, err := orderOf(p.Map(Delivery{ID: "x"}, []byte(`{"triggerType":"ecomm_new_order","payload":{"orderId":"o","acceptedOn":"2026-11-24T10:00:00Z",
		"purchasedItems":[{"count":2,"variantId":"v1","variantSKU":"S","variantPrice":{"unit":"JPY","value":500}},
		{"count":3,"variantId":"v1","variantSKU":"S","variantPrice":{"unit":"JPY","value":500}},
		{"count":1,"variantId":"v2","variantSKU":null,"variantPrice":{"unit":"JPY","value":900}}]}}`)))
	if err != nil || numbers.Currency != "JPY" || len(numbers.Lines) != 1 ||
		numbers.Lines[0] != (avro.LineItem{LineID: "v1", SKU: "S", Quantity: 5, UnitPriceMinor: 500}) {
		t.Fatalf("amounts as numbers, a variant listed twice, a line without SKU: %+v %v", numbers, err)
	}

	for name, body := range map[string]string{
		"disputed":        wfOrder("ecomm_order_changed", "disputed", `"disputedOn":"2026-11-27T00:00:00Z",`),
		"dispute lost":    wfOrder("ecomm_order_changed", "dispute-lost", `"disputedOn":"2026-11-27T00:00:00Z","disputeUpdatedOn":"2026-12-01T00:00:00Z",`),
		"pending change":  wfOrder("ecomm_order_changed", "pending", ""),
		"form submission": `{"triggerType":"form_submission","payload":{"name":"Contact Us","data":{"email":"zaphod@heartofgold.ai"}}}`,
		"a future status": wfOrder("ecomm_order_changed", "partially-fulfilled", ""),
	} {
		if e, err := orderOf(p.Map(Delivery{ID: "x"}, []byte(body))); e != nil || err != nil {
			t.Errorf("%s maps to %+v, %v; want a receipt only (nil, nil)", name, e, err)
		}
	}

	for name, body := range map[string]string{
		"not json":               `{"triggerType":`,
		"no trigger":             `{"payload":{"orderId":"o"}}`,
		"no order id":            `{"triggerType":"ecomm_new_order","payload":{"acceptedOn":"2026-11-24T10:00:00Z"}}`,
		"no acceptedOn":          `{"triggerType":"ecomm_new_order","payload":{"orderId":"o"}}`,
		"fulfilled without time": wfOrder("ecomm_order_changed", "fulfilled", `"fulfilledOn":null,`),
		"time not ISO 8601":      `{"triggerType":"ecomm_new_order","payload":{"orderId":"o","acceptedOn":"yesterday"}}`,
		"zero count":             `{"triggerType":"ecomm_new_order","payload":{"orderId":"o","acceptedOn":"2026-11-24T10:00:00Z","purchasedItems":[{"count":0,"variantId":"v","variantSKU":"S"}]}}`,
		"no variant id":          `{"triggerType":"ecomm_new_order","payload":{"orderId":"o","acceptedOn":"2026-11-24T10:00:00Z","purchasedItems":[{"count":1,"variantSKU":"S"}]}}`,
		"count as text":          `{"triggerType":"ecomm_new_order","payload":{"orderId":"o","acceptedOn":"2026-11-24T10:00:00Z","purchasedItems":[{"count":"1","variantId":"v","variantSKU":"S"}]}}`,
		"price in dollars":       `{"triggerType":"ecomm_new_order","payload":{"orderId":"o","acceptedOn":"2026-11-24T10:00:00Z","purchasedItems":[{"count":1,"variantId":"v","variantSKU":"S","variantPrice":{"value":"55.61"}}]}}`,
		"counts overflow":        `{"triggerType":"ecomm_new_order","payload":{"orderId":"o","acceptedOn":"2026-11-24T10:00:00Z","purchasedItems":[{"count":9223372036854775807,"variantId":"v","variantSKU":"S"},{"count":1,"variantId":"v","variantSKU":"S"}]}}`,
	} {
		if _, err := orderOf(p.Map(Delivery{ID: "x"}, []byte(body))); !errors.Is(err, ErrMalformedPayload) {
			t.Errorf("%s: err %v, want ErrMalformedPayload", name, err)
		} else if strings.Contains(err.Error(), "arthur") {
			t.Errorf("%s: error %q shows the payload", name, err)
		}
	}
}

// The derived id is what dedup keys on: a retry (same body, signed anew)
// must get the same id, and another event another id.
func TestWebflowDeliveryID(t *testing.T) {
	p := newWebflow(t, wfVecSecret)
	verify := func(body string, at time.Time) string {
		t.Helper()
		d, err := p.Verify(wfHeaders(WebflowTimestamp(at), WebflowSign([]byte(wfVecSecret), at, []byte(body))), []byte(body), at)
		if err != nil {
			t.Fatal(err)
		}
		return d.ID
	}
	now := time.Date(2026, 12, 1, 19, 0, 0, 0, time.UTC)
	fulfilled := wfOrder("ecomm_order_changed", "fulfilled", `"fulfilledOn":"2026-11-25T08:30:00Z",`)
	inventory := `{"triggerType":"ecomm_inventory_changed","payload":{"id":"5bfedb42bab0ad90fa7dac03","quantity":100,"inventoryType":"finite"}}`

	if a, b := verify(wfVecBody, wfVecTime), verify(wfVecBody, wfVecTime.Add(90*time.Second)); a != b || a != wfVecID {
		t.Errorf("a retry of the vector signed 90s later has id %q, first %q, want %q", b, a, wfVecID)
	}
	// An inventory change has no time of its own: the same quantity again
	// later must not pass for a retry of the first (100, 99, 100).
	if a, b := verify(inventory, now), verify(inventory, now.Add(time.Minute)); a == b || a != "ecomm_inventory_changed:5bfedb42bab0ad90fa7dac03:100:"+WebflowTimestamp(now) {
		t.Errorf("the same inventory signed a minute apart has ids %q and %q", a, b)
	}
	if got := verify(fulfilled, now); got != "ecomm_order_changed:o-1:fulfilled:"+strconv.FormatInt(time.Date(2026, 11, 25, 8, 30, 0, 0, time.UTC).UnixMilli(), 10) {
		t.Errorf("fulfilled id %q", got)
	}
	ids := map[string]string{}
	for name, body := range map[string]string{
		"new order":            wfOrder("ecomm_new_order", "unfulfilled", ""),
		"changed, unfulfilled": wfOrder("ecomm_order_changed", "unfulfilled", ""),
		"fulfilled":            fulfilled,
		"fulfilled again":      wfOrder("ecomm_order_changed", "fulfilled", `"fulfilledOn":"2026-11-25T09:00:00Z",`),
		"refunded":             wfOrder("ecomm_order_changed", "refunded", `"fulfilledOn":"2026-11-25T08:30:00Z","refundedOn":"2026-11-26T09:00:00Z",`),
		"dispute opened":       wfOrder("ecomm_order_changed", "disputed", `"disputedOn":"2026-11-27T00:00:00Z","disputeUpdatedOn":"2026-11-27T00:00:00Z",`),
		"dispute updated":      wfOrder("ecomm_order_changed", "disputed", `"disputedOn":"2026-11-27T00:00:00Z","disputeUpdatedOn":"2026-11-28T00:00:00Z",`),
		"another order":        strings.Replace(fulfilled, `"o-1"`, `"o-2"`, 1),
		"inventory":            inventory,
		"other inventory":      strings.Replace(inventory, "100", "99", 1),
		"the vector":           wfVecBody,
	} {
		id := verify(body, now)
		if other, dup := ids[id]; dup {
			t.Errorf("%s and %s share the id %q", name, other, id)
		}
		ids[id] = name
	}
}

func FuzzWebflow(f *testing.F) {
	p := newWebflow(f, wfVecSecret)
	f.Add(wfVecTS, wfVecSig, []byte(wfVecBody))
	f.Add("1663849649", wfVecSig, []byte(wfOrder("ecomm_order_changed", "refunded", `"refundedOn":"2026-11-26T09:00:00Z",`)))
	f.Add(wfVecTS, "", []byte(`{"triggerType":"ecomm_new_order","payload":{"orderId":"o","acceptedOn":"2026-11-24T10:00:00Z","purchasedItems":[{"count":1,"variantId":"v","variantSKU":"S","variantPrice":{"value":"1"}}]}}`))
	f.Add(wfVecTS, "", []byte(`{"triggerType":"ecomm_inventory_changed","payload":{"id":"5bfedb42bab0ad90fa7dad39","quantity":100,"inventoryType":"finite"}}`))
	f.Fuzz(func(t *testing.T, ts, sig string, body []byte) {
		d, err := p.Verify(wfHeaders(ts, sig), body, wfVecTime)
		if err == nil && string(body) != wfVecBody {
			t.Fatalf("verified a delivery that is not the vector: %q %q", ts, body)
		}
		if err != nil && !errors.Is(err, ErrMissingSignature) && !errors.Is(err, ErrInvalidSignature) && !errors.Is(err, ErrStaleTimestamp) {
			t.Fatalf("unclassified verify error %v", err)
		}
		if id := webflowDeliveryID(body, ts); id == "" || id != webflowDeliveryID(body, ts) {
			t.Fatalf("delivery id %q is not stable", id)
		}
		m, err := p.Map(d, body)
		if err != nil && !errors.Is(err, ErrMalformedPayload) {
			t.Fatalf("unclassified map error %v", err)
		}
		if s := m.Stock; s != nil && (m.Order != nil || s.SnapshotID != d.ID || s.ItemID == "") {
			t.Fatalf("mapped an invalid snapshot %+v", m)
		}
		e := m.Order
		if e != nil {
			if e.OrderID == "" || e.Version != e.OccurredAt.UnixMilli() {
				t.Fatalf("mapped an event without an order or a version: %+v", e)
			}
			seen := map[string]bool{}
			for _, l := range e.Lines {
				if l.SKU == "" || l.LineID == "" || l.Quantity <= 0 || seen[l.LineID] {
					t.Fatalf("mapped an invalid line %+v", l)
				}
				seen[l.LineID] = true
			}
		}
	})
}
