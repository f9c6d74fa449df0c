package providertest

import (
	"encoding/json"
	"fmt"
	"time"
)

// Order is one order as a test, the demo or the load generator tells it to
// each provider: the payloads below are the providers' own shapes (a
// Shopify Order resource, a Stripe event, a Webflow trigger), personal data
// included, so that the receiver is shown what it must keep out.
type Order struct {
	// ID names the order; ShopifyID is its number at Shopify, which
	// Stripe's metadata names too.
	ID        string
	ShopifyID int64
	Lines     []Line
	// At is when the order was placed.
	At time.Time
}

// Line is one line of an Order; Price is in minor units.
type Line struct {
	ID, Qty, Price int
	SKU            string
}

// StandardWebhooks is a Standard Webhooks envelope of type typ (order.paid,
// order.cancelled, ...) whose data is the order.
func (o Order) StandardWebhooks(typ string, at time.Time) []byte {
	items := make([]map[string]any, len(o.Lines))
	for i, l := range o.Lines {
		items[i] = map[string]any{"id": fmt.Sprint(i + 1), "sku": l.SKU, "quantity": l.Qty, "unit_price_minor": l.Price}
	}
	return marshal(map[string]any{"type": typ, "timestamp": at.Format(time.RFC3339Nano),
		"data": map[string]any{"order_id": "o-" + o.ID, "currency": "EUR", "line_items": items}})
}

// Shopify is the Order resource with financial status financial, as it
// stands at at (cancelled, when so).
func (o Order) Shopify(financial string, at time.Time, cancelled bool) []byte {
	items := make([]map[string]any, len(o.Lines))
	for i, l := range o.Lines {
		items[i] = map[string]any{"id": o.ShopifyID*100 + int64(i), "sku": l.SKU, "quantity": l.Qty,
			"price": fmt.Sprintf("%d.%02d", l.Price/100, l.Price%100)}
	}
	var cancelledAt any
	if cancelled {
		cancelledAt = at.Format(time.RFC3339)
	}
	return marshal(map[string]any{"id": o.ShopifyID, "created_at": o.At.Format(time.RFC3339), "updated_at": at.Format(time.RFC3339),
		"currency": "EUR", "financial_status": financial, "fulfillment_status": nil, "cancelled_at": cancelledAt,
		"email": "customer@example.com", "customer": map[string]any{"first_name": "Demo"}, "line_items": items})
}

// Webflow is an ecommerce trigger (ecomm_new_order, ecomm_order_changed)
// with the order in status.
func (o Order) Webflow(trigger, status string, at time.Time) []byte {
	items := make([]map[string]any, len(o.Lines))
	for i, l := range o.Lines {
		price := map[string]any{"unit": "EUR", "value": fmt.Sprint(l.Price), "string": fmt.Sprintf("€ %d.%02d EUR", l.Price/100, l.Price%100)}
		items[i] = map[string]any{"count": l.Qty, "productId": "p-" + l.SKU, "variantId": fmt.Sprintf("v-%d", l.ID), "variantSKU": l.SKU,
			"productName": l.SKU, "variantPrice": price, "rowTotal": price}
	}
	order := map[string]any{"orderId": "wf-" + o.ID, "status": status, "acceptedOn": o.At.Format(time.RFC3339Nano),
		"customerInfo": map[string]any{"fullName": "Demo Customer", "email": "customer@example.com"}, "purchasedItems": items,
		"customerPaid": map[string]any{"unit": "EUR", "value": "0", "string": "€ 0.00 EUR"}}
	if status == "refunded" {
		order["refundedOn"] = at.Format(time.RFC3339Nano)
	}
	return marshal(map[string]any{"triggerType": trigger, "payload": order})
}

// Stripe is an event of type typ (payment_intent.succeeded,
// charge.refunded) about the payment of the order's Shopify number.
func (o Order) Stripe(typ string, at time.Time) []byte {
	object := map[string]any{"id": "pi_" + o.ID, "object": "payment_intent", "currency": "eur",
		"metadata": map[string]any{"order_id": fmt.Sprint(o.ShopifyID)}}
	if typ == "charge.refunded" {
		object = map[string]any{"id": "ch_" + o.ID, "object": "charge", "currency": "eur", "refunded": true,
			"metadata": map[string]any{"order_id": fmt.Sprint(o.ShopifyID)}}
	}
	return marshal(map[string]any{"id": "evt_" + typ + "_" + o.ID, "object": "event", "type": typ, "created": at.Unix(),
		"data": map[string]any{"object": object}})
}

func marshal(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
