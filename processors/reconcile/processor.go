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
// counts a change when it happens; Redis when the inventory stage decides
// its delta. So before the two are compared, Redis's figure is brought to
// the moment the snapshot was observed: the deltas of the SKU that
// occurred at or before observed_at and that Redis has not decided yet are
// added, and those Redis applied that occurred after it are taken off (a
// sale made after the storefront counted and applied before its snapshot
// reached the stage: the usual case, as a storefront's snapshot arrives
// seconds late), each by what it changes of what can be sold. The sum of
// both is the drift row's in_flight:
//
//	in_flight  = Σ undecided deltas that occurred ≤ observed_at
//	           − Σ applied deltas that occurred > observed_at
//	difference = truth_available − (on_hand − reserved + in_flight)
//
// Decided are the deltas of the SKU before the inventory group's committed
// offset (read from the delta log before Redis) or at or before the SKU's
// watermark, the position of the last delta the inventory stage decided
// for it, which apply.lua writes in the same atomic step as the stock. The
// committed offset alone would not do: the stage writes Redis before it
// commits its offsets, and a replay of the inventory group rewinds them
// over deltas long applied. Whether a decided delta applied, or was
// refused and changed nothing, is its outcome in Redis (stock.Keys.Applied),
// which apply.lua writes in that same step: it is there exactly when the
// levels count the delta, and never changes after, and the outcomes of a
// batch's SKUs are one pipelined round trip. The movements topic says the
// same later (the inventory stage produces a movement in the transaction
// that commits its offset, after Redis), so it could not tell an applied
// delta from one whose movement is not committed yet, and reading it would
// be a second scan. A decided delta without an outcome never reached Redis
// (the inventory stage dead-letters a delta it cannot apply); outcomes are
// kept for the inventory stage's horizon, a week at least, far longer than
// Lookback.
//
// Deltas and snapshots are keyed by SKU with as many partitions, so the
// deltas of a snapshot's SKU are in the partition of the same number, read
// once a batch from the lowest offset its SKUs need: the first one Redis
// has not decided for one of them, or the first record produced ClockSkew
// before the oldest snapshot of the batch was observed, since a delta is
// produced after it occurs (see ClockSkew). The committed offsets are
// read, then the levels, then the watermarks, then the levels again: the
// levels that did not move meanwhile are the levels at those watermarks,
// and a change reads them again. The log is read after them, to its end,
// so past every watermark read; the outcomes of the decided deltas after
// it.
//
// A snapshot reconciled more than Lookback after it was observed (the
// stage was down; a file's observed_at long past) is compared with Redis
// as it stands, plus only the undecided deltas it counted: what changed
// since counts as drift, so it is never healed. Lookback bounds how far
// back a batch reads the delta log.
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
	"maps"
	"slices"
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

// Lookback is how long after a snapshot was observed the stage compares it
// with Redis brought back to that moment, so how far back a batch reads
// the delta log: a storefront's snapshot arrives seconds late, and a stage
// catching up on an hour of snapshots reads up to an hour of deltas again
// for each batch.
const Lookback = time.Hour

// ClockSkew is how far the clock that stamped a delta's occurred_at (a
// provider's, an operator's host, a snapshot's source for a heal) may be
// ahead of the clock of the producer that stamped its record, so how long
// before a snapshot's observed_at the records of the deltas that occurred
// after it may have been produced. NTP keeps hosts within milliseconds; a
// file's snapshot may be observed up to a minute ahead of the host that
// reads it, and its heal is produced by this stage (ReadSnapshotFile).
const ClockSkew = 2 * time.Minute

// levelReads bounds how often one batch reads a SKU's levels and outcomes
// again because its stock changed between two reads.
const levelReads = 3

// errLevelsMoving is returned when a SKU's stock changed between every
// pair of reads: transient, the batch is handled again.
var errLevelsMoving = errors.New("reconcile: stock kept changing while it was read")

// Processor is the stream.RunHandler of the reconcile stage.
type Processor struct {
	stock  Stock
	log    DeltaLog
	memory Memory
	heal   Heal
	topics Topics
	codec  *avro.Registry
	now    func() time.Time
}

// NewProcessor returns a Processor that reads Redis through st and the
// delta log through log, keeps decisions in memory, heals the SKUs heal
// names, and writes to topics.
func NewProcessor(st Stock, log DeltaLog, memory Memory, heal Heal, topics Topics) *Processor {
	return &Processor{stock: st, log: log, memory: memory, heal: heal, topics: topics, codec: avro.Default(), now: time.Now}
}

