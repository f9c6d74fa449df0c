package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/shopstream/shopstream/ingest"
	"github.com/shopstream/shopstream/internal/conf"
	"github.com/shopstream/shopstream/internal/stream"
	"github.com/shopstream/shopstream/internal/telemetry"
	"github.com/shopstream/shopstream/processors/deliveries"
	"github.com/shopstream/shopstream/processors/inventory"
	"github.com/shopstream/shopstream/processors/orders"
	"github.com/shopstream/shopstream/processors/reconcile"
	chsink "github.com/shopstream/shopstream/sinks/clickhouse"
	"github.com/shopstream/shopstream/stock"
)

// A stage is one part of the pipeline: its own settings (its package's
// Config), how the shared settings wire into them, and how it runs.
type stage struct {
	name string
	// flags registers the stage's own settings.
	flags func(*conf.FlagSet)
	// prepare wires the shared settings into the stage's Config and
	// validates it; every stage of a command is prepared before any starts.
	prepare func(*settings, *redis.Client) error
	run     func(context.Context) error
	// transactional stages run the middleware stack, whose metrics
	// -metrics-listen serves.
	transactional bool
	// consumes names the stage's consumer group and input topics, whose
	// records pipeline metrics count under the stage and whose lag they
	// report; nil for ingest, which consumes nothing.
	consumes func(*settings) (group string, topics []string)
}

// pipeline holds every stage's Config.
type pipeline struct {
	ingest     ingest.Config
	deliveries deliveries.Config
	orders     orders.Config
	inventory  inventory.Config
	reconcile  reconcile.Config
	sink       chsink.Config
}

// stages returns every stage of p, in the order data flows through them. A
// new stage is a package with a Config and a Run, a field of pipeline, and
// an entry here.
func (p *pipeline) stages() []*stage {
	in, dlv, ord, inv, rec, snk := &p.ingest, &p.deliveries, &p.orders, &p.inventory, &p.reconcile, &p.sink
	return []*stage{
		{name: "ingest", flags: in.RegisterFlags,
			prepare: func(s *settings, rdb *redis.Client) error {
				in.Kafka, in.Topics, in.Metrics, in.Redis, in.Prefix = s.kafka(), s.topics(), s.ingestMetrics, rdb, s.prefix
				return in.Validate()
			},
			run: func(ctx context.Context) error { return ingest.Run(ctx, *in) }},
		{name: "deliveries", flags: dlv.RegisterFlags, transactional: true,
			consumes: func(s *settings) (string, []string) { return s.group("deliveries"), []string{s.topics().WebhooksRaw} },
			prepare: func(s *settings, rdb *redis.Client) error {
				if err := s.transform(&dlv.Stream, "deliveries", s.topics().WebhooksRaw); err != nil {
					return err
				}
				dlv.Topics = deliveries.Topics{Orders: s.topics().Orders, Snapshots: s.topics().Snapshots, Outcomes: s.topics().Outcomes}
				dlv.Redis, dlv.Prefix = rdb, s.prefix
				return dlv.Validate()
			},
			run: func(ctx context.Context) error { return deliveries.Run(ctx, *dlv) }},
		{name: "orders", flags: ord.RegisterFlags, transactional: true,
			consumes: func(s *settings) (string, []string) { return s.group("orders"), []string{s.topics().Orders} },
			prepare: func(s *settings, rdb *redis.Client) error {
				if err := s.transform(&ord.Stream, "orders", s.topics().Orders); err != nil {
					return err
				}
				ord.Topics = orders.Topics{Deltas: s.topics().Deltas, Applied: s.topics().Applied}
				ord.Redis, ord.Prefix = rdb, s.prefix
				return ord.Validate()
			},
			run: func(ctx context.Context) error { return orders.Run(ctx, *ord) }},
		{name: "inventory", flags: inv.RegisterFlags, transactional: true,
			consumes: func(s *settings) (string, []string) { return s.group("inventory"), []string{s.topics().Deltas} },
			prepare: func(s *settings, rdb *redis.Client) error {
				if err := s.transform(&inv.Stream, "inventory", s.topics().Deltas); err != nil {
					return err
				}
				inv.Movements, inv.Redis, inv.Stock = s.topics().Movements, rdb, stock.StoreConfig{Prefix: s.prefix}
				return inv.Validate()
			},
			run: func(ctx context.Context) error { return inventory.Run(ctx, *inv) }},
		{name: "reconcile", flags: rec.RegisterFlags, transactional: true,
			consumes: func(s *settings) (string, []string) { return s.group("reconcile"), []string{s.topics().Snapshots} },
			prepare: func(s *settings, rdb *redis.Client) error {
				if err := s.transform(&rec.Stream, "reconcile", s.topics().Snapshots); err != nil {
					return err
				}
				rec.Topics = reconcile.Topics{Drift: s.topics().Drift, Deltas: s.topics().Deltas}
				rec.InventoryGroup, rec.Redis, rec.Prefix = s.group("inventory"), rdb, s.prefix
				return rec.Validate()
			},
			run: func(ctx context.Context) error { return reconcile.Run(ctx, *rec) }},
		{name: "sink", flags: snk.RegisterFlags,
			consumes: func(s *settings) (string, []string) { return s.group("clickhouse"), chsink.Inputs(s.topics()) },
			prepare: func(s *settings, _ *redis.Client) error {
				snk.Stream.Client, snk.Stream.Group, snk.Topics, snk.Logger = s.kafka(), s.group("clickhouse"), s.topics(), s.log
				snk.Stream.Metrics = stream.BatchMetrics(s.metrics)
				return snk.Validate()
			},
			run: func(ctx context.Context) error { return chsink.Run(ctx, *snk) }},
	}
}

