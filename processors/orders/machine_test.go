package orders

import (
	"fmt"
	"strings"
	"testing"

	"github.com/shopstream/shopstream/schemas/avro"
)

func ev(id, typ string, version int64) *avro.OrderEvent {
	return &avro.OrderEvent{EventID: id, Type: typ, OrderID: "o", Version: version,
		Lines: []avro.LineItem{{LineID: "1", SKU: "A", Quantity: 2}, {LineID: "2", SKU: "B", Quantity: 1}}}
}

// lineless is an event of a payment gateway: it names the order, not its
// lines.
func lineless(id, typ string, version int64) *avro.OrderEvent {
	e := ev(id, typ, version)
	e.Lines = nil
	return e
}

// net runs events through the machine in arrival order and applies the
// deltas as the inventory stage does: each delta id once, and one that
// takes back another only after that one applied. It returns each SKU's
// change of stock that can be sold and of reserved units, as
// "SKU:sellable/reserved", and the delta ids in the order emitted.
func net(events ...*avro.OrderEvent) (string, []string) {
	var s *State
	applied := map[string]bool{}
	sellable, reserved := map[string]int64{}, map[string]int64{}
	var ids []string
	for _, e := range events {
		next, _, t := Step(s, e)
		s = &next
		for _, d := range Deltas(next, e, t) {
			ids = append(ids, d.DeltaID)
			if applied[d.DeltaID] || d.Reverses != "" && !applied[d.Reverses] {
				continue
			}
			applied[d.DeltaID] = true
			switch d.Kind {
			case avro.DeltaSale, avro.DeltaRelease:
				sellable[d.SKU] += d.Quantity
				reserved[d.SKU] -= d.Quantity
			case avro.DeltaCommit:
				reserved[d.SKU] += d.Quantity
			default:
				sellable[d.SKU] += d.Quantity
			}
		}
	}
	var out []string
	for _, sku := range []string{"A", "B"} {
		if _, ok := sellable[sku]; ok {
			out = append(out, fmt.Sprintf("%s:%d/%d", sku, sellable[sku], reserved[sku]))
		}
	}
	return strings.Join(out, " "), ids
}

