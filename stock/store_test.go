package stock

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shopstream/shopstream/internal/stream"
	"github.com/shopstream/shopstream/internal/testenv"
	"github.com/shopstream/shopstream/schemas/avro"
)

func TestApplyOnceAndRefuse(t *testing.T) {
	rdb := testenv.Redis(t)
	ctx := context.Background()
	prefix := testenv.Namespace(t)
	s := NewStore(rdb, StoreConfig{Prefix: prefix})
	now := time.UnixMilli(1700000000000).UTC()

	steps := []struct {
		id       string
		qty      int64
		status   string
		stock    int64
		dup      bool
		reason   string
		appliedT time.Time
	}{
		{"restock-1", 5, avro.MovementApplied, 5, false, "", now},
		{"o1:1:sale", -3, avro.MovementApplied, 2, false, "", now},
		{"o1:1:sale", -3, avro.MovementApplied, 2, true, "", now},
		{"o2:1:sale", -3, avro.MovementRefused, 2, false, "insufficient_stock", now},
		{"o2:1:sale", -3, avro.MovementRefused, 2, true, "insufficient_stock", now},
		{"o3:1:sale", -2, avro.MovementApplied, 0, false, "", now},
	}
	for i, st := range steps {
		out, err := s.Apply(ctx, Delta{ID: st.id, SKU: "SKU-A", Quantity: st.qty}, now.Add(time.Duration(i)*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		want := Outcome{Status: st.status, StockAfter: st.stock, Reason: st.reason, Duplicate: st.dup}
		got := out
		got.AppliedAt = time.Time{}
		if got != want {
			t.Fatalf("step %d (%s): %+v, want %+v", i, st.id, got, want)
		}
		if st.dup && out.AppliedAt.Equal(now.Add(time.Duration(i)*time.Second)) {
			t.Fatalf("step %d: a duplicate must return the first decision's time", i)
		}
	}
	if v, err := s.Stock(ctx, "SKU-A"); v != 0 || err != nil {
		t.Fatalf("stock %d %v, want 0", v, err)
	}
	ledger, err := s.Ledger(ctx, "SKU-A")
	want := []LedgerEntry{{"restock-1", 5, 5}, {"o1:1:sale", -3, 2}, {"o3:1:sale", -2, 0}}
	if err != nil || fmt.Sprint(ledger) != fmt.Sprint(want) {
		t.Fatalf("ledger %v %v, want %v", ledger, err, want)
	}
}

// A restock gives back only a sale that was applied: restocking a refused
// sale would create stock that never left.
func TestRestockOfARefusedSaleIsRefused(t *testing.T) {
	rdb := testenv.Redis(t)
	ctx := context.Background()
	s := NewStore(rdb, StoreConfig{Prefix: testenv.Namespace(t)})
	steps := []struct {
		d      Delta
		status string
		stock  int64
	}{
		{Delta{ID: "seed", SKU: "R", Quantity: 1}, avro.MovementApplied, 1},
		{Delta{ID: "o1:1:sale", SKU: "R", Quantity: -5}, avro.MovementRefused, 1},
		{Delta{ID: "o1:1:restock", SKU: "R", Quantity: 5, Reverses: "o1:1:sale"}, avro.MovementRefused, 1},
		{Delta{ID: "o2:1:restock", SKU: "R", Quantity: 1, Reverses: "o2:1:sale"}, avro.MovementRefused, 1},
		{Delta{ID: "o3:1:sale", SKU: "R", Quantity: -1}, avro.MovementApplied, 0},
		{Delta{ID: "o3:1:restock", SKU: "R", Quantity: 1, Reverses: "o3:1:sale"}, avro.MovementApplied, 1},
	}
	for _, st := range steps {
		out, err := s.Apply(ctx, st.d, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if out.Status != st.status || out.StockAfter != st.stock {
			t.Fatalf("%s: %+v, want %s at %d", st.d.ID, out, st.status, st.stock)
		}
	}
}

func TestBackorderAllowsNegativeStock(t *testing.T) {
	rdb := testenv.Redis(t)
	ctx := context.Background()
	prefix := testenv.Namespace(t)
	s := NewStore(rdb, StoreConfig{Prefix: prefix})
	rdb.Set(ctx, KeysFor(prefix, "PRE").Backorder, "1", 0)
	out, err := s.Apply(ctx, Delta{ID: "o:1:sale", SKU: "PRE", Quantity: -4}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if out.Status != avro.MovementApplied || out.StockAfter != -4 {
		t.Fatalf("backorder: %+v", out)
	}
}

// Many workers race on one SKU with overlapping delta ids: each id applies
// once, and the stock is exactly the sum of the distinct ids.
func TestConcurrentApplyIsExact(t *testing.T) {
	rdb := testenv.Redis(t)
	ctx := context.Background()
	prefix := testenv.Namespace(t)
	s := NewStore(rdb, StoreConfig{Prefix: prefix})
	const ids, workers = 200, 8
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < ids; i++ {
				if _, err := s.Apply(ctx, Delta{ID: fmt.Sprintf("d%d", i), SKU: "HOT", Quantity: 1}, time.Now()); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	k := KeysFor(prefix, "HOT")
	if v, _ := rdb.Get(ctx, k.Stock).Int64(); v != ids {
		t.Fatalf("stock %d, want %d", v, ids)
	}
	if n, _ := rdb.LLen(ctx, k.Ledger).Result(); n != ids {
		t.Fatalf("ledger has %d entries, want %d", n, ids)
	}
}

func TestApplyWithRedisGoneIsTransient(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer rdb.Close()
	_, err := NewStore(rdb, StoreConfig{LockWait: 300 * time.Millisecond}).Apply(context.Background(), Delta{ID: "d", SKU: "S", Quantity: 1}, time.Now())
	if err == nil || stream.IsPermanent(err) {
		t.Fatalf("err %v, want a transient error", err)
	}
}

func TestValidSKU(t *testing.T) {
	for sku, ok := range map[string]bool{"SKU-1": true, "": false, "a{b": false, "a}b": false, string(make([]byte, 201)): false} {
		if (ValidSKU(sku) == nil) != ok {
			t.Errorf("ValidSKU(%q) = %v", sku, ValidSKU(sku))
		}
	}
}
