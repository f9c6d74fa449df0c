package e2e

import (
	"strings"
	"testing"
	"time"
)

// On the real stack: a paid order reserves, its shipment commits, a
// cancellation releases what never shipped, a refund restocks what did;
// `stock show` and ClickHouse's movements say so at each step.
func TestReservationsThroughThePipeline(t *testing.T) {
	p := newPipeline(t)
	p.shopstream("stock", "adjust", "-sku", "R", "-qty", "10", "-id", "seed-R")
	p.start()
	now := time.Now()
	levels := func(want string) {
		t.Helper()
		if got := strings.Split(strings.TrimSpace(p.shopstream("stock", "show", "R")), "\n")[1]; got != want {
			t.Fatalf("stock show R: %q, want %q", got, want)
		}
	}
	p.mustSend(delivery{id: "msg_r1_paid", body: order("r-1", "order.paid", now, line{"R", 3})}, 200, "accepted")
	p.mustSend(delivery{id: "msg_r2_paid", body: order("r-2", "order.paid", now, line{"R", 2})}, 200, "accepted")
	p.settle(3)
	levels("R\t5\t5\t10")
	p.mustSend(delivery{id: "msg_r1_fulfilled", body: order("r-1", "order.fulfilled", now.Add(time.Second), line{"R", 3})}, 200, "accepted")
	p.settle(4)
	levels("R\t5\t2\t7")
	p.mustSend(delivery{id: "msg_r2_cancelled", body: order("r-2", "order.cancelled", now.Add(time.Second))}, 200, "accepted")
	p.settle(5)
	levels("R\t7\t0\t7")
	p.mustSend(delivery{id: "msg_r1_refunded", body: order("r-1", "order.refunded", now.Add(2*time.Second))}, 200, "accepted")
	p.settle(6)
	levels("R\t10\t0\t10")
	if got := p.analystViews(map[string]string{
		"SELECT kind, count(), sum(quantity), max(stock_after), max(reserved_after) FROM $db.inventory_movements FINAL WHERE sku = 'R' AND status = 'APPLIED' GROUP BY kind ORDER BY kind": "ADJUSTMENT 1 10 10 0\nCOMMIT 1 -3 5 2\nRELEASE 1 2 7 0\nRESTOCK 1 3 10 0\nSALE 2 -5 7 5",
	}); len(got) != 1 {
		t.Fatal(got)
	}
}
