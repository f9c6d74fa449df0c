// Package reconcile is the reconcile stage: it compares what a source of
// truth says each SKU can still sell (the snapshots of inventory.snapshots:
// a storefront's inventory webhooks, an operator's file) with what Redis
// makes available, writes one drift row per SKU per snapshot to
// inventory.drift, and, for the SKUs it may heal, corrects Redis through
// the normal delta path. It owns that comparison, the heal, each
// snapshot's decision, and the operator's snapshot file format.
//
// # What is compared
//
// Redis makes available on hand less reserved (stock.Level). A source
// counts a change when it happens; Redis when the inventory stage applies
// its delta. So the deltas of the SKU that occurred at or before the
// snapshot's observed_at and that Redis has not decided yet are in
// flight, and are added to Redis's side:
//
//	difference = truth_available − (on_hand − reserved + in_flight)
//
// In flight are the deltas of the SKU on the delta log that Redis has not
// decided: past the inventory group's committed offset (read from the
// delta log, see KafkaInFlight) and past the SKU's watermark, the position
// of the last delta the inventory stage decided for it, which apply.lua
// writes in the same atomic step as the stock. The committed offset alone
// would not do: the stage writes Redis before it commits its offsets, and
// a replay of the inventory group rewinds them over deltas long applied.
// Deltas and snapshots are keyed by SKU with as many partitions, so the
// deltas of a snapshot's SKU are in the partition of the same number, read
// once a batch from the lowest offset its SKUs need. The levels are read,
// then the watermarks, then the levels again: the levels that did not move
// meanwhile are the levels at those watermarks, and a change reads all
// three again.
//
// # The heal
//
// For a SKU that Heal names, a difference is corrected by an ADJUSTMENT
// delta of that quantity on inventory.deltas, keyed by the SKU: it is
// applied in order with the SKU's other deltas, once (its id,
// "heal:<snapshot_id>:<sku>", is deduplicated like every delta id), and
// it is a movement in ClickHouse like every other change, beside its drift
// row, which says HEALED. The correction occurred when the snapshot was
// observed, so a later snapshot counts it in flight until it is applied.
// The drift row and the correction are in the stage's Kafka transaction
// with its input offsets.
//
// A snapshot observed no later than the newest one already reconciled for
// its SKU is compared but never healed: the compacted topic keeps log
// order, not observation order, and an old truth must not undo a newer
// one; nor may a snapshot decided again once its decision is forgotten.
//
// # Replays
//
// Each snapshot's decision is kept in Redis under its SKU's hash tag
// (RedisMemory) for stock.DefaultHorizon, as long as the stock remembers a
// delta's id, with the SKU's newest observed_at, written once decided. A
// snapshot delivered again (a retried batch, a rebalance, a replay from
// earliest, the same file reconciled twice) re-emits its kept decision: the
// identical drift row, never a new decision against the Redis of a later
// day, and its identical heal while the decision is younger than
// HealReplayWindow. The heal is re-emitted for a transaction that aborted
// after the decision was kept; the inventory stage applies it once by its
// id, which it remembers for its horizon, so it must reach that stage well
// within it. After the window the heal was applied long ago, and its
// movement is in ClickHouse. After the horizon a snapshot is decided again
// and only compared; ClickHouse keeps the first row of its drift id.
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/stream"
	"github.com/shopstream/shopstream/schemas/avro"
	"github.com/shopstream/shopstream/schemas/envelope"
	"github.com/shopstream/shopstream/stock"
)

// Topics are where the stage writes.
type Topics struct {
	// Drift receives one row per SKU per snapshot; Deltas the heals.
	Drift, Deltas string
}

// HealReplayWindow is how long after its decision a redelivered snapshot
// re-emits its heal: long enough for a stage that was down to come back
// and redeliver a batch whose transaction aborted, and far inside the
// inventory stage's memory of delta ids (a week, at least webhooks.raw's
// retention), so the heal arrives while its first copy is remembered.
const HealReplayWindow = 24 * time.Hour

