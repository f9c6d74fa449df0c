package app

import (
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/ingest/providers"
	"github.com/shopstream/shopstream/internal/demo"
	"github.com/shopstream/shopstream/schemas/avro"
	"github.com/shopstream/shopstream/stock"
)

// demo runs the whole pipeline in this process under a namespace of its
// own (topics, groups, Redis keys and a ClickHouse database, so it never
// touches another run's data) with a webhook secret made for the run, and
// hands it to the demo.
func (o *operator) demo(ctx context.Context, base *settings, _ []string, out io.Writer) error {
	runID := time.Now().UTC().Format("20060102_150405")
	s := *base
	s.prefix = "demo_" + runID + "_"
	p := &o.pipe
	// A secret of the run for every provider; "whsec_<base64>" is one that
	// each accepts (Standard Webhooks and Stripe want the prefix, Shopify
	// and Webflow take any string).
	secrets := map[string]string{}
	p.ingest.Providers.Secrets = map[string][]string{}
	for _, name := range providers.Names() {
		b := make([]byte, 24)
		_, _ = crand.Read(b)
		secrets[name] = "whsec_" + base64.StdEncoding.EncodeToString(b)
		p.ingest.Providers.Secrets[name] = []string{secrets[name]}
	}
	key := make([]byte, 32)
	_, _ = crand.Read(key)
	p.ingest.CustomerKey = base64.StdEncoding.EncodeToString(key)
	p.sink.Server.Schema.DB = "shopstream_demo_" + runID
	p.ingest.Listen = "127.0.0.1:0"
	ready := make(chan string, 1)
	p.ingest.Ready = func(addr string) { ready <- addr }
	o.clickhouse = p.sink.Server
	fmt.Fprintf(out, "demo %s: topics and Redis keys under %q, ClickHouse database %s\n\n", runID, s.prefix, o.clickhouse.Schema.DB)

	if err := o.topics(ctx, &s, true, io.Discard); err != nil {
		return fmt.Errorf("topics: %w", err)
	}
	if err := o.migrate(ctx, &s, nil, io.Discard); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	conn, err := o.clickhouse.Open(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	rdb := s.redis()
	defer rdb.Close()

	pctx, stop := context.WithCancel(ctx)
	stopped := make(chan error, 1) // the demo reads it at most once
	done := make(chan struct{})    // closed once the stages have returned
	go func() {
		stopped <- runStages(pctx, &s, p.stages())
		close(done)
	}()
	defer func() { stop(); <-done }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-stopped:
		return err
	}
	return demo.Run(ctx, o.demoCfg, demo.Pipeline{
		RunID: runID, URL: "http://" + addr + "/webhooks",
		Secrets: secrets,
		Seed:    func(ctx context.Context, d ...avro.InventoryDelta) error { return produceDeltas(ctx, &s, d...) },
		Stock:   stock.NewStore(rdb, stock.StoreConfig{Prefix: s.prefix}), ClickHouse: conn, DB: o.clickhouse.Schema.DB,
		Catalog:   stock.NewCatalog(rdb, s.prefix),
		Snapshots: func(ctx context.Context, want int) ([]avro.StockSnapshot, error) { return readSnapshots(ctx, &s, want) },
		Stopped:   stopped,
	}, out)
}

// readSnapshots reads the snapshot topic from its start until want
// snapshots have come, or ctx is done.
func readSnapshots(ctx context.Context, s *settings, want int) ([]avro.StockSnapshot, error) {
	cl, err := kgo.NewClient(append(s.kafka().Options(), kgo.ConsumeTopics(s.topics().Snapshots),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var out []avro.StockSnapshot
	for len(out) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return out, fmt.Errorf("%d of %d snapshots: %w", len(out), want, ctx.Err())
		}
		for _, r := range fs.Records() {
			var snap avro.StockSnapshot
			if err := avro.Default().Unmarshal(r.Value, &snap); err != nil {
				return out, err
			}
			out = append(out, snap)
		}
	}
	return out, nil
}
