// Package telemetry owns the pipeline's own figures as analysts see them:
// once a period (a minute), each shopstream process turns what its stages
// recorded in its Prometheus registry, and the lag of the consumer groups
// it is told of, into PipelineMetric records on the pipeline.metrics topic,
// which the sink lands in ClickHouse.
//
// A stage's row holds what happened in the period: the registry's counters
// are cumulative, so a row is the difference from the last row Kafka
// acknowledged, and its latency quantiles are estimated from the
// difference of the histogram's buckets, as Prometheus's
// histogram_quantile would from a rate. Counts of a report that Kafka did
// not take are not lost: they go with the next report, under its minute.
//
// Stages are told apart by the "topic" label of the stream loops' families
// (Config.Stages), so two stages must not consume the same topic in one
// process; ingest's families are ingest's alone.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/schemas/avro"
	"github.com/shopstream/shopstream/schemas/envelope"
)

// Producer is what a report needs of a *kgo.Client.
type Producer interface {
	ProduceSync(ctx context.Context, rs ...*kgo.Record) kgo.ProduceResults
}

// Config configures Run.
type Config struct {
	// Gatherer is the registry the stages of this process record into.
	// Required.
	Gatherer prometheus.Gatherer
	// Instance names this process among the running ones. Required.
	Instance string
	// Stages maps each input topic of a stream loop (the "topic" label of
	// shopstream_records_total and shopstream_batch_handle_seconds) to the
	// stage that consumes it. Ingest needs no entry.
	Stages map[string]string
	// Groups maps each consumer group whose lag is reported to the topics
	// it consumes, each of which Stages must name: a lag row belongs to its
	// topic's stage.
	Groups map[string][]string
	// Admin reads the groups' committed offsets; required with Groups.
	Admin *kadm.Client
	// Producer writes the records to Topic; it must outlive Run, which
	// writes a last report when its context is done. Required.
	Producer Producer
	// Topic is the pipeline metrics topic (topology.Names.Metrics). Required.
	Topic string
	// Period between reports, which fall on its multiples of wall-clock
	// time. Default one minute, the analysts' grain.
	Period time.Duration
	// Logger. Default slog.Default().
	Logger *slog.Logger
}

// Validate reports what is missing or cannot work.
func (c *Config) Validate() error {
	if c.Gatherer == nil || c.Instance == "" || c.Producer == nil || c.Topic == "" {
		return errors.New("telemetry: Gatherer, Instance, Producer and Topic are required")
	}
	if c.Period < 0 {
		return fmt.Errorf("telemetry: a period of %v", c.Period)
	}
	if len(c.Groups) > 0 && c.Admin == nil {
		return errors.New("telemetry: the groups' lag needs an Admin client")
	}
	for group, topics := range c.Groups {
		for _, topic := range topics {
			if _, ok := c.Stages[topic]; !ok {
				return fmt.Errorf("telemetry: group %s consumes %s, which no stage of Stages does", group, topic)
			}
		}
	}
	return nil
}

// reportTimeout bounds a report: a Kafka that is gone must hold up neither
// the next period nor a process that is stopping.
const reportTimeout = 10 * time.Second

// Run reports at the end of every period until ctx is done, then reports
// the period that was under way, so that a clean shutdown leaves no counts
// behind. It returns an error only for a Config that cannot work.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	r := newReporter(cfg)
	start := time.Now().Truncate(r.cfg.Period)
	for {
		end := start.Add(r.cfg.Period)
		timer := time.NewTimer(time.Until(end))
		select {
		case <-ctx.Done():
			timer.Stop()
			r.report(context.WithoutCancel(ctx), start)
			return nil
		case <-timer.C:
		}
		r.report(ctx, start)
		// The next period follows from this one, not from the clock, which
		// a timer may beat by a hair: a second report of the same minute
		// would replace the first with next to nothing. A report that ran
		// past a whole period (a suspended machine) rejoins the clock, its
		// counts going with the next report.
		start = end
		if now := time.Now(); now.Sub(start) >= r.cfg.Period {
			start = now.Truncate(r.cfg.Period)
		}
	}
}

// reporter keeps what each stage had counted at its last acknowledged row.
type reporter struct {
	cfg  Config
	log  *slog.Logger
	sent map[string]totals
}

func newReporter(cfg Config) *reporter {
	if cfg.Period == 0 {
		cfg.Period = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &reporter{cfg: cfg, log: cfg.Logger.With("component", "telemetry"), sent: map[string]totals{}}
}

// report writes the rows of the period that began at minute: one per
// stage that has ever been active, so a quiet period reads as zeros rather
// than a gap, and one per partition of each group's topics.
func (r *reporter) report(ctx context.Context, minute time.Time) {
	ctx, cancel := context.WithTimeout(ctx, reportTimeout)
	defer cancel()
	minute = minute.UTC()
	families, err := r.cfg.Gatherer.Gather()
	if err != nil {
		// A stage could be missing some of its series: no stage rows
		// this time, and their counts go with the next report.
		r.log.Warn("gathering metrics failed", "err", err)
		families = nil
	}
	now := byStage(families, r.cfg.Stages)
	var (
		recs  []*kgo.Record
		stage = map[*kgo.Record]string{}
	)
	for _, name := range slices.Sorted(maps.Keys(now)) {
		cur := now[name]
		if !cur.active() {
			continue
		}
		rec, err := r.record(stageRow(name, r.cfg.Instance, minute, cur.minus(r.sent[name])))
		if err != nil {
			r.log.Error("pipeline metric not encoded", "stage", name, "err", err)
			continue
		}
		recs = append(recs, rec)
		stage[rec] = name
	}
	for _, m := range r.lag(ctx, minute) {
		rec, err := r.record(m)
		if err != nil {
			r.log.Error("pipeline metric not encoded", "stage", m.Stage, "err", err)
			continue
		}
		recs = append(recs, rec)
	}
	if len(recs) == 0 {
		return
	}
	failed := 0
	var firstErr error
	for _, res := range r.cfg.Producer.ProduceSync(ctx, recs...) {
		if res.Err != nil {
			if firstErr == nil {
				firstErr = res.Err
			}
			failed++
			continue
		}
		if name, ok := stage[res.Record]; ok {
			r.sent[name] = *now[name]
		}
	}
	if failed > 0 {
		r.log.Warn("pipeline metrics not written; their counts go with the next report", "minute", minute, "failed", failed,
			"records", len(recs), "err", firstErr)
	}
}

func (r *reporter) record(m *avro.PipelineMetric) (*kgo.Record, error) {
	return envelope.Record(r.cfg.Topic, m, m.MetricID)
}

// stageRow is the row of what a stage did, d, in the period from minute.
func stageRow(stage, instance string, minute time.Time, d totals) *avro.PipelineMetric {
	bs := d.buckets()
	return &avro.PipelineMetric{
		// Written again for the same minute (a report resent, a restart
		// within the minute), the row replaces the earlier one.
		MetricID: stage + "/" + instance + "/" + minute.Format(time.RFC3339),
		Minute:   minute, Stage: stage, Instance: instance,
		Records: count(d.records), ErrorsTransient: count(d.transient), ErrorsPermanent: count(d.permanent),
		DeadLettered: count(d.deadLettered),
		LatencyP50Ms: quantile(0.5, bs), LatencyP95Ms: quantile(0.95, bs), LatencyP99Ms: quantile(0.99, bs),
		Partition: -1, Lag: -1,
	}
}

// count is a Prometheus counter's delta, a float, as the whole number it is.
func count(v float64) int64 { return int64(math.Round(v)) }