// levelReads bounds how often one batch reads a SKU's levels and ledger
// again because its stock changed between two reads.
const levelReads = 3

// errLevelsMoving is returned when a SKU's stock changed between every
// pair of reads: transient, the batch is handled again.
var errLevelsMoving = errors.New("reconcile: stock kept changing while it was read")

// Processor is the stream.RunHandler of the reconcile stage.
type Processor struct {
	stock    Stock
	inFlight InFlight
	memory   Memory
	heal     Heal
	topics   Topics
	codec    *avro.Registry
	now      func() time.Time
}

// NewProcessor returns a Processor that reads Redis through st, the delta
// log through inFlight, keeps decisions in memory, heals the SKUs heal
// names, and writes to topics.
func NewProcessor(st Stock, inFlight InFlight, memory Memory, heal Heal, topics Topics) *Processor {
	return &Processor{stock: st, inFlight: inFlight, memory: memory, heal: heal, topics: topics, codec: avro.Default(), now: time.Now}
}

// view is what Redis and the delta log said of one SKU.
type view struct {
	level stock.Level
	// pending are the SKU's deltas on the log that Redis has not decided;
	// applied the ids its ledger holds, read only for a SKU whose heal the
	// batch re-emits: a heal that is not on the log again until this
	// batch commits, and that may have been applied the first time.
	pending []avro.InventoryDelta
	applied map[string]bool
}

// HandleRuns reconciles a polled batch of snapshots, in each partition's
// order, and returns each one's drift row, and after it its heal. Snapshots
// decided before re-emit their decision and cost no reads of Redis's stock
// or the delta log. A record that is not a valid snapshot is rejected; a
// failure to read Kafka or Redis fails the batch, which is handled again.
func (p *Processor) HandleRuns(ctx context.Context, runs [][]*kgo.Record) (stream.Result, error) {
	snaps, rejected := stream.Decode(runs, p.decode)
	res := stream.Result{Rejected: rejected}
	if len(snaps) == 0 {
		return res, nil
	}
	want := map[string][]string{}
	for _, s := range snaps {
		want[s.Value.SKU] = append(want[s.Value.SKU], s.Value.SnapshotID)
	}
	known, err := p.memory.Recall(ctx, want)
	if err != nil {
		return stream.Result{}, err
	}
	now := p.now().UTC().Truncate(time.Millisecond)
	views, err := p.look(ctx, snaps, known, now)
	if err != nil {
		return stream.Result{}, err
	}

	// Decide in log order: a SKU's newest observed_at and the heals of
	// this batch carry from one of its snapshots to the next.
	newest := map[string]time.Time{}
	for sku, r := range known {
		newest[sku] = r.Newest
	}
	heals := map[string][]avro.InventoryDelta{}
	decisions := make([]Decision, len(snaps))
	var decided []Decided
	for i, s := range snaps {
		v := &s.Value
		d, ok := known[v.SKU].Decisions[v.SnapshotID]
		if !ok {
			newer := v.ObservedAt.After(newest[v.SKU])
			d = decide(v, views[v.SKU], heals[v.SKU], p.heal.Enabled(v.SKU) && newer, now)
			known[v.SKU].Decisions[v.SnapshotID] = d // a copy later in the batch is a redelivery
			decided = append(decided, Decided{SKU: v.SKU, SnapshotID: v.SnapshotID, ObservedAt: v.ObservedAt, Decision: d})
			if newer {
				newest[v.SKU] = v.ObservedAt
			}
		}
		if reemits(d, now) {
			heals[v.SKU] = append(heals[v.SKU], healOf(v, d))
		}
		decisions[i] = d
	}
	if len(decided) > 0 {
		// What Memory kept is what is emitted: another instance may have
		// decided a snapshot first (a zombie of a rebalance).
		kept, err := p.memory.Remember(ctx, decided)
		if err != nil {
			return stream.Result{}, err
		}
		for n, dd := range decided {
			known[dd.SKU].Decisions[dd.SnapshotID] = kept[n]
		}
		for i, s := range snaps {
			decisions[i] = known[s.Value.SKU].Decisions[s.Value.SnapshotID]
		}
	}

	for i, s := range snaps {
		v, d := &s.Value, decisions[i]
		corr, _ := envelope.Header(s.Record, envelope.HeaderCorrelationID)
		drift := avro.StockDrift{DriftID: v.SnapshotID + ":" + v.SKU, SKU: v.SKU, SnapshotID: v.SnapshotID, Source: v.Source,
			TruthAvailable: v.Available, RedisStock: d.OnHand, Reserved: d.Reserved, InFlight: d.InFlight, Difference: d.Difference,
			Action: d.Action, ObservedAt: v.ObservedAt, ReconciledAt: d.ReconciledAt}
		out, err := envelope.Record(p.topics.Drift, &drift, corr)
		if err != nil {
			return stream.Result{}, err
		}
		res.Outputs = append(res.Outputs, out)
		if !reemits(d, now) {
			continue
		}
		heal := healOf(v, d)
		if out, err = envelope.Record(p.topics.Deltas, &heal, corr); err != nil {
			return stream.Result{}, err
		}
		res.Outputs = append(res.Outputs, out)
	}
	return res, nil
}

