package reconcile

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/stream"
	"github.com/shopstream/shopstream/internal/stream/streamtest"
	"github.com/shopstream/shopstream/schemas/avro"
	"github.com/shopstream/shopstream/schemas/envelope"
	"github.com/shopstream/shopstream/stock"
)

var (
	observed = time.UnixMilli(1795521600000).UTC()
	topics   = Topics{Drift: "inventory.drift", Deltas: "inventory.deltas"}
)

// fakeStock is Redis's stock: levels, watermarks and outcomes (by SKU,
// delta id to status). moves, when set, is called at every Levels, to
// change them between reads.
type fakeStock struct {
	levels   map[string]stock.Level
	marks    map[string]Position
	outcomes map[string]map[string]string
	reads    int
	moves    func(f *fakeStock)
}

func (f *fakeStock) Watermarks(_ context.Context, skus []string) ([]Position, error) {
	out := make([]Position, len(skus))
	for i, sku := range skus {
		m, ok := f.marks[sku]
		if !ok {
			m = Position{Offset: -1}
		}
		out[i] = m
	}
	return out, nil
}

func (f *fakeStock) Levels(_ context.Context, skus []string) ([]stock.Level, error) {
	f.reads++
	if f.moves != nil {
		f.moves(f)
	}
	out := make([]stock.Level, len(skus))
	for i, sku := range skus {
		out[i] = f.levels[sku]
		out[i].SKU = sku
	}
	return out, nil
}

func (f *fakeStock) Outcomes(_ context.Context, ids map[string][]string) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	for sku, list := range ids {
		out[sku] = map[string]string{}
		for _, id := range list {
			if o, ok := f.outcomes[sku][id]; ok {
				out[sku][id] = o
			}
		}
	}
	return out, nil
}

// fakeLog is the delta log: each SKU's deltas, the inventory group's
// committed offsets, and the offset After answers for each partition. It
// records what it was asked for.
type fakeLog struct {
	deltas    map[string][]Logged
	committed map[int32]int64
	after     map[int32]int64
	asked     []map[int32][]string
	from      []map[int32]int64
	at        []time.Time
}

func (f *fakeLog) Committed(_ context.Context, partitions []int32) (map[int32]int64, error) {
	out := map[int32]int64{}
	for _, p := range partitions {
		if c, ok := f.committed[p]; ok {
			out[p] = c
		}
	}
	return out, nil
}

func (f *fakeLog) After(_ context.Context, partitions []int32, at time.Time) (map[int32]int64, error) {
	f.at = append(f.at, at)
	out := map[int32]int64{}
	for _, p := range partitions {
		out[p] = f.after[p]
	}
	return out, nil
}

func (f *fakeLog) Deltas(_ context.Context, want map[int32][]string, from map[int32]int64) (map[string][]Logged, error) {
	f.asked, f.from = append(f.asked, want), append(f.from, from)
	out := map[string][]Logged{}
	for p, skus := range want {
		for _, sku := range skus {
			for _, d := range f.deltas[sku] {
				if d.Offset >= from[p] {
					out[sku] = append(out[sku], d)
				}
			}
		}
	}
	return out, nil
}

// memMemory is Memory in a map.
type memMemory struct {
	decided map[string]map[string]Decision
	newest  map[string]time.Time
}

func newMemMemory() *memMemory {
	return &memMemory{decided: map[string]map[string]Decision{}, newest: map[string]time.Time{}}
}

func (m *memMemory) Recall(_ context.Context, want map[string][]string) (map[string]Recalled, error) {
	out := map[string]Recalled{}
	for sku, ids := range want {
		r := Recalled{Newest: m.newest[sku], Decisions: map[string]Decision{}}
		for _, id := range ids {
			if d, ok := m.decided[sku][id]; ok {
				r.Decisions[id] = d
			}
		}
		out[sku] = r
	}
	return out, nil
}