// view is what Redis and the delta log said of one SKU.
type view struct {
	level stock.Level
	// pending are the SKU's deltas on the log that Redis has not decided;
	// applied those it decided and applied that occurred after the oldest
	// of the SKU's new snapshots within Lookback.
	pending, applied []avro.InventoryDelta
	// healed are the ids Redis decided of the heals the batch re-emits
	// for the SKU: a heal that is not on the log again until this batch
	// commits, and that may have been decided the first time.
	healed map[string]bool
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
			d = decide(v, views[v.SKU], heals[v.SKU], p.heal.Enabled(v.SKU) && newer && recent(v, now), now)
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
	// What the source had counted and Redis had not.
	for _, d := range append(v.pending, heals...) {
		if counted[d.DeltaID] || v.healed[d.DeltaID] || d.OccurredAt.After(s.ObservedAt) {
			continue
		}
		counted[d.DeltaID] = true
		inFlight += availableChange(d)
	}
	// What Redis had counted and the source had not; v.applied holds them
	// all only for a snapshot within Lookback.
	if recent(s, now) {
		for _, d := range v.applied {
			if counted[d.DeltaID] || !d.OccurredAt.After(s.ObservedAt) {
				continue
			}
			counted[d.DeltaID] = true
			inFlight -= availableChange(d)
		}
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

// recent reports whether snapshot s is compared with Redis brought back to
// when it was observed (see Lookback).
func recent(s *avro.StockSnapshot, now time.Time) bool {
	return now.Sub(s.ObservedAt) <= Lookback
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
// their levels, the deltas on the log that Redis has not decided, and
// those it applied since the oldest of their snapshots within Lookback, a
// partition's in one scan.
func (p *Processor) look(ctx context.Context, snaps []stream.Decoded[avro.StockSnapshot], known map[string]Recalled, now time.Time) (map[string]view, error) {
	partitions := map[int32][]string{}
	partition := map[string]int32{}    // of each SKU with a new snapshot
	oldest := map[string]time.Time{}   // of each SKU's new snapshots within Lookback
	reemitted := map[string][]string{} // the heal ids the batch re-emits, by SKU
	for _, s := range snaps {
		v := &s.Value
		if d, ok := known[v.SKU].Decisions[v.SnapshotID]; ok {
			if reemits(d, now) {
				reemitted[v.SKU] = append(reemitted[v.SKU], healOf(v, d).DeltaID)
			}
			continue
		}
		if _, seen := partition[v.SKU]; !seen {
			partition[v.SKU] = s.Record.Partition
			partitions[s.Record.Partition] = append(partitions[s.Record.Partition], v.SKU)
		}
		if o, ok := oldest[v.SKU]; recent(v, now) && (!ok || v.ObservedAt.Before(o)) {
			oldest[v.SKU] = v.ObservedAt
		}
	}
	if len(partition) == 0 {
		return nil, nil
	}
	var skus []string
	healIDs := map[string][]string{}
	for sku := range partition {
		skus = append(skus, sku)
		if ids := reemitted[sku]; len(ids) > 0 {
			healIDs[sku] = ids
		}
	}
	parts := slices.Collect(maps.Keys(partitions))
	// Read before Redis, so that every delta before it was decided when
	// the levels are read.
	committed, err := p.log.Committed(ctx, parts)
	if err != nil {
		return nil, err
	}
	var since map[int32]int64
	if len(oldest) > 0 {
		// One time, the oldest, for all the batch's partitions: one request.
		at := slices.MinFunc(slices.Collect(maps.Values(oldest)), time.Time.Compare)
		if since, err = p.log.After(ctx, parts, at.Add(-ClockSkew)); err != nil {
			return nil, err
		}
	}
	views, marks, err := p.readStable(ctx, skus, healIDs)
	if err != nil {
		return nil, err
	}
	from := map[int32]int64{}
	for i, sku := range skus {
		part := partition[sku]
		start := max(committed[part], marks[i].after(part))
		if _, ok := oldest[sku]; ok {
			start = min(start, since[part])
		}
		if f, ok := from[part]; !ok || start < f {
			from[part] = start
		}
	}
	logged, err := p.log.Deltas(ctx, partitions, from)
	if err != nil {
		return nil, err
	}
	decided := map[string][]avro.InventoryDelta{} // that occurred after a snapshot of the SKU within Lookback
	ask := map[string][]string{}
	for i, sku := range skus {
		part, v := partition[sku], views[sku]
		o, compared := oldest[sku]
		for _, d := range logged[sku] {
			switch {
			case d.Offset >= committed[part] && !marks[i].decided(part, d.Offset):
				v.pending = append(v.pending, d.Delta)
			case compared && d.Delta.OccurredAt.After(o):
				decided[sku] = append(decided[sku], d.Delta)
				ask[sku] = append(ask[sku], d.Delta.DeltaID)
			}
		}
		views[sku] = v
	}
	if len(ask) == 0 {
		return views, nil
	}
	// Read after the levels: a decided delta's outcome was written with
	// the stock it changed, and is never written again.
	outcomes, err := p.stock.Outcomes(ctx, ask)
	if err != nil {
		return nil, err
	}
	for sku, ds := range decided {
		v := views[sku]
		for _, d := range ds {
			if outcomes[sku][d.DeltaID] == avro.MovementApplied {
				v.applied = append(v.applied, d)
			}
		}
		views[sku] = v
	}
	return views, nil
}

// readStable reads the levels of skus, their watermarks and the outcomes
// of the heal ids listed, until the levels did not move meanwhile.
func (p *Processor) readStable(ctx context.Context, skus []string, heals map[string][]string) (map[string]view, []Position, error) {
	for range levelReads {
		views, marks, stable, err := p.read(ctx, skus, heals)
		if err != nil || stable {
			return views, marks, err
		}
	}
	return nil, nil, errLevelsMoving
}

// read reads the levels of skus, then their watermarks and the outcomes of
// the heal ids listed, then their levels again, and reports whether those
// did not change meanwhile: the stock, the watermark and the outcome
// change in one atomic step, so levels that did not move are the levels
// at the watermarks and outcomes read.
func (p *Processor) read(ctx context.Context, skus []string, heals map[string][]string) (map[string]view, []Position, bool, error) {
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
	if len(heals) > 0 {
		outcomes, err := p.stock.Outcomes(ctx, heals)
		if err != nil {
			return nil, nil, false, err
		}
		for sku, got := range outcomes {
			v := views[sku]
			v.healed = make(map[string]bool, len(got))
			for id := range got {
				v.healed[id] = true
			}
			views[sku] = v
		}
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
