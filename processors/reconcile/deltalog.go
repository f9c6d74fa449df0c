package reconcile

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/schemas/avro"
)

// Logged is a delta and its offset in the delta log.
type Logged struct {
	Delta  avro.InventoryDelta
	Offset int64
}

// DeltaLog is what the stage reads of the delta log.
type DeltaLog interface {
	// Committed returns the inventory group's committed offset of each
	// partition listed: every delta before it had been decided by Redis
	// when it was read. A partition the group never committed is absent.
	Committed(ctx context.Context, partitions []int32) (map[int32]int64, error)
	// After returns, for each partition listed, the offset of its first
	// record produced at or after at, or its end if there is none.
	After(ctx context.Context, partitions []int32, at time.Time) (map[int32]int64, error)
	// Deltas returns, by SKU, the deltas keyed by one of the SKUs listed
	// for each partition, in that partition, from its offset in from to
	// the end of what is committed, in log order.
	Deltas(ctx context.Context, want map[int32][]string, from map[int32]int64) (map[string][]Logged, error)
}

// DefaultScanTimeout is KafkaDeltaLog's bound on one scan.
const DefaultScanTimeout = 30 * time.Second

// KafkaDeltaLog is DeltaLog on Kafka. It relies on what topology
// guarantees: the deltas and the snapshots are keyed by SKU and have as
// many partitions, so a SKU's snapshots and deltas share a partition
// number, and it refuses to scan when the counts differ.
type KafkaDeltaLog struct {
	// Client are the options of the clients that read the log (seed
	// brokers, client id, logger). Required.
	Client []kgo.Opt
	// Admin reads offsets. Required.
	Admin *kadm.Client
	// Group is the inventory stage's consumer group. Required.
	Group string
	// DeltaTopic is the delta log; SnapshotTopic the topic whose
	// partitions it must match. Required.
	DeltaTopic, SnapshotTopic string
	// Timeout bounds one scan. Default DefaultScanTimeout.
	Timeout time.Duration
}

// Committed implements DeltaLog. The offsets are read stable
// (kadm.RequireStable): an offset commit inside an open transaction of the
// inventory stage is waited for, not read as older than it is.
func (k *KafkaDeltaLog) Committed(ctx context.Context, partitions []int32) (map[int32]int64, error) {
	committed, err := k.Admin.FetchOffsets(kadm.RequireStable(ctx), k.Group)
	if err != nil {
		return nil, fmt.Errorf("reconcile: offsets of %s: %w", k.Group, err)
	}
	out := map[int32]int64{}
	for _, p := range partitions {
		if c, ok := committed.Lookup(k.DeltaTopic, p); ok && c.Err == nil && c.At >= 0 {
			out[p] = c.At
		}
	}
	return out, nil
}

// After implements DeltaLog with one ListOffsets request. A record's
// timestamp is when its producer made it (the topics keep CreateTime), so
// a record after the one found may be older than at, never one before it
// younger.
func (k *KafkaDeltaLog) After(ctx context.Context, partitions []int32, at time.Time) (map[int32]int64, error) {
	listed, err := k.Admin.ListOffsetsAfterMilli(ctx, at.UnixMilli(), k.DeltaTopic)
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("reconcile: offsets of %s at %s: %w", k.DeltaTopic, at.Format(time.RFC3339Nano), err)
	}
	out := make(map[int32]int64, len(partitions))
	for _, p := range partitions {
		o, ok := listed.Lookup(k.DeltaTopic, p)
		if !ok {
			return nil, fmt.Errorf("reconcile: %s has no partition %d", k.DeltaTopic, p)
		}
		out[p] = o.Offset
	}
	return out, nil
}

// Deltas implements DeltaLog. It costs an admin request and, for the
// partitions whose offset in from is before their end, one short-lived
// consumer reading that range, read_committed: a delta of a transaction
// that aborted never reaches Redis. The range ends at the last stable
// offset, not the high watermark: past it are deltas of transactions still
// open, which no read_committed reader may see yet.
func (k *KafkaDeltaLog) Deltas(ctx context.Context, want map[int32][]string, from map[int32]int64) (map[string][]Logged, error) {
	if len(want) == 0 {
		return nil, nil
	}
	ends, err := k.Admin.ListCommittedOffsets(ctx, k.DeltaTopic, k.SnapshotTopic)
	if err != nil {
		return nil, fmt.Errorf("reconcile: end offsets of %s: %w", k.DeltaTopic, err)
	}
	if err := ends.Error(); err != nil {
		return nil, fmt.Errorf("reconcile: end offsets of %s: %w", k.DeltaTopic, err)
	}
	if d, s := len(ends[k.DeltaTopic]), len(ends[k.SnapshotTopic]); d != s {
		return nil, fmt.Errorf("reconcile: %s has %d partitions and %s %d; a SKU's snapshots and deltas must share a partition (shopstream topics apply)",
			k.DeltaTopic, d, k.SnapshotTopic, s)
	}
	starts := map[int32]kgo.Offset{}
	to := map[int32]int64{}
	for p := range want {
		end, ok := ends.Lookup(k.DeltaTopic, p)
		if !ok {
			return nil, fmt.Errorf("reconcile: %s has no partition %d", k.DeltaTopic, p)
		}
		if from[p] >= end.Offset {
			continue
		}
		// At an offset the log no longer holds, reading starts at its
		// first (kgo's default reset for a consumer without a group).
		starts[p], to[p] = kgo.NewOffset().At(from[p]), end.Offset
	}
	if len(starts) == 0 {
		return nil, nil
	}
	return k.read(ctx, starts, to, want)
}

// read consumes each partition of from up to (not including) its offset in
// to, keeping the deltas keyed by a SKU want lists for it. Control records
// are kept so that a range that ends with a transaction's marker is known
// to be read to its end.
func (k *KafkaDeltaLog) read(ctx context.Context, from map[int32]kgo.Offset, to map[int32]int64,
	want map[int32][]string) (map[string][]Logged, error) {
	timeout := k.Timeout
	if timeout == 0 {
		timeout = DefaultScanTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cl, err := kgo.NewClient(append(slices.Clone(k.Client),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{k.DeltaTopic: from}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords())...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	out := map[string][]Logged{}
	for len(to) > 0 {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("reconcile: %s partitions %v not read to their ends within %v: %w", k.DeltaTopic, keys(to), timeout, ctx.Err())
		}
		if err := fetches.Err(); err != nil {
			return nil, fmt.Errorf("reconcile: read %s: %w", k.DeltaTopic, err)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			end, reading := to[r.Partition]
			if !reading || r.Offset >= end {
				return
			}
			if r.Offset == end-1 {
				delete(to, r.Partition)
			}
			if r.Attrs.IsControl() || !slices.Contains(want[r.Partition], string(r.Key)) {
				return
			}
			var d avro.InventoryDelta
			if err := avro.Default().Unmarshal(r.Value, &d); err != nil || d.SKU != string(r.Key) {
				// Not a delta of this SKU that the inventory stage would
				// apply to it (one it cannot read, it dead-letters).
				return
			}
			out[d.SKU] = append(out[d.SKU], Logged{Delta: d, Offset: r.Offset})
		})
	}
	return out, nil
}

func keys(m map[int32]int64) []int32 {
	var out []int32
	for p := range m {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}
