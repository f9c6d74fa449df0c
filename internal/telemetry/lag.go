package telemetry

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/shopstream/shopstream/schemas/avro"
)

// lag returns a row per partition of each group's topics: how many records
// lie between the group's committed offset and the partition's high
// watermark at the end of the period from minute. A partition the group
// has not committed to, or whose commit retention has since passed, is
// counted from the log start, where the group's consumers would begin
// (stream.ConsumerOptions). A partition whose offsets cannot be read is
// left out and logged: a missing row is honest, a guessed one is not.
func (r *reporter) lag(ctx context.Context, minute time.Time) []*avro.PipelineMetric {
	if len(r.cfg.Groups) == 0 {
		return nil
	}
	var topics []string
	for _, ts := range r.cfg.Groups {
		topics = append(topics, ts...)
	}
	slices.Sort(topics)
	topics = slices.Compact(topics)
	starts, err := r.cfg.Admin.ListStartOffsets(ctx, topics...)
	if err != nil {
		r.log.Warn("listing start offsets failed", "topics", topics, "err", err)
	}
	ends, err := r.cfg.Admin.ListEndOffsets(ctx, topics...)
	if err != nil {
		r.log.Warn("listing end offsets failed", "topics", topics, "err", err)
	}
	var rows []*avro.PipelineMetric
	for _, group := range slices.Sorted(maps.Keys(r.cfg.Groups)) {
		committed, err := r.cfg.Admin.FetchOffsetsForTopics(ctx, group, r.cfg.Groups[group]...)
		if err != nil {
			r.log.Warn("fetching committed offsets failed", "group", group, "err", err)
			continue
		}
		for _, topic := range slices.Sorted(maps.Keys(committed)) {
			for _, p := range slices.Sorted(maps.Keys(committed[topic])) {
				lag, ok := partitionLag(committed[topic][p], starts, ends)
				if !ok {
					r.log.Warn("no lag for a partition whose offsets could not be read", "group", group, "topic", topic, "partition", p)
					continue
				}
				rows = append(rows, r.lagRow(minute, group, topic, p, lag))
			}
		}
	}
	return rows
}

func partitionLag(c kadm.OffsetResponse, starts, ends kadm.ListedOffsets) (int64, bool) {
	start, okStart := starts.Lookup(c.Topic, c.Partition)
	end, okEnd := ends.Lookup(c.Topic, c.Partition)
	if c.Err != nil || !okStart || !okEnd || start.Err != nil || end.Err != nil {
		return 0, false
	}
	return max(0, end.Offset-max(c.At, start.Offset)), true
}

func (r *reporter) lagRow(minute time.Time, group, topic string, partition int32, lag int64) *avro.PipelineMetric {
	stage := r.cfg.Stages[topic]
	return &avro.PipelineMetric{
		// No instance in the id: a group's lag is the group's, read alike
		// by every instance that runs its stage, and a row per instance
		// would count it once per instance in any sum over partitions. The
		// last instance to report a minute's lag replaces the others.
		MetricID: stage + "/" + minute.Format(time.RFC3339) + "/" + group + "/" + topic + "/" + strconv.Itoa(int(partition)),
		Minute:   minute, Stage: stage, Instance: r.cfg.Instance,
		Group: group, Topic: topic, Partition: partition, Lag: lag,
	}
}