func (m *memMemory) Remember(_ context.Context, decided []Decided) ([]Decision, error) {
	out := make([]Decision, len(decided))
	for i, d := range decided {
		if m.decided[d.SKU] == nil {
			m.decided[d.SKU] = map[string]Decision{}
		}
		if _, ok := m.decided[d.SKU][d.SnapshotID]; !ok {
			m.decided[d.SKU][d.SnapshotID] = d.Decision
		}
		if d.ObservedAt.After(m.newest[d.SKU]) {
			m.newest[d.SKU] = d.ObservedAt
		}
		out[i] = m.decided[d.SKU][d.SnapshotID]
	}
	return out, nil
}

func snapshotRecord(t *testing.T, s avro.StockSnapshot) *kgo.Record {
	t.Helper()
	rec, err := envelope.Record("inventory.snapshots", &s, "corr")
	if err != nil {
		t.Fatal(err)
	}
	rec.Partition = 2
	return rec
}

func snap(id, sku string, available int64, at time.Time) avro.StockSnapshot {
	return avro.StockSnapshot{SnapshotID: id, Source: "shopify", SKU: sku, Available: available, ObservedAt: at, ReceivedAt: at}
}

// delta is a delta of TEE at offset of the delta log.
func delta(offset int64, id, kind string, qty int64, at time.Time) Logged {
	return Logged{Delta: avro.InventoryDelta{DeltaID: id, SKU: "TEE", Kind: kind, Quantity: qty, OccurredAt: at}, Offset: offset}
}

// outputs decodes a batch's outputs: its drift rows and its heals.
func outputs(t *testing.T, recs []*kgo.Record) ([]avro.StockDrift, []avro.InventoryDelta) {
	t.Helper()
	var (
		drifts []avro.StockDrift
		heals  []avro.InventoryDelta
	)
	for _, r := range recs {
		switch r.Topic {
		case topics.Drift:
			var d avro.StockDrift
			if err := avro.Default().Unmarshal(r.Value, &d); err != nil {
				t.Fatal(err)
			}
			if string(r.Key) != d.SKU {
				t.Errorf("drift keyed %q, of %s", r.Key, d.SKU)
			}
			drifts = append(drifts, d)
		case topics.Deltas:
			var d avro.InventoryDelta
			if err := avro.Default().Unmarshal(r.Value, &d); err != nil {
				t.Fatal(err)
			}
			if string(r.Key) != d.SKU {
				t.Errorf("heal keyed %q, of %s", r.Key, d.SKU)
			}
			heals = append(heals, d)
		default:
			t.Fatalf("output to %s", r.Topic)
		}
	}
	return drifts, heals
}

