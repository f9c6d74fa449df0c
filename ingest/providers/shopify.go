package providers

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/shopstream/shopstream/schemas/avro"
)

// Shopify verifies webhooks as Shopify signs them: X-Shopify-Hmac-Sha256 is
// the base64 HMAC-SHA256 of the raw body under the app's client secret, the
// secret's own bytes (shopify.dev/docs/apps/build/webhooks). Its Events
// deliveries send the same headers without the "X-" prefix
// (shopify.dev/docs/apps/build/events/verify-deliveries); both are read.
//
// Nothing but the body is signed, so X-Shopify-Triggered-At only becomes
// Delivery.SignedAt and no delivery is refused for its age: Shopify retries
// a failed delivery 8 times over 4 hours with the original payload and
// timestamp (shopify.dev/changelog/updates-to-webhook-retry-mechanism), so a
// tolerance of minutes would refuse every retry after an outage, while a
// replayer could drop or rewrite the header anyway. Replays are absorbed by
// the deduplication of delivery ids and by the order's version.
type Shopify struct {
	keys []*key
}

// ShopifyConfig configures Shopify.
type ShopifyConfig struct {
	// Secrets accepted: the app's client secret, and the previous one
	// during a rotation (Shopify may sign with either for up to an hour).
	// Required.
	Secrets []string
}

func init() {
	register(spec{Name: "shopify", New: func(s settings) (Provider, error) {
		return NewShopify(ShopifyConfig{Secrets: s.Secrets})
	}})
}

// NewShopify returns the provider, or an error when no secret is set.
func NewShopify(cfg ShopifyConfig) (*Shopify, error) {
	p := &Shopify{}
	for _, s := range cfg.Secrets {
		if s != "" {
			p.keys = append(p.keys, newKey([]byte(s)))
		}
	}
	if len(p.keys) == 0 {
		return nil, errors.New("shopify: no secret configured")
	}
	return p, nil
}

// Name implements Provider.
func (p *Shopify) Name() string { return "shopify" }

// SecretHeaders implements Provider.
func (p *Shopify) SecretHeaders() []string {
	return []string{"X-Shopify-Hmac-Sha256", "Shopify-Hmac-Sha256"}
}

// ShopifySign returns the X-Shopify-Hmac-Sha256 value of body under secret;
// it is what Shopify computes, used by the demo, the load generator and tests.
func ShopifySign(secret string, body []byte) string {
	return base64.StdEncoding.EncodeToString(shopifyMAC(hmac.New(sha256.New, []byte(secret)), nil, body))
}

// shopifyMAC signs the body alone with m, appended to dst.
func shopifyMAC(m hash.Hash, dst, body []byte) []byte {
	m.Write(body)
	return m.Sum(dst)
}

// shopifyHeader reads a header in either spelling, webhooks' first.
func shopifyHeader(h http.Header, name string) string {
	if v := h.Get("X-Shopify-" + name); v != "" {
		return v
	}
	return h.Get("Shopify-" + name)
}

// Verify implements Provider. The delivery id is the webhook id, not the
// event id: Shopify keeps the webhook id on every retry of one delivery,
// while one event id is shared by the deliveries of every topic the same
// change triggers (orders/paid and orders/updated), so deduplicating by it
// would drop a different topic's delivery.
func (p *Shopify) Verify(h http.Header, body []byte, _ time.Time) (Delivery, error) {
	sig, id := shopifyHeader(h, "Hmac-Sha256"), shopifyHeader(h, "Webhook-Id")
	if sig == "" || id == "" {
		return Delivery{}, fmt.Errorf("%w: X-Shopify-Hmac-Sha256 and X-Shopify-Webhook-Id are required", ErrMissingSignature)
	}
	got, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return Delivery{}, fmt.Errorf("%w: the HMAC is not base64", ErrInvalidSignature)
	}
	var buf [sha256.Size]byte
	for _, k := range p.keys {
		m := k.state()
		want := shopifyMAC(m, buf[:0], body)
		k.release(m)
		if hmac.Equal(got, want) {
			d := Delivery{ID: id, Type: shopifyHeader(h, "Topic")}
			if at, err := time.Parse(time.RFC3339Nano, shopifyHeader(h, "Triggered-At")); err == nil {
				d.SignedAt = at
			}
			return d, nil
		}
	}
	return Delivery{}, ErrInvalidSignature
}

