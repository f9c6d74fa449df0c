package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shopstream/shopstream/ingest"
	"github.com/shopstream/shopstream/ingest/providers"
	"github.com/shopstream/shopstream/internal/stream"
	"github.com/shopstream/shopstream/processors/inventory"
	"github.com/shopstream/shopstream/processors/orders"
	chsink "github.com/shopstream/shopstream/sinks/clickhouse"
	"github.com/shopstream/shopstream/topology"
)

// stages are the parts of the pipeline, each run until ctx is done.
var stages = map[string]func(ctx context.Context, c *config) error{
	"ingest":    runIngest,
	"orders":    runOrders,
	"inventory": runInventory,
	"sink":      runSink,
}

// runStages runs stages side by side until ctx is done or one fails, which
// stops the others.
func runStages(ctx context.Context, c *config, names ...string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(names))
	for i, name := range names {
		run := stages[name]
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(ctx, c); err != nil {
				errs[i] = fmt.Errorf("%s: %w", name, err)
				cancel()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func runIngest(ctx context.Context, c *config) error {
	return serveIngest(ctx, c, nil)
}

// serveIngest serves until ctx is done; ready, when set, receives the bound
// address once the listener is open.
func serveIngest(ctx context.Context, c *config, ready chan<- string) error {
	if c.secrets == "" {
		return errors.New("no webhook secret: set SHOPSTREAM_WEBHOOK_SECRET or -webhook-secret")
	}
	sw, err := providers.NewStandardWebhooks(providers.StandardWebhooksConfig{
		Secrets: strings.Split(c.secrets, ","), Tolerance: c.tolerance})
	if err != nil {
		return err
	}
	prod, err := c.producer(10 * time.Second)
	if err != nil {
		return err
	}
	defer prod.Close()
	rdb := c.redis()
	defer rdb.Close()
	h, err := ingest.NewHandler(ingest.Config{
		Providers:    []providers.Provider{sw},
		Producer:     prod,
		Dedup:        ingest.NewRedisDedup(rdb, c.prefix),
		Topics:       c.topics(),
		MaxBodyBytes: c.maxBodyBytes,
		Logger:       c.log,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second}
	c.log.Info("ingest listening", "addr", ln.Addr().String())
	if ready != nil {
		ready <- ln.Addr().String()
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	// Let requests in flight get Kafka's answer before the producer closes.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}

func runOrders(ctx context.Context, c *config) error {
	t := c.topics()
	return runTransform(ctx, c, "orders", t.Orders, func(rdb *redis.Client) stream.Handler {
		return orders.NewProcessor(orders.NewRedisStates(rdb, c.prefix), t.Deltas)
	})
}

func runInventory(ctx context.Context, c *config) error {
	t := c.topics()
	return runTransform(ctx, c, "inventory", t.Deltas, func(rdb *redis.Client) stream.Handler {
		return inventory.NewProcessor(inventory.NewStore(rdb, inventory.StoreConfig{Prefix: c.prefix}), t.Movements)
	})
}

// runTransform runs a consume-transform-produce stage whose handler keeps
// its state in Redis.
func runTransform(ctx context.Context, c *config, stage, input string, handler func(*redis.Client) stream.Handler) error {
	rdb := c.redis()
	defer rdb.Close()
	group := c.group(stage)
	return stream.Transform(ctx, stream.TransformConfig{
		Client: c.client(), Group: group, Input: input, DLQ: topology.DLQ(input),
		TransactionalID: group + "-" + c.instance,
	}, handler(rdb))
}

func runSink(ctx context.Context, c *config) error {
	conn, err := c.clickhouse(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return stream.Batch(ctx, stream.BatchConfig{
		Client: c.client(), Group: c.group("clickhouse"), Inputs: []string{c.topics().Movements},
	}, chsink.NewMovementsSink(conn, c.schema().DB))
}
