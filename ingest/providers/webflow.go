package providers

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/shopstream/shopstream/schemas/avro"
)

// Webflow verifies and maps Webflow's ecommerce webhooks
// (developers.webflow.com, "Working with webhooks"): header
// x-webflow-timestamp (Unix milliseconds) and x-webflow-signature (hex
// HMAC-SHA256 of "<timestamp>:<raw body>"), keyed with the OAuth app's
// client secret, or the webhook's own secret for a webhook created with a
// site token, used as it is written (Webflow's SDK encodes it as UTF-8, no
// decoding). The body is {"triggerType": ..., "payload": <an Order of the
// v2 Data API>}.
//
// Webflow sends no delivery id and retries a failed delivery with the same
// payload, so the id is derived from the payload (webflowDeliveryID).
type Webflow struct {
	keys      []*key
	tolerance time.Duration
}

// WebflowConfig configures Webflow.
type WebflowConfig struct {
	// Secrets accepted: the OAuth app's client secret, or the webhook's
	// secret. More than one during a rotation. Required.
	Secrets []string
	// Tolerance for the signed timestamp, both in the past and the future.
	// Default 5 minutes (DefaultTolerance), the window Webflow's docs give.
	Tolerance time.Duration
}

func init() {
	register(spec{Name: "webflow", New: func(s settings) (Provider, error) {
		return NewWebflow(WebflowConfig{Secrets: s.Secrets, Tolerance: s.Tolerance})
	}})
}

// NewWebflow returns the provider, or an error when no secret is set.
func NewWebflow(cfg WebflowConfig) (*Webflow, error) {
	p := &Webflow{tolerance: cfg.Tolerance}
	if p.tolerance == 0 {
		p.tolerance = DefaultTolerance
	}
	for _, s := range cfg.Secrets {
		if s != "" {
			p.keys = append(p.keys, newKey([]byte(s)))
		}
	}
	if len(p.keys) == 0 {
		return nil, errors.New("webflow: no secret configured")
	}
	return p, nil
}

// Name implements Provider.
func (p *Webflow) Name() string { return "webflow" }

// SecretHeaders implements Provider.
func (p *Webflow) SecretHeaders() []string { return []string{"X-Webflow-Signature"} }

// WebflowTimestamp is the x-webflow-timestamp value of a delivery signed at
// ts: Unix milliseconds.
func WebflowTimestamp(ts time.Time) string { return strconv.FormatInt(ts.UnixMilli(), 10) }

// WebflowSign returns the x-webflow-signature value of body signed at ts
// under secret; it is what Webflow computes, used by senders in tests, the
// demo and the load generator.
func WebflowSign(secret []byte, ts time.Time, body []byte) string {
	return hex.EncodeToString(webflowMAC(hmac.New(sha256.New, secret), nil, WebflowTimestamp(ts), body))
}

// webflowMAC signs "<timestamp>:<body>" with m, appended to dst.
func webflowMAC(m hash.Hash, dst []byte, ts string, body []byte) []byte {
	m.Write([]byte(ts))
	m.Write([]byte{':'})
	m.Write(body)
	return m.Sum(dst)
}