// shopifyResource is the part of the REST resources Shopify delivers that
// Map reads: an Order (orders/*), a Refund (refunds/create), an
// InventoryLevel (inventory_levels/update), or another resource. Of the
// customer, only the order's email and the customer's id are decoded, and
// only to be hashed at the edge; names, addresses and phone numbers never
// are, so they cannot reach an event. Ids are int64: they exceed 2^53,
// which a float64 would round.
type shopifyResource struct {
	ID                int64               `json:"id"`
	UpdatedAt         string              `json:"updated_at"`
	CancelledAt       *string             `json:"cancelled_at"`
	Currency          string              `json:"currency"`
	FinancialStatus   string              `json:"financial_status"`
	FulfillmentStatus *string             `json:"fulfillment_status"`
	LineItems         []shopifyLine       `json:"line_items"`
	Refunds           []shopifyRefund     `json:"refunds"`
	RefundLineItems   []shopifyRefundLine `json:"refund_line_items"`
	Email             string              `json:"email"`
	Customer          *struct {
		ID int64 `json:"id"`
	} `json:"customer"`
	InventoryItemID int64  `json:"inventory_item_id"`
	LocationID      int64  `json:"location_id"`
	Available       *int64 `json:"available"`
}

type shopifyLine struct {
	ID       int64  `json:"id"`
	SKU      string `json:"sku"`
	Quantity int64  `json:"quantity"`
	Price    string `json:"price"`
}

type shopifyRefund struct {
	RefundLineItems []shopifyRefundLine `json:"refund_line_items"`
	Restock         *bool               `json:"restock"`
}

type shopifyRefundLine struct {
	LineItemID  int64  `json:"line_item_id"`
	Quantity    int64  `json:"quantity"`
	RestockType string `json:"restock_type"`
}

// restocked says whether a refunded line went back to stock: its
// restock_type unless it is "no_restock", else, from before restock_type
// existed, the refund's restock flag.
func (l shopifyRefundLine) restocked(refundRestock *bool) bool {
	if l.RestockType != "" {
		return l.RestockType != "no_restock"
	}
	return refundRestock != nil && *refundRestock
}

// Map implements Provider. Map sees the body only, not X-Shopify-Topic, so
// the resource's shape says what it is: refund_line_items and order_id make
// a Refund, line_items an Order, inventory_item_id an InventoryLevel, and
// anything else (a topic shopstream does not subscribe to) is kept as a
// receipt only.
//
// An order maps by its state at updated_at, whichever orders/* topic
// delivered it: cancelled (cancelled_at set); refunded when a refund of it
// put goods back to stock; fulfilled; paid (also once partly or wholly
// refunded, since the money was taken and a refund's stock effect is its
// own); else created. orders/updated is therefore mapped like the others,
// which recovers a lost orders/paid; it repeats the state the specific
// topics report, at the same or a later updated_at, which the order
// machine's version and rank order absorb.
//
// A Refund resource (refunds/create) is kept as a receipt only. REFUNDED
// makes the order machine give back every line the order sold, and a
// Refund lists only the lines it refunds, not the order's, so it cannot
// tell a whole restock from a partial one; the orders/updated Shopify sends
// with it carries the order and its refunds, and maps to REFUNDED when
// every line with a SKU went back to stock in full. A partial restock moves
// no stock until line-level restocks exist (the reservations work).
func (p *Shopify) Map(d Delivery, body []byte) (Mapped, error) {
	var r shopifyResource
	if err := decodeJSON(body, &r); err != nil {
		return Mapped{}, fmt.Errorf("%w: %s", ErrMalformedPayload, jsonError(err, "a Shopify resource"))
	}
	switch {
	case r.LineItems != nil && r.RefundLineItems == nil:
		e, err := p.mapOrder(d, &r)
		if err != nil {
			return Mapped{}, err
		}
		var customer string
		if r.Customer != nil && r.Customer.ID > 0 {
			customer = strconv.FormatInt(r.Customer.ID, 10)
		}
		return Mapped{Type: d.Type, Order: e, Customer: customerRef(p.Name(), r.Email, customer)}, nil
	case r.InventoryItemID != 0 && r.LineItems == nil:
		s, err := p.mapLevel(d, &r)
		return Mapped{Type: d.Type, Stock: s}, err
	}
	return Mapped{Type: d.Type}, nil
}

func (p *Shopify) mapOrder(d Delivery, o *shopifyResource) (*avro.OrderEvent, error) {
	if o.ID <= 0 {
		return nil, fmt.Errorf("%w: the order has no id", ErrMalformedPayload)
	}
	e, err := p.event(d, o.ID, o.UpdatedAt, "updated_at", o.Currency)
	if err != nil {
		return nil, err
	}
	e.Type = shopifyOrderType(o)
	for i, l := range o.LineItems {
		if err := e.addLine(i, l, o.Currency); err != nil {
			return nil, err
		}
	}
	return e.OrderEvent, nil
}

