package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/shopstream/shopstream/internal/testenv"
	"github.com/shopstream/shopstream/stock"
)

// After the horizon has passed, each SKU has forgotten its deltas' ids,
// and retention has taken what is upstream of the delta log; a replay of
// every group from earliest then changes nothing: the inventory group
// reads the whole delta log again, and each SKU's watermark passes what it
// decided before.
func TestReplayAfterTheHorizonAppliesNothingTwice(t *testing.T) {
	p := newPipeline(t)
	p.env = append(p.env, "SHOPSTREAM_INVENTORY_HORIZON=2s", "SHOPSTREAM_INVENTORY_REVERSIBLE_HORIZON=2s")
	p.shopstream("stock", "adjust", "-sku", "H", "-qty", "20", "-id", "seed-H")
	p.start()
	now := time.Now()
	for i := range 8 {
		p.mustSend(delivery{id: fmt.Sprintf("msg_h_%d", i), body: order(fmt.Sprintf("h-%d", i), "order.paid", now, line{"H", 1})}, 200, "accepted")
	}
	p.mustSend(delivery{id: "msg_h_cancel", body: order("h-0", "order.cancelled", now.Add(time.Second))}, 200, "accepted")
	p.settle(10)
	ctx := context.Background()
	applied := stock.KeysFor(p.prefix, "H").Applied
	testenv.Eventually(t, 30*time.Second, func() error {
		if n := p.rdb.HLen(ctx, applied).Val(); n != 0 {
			return fmt.Errorf("H still remembers %d outcomes", n)
		}
		return nil
	})
	before := p.stock("H")
	if before != 20-8+1 {
		t.Fatalf("stock %d before the replay", before)
	}

	p.stop()
	// Retention, after the horizon: what is upstream of the delta log is gone.
	for _, topic := range []string{p.names.WebhooksRaw, p.names.Orders} {
		ends, err := p.adm.ListEndOffsets(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.adm.DeleteRecords(ctx, ends.Offsets()); err != nil {
			t.Fatal(err)
		}
	}
	p.resetGroupsToEarliest()
	p.start()
	p.settle(10)
	if got := p.stock("H"); got != before {
		t.Fatalf("stock %d after the replay, %d before", got, before)
	}
	if n := p.count("SELECT count() FROM $db.inventory_movements_final WHERE sku = 'H'"); n != 10 {
		t.Fatalf("%d movements of H after the replay, want 10", n)
	}
}