func TestDecisions(t *testing.T) {
	type row struct {
		action                     string
		onHand, reserved, inFlight int64
		difference                 int64
	}
	type heal struct {
		id  string
		qty int64
	}
	tests := []struct {
		name      string
		heal      string
		levels    stock.Level
		logged    []Logged
		mark      Position
		committed int64
		outcomes  map[string]string
		newest    time.Time
		kept      map[string]Decision
		snaps     []avro.StockSnapshot
		want      []row
		heals     []heal
	}{
		{name: "no drift", heal: "*", levels: stock.Level{OnHand: 10},
			snaps: []avro.StockSnapshot{snap("s1", "TEE", 10, observed)},
			want:  []row{{avro.DriftNone, 10, 0, 0, 0}}},
		{name: "drift healed", heal: "MUG,TEE", levels: stock.Level{OnHand: 10},
			snaps: []avro.StockSnapshot{snap("s1", "TEE", 7, observed)},
			want:  []row{{avro.DriftHealed, 10, 0, 0, -3}},
			heals: []heal{{"heal:s1:TEE", -3}}},
		{name: "drift not healed: no heal set", levels: stock.Level{OnHand: 10},
			snaps: []avro.StockSnapshot{snap("s1", "TEE", 12, observed)},
			want:  []row{{avro.DriftNeedsReview, 10, 0, 0, 2}}},
		{name: "drift not healed: another SKU healed", heal: "MUG", levels: stock.Level{OnHand: 10},
			snaps: []avro.StockSnapshot{snap("s1", "TEE", 12, observed)},
			want:  []row{{avro.DriftNeedsReview, 10, 0, 0, 2}}},
		{name: "available is on hand less reserved", heal: "*", levels: stock.Level{OnHand: 10, Reserved: 4},
			snaps: []avro.StockSnapshot{snap("s1", "TEE", 6, observed)},
			want:  []row{{avro.DriftNone, 10, 4, 0, 0}}},
		{
			// The source counted the sale of 2 and the release of 1, which
			// Redis has not decided; not the sale after it, nor the one the
			// watermark covers (applied, its offset not yet committed), nor
			// the commit, which moves no available unit.
			name: "in-flight deltas accounted", heal: "*", levels: stock.Level{OnHand: 10, Reserved: 2},
			logged: []Logged{
				delta(10, "o3:1:sale", avro.DeltaSale, -4, observed.Add(-time.Minute)),
				delta(11, "o1:1:sale", avro.DeltaSale, -2, observed.Add(-time.Second)),
				delta(12, "o2:1:release", avro.DeltaRelease, 1, observed),
				delta(13, "o4:1:commit", avro.DeltaCommit, -1, observed.Add(-time.Second)),
				delta(14, "o5:1:sale", avro.DeltaSale, -5, observed.Add(time.Millisecond)),
			},
			mark:  Position{Partition: 2, Offset: 10},
			snaps: []avro.StockSnapshot{snap("s1", "TEE", 7, observed)},
			want:  []row{{avro.DriftNone, 10, 2, -1, 0}}},
		{
			// The watermark of another partition (the delta log was given
			// more partitions) covers none of this one's.
			name: "a watermark in another partition", levels: stock.Level{OnHand: 10},
			logged: []Logged{delta(3, "o1:1:sale", avro.DeltaSale, -2, observed)},
			mark:   Position{Partition: 1, Offset: 10},
			snaps:  []avro.StockSnapshot{snap("s1", "TEE", 8, observed)},
			want:   []row{{avro.DriftNone, 10, 0, -2, 0}}},
		{name: "older snapshot never healed", heal: "*", levels: stock.Level{OnHand: 10}, newest: observed.Add(time.Hour),
			snaps: []avro.StockSnapshot{snap("s1", "TEE", 4, observed)},
			want:  []row{{avro.DriftNeedsReview, 10, 0, 0, -6}}},
		{
			// As a snapshot decided again once its decision is forgotten is.
			name: "a snapshot as old as the newest is only compared", heal: "*", levels: stock.Level{OnHand: 10}, newest: observed,
			snaps: []avro.StockSnapshot{snap("s1", "TEE", 4, observed)},
			want:  []row{{avro.DriftNeedsReview, 10, 0, 0, -6}}},
		{
			// The second snapshot counts the first one's heal in flight;
			// the third, observed before the second, is only compared.
			name: "a batch's heal is in flight for its later snapshots", heal: "*", levels: stock.Level{OnHand: 10},
			snaps: []avro.StockSnapshot{snap("s1", "TEE", 7, observed), snap("s2", "TEE", 7, observed.Add(time.Second)),
				snap("s3", "TEE", 5, observed.Add(time.Millisecond))},
			want:  []row{{avro.DriftHealed, 10, 0, 0, -3}, {avro.DriftNone, 10, 0, -3, 0}, {avro.DriftNeedsReview, 10, 0, -3, -2}},
			heals: []heal{{"heal:s1:TEE", -3}}},
		{
			// s1 was healed in a transaction that aborted: its heal comes
			// again in this batch, not applied yet, so s2 counts it.
			name: "a heal re-emitted is in flight for a new snapshot", heal: "*", levels: stock.Level{OnHand: 10},
			kept:  map[string]Decision{"s1": {Action: avro.DriftHealed, OnHand: 10, Difference: -3, ReconciledAt: observed}},
			snaps: []avro.StockSnapshot{snap("s1", "TEE", 7, observed), snap("s2", "TEE", 7, observed.Add(time.Second))},
			want:  []row{{avro.DriftHealed, 10, 0, 0, -3}, {avro.DriftNone, 10, 0, -3, 0}},
			heals: []heal{{"heal:s1:TEE", -3}}},
		{
			// s1 was healed and applied (a replay): its heal again is not.
			name: "a heal re-emitted and applied is not in flight", heal: "*", levels: stock.Level{OnHand: 7},
			outcomes: map[string]string{"heal:s1:TEE": avro.MovementApplied},
			kept:     map[string]Decision{"s1": {Action: avro.DriftHealed, OnHand: 10, Difference: -3, ReconciledAt: observed}},
			snaps:    []avro.StockSnapshot{snap("s1", "TEE", 7, observed), snap("s2", "TEE", 7, observed.Add(time.Second))},
			want:     []row{{avro.DriftHealed, 10, 0, 0, -3}, {avro.DriftNone, 7, 0, 0, 0}},
			heals:    []heal{{"heal:s1:TEE", -3}}},
		{
			// Refused, it will be refused again: it changes nothing.
			name: "a heal re-emitted and refused is not in flight", heal: "*", levels: stock.Level{OnHand: 2},
			outcomes: map[string]string{"heal:s1:TEE": avro.MovementRefused},
			kept:     map[string]Decision{"s1": {Action: avro.DriftHealed, OnHand: 10, Difference: -3, ReconciledAt: observed}},
			snaps:    []avro.StockSnapshot{snap("s1", "TEE", 7, observed), snap("s2", "TEE", 2, observed.Add(time.Second))},
			want:     []row{{avro.DriftHealed, 10, 0, 0, -3}, {avro.DriftNone, 2, 0, 0, 0}},
			heals:    []heal{{"heal:s1:TEE", -3}}},
		{
			// Sold after the storefront counted 10, and applied before its
			// snapshot came (twice on the log: a replay upstream of it):
			// Redis's 8 was 10 when the count was made.
			name: "a sale applied after the count is not drift", heal: "*", levels: stock.Level{OnHand: 10, Reserved: 2},
			logged: []Logged{
				delta(5, "o1:1:sale", avro.DeltaSale, -2, observed.Add(10*time.Second)),
				delta(6, "o1:1:sale", avro.DeltaSale, -2, observed.Add(10*time.Second)),
			},
			mark:     Position{Partition: 2, Offset: 6},
			outcomes: map[string]string{"o1:1:sale": avro.MovementApplied},
			snaps:    []avro.StockSnapshot{snap("s1", "TEE", 10, observed)},
			want:     []row{{avro.DriftNone, 10, 2, 2, 0}}},
		{
			name: "a sale applied before the count is not taken off", heal: "*", levels: stock.Level{OnHand: 10, Reserved: 2},
			logged:   []Logged{delta(5, "o1:1:sale", avro.DeltaSale, -2, observed.Add(-10*time.Second))},
			mark:     Position{Partition: 2, Offset: 5},
			outcomes: map[string]string{"o1:1:sale": avro.MovementApplied},
			snaps:    []avro.StockSnapshot{snap("s1", "TEE", 8, observed)},
			want:     []row{{avro.DriftNone, 10, 2, 0, 0}}},
		{
			// Decided after the count, neither changed Redis: a sale it
			// refused, and one that never reached it (dead-lettered: no
			// outcome).
			name: "a refused sale changes nothing", heal: "*", levels: stock.Level{OnHand: 10},
			logged: []Logged{
				delta(5, "o1:1:sale", avro.DeltaSale, -20, observed.Add(time.Second)),
				delta(6, "o2:1:sale", avro.DeltaSale, -1, observed.Add(time.Second)),
			},
			mark:     Position{Partition: 2, Offset: 6},
			outcomes: map[string]string{"o1:1:sale": avro.MovementRefused},
			snaps:    []avro.StockSnapshot{snap("s1", "TEE", 10, observed)},
			want:     []row{{avro.DriftNone, 10, 0, 0, 0}}},
		{
			// Each by what it changes of what can be sold: 10 then, after
			// a sale of 2 shipped, a sale of 1 released, and a return.
			name: "what applied deltas change of what can be sold", levels: stock.Level{OnHand: 9},
			logged: []Logged{
				delta(1, "o1:1:sale", avro.DeltaSale, -2, observed.Add(time.Second)),
				delta(2, "o1:1:commit", avro.DeltaCommit, -2, observed.Add(2*time.Second)),
				delta(3, "o2:1:sale", avro.DeltaSale, -1, observed.Add(3*time.Second)),
				delta(4, "o2:1:release", avro.DeltaRelease, 1, observed.Add(4*time.Second)),
				delta(5, "o1:1:restock", avro.DeltaRestock, 1, observed.Add(5*time.Second)),
			},
			mark: Position{Partition: 2, Offset: 5},
			outcomes: map[string]string{"o1:1:sale": avro.MovementApplied, "o1:1:commit": avro.MovementApplied, "o2:1:sale": avro.MovementApplied,
				"o2:1:release": avro.MovementApplied, "o1:1:restock": avro.MovementApplied},
			snaps: []avro.StockSnapshot{snap("s1", "TEE", 10, observed)},
			want:  []row{{avro.DriftNone, 9, 0, 1, 0}}},
		{
			// No watermark: before the inventory group's committed offset
			// the sale was decided (applied after the count); after it the
			// other is in flight (sold before the count).
			name: "decided before the committed offset", levels: stock.Level{OnHand: 10, Reserved: 2},
			logged: []Logged{
				delta(5, "o1:1:sale", avro.DeltaSale, -2, observed.Add(time.Second)),
				delta(6, "o2:1:sale", avro.DeltaSale, -1, observed.Add(-time.Second)),
			},
			committed: 6,
			outcomes:  map[string]string{"o1:1:sale": avro.MovementApplied},
			snaps:     []avro.StockSnapshot{snap("s1", "TEE", 9, observed)},
			want:      []row{{avro.DriftNone, 10, 2, 1, 0}}},
		{
			// Reconciled two hours after it was observed: compared with
			// Redis as it stands, the sale since is drift, and no heal.
			name: "a snapshot older than Lookback is compared as it stands", heal: "*", levels: stock.Level{OnHand: 10, Reserved: 2},
			logged:   []Logged{delta(5, "o1:1:sale", avro.DeltaSale, -2, observed.Add(-time.Hour))},
			mark:     Position{Partition: 2, Offset: 5},
			outcomes: map[string]string{"o1:1:sale": avro.MovementApplied},
			snaps:    []avro.StockSnapshot{snap("s1", "TEE", 10, observed.Add(-2*time.Hour))},
			want:     []row{{avro.DriftNeedsReview, 10, 2, 0, 2}}},
		{
			// The older snapshot, observed before the sale, takes it off;
			// the newer one, after it, does not.
			name: "each snapshot of a batch is brought to its own time", levels: stock.Level{OnHand: 10, Reserved: 2},
			logged:   []Logged{delta(5, "o1:1:sale", avro.DeltaSale, -2, observed.Add(time.Second))},
			mark:     Position{Partition: 2, Offset: 5},
			outcomes: map[string]string{"o1:1:sale": avro.MovementApplied},
			snaps:    []avro.StockSnapshot{snap("s2", "TEE", 8, observed.Add(2*time.Second)), snap("s1", "TEE", 10, observed)},
			want:     []row{{avro.DriftNone, 10, 2, 0, 0}, {avro.DriftNone, 10, 2, 2, 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Heal
			if err := h.Set(tt.heal); err != nil {
				t.Fatal(err)
			}
			mem := newMemMemory()
			if !tt.newest.IsZero() {
				mem.newest["TEE"] = tt.newest
			}
			if tt.kept != nil {
				mem.decided["TEE"] = tt.kept
			}
			st := &fakeStock{levels: map[string]stock.Level{"TEE": tt.levels}, outcomes: map[string]map[string]string{"TEE": tt.outcomes},
				marks: map[string]Position{"TEE": tt.mark}}
			log := &fakeLog{deltas: map[string][]Logged{"TEE": tt.logged}, committed: map[int32]int64{2: tt.committed}}
			p := NewProcessor(st, log, mem, h, topics)
			now := observed.Add(time.Minute)
			p.now = func() time.Time { return now }
			var run []*kgo.Record
			for _, s := range tt.snaps {
				run = append(run, snapshotRecord(t, s))
			}
			res, err := p.HandleRuns(context.Background(), [][]*kgo.Record{run})
			if err != nil || len(res.Rejected) > 0 {
				t.Fatal(err, res.Rejected)
			}
			drifts, heals := outputs(t, res.Outputs)
			var got []row
			for i, d := range drifts {
				got = append(got, row{d.Action, d.RedisStock, d.Reserved, d.InFlight, d.Difference})
				s := tt.snaps[i]
				reconciled := now
				if k, ok := tt.kept[s.SnapshotID]; ok {
					reconciled = k.ReconciledAt
				}
				if d.DriftID != s.SnapshotID+":TEE" || d.SnapshotID != s.SnapshotID || d.SKU != "TEE" || d.Source != "shopify" ||
					d.TruthAvailable != s.Available || !d.ObservedAt.Equal(s.ObservedAt) || !d.ReconciledAt.Equal(reconciled) {
					t.Errorf("drift row %+v of snapshot %+v", d, s)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("drift rows (action, on hand, reserved, in flight, difference)\n got %v\nwant %v", got, tt.want)
			}
			var gotHeals []heal
			for _, d := range heals {
				gotHeals = append(gotHeals, heal{d.DeltaID, d.Quantity})
				if d.Kind != avro.DeltaAdjustment || d.SKU != "TEE" || !d.OccurredAt.Equal(observed) {
					t.Errorf("heal %+v: want an adjustment of TEE that occurred when its snapshot was observed", d)
				}
			}
			if !slices.Equal(gotHeals, tt.heals) {
				t.Errorf("heals %v, want %v", gotHeals, tt.heals)
			}
			var newest time.Time
			for _, s := range tt.snaps {
				newest = maxTime(newest, s.ObservedAt)
			}
			if want := maxTime(newest, tt.newest); !mem.newest["TEE"].Equal(want) {
				t.Errorf("newest observed kept %v, want %v", mem.newest["TEE"], want)
			}
		})
	}
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// A snapshot delivered again (a retry, a replay from earliest, the same
// file twice) re-emits the very bytes it produced the first time, although
// Redis and the deltas in flight say something else by then, and reads
// neither.
func TestRedeliveryReemitsIdenticalBytes(t *testing.T) {
	var h Heal
	if err := h.Set("TEE"); err != nil {
		t.Fatal(err)
	}
	st := &fakeStock{levels: map[string]stock.Level{"TEE": {OnHand: 10}}}
	log := &fakeLog{}
	p := NewProcessor(st, log, newMemMemory(), h, topics)
	clock := observed
	p.now = func() time.Time { clock = clock.Add(time.Second); return clock }
	rec := snapshotRecord(t, snap("s1", "TEE", 7, observed))

	first, err := streamtest.HandleOne(p, rec)
	if err != nil {
		t.Fatal(err)
	}
	if _, heals := outputs(t, first); len(heals) != 1 {
		t.Fatalf("%d heals, want 1", len(heals))
	}
	st.levels["TEE"] = stock.Level{OnHand: 7, Reserved: 1}
	log.deltas = map[string][]Logged{"TEE": {delta(5, "o1:1:sale", avro.DeltaSale, -1, observed)}}
	reads, asked := st.reads, len(log.asked)
	again, err := streamtest.HandleOne(p, rec)
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != len(first) {
		t.Fatalf("%d outputs again, %d the first time", len(again), len(first))
	}
	for i := range first {
		if first[i].Topic != again[i].Topic || !bytes.Equal(first[i].Key, again[i].Key) || !bytes.Equal(first[i].Value, again[i].Value) {
			t.Errorf("output %d differs on redelivery", i)
		}
	}
	if st.reads != reads || len(log.asked) != asked {
		t.Error("a redelivered snapshot read Redis's stock or the delta log")
	}

	// A day on, the heal was applied long ago: only the drift row again.
	clock = clock.Add(HealReplayWindow)
	late, err := streamtest.HandleOne(p, rec)
	if err != nil {
		t.Fatal(err)
	}
	if len(late) != 1 || late[0].Topic != topics.Drift || !bytes.Equal(late[0].Value, first[0].Value) {
		t.Errorf("%d outputs a day on, want the identical drift row alone", len(late))
	}
}

// A batch reads the delta log once per partition, for the SKUs of its new
// snapshots only, from the lowest offset they need: the first their
// watermarks or the inventory group's offset leave undecided, or the first
// record produced ClockSkew before the oldest of its snapshots within
// Lookback.
func TestDeltaLogIsReadOncePerPartition(t *testing.T) {
	st := &fakeStock{levels: map[string]stock.Level{}, marks: map[string]Position{
		"TEE": {Partition: 0, Offset: 41}, "CAP": {Partition: 0, Offset: 9}, "MUG": {Partition: 0, Offset: 7}}}
	log := &fakeLog{committed: map[int32]int64{0: 3, 1: 5}, after: map[int32]int64{0: 20, 1: 9}}
	mem := newMemMemory()
	mem.decided["OLD"] = map[string]Decision{"s0": {Action: avro.DriftNone, ReconciledAt: observed}}
	p := NewProcessor(st, log, mem, Heal{}, topics)
	now := observed.Add(time.Minute)
	p.now = func() time.Time { return now }
	var recs []*kgo.Record
	for i, s := range []avro.StockSnapshot{snap("s1", "TEE", 1, observed.Add(time.Second)), snap("s2", "MUG", 1, observed),
		snap("s3", "TEE", 2, observed.Add(2*time.Second)), snap("s0", "OLD", 0, observed.Add(-time.Hour)),
		snap("s4", "CAP", 1, now.Add(-Lookback-time.Second))} {
		r := snapshotRecord(t, s)
		r.Partition, r.Offset = int32(i%2), int64(i)
		recs = append(recs, r)
	}
	if _, err := p.HandleRuns(context.Background(), [][]*kgo.Record{recs}); err != nil {
		t.Fatal(err)
	}
	if len(log.asked) != 1 {
		t.Fatalf("read the delta log %d times, want once", len(log.asked))
	}
	got := log.asked[0]
	for _, p := range slices.Collect(maps.Keys(got)) {
		slices.Sort(got[p])
	}
	if want := map[int32][]string{0: {"CAP", "TEE"}, 1: {"MUG"}}; !maps.EqualFunc(got, want, slices.Equal) {
		t.Errorf("asked for %v, want %v", got, want)
	}
	// MUG's snapshot is the oldest within Lookback (OLD's is decided, and
	// CAP's older than Lookback): the time asked is ClockSkew before it.
	if want := []time.Time{observed.Add(-ClockSkew)}; !slices.EqualFunc(log.at, want, time.Time.Equal) {
		t.Errorf("asked for the offsets at %v, want %v", log.at, want)
	}
	// Partition 0: TEE from the offset at that time (20, before its
	// watermark's 42), CAP, compared as it stands, from its watermark's 10.
	// Partition 1: MUG's watermark is of another partition, so from the
	// inventory group's 5, before the offset at that time.
	if want := map[int32]int64{0: 10, 1: 5}; !maps.Equal(log.from[0], want) {
		t.Errorf("asked from %v, want %v", log.from[0], want)
	}
}

// The levels are read around the watermarks; a change between the reads
// reads them again, and a stock that never stops changing fails the batch,
// to be retried, rather than be compared half-read.
func TestLevelsChangingBetweenReads(t *testing.T) {
	logged := map[string][]Logged{"TEE": {delta(5, "o1:1:sale", avro.DeltaSale, -1, observed)}}
	changes := 1
	st := &fakeStock{levels: map[string]stock.Level{"TEE": {OnHand: 10}}, moves: func(f *fakeStock) {
		if changes > 0 && f.reads == 2 {
			changes--
			f.levels["TEE"] = stock.Level{OnHand: 9}
			f.marks = map[string]Position{"TEE": {Partition: 2, Offset: 5}}
		}
	}}
	p := NewProcessor(st, &fakeLog{deltas: logged}, newMemMemory(), Heal{}, topics)
	out, err := streamtest.HandleOne(p, snapshotRecord(t, snap("s1", "TEE", 9, observed)))
	if err != nil {
		t.Fatal(err)
	}
	if drifts, _ := outputs(t, out); drifts[0].Difference != 0 || drifts[0].InFlight != 0 || drifts[0].RedisStock != 9 {
		t.Errorf("drift %+v, want the second, consistent read: 9 on hand, the sale applied", drifts[0])
	}

	st.moves = func(f *fakeStock) { f.levels["TEE"] = stock.Level{OnHand: int64(f.reads)} }
	_, err = streamtest.HandleOne(p, snapshotRecord(t, snap("s2", "TEE", 9, observed)))
	if !errors.Is(err, errLevelsMoving) || stream.IsPermanent(err) {
		t.Errorf("err %v, want the transient %v", err, errLevelsMoving)
	}
}

func TestBadSnapshotsArePermanent(t *testing.T) {
	p := NewProcessor(&fakeStock{}, &fakeLog{}, newMemMemory(), Heal{}, topics)
	keyed := snapshotRecord(t, snap("s1", "TEE", 1, observed))
	keyed.Key = []byte("MUG")
	for name, rec := range map[string]*kgo.Record{
		"not avro":          {Value: []byte(`{"sku":"S"}`)},
		"no id":             snapshotRecord(t, snap("", "TEE", 1, observed)),
		"brace in sku":      snapshotRecord(t, snap("s1", "a{b}", 1, observed)),
		"keyed another SKU": keyed,
		"never observed":    snapshotRecord(t, snap("s1", "TEE", 1, time.UnixMilli(0))),
	} {
		if _, err := streamtest.HandleOne(p, rec); !stream.IsPermanent(err) {
			t.Errorf("%s: err %v, want permanent", name, err)
		}
	}
}

func TestHealSetting(t *testing.T) {
	for _, tt := range []struct {
		value, str string
		healed     []string
		err        bool
	}{
		{value: "", str: ""},
		{value: "*", str: "*", healed: []string{"TEE", "MUG", "CAP"}},
		{value: " TEE , MUG", str: "TEE,MUG", healed: []string{"TEE", "MUG"}},
		{value: "*,TEE", err: true},
		{value: "TEE,,MUG", err: true},
		{value: "a{b}", err: true},
	} {
		var h Heal
		err := h.Set(tt.value)
		if (err != nil) != tt.err {
			t.Errorf("%q: err %v", tt.value, err)
			continue
		}
		if tt.err {
			continue
		}
		if h.String() != tt.str {
			t.Errorf("%q reads back as %q, want %q", tt.value, h.String(), tt.str)
		}
		for _, sku := range []string{"TEE", "MUG", "CAP"} {
			if h.Enabled(sku) != slices.Contains(tt.healed, sku) {
				t.Errorf("%q heals %s: %v", tt.value, sku, h.Enabled(sku))
			}
		}
	}
}
