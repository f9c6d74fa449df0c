package stock

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bsm/redislock"
	"github.com/redis/go-redis/v9"

	"github.com/shopstream/shopstream/internal/stream"
	"github.com/shopstream/shopstream/internal/testenv"
	"github.com/shopstream/shopstream/schemas/avro"
)

// newStore gives a test a Store in a namespace of its own on the test
// Redis, with the client and the namespace for the test's own checks.
func newStore(t *testing.T) (*Store, *redis.Client, string) {
	t.Helper()
	rdb := testenv.Redis(t)
	prefix := testenv.Namespace(t)
	return NewStore(rdb, StoreConfig{Prefix: prefix}), rdb, prefix
}

// apply applies one delta, as a run of one.
func apply(ctx context.Context, s *Store, d Delta, now time.Time) (Outcome, error) {
	outs, err := s.ApplyRuns(ctx, []Run{{SKU: d.SKU, Deltas: []Delta{d}}}, now)
	if err != nil {
		return Outcome{}, err
	}
	return outs[0][0], nil
}

func TestApplyOnceAndRefuse(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := context.Background()
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
		out, err := apply(ctx, s, Delta{ID: st.id, SKU: "SKU-A", Quantity: st.qty}, now.Add(time.Duration(i)*time.Second))
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
	s, _, _ := newStore(t)
	ctx := context.Background()
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
		out, err := apply(ctx, s, st.d, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if out.Status != st.status || out.StockAfter != st.stock {
			t.Fatalf("%s: %+v, want %s at %d", st.d.ID, out, st.status, st.stock)
		}
	}
}

