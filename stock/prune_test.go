package stock

import (
	"context"
	"testing"
	"time"

	"github.com/shopstream/shopstream/internal/testenv"
)

// After the horizon a SKU forgets its deltas' outcomes and their ledger
// entries, but a sale's for as long as an order may still take it back; a
// replay of the same deltas from the delta log still changes nothing,
// because they are at or before the SKU's watermark, and a new delta after
// it applies.
func TestPrunedOutcomesAreCoveredByTheWatermark(t *testing.T) {
	rdb := testenv.Redis(t)
	ctx := context.Background()
	s := NewStore(rdb, StoreConfig{Prefix: testenv.Namespace(t)})
	day := func(n int) time.Time {
		return time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(n) * 24 * time.Hour)
	}
	deltas := []Delta{
		{ID: "seed", SKU: "P", Quantity: 10, Position: "2:100"},
		{ID: "o1:1:sale", SKU: "P", Quantity: -3, Reserved: 3, Position: "2:101"},
		{ID: "o2:1:sale", SKU: "P", Quantity: -20, Reserved: 20, Position: "2:102"}, // refused
	}
	if _, err := s.ApplyRuns(ctx, []Run{{SKU: "P", Deltas: deltas}}, day(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ApplyRuns(ctx, []Run{{SKU: "Q", Deltas: []Delta{{ID: "seed-q", SKU: "Q", Quantity: 1, Position: "0:7"}}}}, day(6)); err != nil {
		t.Fatal(err)
	}

	// A week on, the seed is forgotten; the sales are not, and a refund a
	// month on still releases what its sale reserved. Two prunes at once
	// (two instances) trim the ledger once.
	for range 2 {
		if _, err := s.Prune(ctx, DefaultHorizon, DefaultReversibleHorizon, day(8)); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := rdb.HLen(ctx, KeysFor(s.cfg.Prefix, "P").Applied).Result(); n != 2 {
		t.Fatalf("P remembers %d outcomes after a week, want its two sales", n)
	}
	if n, _ := rdb.HLen(ctx, KeysFor(s.cfg.Prefix, "Q").Applied).Result(); n != 1 {
		t.Fatalf("Q remembers %d outcomes, want 1", n)
	}
	release := Delta{ID: "o1:1:restock", SKU: "P", Quantity: 3, Reserved: -3, Reverses: "o1:1:sale", Position: "2:103"}
	out, err := s.ApplyRuns(ctx, []Run{{SKU: "P", Deltas: []Delta{release}}}, day(30))
	if err != nil || out[0][0].Status != "APPLIED" {
		t.Fatalf("a release a month on: %+v, %v", out, err)
	}

	pruned, err := s.Prune(ctx, DefaultHorizon, DefaultReversibleHorizon, day(0).Add(DefaultReversibleHorizon+time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if pruned.Outcomes != 3+1 || pruned.LedgerEntries != 2+1 {
		t.Fatalf("pruned %+v; want the two sales, the release and Q's seed, and the ledger entries of the three applied", pruned)
	}

	// The whole delta log again, as a replay of the inventory group reads
	// it, then one new delta.
	replay := append(append([]Delta{}, deltas...), release, Delta{ID: "o3:1:sale", SKU: "P", Quantity: -1, Reserved: 1, Position: "2:104"})
	out, err = s.ApplyRuns(ctx, []Run{{SKU: "P", Deltas: replay}}, day(100))
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range out[0][:4] {
		if !o.Passed || !o.Duplicate {
			t.Fatalf("replayed delta %d: %+v, want it passed", i, o)
		}
	}
	if o := out[0][4]; o.Passed || o.StockAfter != 9 || o.ReservedAfter != 1 {
		t.Fatalf("the new delta: %+v", o)
	}
	l, err := s.Levels(ctx, []string{"P"})
	if err != nil {
		t.Fatal(err)
	}
	ledger, _ := s.Ledger(ctx, "P")
	if l[0] != (Level{SKU: "P", OnHand: 10, Reserved: 1}) || len(ledger) != 1 || ledger[0].DeltaID != "o3:1:sale" {
		t.Fatalf("after the replay: %+v, ledger %+v", l[0], ledger)
	}
}
