package stock

import (
	"context"
	"testing"
	"time"

	"github.com/shopstream/shopstream/internal/testenv"
)

// After the horizon a SKU forgets its outcomes and their ledger entries;
// a replay of the same deltas from the delta log still changes nothing,
// because they are at or before the SKU's watermark, and a new delta after
// it applies.
func TestPrunedOutcomesAreCoveredByTheWatermark(t *testing.T) {
	rdb := testenv.Redis(t)
	ctx := context.Background()
	s := NewStore(rdb, StoreConfig{Prefix: testenv.Namespace(t)})
	day0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	deltas := []Delta{
		{ID: "seed", SKU: "P", Quantity: 10, Position: "2:100"},
		{ID: "o1:1:sale", SKU: "P", Quantity: -3, Reserved: 3, Position: "2:101"},
		{ID: "o2:1:sale", SKU: "P", Quantity: -20, Reserved: 20, Position: "2:102"}, // refused
	}
	if _, err := s.ApplyRuns(ctx, []Run{{SKU: "P", Deltas: deltas}}, day0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ApplyRuns(ctx, []Run{{SKU: "Q", Deltas: []Delta{{ID: "seed-q", SKU: "Q", Quantity: 1, Position: "0:7"}}}}, day0.Add(6*24*time.Hour)); err != nil {
		t.Fatal(err)
	}

	pruned, err := s.Prune(ctx, DefaultHorizon, day0.Add(DefaultHorizon+time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if pruned != (Pruned{SKUs: 1, Outcomes: 3, LedgerEntries: 2}) {
		t.Fatalf("pruned %+v; want P's three outcomes and two ledger entries, nothing of Q, decided within the horizon", pruned)
	}
	if n, _ := rdb.HLen(ctx, KeysFor(s.cfg.Prefix, "Q").Applied).Result(); n != 1 {
		t.Fatalf("Q remembers %d outcomes, want 1", n)
	}

	// The whole delta log again, as a replay of the inventory group reads
	// it, then one new delta.
	replay := append(append([]Delta{}, deltas...), Delta{ID: "o3:1:sale", SKU: "P", Quantity: -1, Reserved: 1, Position: "2:103"})
	out, err := s.ApplyRuns(ctx, []Run{{SKU: "P", Deltas: replay}}, day0.Add(8*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range out[0][:3] {
		if !o.Passed || !o.Duplicate {
			t.Fatalf("replayed delta %d: %+v, want it passed", i, o)
		}
	}
	if o := out[0][3]; o.Passed || o.StockAfter != 6 || o.ReservedAfter != 4 {
		t.Fatalf("the new delta: %+v", o)
	}
	l, err := s.Levels(ctx, []string{"P"})
	if err != nil {
		t.Fatal(err)
	}
	ledger, _ := s.Ledger(ctx, "P")
	if l[0] != (Level{SKU: "P", OnHand: 10, Reserved: 4}) || len(ledger) != 1 || ledger[0].DeltaID != "o3:1:sale" {
		t.Fatalf("after the replay: %+v, ledger %+v", l[0], ledger)
	}
}
