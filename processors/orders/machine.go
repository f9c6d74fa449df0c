package orders

import (
	"github.com/shopstream/shopstream/schemas/avro"
)

// State is what the processor remembers of one order between its events.
type State struct {
	Status string `json:"status"`
	// Version and rank order the events: an event at or below them is stale.
	Version int64 `json:"version"`
	Rank    int   `json:"rank"`
	// SoldBy, CommittedBy and RestockedBy are the event ids whose
	// transitions emitted the sale (the reservation), the commit (the
	// shipment) and the release or restock deltas. When the same event is
	// delivered again its deltas are emitted again, identical: that is how
	// a crash between the state write and the Kafka commit loses nothing.
	SoldBy      string `json:"sold_by,omitempty"`
	CommittedBy string `json:"committed_by,omitempty"`
	RestockedBy string `json:"restocked_by,omitempty"`
	// Lines are the lines that were sold, which a restock gives back even
	// when a cancellation does not list them.
	Lines []Line `json:"lines,omitempty"`
	// Paid says an event that makes the order sell (paid, fulfilled) came
	// in order. Known are the order's lines as last listed by an event.
	// They are apart because a payment gateway (Stripe) says an order is
	// paid without listing its lines, and the storefront lists them in
	// its own events, in either order: the sale happens when both are known.
	Paid  bool   `json:"paid,omitempty"`
	Known []Line `json:"known,omitempty"`
	// Shipped says a fulfilled event came, in order or not: like Paid, a
	// fact that a later event of another clock does not undo.
	Shipped bool `json:"shipped,omitempty"`
	// Decided is what was decided for each event of the order the first
	// time it came, by event id: what orders.applied says of it every time
	// it comes again, so that a replay, which meets the order's final state
	// instead of the one the event first met, reports the same decision.
	Decided map[string]Decision `json:"decided,omitempty"`
}

// Decision is what the orders stage decided for one event.
type Decision struct {
	// After is the order's status once the event was applied.
	After string `json:"after"`
	// Transition is the transition the event caused.
	Transition Transition `json:"t,omitempty"`
	// Stale says that the order's status afterwards was not this event's:
	// a later event of the order had come first.
	Stale bool `json:"stale,omitempty"`
	// At is when it was decided, in Unix milliseconds.
	At int64 `json:"at"`
}

// Line is a sold line.
type Line struct {
	LineID   string `json:"line_id"`
	SKU      string `json:"sku"`
	Quantity int64  `json:"quantity"`
}

// rank orders event types of one order that carry the same version: a
// provider that stamps paid and cancelled in the same millisecond still
// means paid first.
var rank = map[string]int{
	avro.OrderCreated:   1,
	avro.OrderPaid:      2,
	avro.OrderFulfilled: 3,
	avro.OrderRefunded:  4,
	avro.OrderCancelled: 5,
}

func terminal(status string) bool {
	return status == avro.OrderCancelled || status == avro.OrderRefunded
}

// Transition is the set of deltas an event causes: none, the sale of the
// order's lines (their reservation), its commit when they ship (both at
// once for an order first seen fulfilled), the release of a sale that
// never shipped, or the restock of one that did.
type Transition string

const (
	None       Transition = ""
	Sale       Transition = "sale"
	Commit     Transition = "commit"
	SaleCommit Transition = "sale+commit"
	Release    Transition = "release"
	Restock    Transition = "restock"
)

