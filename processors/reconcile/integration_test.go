package reconcile

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/stream/streamtest"
	"github.com/shopstream/shopstream/internal/testenv"
	"github.com/shopstream/shopstream/processors/inventory"
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

// On the real broker: the inventory group's committed offset, and the
// deltas of a SKU from an offset, in its partition, up to the last stable
// offset: not a delta of an aborted transaction, nor one of a transaction
// still open, and the scan ends although the range ends with a
// transaction marker.
func TestKafkaDeltaLog(t *testing.T) {
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

	k := &KafkaDeltaLog{Client: []kgo.Opt{kgo.SeedBrokers(testenv.Brokers()...)}, Admin: adm, Group: group,
		DeltaTopic: names.Deltas, SnapshotTopic: names.Snapshots, Timeout: 20 * time.Second}
	applied := produce(plain, deltaOf("d1", "TEE"))
	p := applied.Partition
	if got, err := k.Committed(ctx, []int32{p}); err != nil || len(got) != 0 {
		t.Fatalf("committed %v (%v) of a group that never committed, want none", got, err)
	}
	offsets := kadm.Offsets{}
	offsets.AddOffset(names.Deltas, p, applied.Offset+1, -1)
	if _, err := adm.CommitOffsets(ctx, group, offsets); err != nil {
		t.Fatal(err)
	}
	committed, err := k.Committed(ctx, []int32{p})
	if err != nil || committed[p] != applied.Offset+1 {
		t.Fatalf("committed %v (%v), want %d", committed, err, applied.Offset+1)
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

	ids := func(from int64) []string {
		t.Helper()
		got, err := k.Deltas(ctx, map[int32][]string{p: {"TEE"}}, map[int32]int64{p: from})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) > 1 {
			t.Errorf("deltas of %d SKUs, want TEE's", len(got))
		}
		var out []string
		for _, d := range got["TEE"] {
			out = append(out, d.Delta.DeltaID)
		}
		return out
	}
	if got, want := ids(committed[p]), []string{"d2", "d3", "d4"}; !slices.Equal(got, want) {
		t.Fatalf("from the committed offset %v, want %v", got, want)
	}
	if got, want := ids(d3.Offset), []string{"d3", "d4"}; !slices.Equal(got, want) {
		t.Fatalf("from d3's offset %v, want %v", got, want)
	}
	if got, want := ids(0), []string{"d1", "d2", "d3", "d4"}; !slices.Equal(got, want) {
		t.Fatalf("from the start %v, want %v", got, want)
	}

	// From the end of what is committed: nothing is read.
	ends, err := adm.ListCommittedOffsets(ctx, names.Deltas)
	if err != nil {
		t.Fatal(err)
	}
	end, _ := ends.Lookup(names.Deltas, p)
	if got := ids(end.Offset); len(got) != 0 {
		t.Fatalf("from the end %v, want nothing", got)
	}
}

