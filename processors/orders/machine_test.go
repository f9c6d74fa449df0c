package orders

import (
	"fmt"
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

// net runs events through the machine in arrival order and sums the
// deltas per SKU, with each delta id counted once as downstream does.
func net(events ...*avro.OrderEvent) (map[string]int64, []string) {
	var s *State
	seen := map[string]bool{}
	sum := map[string]int64{}
	var ids []string
	for _, e := range events {
		next, _, t := Step(s, e)
		s = &next
		for _, d := range Deltas(next, e, t) {
			ids = append(ids, d.DeltaID)
			if !seen[d.DeltaID] {
				seen[d.DeltaID] = true
				sum[d.SKU] += d.Quantity
			}
		}
	}
	return sum, ids
}

func TestStep(t *testing.T) {
	created, paid, fulfilled := ev("e1", avro.OrderCreated, 1), ev("e2", avro.OrderPaid, 2), ev("e3", avro.OrderFulfilled, 3)
	cancelled, refunded := ev("e4", avro.OrderCancelled, 4), ev("e5", avro.OrderRefunded, 5)
	tests := []struct {
		name   string
		events []*avro.OrderEvent
		want   map[string]int64
		ids    []string
	}{
		{"paid sells each line", []*avro.OrderEvent{created, paid}, map[string]int64{"A": -2, "B": -1},
			[]string{"o:1:sale", "o:2:sale"}},
		{"a duplicate paid re-emits the same ids", []*avro.OrderEvent{paid, paid}, map[string]int64{"A": -2, "B": -1},
			[]string{"o:1:sale", "o:2:sale", "o:1:sale", "o:2:sale"}},
		{"fulfilled after paid sells nothing more", []*avro.OrderEvent{paid, fulfilled}, map[string]int64{"A": -2, "B": -1},
			[]string{"o:1:sale", "o:2:sale"}},
		{"cancel after paid restocks", []*avro.OrderEvent{paid, cancelled}, map[string]int64{"A": 0, "B": 0},
			[]string{"o:1:sale", "o:2:sale", "o:1:restock", "o:2:restock"}},
		{"cancel before the paid it follows leaves stock alone", []*avro.OrderEvent{cancelled, paid}, map[string]int64{}, nil},
		{"refund then cancel restocks once", []*avro.OrderEvent{paid, refunded, cancelled}, map[string]int64{"A": 0, "B": 0},
			[]string{"o:1:sale", "o:2:sale", "o:1:restock", "o:2:restock"}},
		{"fulfilled arriving first sells", []*avro.OrderEvent{fulfilled, paid, created}, map[string]int64{"A": -2, "B": -1},
			[]string{"o:1:sale", "o:2:sale"}},
		{"created only", []*avro.OrderEvent{created}, map[string]int64{}, nil},
		{"same version: cancelled outranks paid", []*avro.OrderEvent{ev("x", avro.OrderCancelled, 7), ev("y", avro.OrderPaid, 7)},
			map[string]int64{}, nil},
		{"a gateway's paid sells the lines the storefront listed", []*avro.OrderEvent{created, lineless("g2", avro.OrderPaid, 2)},
			map[string]int64{"A": -2, "B": -1}, []string{"o:1:sale", "o:2:sale"}},
		{"the storefront's lines arriving after the gateway's paid sell then", []*avro.OrderEvent{lineless("g2", avro.OrderPaid, 2), created},
			map[string]int64{"A": -2, "B": -1}, []string{"o:1:sale", "o:2:sale"}},
		{"a paid without lines, none known, sells nothing yet", []*avro.OrderEvent{lineless("g2", avro.OrderPaid, 2)}, map[string]int64{}, nil},
		{"a gateway's refund restocks what sold", []*avro.OrderEvent{created, lineless("g2", avro.OrderPaid, 2), lineless("g5", avro.OrderRefunded, 5)},
			map[string]int64{"A": 0, "B": 0}, []string{"o:1:sale", "o:2:sale", "o:1:restock", "o:2:restock"}},
		{"lines learned after a cancellation sell nothing", []*avro.OrderEvent{lineless("g2", avro.OrderPaid, 2), lineless("g4", avro.OrderCancelled, 4), created},
			map[string]int64{}, nil},
		{"a gateway's payment stamped before the storefront's last change still sells", []*avro.OrderEvent{ev("e9", avro.OrderCreated, 9), lineless("g2", avro.OrderPaid, 2)},
			map[string]int64{"A": -2, "B": -1}, []string{"o:1:sale", "o:2:sale"}},
		{"a payment after a cancellation of an unsold order sells nothing", []*avro.OrderEvent{ev("e4", avro.OrderCancelled, 4), ev("e6", avro.OrderPaid, 6)},
			map[string]int64{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sum, ids := net(tt.events...)
			if fmt.Sprint(sum) != fmt.Sprint(tt.want) || fmt.Sprint(ids) != fmt.Sprint(tt.ids) {
				t.Fatalf("net %v ids %v, want %v %v", sum, ids, tt.want, tt.ids)
			}
		})
	}
}

// Every arrival order of the same events gives the same net stock change:
// created, paid, cancelled nets zero; created, paid sells.
func TestStepIsOrderIndependent(t *testing.T) {
	perms := [][]int{{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}}
	for _, tt := range []struct {
		events []*avro.OrderEvent
		a, b   int64
	}{
		{[]*avro.OrderEvent{ev("e1", avro.OrderCreated, 1), ev("e2", avro.OrderPaid, 2), ev("e4", avro.OrderCancelled, 4)}, 0, 0},
		{[]*avro.OrderEvent{ev("e1", avro.OrderCreated, 1), ev("e2", avro.OrderPaid, 2), ev("e3", avro.OrderFulfilled, 3)}, -2, -1},
		// A storefront and a gateway: the lines from one, the payment and
		// the refund from the other.
		{[]*avro.OrderEvent{ev("e1", avro.OrderCreated, 1), lineless("g2", avro.OrderPaid, 2), lineless("g5", avro.OrderRefunded, 5)}, 0, 0},
		{[]*avro.OrderEvent{ev("e1", avro.OrderCreated, 1), lineless("g2", avro.OrderPaid, 2), ev("e3", avro.OrderFulfilled, 3)}, -2, -1},
	} {
		for _, p := range perms {
			sum, _ := net(tt.events[p[0]], tt.events[p[1]], tt.events[p[2]])
			if sum["A"] != tt.a || sum["B"] != tt.b {
				t.Fatalf("%s,%s,%s: net %v, want A=%d B=%d", tt.events[p[0]].Type, tt.events[p[1]].Type, tt.events[p[2]].Type, sum, tt.a, tt.b)
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

func TestRestockNamesTheSaleItReverses(t *testing.T) {
	paid, cancelled := ev("e2", avro.OrderPaid, 2), ev("e4", avro.OrderCancelled, 4)
	s, _, _ := Step(nil, paid)
	s, _, tr := Step(&s, cancelled)
	for _, d := range Deltas(s, cancelled, tr) {
		if d.Kind != avro.DeltaRestock || d.Quantity <= 0 || d.Reverses != "o:"+d.DeltaID[2:3]+":sale" {
			t.Fatalf("restock %+v", d)
		}
	}
}