// Verify implements Provider. The MAC covers the timestamp header exactly as
// sent, as Webflow's SDK computes it, and the body exactly as received.
func (p *Webflow) Verify(h http.Header, body []byte, now time.Time) (Delivery, error) {
	ts, sig := h.Get("X-Webflow-Timestamp"), h.Get("X-Webflow-Signature")
	if ts == "" || sig == "" {
		return Delivery{}, fmt.Errorf("%w: x-webflow-timestamp and x-webflow-signature are required", ErrMissingSignature)
	}
	ms, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return Delivery{}, fmt.Errorf("%w: x-webflow-timestamp is not Unix milliseconds", ErrInvalidSignature)
	}
	// A timestamp in seconds reads as a date in January 1970 and is refused
	// here as stale: Webflow always sends milliseconds.
	signedAt := time.UnixMilli(ms)
	if d := now.Sub(signedAt); d > p.tolerance || d < -p.tolerance {
		return Delivery{}, fmt.Errorf("%w: signed %s, tolerance %s", ErrStaleTimestamp, signedAt.UTC().Format(time.RFC3339), p.tolerance)
	}
	got, err := hex.DecodeString(sig)
	if err != nil || len(got) != sha256.Size {
		return Delivery{}, fmt.Errorf("%w: x-webflow-signature is not a hex HMAC-SHA256", ErrInvalidSignature)
	}
	var buf [sha256.Size]byte
	for _, k := range p.keys {
		m := k.state()
		want := webflowMAC(m, buf[:0], ts, body)
		k.release(m)
		if hmac.Equal(got, want) {
			// Parsing only now is safe: these are Webflow's own bytes,
			// and nothing parsed decides whether they are.
			return Delivery{ID: webflowDeliveryID(body, ts), SignedAt: signedAt}, nil
		}
	}
	return Delivery{}, ErrInvalidSignature
}

// webflowBody is a Webflow webhook with the fields of a v2 Data API Order,
// or of an inventory change, that shopstream reads. Of the customer only
// the email is decoded, and only to be hashed at the edge; the name and
// addresses never are, so nothing personal reaches an event.
type webflowBody struct {
	TriggerType string       `json:"triggerType"`
	Payload     webflowOrder `json:"payload"`
}

type webflowOrder struct {
	// id (v2) or _id (v1) is the SKU item whose inventory changed, its
	// quantity what remains when inventoryType is finite.
	ID            string   `json:"id"`
	LegacyID      string   `json:"_id"`
	Quantity      *float64 `json:"quantity"`
	InventoryType string   `json:"inventoryType"`

	CustomerInfo struct {
		Email string `json:"email"`
	} `json:"customerInfo"`
	OrderID string `json:"orderId"`
	Status  string `json:"status"`
	// ISO 8601 times of the order's changes; null until they happen.
	AcceptedOn       string       `json:"acceptedOn"`
	FulfilledOn      string       `json:"fulfilledOn"`
	RefundedOn       string       `json:"refundedOn"`
	DisputedOn       string       `json:"disputedOn"`
	DisputeUpdatedOn string       `json:"disputeUpdatedOn"`
	CustomerPaid     webflowPrice `json:"customerPaid"`
	PurchasedItems   []struct {
		VariantID    string       `json:"variantId"`
		VariantSKU   string       `json:"variantSKU"`
		Count        int64        `json:"count"`
		VariantPrice webflowPrice `json:"variantPrice"`
	} `json:"purchasedItems"`
}

// webflowPrice is an amount: value in the currency's minor unit ("5561" is
// $55.61, its "string" says so), a JSON string in the v2 API and a number
// in older examples; both are read.
type webflowPrice struct {
	Unit  string        `json:"unit"`
	Value webflowAmount `json:"value"`
}

type webflowAmount int64

func (a *webflowAmount) UnmarshalJSON(b []byte) error {
	s := string(b)
	if s == "null" {
		return nil
	}
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return errors.New("amount is not an integer of minor units")
	}
	*a = webflowAmount(n)
	return nil
}