// reemits reports whether decision d comes with its heal at now: a heal
// decided, within HealReplayWindow of its decision.
func reemits(d Decision, now time.Time) bool {
	return d.Action == avro.DriftHealed && now.Sub(d.ReconciledAt) < HealReplayWindow
}

// decide compares snapshot s with what Redis holds of its SKU, v, with the
// heals this batch emitted for the SKU before s beside v's pending deltas,
// and heals a difference if it may.
func decide(s *avro.StockSnapshot, v view, heals []avro.InventoryDelta, heal bool, now time.Time) Decision {
	var inFlight int64
	counted := map[string]bool{}
	for _, d := range append(v.pending, heals...) {
		if counted[d.DeltaID] || v.applied[d.DeltaID] || d.OccurredAt.After(s.ObservedAt) {
			continue
		}
		counted[d.DeltaID] = true
		inFlight += availableChange(d)
	}
	d := Decision{OnHand: v.level.OnHand, Reserved: v.level.Reserved, InFlight: inFlight, ReconciledAt: now,
		Difference: s.Available - (v.level.Available() + inFlight)}
	switch {
	case d.Difference == 0:
		d.Action = avro.DriftNone
	case heal:
		d.Action = avro.DriftHealed
	default:
		d.Action = avro.DriftNeedsReview
	}
	return d
}

// availableChange is what a delta changes of what can be sold: its
// quantity, but for a COMMIT, which ships units a sale already reserved
// (on hand and reserved go down together).
func availableChange(d avro.InventoryDelta) int64 {
	if d.Kind == avro.DeltaCommit {
		return 0
	}
	return d.Quantity
}

// healOf is the correction of snapshot s that decision d made.
func healOf(s *avro.StockSnapshot, d Decision) avro.InventoryDelta {
	return avro.InventoryDelta{DeltaID: "heal:" + s.SnapshotID + ":" + s.SKU, SKU: s.SKU, Kind: avro.DeltaAdjustment,
		Quantity: d.Difference, OccurredAt: s.ObservedAt, CorrelationID: s.CorrelationID}
}