func TestBackorderAllowsNegativeStock(t *testing.T) {
	s, rdb, prefix := newStore(t)
	ctx := context.Background()
	rdb.Set(ctx, KeysFor(prefix, "PRE").Backorder, "1", 0)
	out, err := apply(ctx, s, Delta{ID: "o:1:sale", SKU: "PRE", Quantity: -4}, time.Now())
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
	s, rdb, prefix := newStore(t)
	ctx := context.Background()
	const ids, workers = 200, 8
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < ids; i++ {
				if _, err := apply(ctx, s, Delta{ID: fmt.Sprintf("d%d", i), SKU: "HOT", Quantity: 1}, time.Now()); err != nil {
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
	_, err := apply(context.Background(), NewStore(rdb, StoreConfig{LockWait: 300 * time.Millisecond}), Delta{ID: "d", SKU: "S", Quantity: 1}, time.Now())
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

// A batch of runs over several SKUs: each run applies in order, a delta
// repeated within a run applies once, a restock sees the sale before it in
// the same run, and two runs of one SKU apply as one, in the order given.
func TestApplyRunsInOrderAcrossSKUs(t *testing.T) {
	s, rdb, _ := newStore(t)
	ctx := context.Background()
	now := time.UnixMilli(1700000000000).UTC()
	outs, err := s.ApplyRuns(ctx, []Run{
		{SKU: "A", Deltas: []Delta{{ID: "seed-A", SKU: "A", Quantity: 2}, {ID: "o1:1:sale", SKU: "A", Quantity: -2},
			{ID: "o1:1:sale", SKU: "A", Quantity: -2}, {ID: "o1:1:restock", SKU: "A", Quantity: 2, Reverses: "o1:1:sale"}}},
		{SKU: "B", Deltas: []Delta{{ID: "o2:1:sale", SKU: "B", Quantity: -1}}},
		{SKU: "A", Deltas: []Delta{{ID: "o3:1:sale", SKU: "A", Quantity: -3}}},
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	type short struct {
		status string
		stock  int64
		dup    bool
	}
	want := [][]short{
		{{avro.MovementApplied, 2, false}, {avro.MovementApplied, 0, false}, {avro.MovementApplied, 0, true}, {avro.MovementApplied, 2, false}},
		{{avro.MovementRefused, 0, false}},
		{{avro.MovementRefused, 2, false}},
	}
	for i := range want {
		if len(outs[i]) != len(want[i]) {
			t.Fatalf("run %d: %d outcomes, want %d", i, len(outs[i]), len(want[i]))
		}
		for j, w := range want[i] {
			if got := (short{outs[i][j].Status, outs[i][j].StockAfter, outs[i][j].Duplicate}); got != w {
				t.Errorf("run %d delta %d: %+v, want %+v", i, j, got, w)
			}
		}
	}
	for sku, want := range map[string]int64{"A": 2, "B": 0} {
		if v, _ := s.Stock(ctx, sku); v != want {
			t.Errorf("stock of %s %d, want %d", sku, v, want)
		}
		if n, _ := rdb.Exists(ctx, KeysFor(s.cfg.Prefix, sku).Lock).Result(); n != 0 {
			t.Errorf("the lock of %s is still held after its run", sku)
		}
	}
}

// The fencing case: a batch takes a SKU's lock, stalls past the
// lock's TTL, and meanwhile another writer takes the lock and applies the
// same delta. When the stalled batch's script finally runs it finds the
// lock no longer holds its token and changes nothing: the delta is applied
// once, and the two writers never interleave.
func TestExpiredLockCannotDoubleApply(t *testing.T) {
	rdb := testenv.Redis(t)
	ctx := context.Background()
	prefix := testenv.Namespace(t)
	stalled := NewStore(rdb, StoreConfig{Prefix: prefix, LockTTL: 100 * time.Millisecond})
	other := NewStore(rdb, StoreConfig{Prefix: prefix})
	run := []Run{{SKU: "F", Deltas: []Delta{{ID: "seed", SKU: "F", Quantity: 5}, {ID: "o:1:sale", SKU: "F", Quantity: -1}}}}

	tokens, err := stalled.lock(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the stall: longer than the lock's TTL
	if _, err := other.ApplyRuns(ctx, run, time.Now()); err != nil {
		t.Fatalf("the other writer could not take the expired lock: %v", err)
	}
	// The other writer now holds the lock anew while the stalled one resumes.
	otherTokens, err := other.lock(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stalled.applyLocked(ctx, run, tokens, time.Now()); !errors.Is(err, ErrLockLost) {
		t.Fatalf("the stalled batch applied with a lost lock: %v", err)
	}
	if v, _ := other.Stock(ctx, "F"); v != 4 {
		t.Fatalf("stock %d, want 4: each delta once", v)
	}
	if l, _ := other.Ledger(ctx, "F"); len(l) != 2 {
		t.Fatalf("ledger %v, want 2 entries", l)
	}
	if held, _ := rdb.Get(ctx, KeysFor(prefix, "F").Lock).Result(); held != otherTokens[0] {
		t.Fatal("the stalled batch released a lock that was not its own")
	}
}

// A SKU frozen by another holder (bsm/redislock, as an operator command
// takes it) is waited for, then refused with ErrLockBusy, and nothing of the
// batch is applied: the locks it took of other SKUs are given back.
func TestBusyLockIsWaitedForThenRefused(t *testing.T) {
	rdb := testenv.Redis(t)
	ctx := context.Background()
	prefix := testenv.Namespace(t)
	frozen, err := redislock.New(rdb).Obtain(ctx, KeysFor(prefix, "Z").Lock, time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := NewStore(rdb, StoreConfig{Prefix: prefix, LockWait: 200 * time.Millisecond})
	_, err = s.ApplyRuns(ctx, []Run{{SKU: "Y", Deltas: []Delta{{ID: "y", SKU: "Y", Quantity: 1}}},
		{SKU: "Z", Deltas: []Delta{{ID: "z", SKU: "Z", Quantity: 1}}}}, time.Now())
	if !errors.Is(err, ErrLockBusy) || stream.IsPermanent(err) {
		t.Fatalf("err %v, want a transient ErrLockBusy", err)
	}
	if n, _ := rdb.Exists(ctx, KeysFor(prefix, "Y").Lock, KeysFor(prefix, "Y").Stock).Result(); n != 0 {
		t.Fatal("a refused batch kept a lock or applied a delta")
	}
	if err := frozen.Release(ctx); err != nil {
		t.Fatalf("the operator's lock was touched: %v", err)
	}
	if _, err := s.ApplyRuns(ctx, []Run{{SKU: "Z", Deltas: []Delta{{ID: "z", SKU: "Z", Quantity: 1}}}}, time.Now()); err != nil {
		t.Fatal(err)
	}
}

// After Redis forgets its scripts (a restart), a batch loads apply.lua and
// applies, once.
func TestAppliesAfterScriptFlush(t *testing.T) {
	s, rdb, _ := newStore(t)
	ctx := context.Background()
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if out, err := apply(ctx, s, Delta{ID: "d", SKU: "N", Quantity: 3}, time.Now()); err != nil || out.StockAfter != 3 {
		t.Fatalf("%+v %v", out, err)
	}
}

// A batch of more SKUs and deltas than one script call carries is split
// into several calls, and every run still applies once, in order.
func TestApplyRunsAcrossManyCalls(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := context.Background()
	var runs []Run
	for i := range 3 * callSKUs {
		sku := fmt.Sprintf("M-%d", i)
		runs = append(runs, Run{SKU: sku, Deltas: []Delta{{ID: "a", SKU: sku, Quantity: 1}, {ID: "a", SKU: sku, Quantity: 1}}})
	}
	long := Run{SKU: "LONG"}
	for i := range callDeltas + 10 {
		long.Deltas = append(long.Deltas, Delta{ID: fmt.Sprint(i), SKU: "LONG", Quantity: 1})
	}
	runs = append(runs, long)
	if n := len(s.calls(runs)); n < 4 {
		t.Fatalf("%d script calls for %d SKUs, want them split", n, len(runs))
	}
	outs, err := s.ApplyRuns(ctx, runs, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range runs[:len(runs)-1] {
		if o := outs[i]; len(o) != 2 || o[0].StockAfter != 1 || o[0].Duplicate || !o[1].Duplicate {
			t.Fatalf("%s: %+v", r.SKU, o)
		}
		if v, _ := s.Stock(ctx, r.SKU); v != 1 {
			t.Fatalf("stock of %s %d, want 1", r.SKU, v)
		}
	}
	if last := outs[len(outs)-1]; last[len(last)-1].StockAfter != int64(len(long.Deltas)) {
		t.Fatalf("the long run ended at %+v", last[len(last)-1])
	}
	if l, _ := s.Ledger(ctx, "LONG"); len(l) != len(long.Deltas) || l[len(l)-1].StockAfter != int64(len(l)) {
		t.Fatalf("the long run's ledger has %d entries", len(l))
	}
}

// Fencing is per SKU inside a call of many: the SKU whose lock was lost
// changes nothing and its lock is left to its new holder; the batch fails
// with ErrLockLost, and applying it again applies the rest once.
func TestLostLockInACallOfManyFencesItsSKUOnly(t *testing.T) {
	s, rdb, prefix := newStore(t)
	ctx := context.Background()
	runs := []Run{
		{SKU: "P", Deltas: []Delta{{ID: "p", SKU: "P", Quantity: 1}}},
		{SKU: "Q", Deltas: []Delta{{ID: "q", SKU: "Q", Quantity: 1}}},
	}
	tokens, err := s.lock(ctx, runs)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.calls(runs)) != 1 {
		t.Fatal("two SKUs on one node should share a call")
	}
	rdb.Set(ctx, KeysFor(prefix, "Q").Lock, "another", time.Minute)
	if _, err := s.applyLocked(ctx, runs, tokens, time.Now()); !errors.Is(err, ErrLockLost) {
		t.Fatalf("err %v, want ErrLockLost", err)
	}
	if v, _ := s.Stock(ctx, "Q"); v != 0 {
		t.Fatal("a SKU whose lock was lost changed")
	}
	if held, _ := rdb.Get(ctx, KeysFor(prefix, "Q").Lock).Result(); held != "another" {
		t.Fatal("the lock of another holder was touched")
	}
	rdb.Del(ctx, KeysFor(prefix, "Q").Lock)
	outs, err := s.ApplyRuns(ctx, runs, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !outs[0][0].Duplicate || outs[1][0].Duplicate || outs[1][0].StockAfter != 1 {
		t.Fatalf("outcomes %+v", outs)
	}
}

// On Redis Cluster a script may touch the keys of one slot only: every
// call holds SKUs of one slot, and none more than the bounds.
func TestClusterCallsHoldOneSlot(t *testing.T) {
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}})
	defer rdb.Close()
	s := NewStore(rdb, StoreConfig{Prefix: "p:"})
	var runs []Run
	for i := range 5000 {
		sku := fmt.Sprintf("C-%d", i%2000)
		runs = append(runs, Run{SKU: sku, Deltas: []Delta{{ID: fmt.Sprint(i), SKU: sku, Quantity: 1}}})
	}
	seen := 0
	for _, call := range s.calls(runs) {
		slot, deltas := Slot(KeysFor("p:", runs[call[0]].SKU).Lock), 0
		for _, i := range call {
			if Slot(KeysFor("p:", runs[i].SKU).Stock) != slot {
				t.Fatalf("a call mixes slots %d and %d", slot, Slot(runs[i].SKU))
			}
			deltas += len(runs[i].Deltas)
		}
		if len(call) > callSKUs || deltas > callDeltas {
			t.Fatalf("a call of %d SKUs and %d deltas", len(call), deltas)
		}
		seen += len(call)
	}
	if seen != len(runs) {
		t.Fatalf("calls hold %d runs of %d", seen, len(runs))
	}
}

// A redis.Ring spreads hash tags over its shards by a hash of its own, so
// no two SKUs can be known to share a node: a call holds one SKU.
func TestRingCallsHoldOneSKU(t *testing.T) {
	rdb := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": "127.0.0.1:1", "b": "127.0.0.1:2"}})
	defer rdb.Close()
	s := NewStore(rdb, StoreConfig{})
	runs := []Run{{SKU: "A", Deltas: []Delta{{ID: "1", SKU: "A", Quantity: 1}}}, {SKU: "B", Deltas: []Delta{{ID: "2", SKU: "B", Quantity: 1}}}}
	if calls := s.calls(runs); len(calls) != 2 {
		t.Fatalf("calls %v, want one a SKU", calls)
	}
}

func TestLevelsReadOnHandAndReserved(t *testing.T) {
	s, rdb, ns := newStore(t)
	ctx := context.Background()
	k := KeysFor(ns, "L")
	if err := rdb.MSet(ctx, k.Stock, 10, k.Reserved, 3).Err(); err != nil {
		t.Fatal(err)
	}
	got, err := s.Levels(ctx, []string{"L", "never"})
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != (Level{SKU: "L", OnHand: 13, Reserved: 3}) || got[0].Available() != 10 || got[1] != (Level{SKU: "never"}) {
		t.Fatalf("levels %+v", got)
	}
}

// A sale reserves, a commit ships what it reserved, a release gives back
// what was reserved and never shipped, a restock puts shipped units back;
// what reverses a delta that was not applied is refused; and a sale
// recorded before reservations existed reserved nothing, so its release
// gives back stock without touching reserved.
func TestReservations(t *testing.T) {
	s, rdb, ns := newStore(t)
	ctx := context.Background()
	now := time.UnixMilli(1_780_000_000_000)
	level := func() Level {
		t.Helper()
		l, err := s.Levels(ctx, []string{"R"})
		if err != nil {
			t.Fatal(err)
		}
		return l[0]
	}
	steps := []struct {
		d      Delta
		status string
		want   Level
	}{
		{Delta{ID: "seed", SKU: "R", Quantity: 10}, avro.MovementApplied, Level{SKU: "R", OnHand: 10}},
		{Delta{ID: "o1:1:sale", SKU: "R", Quantity: -3, Reserved: 3}, avro.MovementApplied, Level{SKU: "R", OnHand: 10, Reserved: 3}},
		{Delta{ID: "o2:1:sale", SKU: "R", Quantity: -2, Reserved: 2}, avro.MovementApplied, Level{SKU: "R", OnHand: 10, Reserved: 5}},
		{Delta{ID: "o1:1:commit", SKU: "R", Reserved: -3, Reverses: "o1:1:sale"}, avro.MovementApplied, Level{SKU: "R", OnHand: 7, Reserved: 2}},
		{Delta{ID: "o2:1:release", SKU: "R", Quantity: 2, Reserved: -2, Reverses: "o2:1:sale"}, avro.MovementApplied, Level{SKU: "R", OnHand: 7}},
		{Delta{ID: "o1:1:restock", SKU: "R", Quantity: 3, Reverses: "o1:1:commit"}, avro.MovementApplied, Level{SKU: "R", OnHand: 10}},
		// More than available is refused, and what would take it back too.
		{Delta{ID: "o3:1:sale", SKU: "R", Quantity: -11, Reserved: 11}, avro.MovementRefused, Level{SKU: "R", OnHand: 10}},
		{Delta{ID: "o3:1:commit", SKU: "R", Reserved: -11, Reverses: "o3:1:sale"}, avro.MovementRefused, Level{SKU: "R", OnHand: 10}},
		{Delta{ID: "o3:1:release", SKU: "R", Quantity: 11, Reserved: -11, Reverses: "o3:1:sale"}, avro.MovementRefused, Level{SKU: "R", OnHand: 10}},
		// The same delta again changes nothing.
		{Delta{ID: "o1:1:sale", SKU: "R", Quantity: -3, Reserved: 3}, avro.MovementApplied, Level{SKU: "R", OnHand: 10}},
	}
	for i, st := range steps {
		out, err := apply(ctx, s, st.d, now)
		if err != nil {
			t.Fatal(err)
		}
		if got := level(); out.Status != st.status || got != st.want {
			t.Fatalf("step %d (%s): %s, level %+v; want %s, %+v", i, st.d.ID, out.Status, got, st.status, st.want)
		}
		if out.Status == avro.MovementApplied && !out.Duplicate && (out.StockAfter != st.want.Available() || out.ReservedAfter != st.want.Reserved) {
			t.Fatalf("step %d: outcome says %d available, %d reserved", i, out.StockAfter, out.ReservedAfter)
		}
	}

	// A sale applied before reservations existed, as its outcome was
	// recorded then: its release gives the stock back and reserves nothing
	// back.
	k := KeysFor(ns, "OLD")
	if err := rdb.HSet(ctx, k.Applied, "o9:1:sale", "APPLIED|4|1|").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, k.Stock, 4, 0).Err(); err != nil {
		t.Fatal(err)
	}
	out, err := apply(ctx, s, Delta{ID: "o9:1:release", SKU: "OLD", Quantity: 1, Reserved: -1, Reverses: "o9:1:sale"}, now)
	if err != nil {
		t.Fatal(err)
	}
	l, _ := s.Levels(ctx, []string{"OLD"})
	if out.Status != avro.MovementApplied || l[0] != (Level{SKU: "OLD", OnHand: 5}) {
		t.Fatalf("release of an old sale: %s, %+v", out.Status, l[0])
	}
}

// A script call that fails part-way leaves every SKU before the failure
// whole: its stock, ledger and outcomes all changed, so the retry of the
// batch finds its deltas decided and the stock they left, and applies
// only the rest.
func TestFailureInACallLeavesEarlierSKUsWhole(t *testing.T) {
	s, rdb, prefix := newStore(t)
	ctx := context.Background()
	runs := []Run{
		{SKU: "A", Deltas: []Delta{{ID: "a1", SKU: "A", Quantity: 5}, {ID: "a2", SKU: "A", Quantity: -2}}},
		{SKU: "B", Deltas: []Delta{{ID: "b1", SKU: "B", Quantity: 7}}},
	}
	if calls := s.calls(runs); len(calls) != 1 {
		t.Fatalf("the runs went into %d calls; the test needs them in one", len(calls))
	}
	// B's ledger is a string, so the call fails at B's RPUSH, after A.
	if err := rdb.Set(ctx, KeysFor(prefix, "B").Ledger, "not a list", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ApplyRuns(ctx, runs, time.Now()); err == nil {
		t.Fatal("the call applied with B's ledger of the wrong type")
	}
	if v, _ := s.Stock(ctx, "A"); v != 3 {
		t.Fatalf("A's stock %d after the failed call, want 3: A came before the failure", v)
	}
	if v, _ := s.Stock(ctx, "B"); v != 0 {
		t.Fatalf("B's stock %d after the failed call, want 0", v)
	}
	for _, sku := range []string{"A", "B"} {
		if n, _ := rdb.Exists(ctx, KeysFor(prefix, sku).Lock).Result(); n != 0 {
			t.Fatalf("%s's lock is still held after the failed call", sku)
		}
	}
	if err := rdb.Del(ctx, KeysFor(prefix, "B").Ledger).Err(); err != nil {
		t.Fatal(err)
	}
	outs, err := s.ApplyRuns(ctx, runs, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !outs[0][0].Duplicate || !outs[0][1].Duplicate || outs[0][1].StockAfter != 3 {
		t.Fatalf("A's deltas on the retry: %+v, want both seen before, stock after 3", outs[0])
	}
	if outs[1][0].Duplicate || outs[1][0].StockAfter != 7 {
		t.Fatalf("B's delta on the retry: %+v, want applied now, stock after 7", outs[1][0])
	}
	if v, _ := s.Stock(ctx, "A"); v != 3 {
		t.Fatalf("A's stock %d, want 3: each delta once", v)
	}
	if l, _ := s.Ledger(ctx, "A"); len(l) != 2 {
		t.Fatalf("A's ledger %v, want 2 entries", l)
	}
}
