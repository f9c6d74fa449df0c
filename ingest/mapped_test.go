package ingest

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shopstream/shopstream/ingest/providers"
	"github.com/shopstream/shopstream/ingest/providers/providertest"
	"github.com/shopstream/shopstream/schemas/avro"
)

// The receipt of an inventory webhook carries its stock snapshot, stamped
// like an order event; an order's customer is named by a keyed hash, the
// same for one person on every provider, and by nothing else anywhere in
// the record.
func TestReceiptsCarrySnapshotsAndCustomerHashes(t *testing.T) {
	enabled, err := providers.Config{Secrets: map[string][]string{"shopify": {"shopify-secret"}, "webflow": {"webflow-secret"}}}.Enabled()
	if err != nil {
		t.Fatal(err)
	}
	send := func(key []byte, provider string, signer providertest.Signer, body string) avro.WebhookReceipt {
		t.Helper()
		prod := &recordingProducer{}
		h, err := NewHandler(HandlerConfig{Providers: enabled, Producer: prod, CustomerKey: key, Now: func() time.Time { return testNow }})
		if err != nil {
			t.Fatal(err)
		}
		req, err := providertest.NewRequest(context.Background(), newServer(t, h)+"/webhooks/"+provider, signer,
			providertest.Delivery{ID: "d-1", Body: []byte(body), At: testNow})
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Request-Id", "corr-1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || len(prod.recs) != 1 {
			t.Fatalf("status %d, %d records", resp.StatusCode, len(prod.recs))
		}
		var r avro.WebhookReceipt
		if err := avro.Default().Unmarshal(prod.recs[0].Value, &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	shopify := providertest.Shopify{Secret: "shopify-secret"}
	webflow := providertest.Webflow{Secret: []byte("webflow-secret")}

	level := send(nil, "shopify", shopify, `{"inventory_item_id":271878346596884015,"location_id":24826418,"available":6,"updated_at":"2026-11-24T11:59:00Z"}`)
	if s := level.Stock; level.Event != nil || s == nil || s.SnapshotID != "d-1" || s.ItemID != "271878346596884015" || s.Available != 6 ||
		!s.ReceivedAt.Equal(testNow) || s.CorrelationID != "corr-1" || s.SKU != "" {
		t.Fatalf("receipt of an inventory level: %+v, %+v", level, level.Stock)
	}

	key := []byte("k")
	order := `{"triggerType":"ecomm_new_order","payload":{"orderId":"wf-1","status":"unfulfilled","acceptedOn":"2026-11-24T11:59:59Z",` +
		`"customerInfo":{"fullName":"Arthur Dent","email":"Arthur.Dent@example.com"},` +
		`"purchasedItems":[{"count":1,"variantId":"v1","variantSKU":"A","variantPrice":{"unit":"EUR","value":"100"}}]}}`
	wf := send(key, "webflow", webflow, order)
	sh := send(key, "shopify", shopify, `{"id":1001,"email":"arthur.dent@example.com ","updated_at":"2026-11-24T11:59:59Z","currency":"EUR",`+
		`"financial_status":"paid","line_items":[{"id":1,"sku":"A","quantity":1,"price":"1.00"}]}`)
	if wf.Event == nil || sh.Event == nil || wf.Event.CustomerHash == "" || wf.Event.CustomerHash != sh.Event.CustomerHash || len(wf.Event.CustomerHash) != 32 {
		t.Fatalf("one customer on two providers: hashes %+v and %+v", wf.Event, sh.Event)
	}
	if other := send([]byte("another key"), "webflow", webflow, order); other.Event.CustomerHash == wf.Event.CustomerHash {
		t.Fatal("the hash does not depend on the key")
	}
	if none := send(nil, "webflow", webflow, order); none.Event.CustomerHash != "" {
		t.Fatalf("without a key, hash %q", none.Event.CustomerHash)
	}
	for _, e := range []*avro.OrderEvent{wf.Event, sh.Event} {
		for _, f := range []string{e.EventID, e.OrderID, e.CustomerHash, e.CorrelationID, e.Currency} {
			if strings.Contains(strings.ToLower(f), "dent") {
				t.Fatalf("the event carries the customer: %+v", e)
			}
		}
	}
}
