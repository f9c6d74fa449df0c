package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/shopstream/shopstream/ingest"
	"github.com/shopstream/shopstream/internal/conf"
	"github.com/shopstream/shopstream/processors/deliveries"
	"github.com/shopstream/shopstream/processors/inventory"
	"github.com/shopstream/shopstream/processors/orders"
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
}

// pipeline holds every stage's Config.
type pipeline struct {
	ingest     ingest.Config
	deliveries deliveries.Config
	orders     orders.Config
	inventory  inventory.Config
	sink       chsink.Config
}

// stages returns every stage of p, in the order data flows through them. A
// new stage is a package with a Config and a Run, a field of pipeline, and
// an entry here.
func (p *pipeline) stages() []*stage {
	in, dlv, ord, inv, snk := &p.ingest, &p.deliveries, &p.orders, &p.inventory, &p.sink
	return []*stage{
		{name: "ingest", flags: in.RegisterFlags,
			prepare: func(s *settings, rdb *redis.Client) error {
				in.Kafka, in.Topics, in.Metrics, in.Redis, in.Prefix = s.kafka(), s.topics(), s.ingestMetrics, rdb, s.prefix
				return in.Validate()
			},
			run: func(ctx context.Context) error { return ingest.Run(ctx, *in) }},
		{name: "deliveries", flags: dlv.RegisterFlags, transactional: true,
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
			prepare: func(s *settings, rdb *redis.Client) error {
				if err := s.transform(&inv.Stream, "inventory", s.topics().Deltas); err != nil {
					return err
				}
				inv.Movements, inv.Redis, inv.Stock = s.topics().Movements, rdb, stock.StoreConfig{Prefix: s.prefix}
				return inv.Validate()
			},
			run: func(ctx context.Context) error { return inventory.Run(ctx, *inv) }},
		{name: "sink", flags: snk.RegisterFlags,
			prepare: func(s *settings, _ *redis.Client) error {
				snk.Stream.Client, snk.Stream.Group, snk.Topics, snk.Logger = s.kafka(), s.group("clickhouse"), s.topics(), s.log
				return snk.Validate()
			},
			run: func(ctx context.Context) error { return chsink.Run(ctx, *snk) }},
	}
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