// Step applies event e to state s (nil for an order not seen before) and
// returns the new state, whether it changed, and the transition whose deltas
// to emit. It is a pure function: the same state and event always give the
// same answer, which makes a redelivery or a replay emit the same deltas.
//
// Events are ordered by the provider's version, never by arrival: a stale
// event (one at or below the state's version and rank) moves no status.
// An order sells (reserves its lines) when it has been seen paid or
// fulfilled, its lines are known, and it is not already cancelled or
// refunded; it commits (its lines ship) once it has sold and been seen
// fulfilled; a cancellation or refund after it sold releases what it
// reserved if it never shipped, and restocks what shipped if it did. A
// cancellation that arrives before the payment it follows therefore leaves
// the stock alone, as it should. Paid and shipped are facts, kept however
// late they arrive; so every arrival order of one order's events ends with
// the same stock and reserve. The lines are those of the latest event in
// order that lists them; a stale event that lists them still teaches them
// when none are known, so a storefront's order that arrives after the
// gateway's payment sells the order then.
func Step(s *State, e *avro.OrderEvent) (next State, changed bool, t Transition) {
	var cur State
	if s != nil {
		cur = *s
	}
	switch e.EventID {
	case "":
	case cur.SoldBy:
		if cur.CommittedBy == e.EventID {
			return cur, false, SaleCommit
		}
		return cur, false, Sale
	case cur.CommittedBy:
		return cur, false, Commit
	case cur.RestockedBy:
		if cur.CommittedBy != "" {
			return cur, false, Restock
		}
		return cur, false, Release
	}
	r := rank[e.Type]
	stale := s != nil && (e.Version < cur.Version || e.Version == cur.Version && r <= cur.Rank)
	learns := len(e.Lines) > 0 && (!stale || len(cur.Known) == 0)
	pays := (e.Type == avro.OrderPaid || e.Type == avro.OrderFulfilled) && !cur.Paid
	ships := e.Type == avro.OrderFulfilled && !cur.Shipped
	if stale && !learns && !pays && !ships {
		return cur, false, None
	}
	next = cur
	if learns {
		next.Known = make([]Line, len(e.Lines))
		for i, l := range e.Lines {
			next.Known[i] = Line{LineID: l.LineID, SKU: l.SKU, Quantity: l.Quantity}
		}
	}
	// Paid is a fact, not a status: a payment is not undone by arriving
	// after a later event of the storefront's clock (the gateway's clock
	// is another). A cancellation is what undoes it, through terminal.
	next.Paid = next.Paid || pays
	next.Shipped = next.Shipped || ships
	if !stale {
		next.Status, next.Version, next.Rank = e.Type, e.Version, r
	}
	switch {
	// Both the status before and after must be live: an order cancelled
	// or refunded before it sold never sells, whatever comes after; nor
	// does a cancellation or refund itself make it sell, even a stale one
	// that brings the lines a gateway's payment was waiting for.
	case next.Paid && len(next.Known) > 0 && cur.SoldBy == "" && !terminal(cur.Status) && !terminal(next.Status) && !terminal(e.Type):
		next.SoldBy = e.EventID
		next.Lines = next.Known
		t = Sale
		if next.Shipped {
			next.CommittedBy = e.EventID
			t = SaleCommit
		}
	// A shipment that comes after the order was released (its refund came
	// first) commits nothing: it shipped and came back, which leaves the
	// stock as the release did.
	case next.Shipped && cur.SoldBy != "" && cur.CommittedBy == "" && cur.RestockedBy == "":
		next.CommittedBy = e.EventID
		t = Commit
	case !stale && terminal(e.Type) && cur.SoldBy != "" && cur.RestockedBy == "":
		next.RestockedBy = e.EventID
		t = Release
		if cur.CommittedBy != "" {
			t = Restock
		}
	}
	return next, true, t
}

// DeltaID is the id of the delta of one order line's transition; the same
// on every delivery of the event, every retry and every replay. A release
// keeps the name "restock" that it had before reservations existed, when
// giving back a cancelled sale was called a restock, so that an event of
// that time redelivered or replayed now finds its delta already applied
// instead of giving the stock back twice; the restock of shipped units is
// a "return".
func DeltaID(orderID, lineID string, t Transition) string {
	name := string(t)
	switch t {
	case Release:
		name = "restock"
	case Restock:
		name = "return"
	}
	return orderID + ":" + lineID + ":" + name
}

// Deltas returns the deltas of transition t for the order in state s,
// caused by event e. Their ids, order_id:line_id:transition, are the same
// every time, so downstream applies each at most once; a commit and a
// release name the sale they take back, a restock the commit, so that each
// applies only after it.
func Deltas(s State, e *avro.OrderEvent, t Transition) []avro.InventoryDelta {
	if t == None {
		return nil
	}
	type step struct {
		t        Transition
		kind     string
		sign     int64
		reverses Transition
	}
	var steps []step
	switch t {
	case Sale:
		steps = []step{{Sale, avro.DeltaSale, -1, None}}
	case SaleCommit:
		steps = []step{{Sale, avro.DeltaSale, -1, None}, {Commit, avro.DeltaCommit, -1, Sale}}
	case Commit:
		steps = []step{{Commit, avro.DeltaCommit, -1, Sale}}
	case Release:
		steps = []step{{Release, avro.DeltaRelease, 1, Sale}}
	case Restock:
		steps = []step{{Restock, avro.DeltaRestock, 1, Commit}}
	}
	out := make([]avro.InventoryDelta, 0, len(steps)*len(s.Lines))
	for _, st := range steps {
		for _, l := range s.Lines {
			reverses := ""
			if st.reverses != None {
				reverses = DeltaID(e.OrderID, l.LineID, st.reverses)
			}
			out = append(out, avro.InventoryDelta{
				Reverses:      reverses,
				DeltaID:       DeltaID(e.OrderID, l.LineID, st.t),
				SKU:           l.SKU,
				Kind:          st.kind,
				Quantity:      st.sign * l.Quantity,
				OrderID:       e.OrderID,
				EventID:       e.EventID,
				OccurredAt:    e.OccurredAt,
				CorrelationID: e.CorrelationID,
				Provider:      e.Provider,
				ReceivedAt:    e.ReceivedAt,
			})
		}
	}
	return out
}