// look reads what the snapshots not decided before need of their SKUs:
// the deltas on the log that Redis has not decided, a partition's in one
// scan from the lowest of its SKUs' watermarks, and their levels.
func (p *Processor) look(ctx context.Context, snaps []stream.Decoded[avro.StockSnapshot], known map[string]Recalled, now time.Time) (map[string]view, error) {
	partitions := map[int32][]string{}
	partition := map[string]int32{} // of each SKU with a new snapshot
	reheal := map[string]bool{}     // a SKU whose heal the batch re-emits
	for _, s := range snaps {
		v := &s.Value
		if d, ok := known[v.SKU].Decisions[v.SnapshotID]; ok {
			reheal[v.SKU] = reheal[v.SKU] || reemits(d, now)
			continue
		}
		if _, seen := partition[v.SKU]; !seen {
			partition[v.SKU] = s.Record.Partition
			partitions[s.Record.Partition] = append(partitions[s.Record.Partition], v.SKU)
		}
	}
	if len(partition) == 0 {
		return nil, nil
	}
	var skus, ledgers []string
	for sku := range partition {
		skus = append(skus, sku)
		if reheal[sku] {
			ledgers = append(ledgers, sku)
		}
	}
	marks, err := p.stock.Watermarks(ctx, skus)
	if err != nil {
		return nil, err
	}
	from := map[int32]int64{}
	for i, sku := range skus {
		part := partition[sku]
		if f, ok := from[part]; !ok || marks[i].after(part) < f {
			from[part] = marks[i].after(part)
		}
	}
	pending, err := p.inFlight.Deltas(ctx, partitions, from)
	if err != nil {
		return nil, err
	}
	for range levelReads {
		views, marks, stable, err := p.read(ctx, skus, ledgers)
		if err != nil {
			return nil, err
		}
		if !stable {
			continue
		}
		for i, sku := range skus {
			v := views[sku]
			for _, d := range pending[sku] {
				if !marks[i].decided(partition[sku], d.Offset) {
					v.pending = append(v.pending, d.Delta)
				}
			}
			views[sku] = v
		}
		return views, nil
	}
	return nil, errLevelsMoving
}

// read reads the levels of skus, then their watermarks and the ledgers of
// those listed, then their levels again, and reports whether those did
// not change meanwhile: the stock and the watermark change in one atomic
// step, so levels that did not move are the levels at the watermarks.
func (p *Processor) read(ctx context.Context, skus, ledgers []string) (map[string]view, []Position, bool, error) {
	levels, err := p.stock.Levels(ctx, skus)
	if err != nil {
		return nil, nil, false, err
	}
	marks, err := p.stock.Watermarks(ctx, skus)
	if err != nil {
		return nil, nil, false, err
	}
	views := make(map[string]view, len(skus))
	for _, l := range levels {
		views[l.SKU] = view{level: l}
	}
	for _, sku := range ledgers {
		entries, err := p.stock.Ledger(ctx, sku)
		if err != nil {
			return nil, nil, false, fmt.Errorf("reconcile: ledger of %s: %w", sku, err)
		}
		v := views[sku]
		v.applied = make(map[string]bool, len(entries))
		for _, e := range entries {
			v.applied[e.DeltaID] = true
		}
		views[sku] = v
	}
	again, err := p.stock.Levels(ctx, skus)
	if err != nil {
		return nil, nil, false, err
	}
	for i, l := range again {
		if l != levels[i] {
			return nil, nil, false, nil
		}
	}
	return views, marks, true, nil
}

// decode reads and checks one snapshot.
func (p *Processor) decode(rec *kgo.Record) (avro.StockSnapshot, error) {
	var s avro.StockSnapshot
	if err := p.codec.Unmarshal(rec.Value, &s); err != nil {
		return s, err
	}
	if err := stock.ValidSKU(s.SKU); err != nil {
		return s, stream.Permanentf("reconcile: snapshot %q: %w", s.SnapshotID, err)
	}
	switch {
	case s.SnapshotID == "":
		return s, stream.Permanentf("reconcile: a snapshot of %s has no id", s.SKU)
	case string(rec.Key) != s.SKU:
		// Its partition would not be its SKU's, whose deltas are read there.
		return s, stream.Permanentf("reconcile: snapshot %q of %s is keyed %q", s.SnapshotID, s.SKU, rec.Key)
	case s.ObservedAt.UnixMilli() <= 0:
		return s, stream.Permanentf("reconcile: snapshot %q says no time it was observed", s.SnapshotID)
	}
	return s, nil
}