// reportPipelineMetrics reports, every period until ctx is done, what the
// stages recorded and their groups' lag to the pipeline.metrics topic
// (internal/telemetry). stop waits for its last report.
func reportPipelineMetrics(ctx context.Context, s *settings, stages []*stage) (stop func(), err error) {
	cfg := telemetry.Config{Gatherer: s.registry, Instance: s.instance, Stages: map[string]string{}, Groups: map[string][]string{},
		Topic: s.topics().Metrics, Period: s.pipelineMetricsEvery, Logger: s.log}
	for _, st := range stages {
		if st.consumes == nil {
			continue
		}
		group, topics := st.consumes(s)
		cfg.Groups[group] = topics
		for _, t := range topics {
			cfg.Stages[t] = st.name
		}
	}
	cl, err := s.kafka().Producer(10 * time.Second)
	if err != nil {
		return nil, err
	}
	cfg.Producer, cfg.Admin = cl, kadm.NewClient(cl)
	if err := cfg.Validate(); err != nil {
		cl.Close()
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := telemetry.Run(ctx, cfg); err != nil {
			s.log.Warn("pipeline metrics stopped", "err", err)
		}
	}()
	return func() { <-done; cl.Close() }, nil
}

// selected returns the stages of p that names lists.
func (p *pipeline) selected(names []string) []*stage {
	var out []*stage
	for _, st := range p.stages() {
		if slices.Contains(names, st.name) {
			out = append(out, st)
		}
	}
	return out
}

// runStages prepares every stage, then runs them side by side until ctx is
// done or one fails, which stops the others. A stage that waits for its own
// service (the sink for ClickHouse) does so inside its Run, so it holds no
// other stage back. Each stage has a Redis client of its own, so one
// stage's load does not make another wait for a pooled connection.
func runStages(ctx context.Context, s *settings, stages []*stage) error {
	for _, st := range stages {
		rdb := s.redis()
		defer rdb.Close()
		if err := st.prepare(s, rdb); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	if s.pipelineMetricsEvery > 0 {
		stop, err := reportPipelineMetrics(ctx, s, stages)
		if err != nil {
			return err
		}
		defer stop()
	}
	errs := make([]error, len(stages))
	for i, st := range stages {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := st.run(ctx); err != nil {
				errs[i] = fmt.Errorf("%s: %w", st.name, err)
				cancel()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