func TestStep(t *testing.T) {
	created, paid, fulfilled := ev("e1", avro.OrderCreated, 1), ev("e2", avro.OrderPaid, 2), ev("e3", avro.OrderFulfilled, 3)
	cancelled, refunded := ev("e4", avro.OrderCancelled, 4), ev("e5", avro.OrderRefunded, 5)
	sold := []string{"o:1:sale", "o:2:sale"}
	with := func(ids ...[]string) []string {
		var out []string
		for _, x := range ids {
			out = append(out, x...)
		}
		return out
	}
	committed, released, returned := []string{"o:1:commit", "o:2:commit"}, []string{"o:1:restock", "o:2:restock"}, []string{"o:1:return", "o:2:return"}
	tests := []struct {
		name   string
		events []*avro.OrderEvent
		want   string
		ids    []string
	}{
		{"paid reserves each line", []*avro.OrderEvent{created, paid}, "A:-2/2 B:-1/1", sold},
		{"a duplicate paid re-emits the same ids", []*avro.OrderEvent{paid, paid}, "A:-2/2 B:-1/1", with(sold, sold)},
		{"fulfilled after paid commits", []*avro.OrderEvent{paid, fulfilled}, "A:-2/0 B:-1/0", with(sold, committed)},
		{"cancel after paid releases", []*avro.OrderEvent{paid, cancelled}, "A:0/0 B:0/0", with(sold, released)},
		{"cancel before the paid it follows leaves stock alone", []*avro.OrderEvent{cancelled, paid}, "", nil},
		{"refund then cancel releases once", []*avro.OrderEvent{paid, refunded, cancelled}, "A:0/0 B:0/0", with(sold, released)},
		{"a refund after shipping restocks", []*avro.OrderEvent{paid, fulfilled, refunded}, "A:0/0 B:0/0", with(sold, committed, returned)},
		{"a shipment reported after the refund commits nothing", []*avro.OrderEvent{paid, refunded, fulfilled}, "A:0/0 B:0/0", with(sold, released)},
		{"fulfilled arriving first sells and commits", []*avro.OrderEvent{fulfilled, paid, created}, "A:-2/0 B:-1/0", with(sold, committed)},
		{"created only", []*avro.OrderEvent{created}, "", nil},
		{"same version: cancelled outranks paid", []*avro.OrderEvent{ev("x", avro.OrderCancelled, 7), ev("y", avro.OrderPaid, 7)}, "", nil},
		{"a gateway's paid sells the lines the storefront listed", []*avro.OrderEvent{created, lineless("g2", avro.OrderPaid, 2)}, "A:-2/2 B:-1/1", sold},
		{"the storefront's lines arriving after the gateway's paid sell then", []*avro.OrderEvent{lineless("g2", avro.OrderPaid, 2), created}, "A:-2/2 B:-1/1", sold},
		{"a paid without lines, none known, sells nothing yet", []*avro.OrderEvent{lineless("g2", avro.OrderPaid, 2)}, "", nil},
		{"a gateway's refund releases what sold", []*avro.OrderEvent{created, lineless("g2", avro.OrderPaid, 2), lineless("g5", avro.OrderRefunded, 5)},
			"A:0/0 B:0/0", with(sold, released)},
		{"lines learned after a cancellation sell nothing", []*avro.OrderEvent{lineless("g2", avro.OrderPaid, 2), lineless("g4", avro.OrderCancelled, 4), created}, "", nil},
		{"a gateway's payment stamped before the storefront's last change still sells", []*avro.OrderEvent{ev("e9", avro.OrderCreated, 9), lineless("g2", avro.OrderPaid, 2)},
			"A:-2/2 B:-1/1", sold},
		{"a payment after a cancellation of an unsold order sells nothing", []*avro.OrderEvent{ev("e4", avro.OrderCancelled, 4), ev("e6", avro.OrderPaid, 6)}, "", nil},
		{"a stale cancellation that brings the lines a payment waited for sells nothing", []*avro.OrderEvent{lineless("g2", avro.OrderPaid, 2), ev("e1", avro.OrderCancelled, 1)}, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ids := net(tt.events...)
			if got != tt.want || fmt.Sprint(ids) != fmt.Sprint(tt.ids) {
				t.Fatalf("net %q ids %v, want %q %v", got, ids, tt.want, tt.ids)
			}
		})
	}
}

// permutations returns every order of events.
func permutations(events []*avro.OrderEvent) [][]*avro.OrderEvent {
	if len(events) <= 1 {
		return [][]*avro.OrderEvent{events}
	}
	var out [][]*avro.OrderEvent
	for i := range events {
		rest := append(append([]*avro.OrderEvent{}, events[:i]...), events[i+1:]...)
		for _, p := range permutations(rest) {
			out = append(out, append([]*avro.OrderEvent{events[i]}, p...))
		}
	}
	return out
}

// Every arrival order of one order's events ends with the same stock and
// the same reserve: what the events say in their own order.
func TestStepIsOrderIndependent(t *testing.T) {
	created, paid, fulfilled := ev("e1", avro.OrderCreated, 1), ev("e2", avro.OrderPaid, 2), ev("e3", avro.OrderFulfilled, 3)
	cancelled, refunded := ev("e4", avro.OrderCancelled, 4), ev("e5", avro.OrderRefunded, 5)
	gwPaid, gwRefunded := lineless("g2", avro.OrderPaid, 2), lineless("g5", avro.OrderRefunded, 5)
	for _, tt := range []struct {
		events []*avro.OrderEvent
		want   string
	}{
		{[]*avro.OrderEvent{created, paid}, "A:-2/2 B:-1/1"},
		{[]*avro.OrderEvent{created, paid, cancelled}, "A:0/0 B:0/0"},
		{[]*avro.OrderEvent{created, paid, fulfilled}, "A:-2/0 B:-1/0"},
		{[]*avro.OrderEvent{created, paid, fulfilled, refunded}, "A:0/0 B:0/0"},
		{[]*avro.OrderEvent{created, paid, fulfilled, cancelled, refunded}, "A:0/0 B:0/0"},
		// A storefront and a gateway: the lines from one, the payment and
		// the refund from the other.
		{[]*avro.OrderEvent{created, gwPaid, gwRefunded}, "A:0/0 B:0/0"},
		{[]*avro.OrderEvent{created, gwPaid, fulfilled}, "A:-2/0 B:-1/0"},
		{[]*avro.OrderEvent{created, gwPaid, fulfilled, gwRefunded}, "A:0/0 B:0/0"},
	} {
		for _, p := range permutations(tt.events) {
			got, _ := net(p...)
			// An order whose cancellation or refund came before anything
			// sold never sells: nothing moved, which is the same end.
			if got == "" {
				got = "A:0/0 B:0/0"
			}
			if got != tt.want {
				var order []string
				for _, e := range p {
					order = append(order, e.Type)
				}
				t.Fatalf("%v: net %q, want %q", order, got, tt.want)
			}
		}
	}
}