// webflowChange says what a delivery means for its order: the canonical
// event type ("" for a delivery kept only as a receipt) and the order's own
// time of the change, which is both the event's version and part of its
// delivery id ("" when the payload has none).
//
//   - ecomm_new_order is PAID at acceptedOn, whatever its status: Webflow
//     places an order when its checkout completes with a payment (Stripe or
//     PayPal; Webflow University, "Process and manage orders"). Its docs do
//     not say what "pending" means; an order that holds its stock until it
//     is refunded is the safe reading.
//   - ecomm_order_changed goes by status. fulfilled is FULFILLED at
//     fulfilledOn and refunded REFUNDED at refundedOn. unfulfilled (paid,
//     not shipped: a new order edited, or a fulfilment undone) is PAID at
//     acceptedOn, stale against anything later, so it sells the order only
//     when its ecomm_new_order never came. disputed and dispute-lost are
//     receipts: the goods are with the customer, so a lost dispute gives
//     back money, not stock. pending and statuses Webflow adds later are
//     receipts too.
//   - ecomm_inventory_changed is a stock snapshot (mapInventory), and every
//     other trigger a receipt.
func webflowChange(b *webflowBody) (typ, at string) {
	o := &b.Payload
	switch b.TriggerType {
	case "ecomm_new_order":
		return avro.OrderPaid, o.AcceptedOn
	case "ecomm_order_changed":
		switch o.Status {
		case "unfulfilled":
			return avro.OrderPaid, o.AcceptedOn
		case "fulfilled":
			return avro.OrderFulfilled, o.FulfilledOn
		case "refunded":
			return avro.OrderRefunded, o.RefundedOn
		case "disputed", "dispute-lost":
			if o.DisputeUpdatedOn != "" {
				return "", o.DisputeUpdatedOn
			}
			return "", o.DisputedOn
		}
	}
	return "", ""
}