// On the real broker: After finds the first record produced at or after a
// time by its timestamp, which its producer stamps (CreateTime), so a
// record after it may be older, none before it younger; and the scan from
// there reads the deltas produced since.
func TestKafkaDeltaLogAfter(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns := testenv.Namespace(t)
	names := testenv.Topics(t, ns)
	adm := testenv.Kafka(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(testenv.Brokers()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	at := time.Now().Add(-10 * time.Minute).Truncate(time.Millisecond)
	var recs []*kgo.Record
	for _, d := range []struct {
		id       string
		produced time.Time
	}{{"old", at.Add(-time.Hour)}, {"before", at.Add(-time.Millisecond)}, {"at", at}, {"skewed", at.Add(-time.Second)}, {"after", at.Add(time.Second)}} {
		r, err := envelope.Record(names.Deltas, &avro.InventoryDelta{DeltaID: d.id, SKU: "TEE", Kind: avro.DeltaSale, Quantity: -1, OccurredAt: d.produced}, "")
		if err != nil {
			t.Fatal(err)
		}
		r.Timestamp = d.produced
		recs = append(recs, r)
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	p := recs[0].Partition
	k := &KafkaDeltaLog{Client: []kgo.Opt{kgo.SeedBrokers(testenv.Brokers()...)}, Admin: adm, Group: ns + "shopstream-inventory",
		DeltaTopic: names.Deltas, SnapshotTopic: names.Snapshots, Timeout: 20 * time.Second}
	after, err := k.After(ctx, []int32{p}, at)
	if err != nil {
		t.Fatal(err)
	}
	if after[p] != recs[2].Offset {
		t.Fatalf("the first offset at %v is %d, want %d, the record stamped then", at, after[p], recs[2].Offset)
	}
	got, err := k.Deltas(ctx, map[int32][]string{p: {"TEE"}}, after)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, d := range got["TEE"] {
		ids = append(ids, d.Delta.DeltaID)
	}
	if want := []string{"at", "skewed", "after"}; !slices.Equal(ids, want) {
		t.Errorf("from the offset at %v: %v, want %v", at, ids, want)
	}
	// Nothing produced since: the end of the partition.
	if after, err = k.After(ctx, []int32{p}, time.Now().Add(time.Minute)); err != nil || after[p] != recs[4].Offset+1 {
		t.Errorf("the first offset a minute from now is %d (%v), want the end, %d", after[p], err, recs[4].Offset+1)
	}
}

// On the real Redis, the outcomes are read as apply.lua writes them: the
// status of each delta id decided, applied or refused; none of one never
// decided.
func TestRedisStockOutcomes(t *testing.T) {
	ctx := context.Background()
	st := NewRedisStock(testenv.Redis(t), testenv.Namespace(t))
	_, err := st.ApplyRuns(ctx, []stock.Run{
		{SKU: "TEE", Deltas: []stock.Delta{{ID: "seed", SKU: "TEE", Quantity: 5, Position: "2:40"},
			{ID: "o1:1:sale", SKU: "TEE", Quantity: -9, Reserved: 9, Position: "2:41"}}},
		{SKU: "MUG", Deltas: []stock.Delta{{ID: "adjust", SKU: "MUG", Quantity: 1}}},
	}, observed)
	if err != nil {
		t.Fatal(err)
	}
	got, err := st.Outcomes(ctx, map[string][]string{"TEE": {"seed", "o1:1:sale", "never"}, "MUG": {"adjust"}, "CAP": {"x"}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]string{"TEE": {"seed": avro.MovementApplied, "o1:1:sale": avro.MovementRefused},
		"MUG": {"adjust": avro.MovementApplied}, "CAP": {}}
	if !maps.EqualFunc(got, want, maps.Equal) {
		t.Errorf("outcomes %v, want %v", got, want)
	}
}

// recordingLog is a DeltaLog that records where each scan starts.
type recordingLog struct {
	DeltaLog
	from []map[int32]int64
}

func (r *recordingLog) Deltas(ctx context.Context, want map[int32][]string, from map[int32]int64) (map[string][]Logged, error) {
	r.from = append(r.from, from)
	return r.DeltaLog.Deltas(ctx, want, from)
}

// On the real stack, through the inventory stage's own processor: the
// shop had 15 sellable units; a sale of 1 before the storefront counted is
// applied, one of 3 before it is still on the log, undecided; after the
// count a sale of 2 was applied (its offset committed) and one of 100
// refused (only the watermark covers it). Redis's 12 was 11 when the count
// was made: 12 − 3 in flight + 2 applied since. The scan starts at the
// first record produced ClockSkew before the count, the sale of 1's,
// neither at the start of the partition nor at the first delta undecided.
func TestReconcileOnTheRealStack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns := testenv.Namespace(t)
	names := testenv.Topics(t, ns)
	adm := testenv.Kafka(t)
	rdb := testenv.Redis(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(testenv.Brokers()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	observedAt := time.Now().Add(-10 * time.Minute).UTC().Truncate(time.Millisecond)
	var recs []*kgo.Record
	for _, d := range []struct {
		id, kind           string
		qty                int64
		occurred, produced time.Time
	}{
		{"seed", avro.DeltaAdjustment, 15, observedAt.Add(-time.Hour), observedAt.Add(-time.Hour)},
		{"o1:1:sale", avro.DeltaSale, -1, observedAt.Add(-31 * time.Second), observedAt.Add(-30 * time.Second)},
		{"o2:1:sale", avro.DeltaSale, -2, observedAt.Add(4 * time.Second), observedAt.Add(5 * time.Second)},
		{"o3:1:sale", avro.DeltaSale, -100, observedAt.Add(5 * time.Second), observedAt.Add(6 * time.Second)},
		{"o4:1:sale", avro.DeltaSale, -3, observedAt.Add(-time.Second), time.Time{}},
	} {
		r, err := envelope.Record(names.Deltas, &avro.InventoryDelta{DeltaID: d.id, SKU: "TEE", Kind: d.kind, Quantity: d.qty, OccurredAt: d.occurred}, "")
		if err != nil {
			t.Fatal(err)
		}
		r.Timestamp = d.produced
		recs = append(recs, r)
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	part := recs[0].Partition
	// The inventory stage decides all but the last, and has committed the
	// offsets of the first three.
	inv := inventory.NewProcessor(stock.NewStore(rdb, stock.StoreConfig{Prefix: ns}), names.Movements)
	res, err := inv.HandleRuns(ctx, [][]*kgo.Record{recs[:4]})
	if err != nil || len(res.Rejected) > 0 {
		t.Fatal(err, res.Rejected)
	}
	offsets := kadm.Offsets{}
	offsets.AddOffset(names.Deltas, part, recs[3].Offset, -1)
	if _, err := adm.CommitOffsets(ctx, ns+"shopstream-inventory", offsets); err != nil {
		t.Fatal(err)
	}

	st := NewRedisStock(rdb, ns)
	if l, err := st.Levels(ctx, []string{"TEE"}); err != nil || l[0].Available() != 12 || l[0].Reserved != 3 {
		t.Fatalf("levels %+v (%v), want 12 available, 3 reserved", l, err)
	}
	var heal Heal
	if err := heal.Set("*"); err != nil {
		t.Fatal(err)
	}
	log := &recordingLog{DeltaLog: &KafkaDeltaLog{Client: []kgo.Opt{kgo.SeedBrokers(testenv.Brokers()...)}, Admin: adm,
		Group: ns + "shopstream-inventory", DeltaTopic: names.Deltas, SnapshotTopic: names.Snapshots, Timeout: 20 * time.Second}}
	p := NewProcessor(st, log, NewRedisMemory(rdb, ns, time.Hour), heal, Topics{Drift: names.Drift, Deltas: names.Deltas})
	snapshot := func(id string, available int64, at time.Time) avro.StockDrift {
		t.Helper()
		rec, err := envelope.Record(names.Snapshots, &avro.StockSnapshot{SnapshotID: id, Source: "shopify", SKU: "TEE", Available: available,
			ObservedAt: at, ReceivedAt: time.Now()}, "")
		if err != nil {
			t.Fatal(err)
		}
		rec.Partition = part
		out, err := streamtest.HandleOne(p, rec)
		if err != nil {
			t.Fatal(err)
		}
		var d avro.StockDrift
		if err := avro.Default().Unmarshal(out[0].Value, &d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	if d := snapshot("s1", 11, observedAt); d.Action != avro.DriftNone || d.RedisStock != 15 || d.Reserved != 3 || d.InFlight != -1 || d.Difference != 0 {
		t.Errorf("drift %+v, want none: 15 on hand, 3 reserved, -1 in flight", d)
	}
	if want := []map[int32]int64{{part: recs[1].Offset}}; !slices.EqualFunc(log.from, want, maps.Equal) {
		t.Errorf("scanned from %v, want %v", log.from, want)
	}
	// A count of 13 a moment later disagrees by 2, and is healed.
	if d := snapshot("s2", 13, observedAt.Add(time.Millisecond)); d.Action != avro.DriftHealed || d.InFlight != -1 || d.Difference != 2 {
		t.Errorf("drift %+v, want healed: -1 in flight, a difference of 2", d)
	}
}
