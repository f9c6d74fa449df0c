package reconcile

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/testenv"
	"github.com/shopstream/shopstream/schemas/avro"
	"github.com/shopstream/shopstream/schemas/envelope"
	"github.com/shopstream/shopstream/stock"
)

// On the real Redis: the first decision of a snapshot stands until the
// horizon forgets it, and a SKU's newest observed_at only rises, for good.
func TestRedisMemory(t *testing.T) {
	ctx := context.Background()
	const horizon = 500 * time.Millisecond
	m := NewRedisMemory(testenv.Redis(t), testenv.Namespace(t), horizon)
	got, err := m.Recall(ctx, map[string][]string{"TEE": {"s1"}})
	if err != nil {
		t.Fatal(err)
	}
	if r := got["TEE"]; !r.Newest.IsZero() || len(r.Decisions) != 0 {
		t.Fatalf("a SKU never reconciled recalls %+v", r)
	}
	at := observed.Add(time.Millisecond)
	first := Decision{Action: avro.DriftHealed, OnHand: 10, Reserved: 2, InFlight: -1, Difference: -3, ReconciledAt: at}
	other := Decision{Action: avro.DriftNone, OnHand: 5, ReconciledAt: at.Add(time.Hour)}
	kept, err := m.Remember(ctx, []Decided{
		{SKU: "TEE", SnapshotID: "s1", ObservedAt: observed.Add(time.Hour), Decision: first},
		{SKU: "MUG", SnapshotID: "s1", ObservedAt: observed, Decision: other},
		{SKU: "TEE", SnapshotID: "s1", ObservedAt: observed, Decision: other},
		{SKU: "TEE", SnapshotID: "s2", ObservedAt: observed, Decision: other},
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []Decision{first, other, first, other}; !slices.Equal(kept, want) {
		t.Fatalf("kept %+v, want %+v", kept, want)
	}
	got, err = m.Recall(ctx, map[string][]string{"TEE": {"s1", "s2", "s3"}, "MUG": {"s1"}})
	if err != nil {
		t.Fatal(err)
	}
	if tee := got["TEE"]; !tee.Newest.Equal(observed.Add(time.Hour)) || tee.Decisions["s1"] != first || tee.Decisions["s2"] != other || len(tee.Decisions) != 2 {
		t.Errorf("TEE recalls %+v", tee)
	}
	if mug := got["MUG"]; !mug.Newest.Equal(observed) || mug.Decisions["s1"] != other {
		t.Errorf("MUG recalls %+v", mug)
	}

	time.Sleep(horizon + 100*time.Millisecond)
	got, err = m.Recall(ctx, map[string][]string{"TEE": {"s1", "s2"}})
	if err != nil {
		t.Fatal(err)
	}
	if tee := got["TEE"]; !tee.Newest.Equal(observed.Add(time.Hour)) || len(tee.Decisions) != 0 {
		t.Errorf("after the horizon TEE recalls %+v, want its newest observed_at alone", tee)
	}
}

// On the real Redis, the watermark is read as apply.lua writes it: the
// position of the last delta decided for the SKU, refused ones included.
func TestRedisStockWatermarks(t *testing.T) {
	ctx := context.Background()
	ns := testenv.Namespace(t)
	rdb := testenv.Redis(t)
	st := NewRedisStock(rdb, ns)
	_, err := st.ApplyRuns(ctx, []stock.Run{
		{SKU: "TEE", Deltas: []stock.Delta{{ID: "seed", SKU: "TEE", Quantity: 5, Position: "2:40"},
			{ID: "o1:1:sale", SKU: "TEE", Quantity: -9, Reserved: 9, Position: "2:41"}}},
		{SKU: "MUG", Deltas: []stock.Delta{{ID: "adjust", SKU: "MUG", Quantity: 1}}},
	}, observed)
	if err != nil {
		t.Fatal(err)
	}
	marks, err := st.Watermarks(ctx, []string{"TEE", "MUG", "CAP"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []Position{{Partition: 2, Offset: 41}, {Offset: -1}, {Offset: -1}}; !slices.Equal(marks, want) {
		t.Errorf("watermarks %v, want %v", marks, want)
	}
	if err := rdb.Set(ctx, stock.KeysFor(ns, "CAP").Watermark, "garbage", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Watermarks(ctx, []string{"CAP"}); err == nil {
		t.Error("a watermark that is not partition:offset was read")
	}
}

// On the real broker: the deltas in flight are the SKU's, in its
// partition, past the inventory group's committed offset and up to the
// last stable offset: not a delta of an aborted transaction, nor one of a
// transaction still open, and the scan ends although the range ends with
// a transaction marker.
func TestKafkaInFlight(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns := testenv.Namespace(t)
	names := testenv.Topics(t, ns)
	adm := testenv.Kafka(t)
	group := ns + "shopstream-inventory"
	plain, err := kgo.NewClient(kgo.SeedBrokers(testenv.Brokers()...))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	txn, err := kgo.NewClient(kgo.SeedBrokers(testenv.Brokers()...), kgo.TransactionalID(ns+"txn"))
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Close()

	deltaOf := func(id, sku string) *kgo.Record {
		r, err := envelope.Record(names.Deltas, &avro.InventoryDelta{DeltaID: id, SKU: sku, Kind: avro.DeltaSale, Quantity: -1, OccurredAt: observed}, "")
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	produce := func(cl *kgo.Client, recs ...*kgo.Record) *kgo.Record {
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		return recs[0]
	}
	inTxn := func(end kgo.TransactionEndTry, recs ...*kgo.Record) *kgo.Record {
		if err := txn.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		first := produce(txn, recs...)
		if err := txn.EndTransaction(ctx, end); err != nil {
			t.Fatal(err)
		}
		return first
	}

	applied := produce(plain, deltaOf("d1", "TEE"))
	p := applied.Partition
	offsets := kadm.Offsets{}
	offsets.AddOffset(names.Deltas, p, applied.Offset+1, -1)
	if _, err := adm.CommitOffsets(ctx, group, offsets); err != nil {
		t.Fatal(err)
	}
	produce(plain, deltaOf("d2", "TEE"), deltaOf("x1", "MUG"), deltaOf("x2", "CAP"))
	d3 := inTxn(kgo.TryCommit, deltaOf("d3", "TEE"))
	inTxn(kgo.TryAbort, deltaOf("aborted", "TEE"))
	inTxn(kgo.TryCommit, deltaOf("d4", "TEE"), deltaOf("x3", "MUG"))
	// Still open: past the last stable offset, where the scan stops.
	if err := txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	produce(txn, deltaOf("open", "TEE"))
	defer func() { _ = txn.EndTransaction(context.Background(), kgo.TryAbort) }()

	k := &KafkaInFlight{Client: []kgo.Opt{kgo.SeedBrokers(testenv.Brokers()...)}, Admin: adm, Group: group,
		DeltaTopic: names.Deltas, SnapshotTopic: names.Snapshots, Timeout: 20 * time.Second}
	got, err := k.Deltas(ctx, map[int32][]string{p: {"TEE"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, d := range got["TEE"] {
		ids = append(ids, d.Delta.DeltaID)
	}
	if want := []string{"d2", "d3", "d4"}; !slices.Equal(ids, want) || len(got) != 1 {
		t.Fatalf("in flight %v (%d SKUs), want TEE's %v", ids, len(got), want)
	}

	// From a later offset than the group's (a watermark's), the deltas
	// after it.
	got, err = k.Deltas(ctx, map[int32][]string{p: {"TEE"}}, map[int32]int64{p: d3.Offset})
	if err != nil {
		t.Fatal(err)
	}
	ids = nil
	for _, d := range got["TEE"] {
		ids = append(ids, d.Delta.DeltaID)
	}
	if want := []string{"d3", "d4"}; !slices.Equal(ids, want) {
		t.Fatalf("in flight from d3's offset %v, want %v", ids, want)
	}

	// The inventory group at the end of what is committed: nothing is in
	// flight, and nothing is read.
	ends, err := adm.ListCommittedOffsets(ctx, names.Deltas)
	if err != nil {
		t.Fatal(err)
	}
	end, _ := ends.Lookup(names.Deltas, p)
	offsets = kadm.Offsets{}
	offsets.AddOffset(names.Deltas, p, end.Offset, -1)
	if _, err := adm.CommitOffsets(ctx, group, offsets); err != nil {
		t.Fatal(err)
	}
	if got, err := k.Deltas(ctx, map[int32][]string{p: {"TEE"}}, nil); err != nil || len(got) != 0 {
		t.Fatalf("in flight %v (%v), want nothing", got, err)
	}
}
