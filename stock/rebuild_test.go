package stock

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/shopstream/shopstream/internal/testenv"
)

// Every key of a SKU is either state, which a rebuild replaces, or the
// backorder setting or the lock, which it leaves: a key added to Keys
// must be put on one side.
func TestEveryKeyIsStateOrLeftAlone(t *testing.T) {
	k := KeysFor("p:", "S")
	classified := append(k.StateKeys(), k.Backorder, k.Lock)
	v := reflect.ValueOf(k)
	for i := range v.NumField() {
		if !slices.Contains(classified, v.Field(i).String()) {
			t.Errorf("Keys.%s is neither state (StateKeys) nor a setting or the lock", v.Type().Field(i).Name)
		}
	}
}

// Switch leaves the destination holding exactly the source's state, SKU
// by SKU: stock, reserved, outcomes, ledger and watermark move; a SKU the
// source lacks loses its state; settings stay.
func TestSwitchMovesStateAndLeavesSettings(t *testing.T) {
	rdb := testenv.Redis(t)
	ctx := context.Background()
	live, fresh := testenv.Namespace(t), testenv.Namespace(t)
	now := time.UnixMilli(1700000000000).UTC()
	liveStore, freshStore := NewStore(rdb, StoreConfig{Prefix: live}), NewStore(rdb, StoreConfig{Prefix: fresh})
	for _, d := range []Delta{{ID: "a1", SKU: "A", Quantity: 5, Position: "0:1"}, {ID: "b1", SKU: "B", Quantity: 3, Position: "1:1"}} {
		if _, err := apply(ctx, liveStore, d, now); err != nil {
			t.Fatal(err)
		}
	}
	rdb.Set(ctx, KeysFor(live, "B").Backorder, "1", 0)
	for _, d := range []Delta{{ID: "a1", SKU: "A", Quantity: 5, Position: "0:1"}, {ID: "a2", SKU: "A", Quantity: -2, Reserved: 2, Position: "0:2"},
		{ID: "c1", SKU: "C", Quantity: 7, Position: "2:1"}} {
		if _, err := apply(ctx, freshStore, d, now); err != nil {
			t.Fatal(err)
		}
	}
	if err := CopyBackorders(ctx, rdb, live, fresh, []string{"A", "B"}); err != nil {
		t.Fatal(err)
	}
	if v, _ := rdb.Get(ctx, KeysFor(fresh, "B").Backorder).Result(); v != "1" {
		t.Fatalf("B's backorder flag was not copied: %q", v)
	}
	skus, err := SKUs(ctx, rdb, live)
	if err != nil || !slices.Equal(skus, []string{"A", "B"}) {
		t.Fatalf("SKUs of the live namespace: %v %v", skus, err)
	}
	want, err := freshStore.Levels(ctx, []string{"A", "B", "C"})
	if err != nil {
		t.Fatal(err)
	}
	wantLedger, _ := freshStore.Ledger(ctx, "A")
	if err := Switch(ctx, rdb, fresh, live, []string{"A", "B", "C"}); err != nil {
		t.Fatal(err)
	}
	got, err := liveStore.Levels(ctx, []string{"A", "B", "C"})
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("levels after the switch %v (%v), want %v", got, err, want)
	}
	if l, _ := liveStore.Ledger(ctx, "A"); !slices.Equal(l, wantLedger) || len(l) != 2 {
		t.Fatalf("A's ledger %v, want %v", l, wantLedger)
	}
	if n, _ := rdb.Exists(ctx, KeysFor(live, "B").StateKeys()...).Result(); n != 0 {
		t.Fatalf("B, which the source lacks, kept %d state keys", n)
	}
	if v, _ := rdb.Get(ctx, KeysFor(live, "B").Backorder).Result(); v != "1" {
		t.Fatal("the switch dropped B's backorder setting")
	}
	if wm, _ := rdb.Get(ctx, KeysFor(live, "C").Watermark).Result(); wm != "2:1" {
		t.Fatalf("C's watermark %q", wm)
	}
	left, _ := SKUs(ctx, rdb, fresh)
	if !slices.Equal(left, []string{"B"}) {
		t.Fatalf("the source still has keys of %v, want only B's copied setting", left)
	}
	if err := Drop(ctx, rdb, fresh, left); err != nil {
		t.Fatal(err)
	}
	if left, _ := SKUs(ctx, rdb, fresh); len(left) != 0 {
		t.Fatalf("after Drop the source has keys of %v", left)
	}
	lengths, err := liveStore.LedgerLengths(ctx, []string{"A", "B", "C"})
	if err != nil || !slices.Equal(lengths, []int64{2, 0, 1}) {
		t.Fatalf("ledger lengths %v %v", lengths, err)
	}
	for _, sku := range []string{"A", "B", "C"} {
		k := KeysFor(live, sku)
		rdb.Del(ctx, append(k.StateKeys(), k.Backorder)...)
	}
}

func TestGlobEscape(t *testing.T) {
	if got := globEscape(`a*b?c[d]e\f`); got != `a\*b\?c\[d\]e\\f` {
		t.Fatal(got)
	}
}