func TestValidate(t *testing.T) {
	ok := ev("e", avro.OrderPaid, 1)
	bad := map[string]func(e *avro.OrderEvent){
		"no order id":    func(e *avro.OrderEvent) { e.OrderID = "" },
		"no event id":    func(e *avro.OrderEvent) { e.EventID = "" },
		"unknown type":   func(e *avro.OrderEvent) { e.Type = avro.OrderUnknown },
		"zero quantity":  func(e *avro.OrderEvent) { e.Lines[0].Quantity = 0 },
		"no sku":         func(e *avro.OrderEvent) { e.Lines[0].SKU = "" },
		"repeated lines": func(e *avro.OrderEvent) { e.Lines[1].LineID = e.Lines[0].LineID },
	}
	if err := Validate(ok); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range bad {
		e := ev("e", avro.OrderPaid, 1)
		mutate(e)
		if Validate(e) == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// The event whose arrival made the order sell re-emits the same sale when
// it is delivered again, even when it is the storefront's stale event that
// brought the lines after the gateway's payment.
func TestTheEventThatSoldReemitsItsSale(t *testing.T) {
	s, _, _ := Step(nil, lineless("g2", avro.OrderPaid, 2))
	created := ev("e1", avro.OrderCreated, 1)
	s, _, tr := Step(&s, created)
	if tr != Sale || s.SoldBy != "e1" {
		t.Fatalf("transition %q sold by %q, want a sale by e1", tr, s.SoldBy)
	}
	again, changed, tr := Step(&s, created)
	if changed || tr != Sale || fmt.Sprint(Deltas(again, created, tr)) != fmt.Sprint(Deltas(s, created, Sale)) {
		t.Fatalf("redelivery: changed %v transition %q", changed, tr)
	}
}

// A release names the sale it gives back; a restock the commit whose
// units come back.
func TestTakingBackNamesWhatItTakesBack(t *testing.T) {
	paid, fulfilled, cancelled, refunded := ev("e2", avro.OrderPaid, 2), ev("e3", avro.OrderFulfilled, 3), ev("e4", avro.OrderCancelled, 4), ev("e5", avro.OrderRefunded, 5)
	s, _, _ := Step(nil, paid)
	r, _, tr := Step(&s, cancelled)
	for _, d := range Deltas(r, cancelled, tr) {
		if d.Kind != avro.DeltaRelease || d.Quantity <= 0 || d.Reverses != "o:"+d.DeltaID[2:3]+":sale" || !strings.HasSuffix(d.DeltaID, ":restock") {
			t.Fatalf("release %+v", d)
		}
	}
	s, _, _ = Step(&s, fulfilled)
	s, _, tr = Step(&s, refunded)
	for _, d := range Deltas(s, refunded, tr) {
		if d.Kind != avro.DeltaRestock || d.Quantity <= 0 || d.Reverses != "o:"+d.DeltaID[2:3]+":commit" || !strings.HasSuffix(d.DeltaID, ":return") {
			t.Fatalf("restock %+v", d)
		}
	}
}
