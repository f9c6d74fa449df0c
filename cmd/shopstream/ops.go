package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/stream"
	"github.com/shopstream/shopstream/processors/inventory"
	"github.com/shopstream/shopstream/schemas/avro"
	chsink "github.com/shopstream/shopstream/sinks/clickhouse"
	"github.com/shopstream/shopstream/topology"
)

func topics(ctx context.Context, c *config, sub string, out io.Writer) error {
	if sub != "plan" && sub != "apply" {
		return errors.New("topics plan|apply")
	}
	adm, closeAdm, err := c.admin()
	if err != nil {
		return err
	}
	defer closeAdm()
	plan, err := topology.Plan(ctx, adm, topology.Topics(c.topologyOptions()))
	if err != nil {
		return err
	}
	if len(plan) == 0 {
		fmt.Fprintln(out, "topics: up to date, nothing to do")
		return nil
	}
	for _, a := range plan {
		fmt.Fprintln(out, "topics:", a)
	}
	if sub == "plan" {
		return nil
	}
	if err := topology.Apply(ctx, adm, plan); err != nil {
		return err
	}
	fmt.Fprintf(out, "topics: applied %d steps (drift, if any, is left to an operator)\n", len(plan))
	return nil
}

func migrate(ctx context.Context, c *config, out io.Writer) error {
	conn, err := c.clickhouse(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	done, err := chsink.Migrate(ctx, conn, c.schema())
	for _, m := range done {
		fmt.Fprintf(out, "migrate: applied %03d_%s\n", m.Version, m.Name)
	}
	if err == nil && len(done) == 0 {
		fmt.Fprintln(out, "migrate: up to date")
	}
	return err
}

// adjustment is an operator's stock change: a delta on the delta log like
// any other, so a replay or a rebuild sees it too.
type adjustment struct {
	sku string
	qty int64
	id  string
}

func (a *adjustment) register(fs *flag.FlagSet) {
	fs.StringVar(&a.sku, "sku", "", "SKU to adjust")
	fs.Int64Var(&a.qty, "qty", 0, "signed quantity to add")
	fs.StringVar(&a.id, "id", "", "adjustment id, stable across retries: the same id applies once")
}

func (a *adjustment) run(ctx context.Context, c *config) error {
	if a.id == "" || a.qty == 0 {
		return errors.New("stock adjust needs -sku, a non-zero -qty and -id")
	}
	if err := inventory.ValidSKU(a.sku); err != nil {
		return err
	}
	cl, err := c.producer(10 * time.Second)
	if err != nil {
		return err
	}
	defer cl.Close()
	return produceAdjustments(ctx, cl, c.topics().Deltas, avro.InventoryDelta{
		DeltaID: "adjust:" + a.id, SKU: a.sku, Kind: avro.DeltaAdjustment, Quantity: a.qty,
		OccurredAt: time.Now().UTC().Truncate(time.Millisecond),
	})
}

func produceAdjustments(ctx context.Context, cl *kgo.Client, topic string, deltas ...avro.InventoryDelta) error {
	reg := avro.Default()
	recs := make([]*kgo.Record, len(deltas))
	for i := range deltas {
		v, err := reg.Marshal(&deltas[i])
		if err != nil {
			return err
		}
		recs[i] = &kgo.Record{Topic: topic, Key: []byte(deltas[i].SKU), Value: v,
			Headers: stream.EventHeaders("inventory.delta.adjustment", v, "")}
	}
	return cl.ProduceSync(ctx, recs...).FirstErr()
}

func showStock(ctx context.Context, c *config, skus []string, out io.Writer) error {
	rdb := c.redis()
	defer rdb.Close()
	store := inventory.NewStore(rdb, inventory.StoreConfig{Prefix: c.prefix})
	for _, sku := range skus {
		stock, err := store.Stock(ctx, sku)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%s\t%d\n", sku, stock)
	}
	return nil
}