// mapLevel maps an InventoryLevel: what one location can still sell of one
// inventory item, at Shopify's own change time. An InventoryLevel names
// the item, not its SKU, which lives on the item's variant; the catalog
// gives it in the deliveries stage. A level whose available is null (the
// item's quantity is no longer tracked there) says nothing about stock and
// is kept as a receipt. available may be negative: Shopify lets a location
// oversell when the shop continues selling out of stock.
func (p *Shopify) mapLevel(d Delivery, l *shopifyResource) (*avro.StockSnapshot, error) {
	if l.InventoryItemID < 0 || l.LocationID <= 0 {
		return nil, fmt.Errorf("%w: an inventory level needs an inventory_item_id and a location_id", ErrMalformedPayload)
	}
	if l.Available == nil {
		return nil, nil
	}
	at, err := time.Parse(time.RFC3339Nano, l.UpdatedAt)
	if err != nil {
		return nil, fmt.Errorf("%w: updated_at is not RFC 3339", ErrMalformedPayload)
	}
	return &avro.StockSnapshot{
		SnapshotID: d.ID,
		Source:     p.Name(),
		ItemID:     strconv.FormatInt(l.InventoryItemID, 10),
		LocationID: strconv.FormatInt(l.LocationID, 10),
		Available:  *l.Available,
		ObservedAt: at.UTC().Truncate(time.Millisecond),
	}, nil
}

func shopifyOrderType(o *shopifyResource) string {
	if o.CancelledAt != nil && *o.CancelledAt != "" {
		return avro.OrderCancelled
	}
	if wholeRestock(o) {
		return avro.OrderRefunded
	}
	if o.FulfillmentStatus != nil && *o.FulfillmentStatus == "fulfilled" {
		return avro.OrderFulfilled
	}
	switch o.FinancialStatus {
	case "paid", "partially_refunded", "refunded":
		return avro.OrderPaid
	}
	return avro.OrderCreated
}

// wholeRestock says whether the order's refunds put every line with a SKU
// back to stock in full.
func wholeRestock(o *shopifyResource) bool {
	restocked := map[int64]int64{}
	for _, r := range o.Refunds {
		for _, l := range r.RefundLineItems {
			if l.restocked(r.Restock) {
				restocked[l.LineItemID] += l.Quantity
			}
		}
	}
	stocked := false
	for _, l := range o.LineItems {
		if l.SKU == "" {
			continue
		}
		if restocked[l.ID] < l.Quantity {
			return false
		}
		stocked = true
	}
	return stocked
}

type shopifyEvent struct{ *avro.OrderEvent }

// event starts the order's event, versioned by Shopify's own change time
// (never arrival), at millisecond precision like every version.
func (p *Shopify) event(d Delivery, orderID int64, at, field, currency string) (shopifyEvent, error) {
	t, err := time.Parse(time.RFC3339Nano, at)
	if err != nil {
		return shopifyEvent{}, fmt.Errorf("%w: %s is not RFC 3339", ErrMalformedPayload, field)
	}
	t = t.UTC().Truncate(time.Millisecond)
	return shopifyEvent{&avro.OrderEvent{
		EventID:    d.ID,
		Provider:   p.Name(),
		OrderID:    strconv.FormatInt(orderID, 10),
		Version:    t.UnixMilli(),
		OccurredAt: t,
		Currency:   currency,
		Lines:      []avro.LineItem{},
	}}, nil
}

// addLine adds line i unless it has no SKU: Shopify allows custom items
// without one, and they have no stock to move, while the order's other
// lines must still sell.
func (e shopifyEvent) addLine(i int, l shopifyLine, currency string) error {
	if l.SKU == "" {
		return nil
	}
	if l.ID <= 0 || l.Quantity <= 0 {
		return fmt.Errorf("%w: line %d needs an id and a positive quantity", ErrMalformedPayload, i+1)
	}
	price, err := shopifyMinorUnits(l.Price, shopifyCurrencyExponent(currency))
	if err != nil {
		return fmt.Errorf("%w: line %d: price %v", ErrMalformedPayload, i+1, err)
	}
	e.Lines = append(e.Lines, avro.LineItem{LineID: strconv.FormatInt(l.ID, 10), SKU: l.SKU, Quantity: l.Quantity, UnitPriceMinor: price})
	return nil
}

// shopifyMinorUnits converts a decimal amount ("19.99") to minor units of a
// currency with exp decimals, exactly: digits past exp must be zeros (Shopify
// writes "1000.00" for yen), and anything else is refused, never rounded.
func shopifyMinorUnits(s string, exp int) (int64, error) {
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" || strings.Trim(whole, "0123456789") != "" || strings.Trim(frac, "0123456789") != "" {
		return 0, errors.New("is not a decimal amount")
	}
	if len(frac) > exp {
		if strings.Trim(frac[exp:], "0") != "" {
			return 0, fmt.Errorf("has more than %d decimals", exp)
		}
		frac = frac[:exp]
	}
	frac += strings.Repeat("0", exp-len(frac))
	n, err := strconv.ParseInt(whole+frac, 10, 64)
	if err != nil {
		return 0, errors.New("is out of range")
	}
	return n, nil
}

// shopifyCurrencyExponent is the number of decimals of an ISO 4217 currency's
// minor unit: 2 unless listed, and 2 when the currency is not named.
func shopifyCurrencyExponent(code string) int {
	switch code {
	case "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF":
		return 0
	case "BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND":
		return 3
	case "CLF", "UYW":
		return 4
	}
	return 2
}