// webflowDeliveryID is what identifies a Webflow delivery, which carries no
// id of its own: "<trigger>:<order id>:<status>:<change time in ms>" for an
// order's change, "ecomm_inventory_changed:<SKU item id>:<quantity>:<signed
// time in ms>" for an inventory change, else "sha256:<hex of the raw body>".
//
// It is stable across retries: a retry resends the same payload, and the
// order's change time is Webflow's record of when the order changed, not of
// when it was sent; the signature's timestamp, new on every attempt, is
// deliberately left out. It is distinct across events: another order has
// another id, another status or another change of the same order has
// another time, and the same order's new-order and changed events differ by
// trigger. What it does not tell apart are edits that change no status (a
// comment, a tracking number): they keep the id of the change that set the
// status, so only the first is kept as a receipt, and none of them moves
// stock. An inventory change has no time of its own, and its body is the
// same each time the item comes back to the same quantity (100, 99, 100):
// named by its bytes, the second 100 would be taken for a retry of the
// first and dropped, leaving the snapshot at 99. It is named by its
// quantity and the time Webflow signed it instead, so a retry is a second
// snapshot of the same quantity, which changes nothing. Any other payload (other triggers, a
// body that is not JSON) is named by its bytes, which a retry resends
// unchanged.
func webflowDeliveryID(body []byte, signedMs string) string {
	var b webflowBody
	if decodeJSON(body, &b) == nil && b.TriggerType == webflowInventoryChanged {
		if id := b.Payload.itemID(); id != "" && b.Payload.Quantity != nil {
			return webflowInventoryChanged + ":" + id + ":" + strconv.FormatFloat(*b.Payload.Quantity, 'f', -1, 64) + ":" + signedMs
		}
	}
	if b.Payload.OrderID != "" {
		if _, at := webflowChange(&b); at != "" {
			if t, err := time.Parse(time.RFC3339Nano, at); err == nil {
				return b.TriggerType + ":" + b.Payload.OrderID + ":" + b.Payload.Status + ":" + strconv.FormatInt(t.UnixMilli(), 10)
			}
		}
	}
	sum := sha256.Sum256(body)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Map implements Provider. The version is the order's own time of the
// change (webflowChange), never its arrival. Each line is named by its
// variantId: a Webflow order row has no id of its own, and a row is one
// variant, the same in every event of the order, where an index could
// shift; a variant listed twice is one line with both counts, so its stock
// moves by the whole quantity. A row without a variantSKU is skipped:
// stock is kept per SKU, so it has none to move.
func (p *Webflow) Map(d Delivery, body []byte) (Mapped, error) {
	var b webflowBody
	if err := decodeJSON(body, &b); err != nil {
		return Mapped{}, fmt.Errorf("%w: %s", ErrMalformedPayload, jsonError(err, "a Webflow webhook"))
	}
	if b.TriggerType == "" {
		return Mapped{}, fmt.Errorf("%w: no triggerType", ErrMalformedPayload)
	}
	if b.TriggerType == webflowInventoryChanged {
		s, err := p.mapInventory(d, &b.Payload)
		return Mapped{Type: b.TriggerType, Stock: s}, err
	}
	e, err := p.mapOrder(d, &b)
	if err != nil || e == nil {
		return Mapped{Type: b.TriggerType}, err
	}
	return Mapped{Type: b.TriggerType, Order: e, Customer: customerRef(p.Name(), b.Payload.CustomerInfo.Email, "")}, nil
}

const webflowInventoryChanged = "ecomm_inventory_changed"

func (o *webflowOrder) itemID() string {
	if o.ID != "" {
		return o.ID
	}
	return o.LegacyID
}

// mapInventory maps an inventory change: what remains of a SKU item, at
// the time Webflow signed the delivery, the payload having no time of its
// own. The item is named by its Webflow id; the catalog gives its SKU in
// the deliveries stage. An item of infinite inventory has no stock to
// reconcile and is kept as a receipt.
func (p *Webflow) mapInventory(d Delivery, o *webflowOrder) (*avro.StockSnapshot, error) {
	if o.itemID() == "" {
		return nil, fmt.Errorf("%w: payload.id of the SKU item is required", ErrMalformedPayload)
	}
	if o.InventoryType == "infinite" {
		return nil, nil
	}
	if o.InventoryType != "finite" || o.Quantity == nil {
		return nil, fmt.Errorf("%w: a finite inventory needs a quantity", ErrMalformedPayload)
	}
	q := *o.Quantity
	if q != math.Trunc(q) || math.Abs(q) > 1<<53 {
		return nil, fmt.Errorf("%w: quantity is not a whole number of units", ErrMalformedPayload)
	}
	return &avro.StockSnapshot{
		SnapshotID: d.ID,
		Source:     p.Name(),
		ItemID:     o.itemID(),
		Available:  int64(q),
		ObservedAt: d.SignedAt.UTC().Truncate(time.Millisecond),
	}, nil
}

func (p *Webflow) mapOrder(d Delivery, b *webflowBody) (*avro.OrderEvent, error) {
	typ, at := webflowChange(b)
	if typ == "" {
		return nil, nil
	}
	o := &b.Payload
	if o.OrderID == "" {
		return nil, fmt.Errorf("%w: payload.orderId is required", ErrMalformedPayload)
	}
	t, err := time.Parse(time.RFC3339Nano, at)
	if err != nil {
		return nil, fmt.Errorf("%w: the time of a %s %s order is not ISO 8601", ErrMalformedPayload, b.TriggerType, o.Status)
	}
	t = t.UTC().Truncate(time.Millisecond)
	e := &avro.OrderEvent{
		EventID:    d.ID,
		Provider:   p.Name(),
		Type:       typ,
		OrderID:    o.OrderID,
		Version:    t.UnixMilli(),
		OccurredAt: t,
		Currency:   o.CustomerPaid.Unit,
		Lines:      []avro.LineItem{},
	}
	index := map[string]int{}
	for i, item := range o.PurchasedItems {
		if item.VariantSKU == "" {
			continue
		}
		if item.VariantID == "" || item.Count <= 0 {
			return nil, fmt.Errorf("%w: purchased item %d needs a variantId and a positive count", ErrMalformedPayload, i+1)
		}
		if j, ok := index[item.VariantID]; ok {
			if e.Lines[j].Quantity > math.MaxInt64-item.Count {
				return nil, fmt.Errorf("%w: purchased item %d: counts overflow", ErrMalformedPayload, i+1)
			}
			e.Lines[j].Quantity += item.Count
			continue
		}
		if e.Currency == "" {
			e.Currency = item.VariantPrice.Unit
		}
		index[item.VariantID] = len(e.Lines)
		e.Lines = append(e.Lines, avro.LineItem{LineID: item.VariantID, SKU: item.VariantSKU,
			Quantity: item.Count, UnitPriceMinor: int64(item.VariantPrice.Value)})
	}
	return e, nil
}
