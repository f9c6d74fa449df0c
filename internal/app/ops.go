package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/ingest"
	"github.com/shopstream/shopstream/ingest/providers"
	"github.com/shopstream/shopstream/internal/conf"
	"github.com/shopstream/shopstream/internal/demo"
	"github.com/shopstream/shopstream/internal/loadgen"
	"github.com/shopstream/shopstream/schemas/avro"
	"github.com/shopstream/shopstream/schemas/envelope"
	chsink "github.com/shopstream/shopstream/sinks/clickhouse"
	"github.com/shopstream/shopstream/stock"
	"github.com/shopstream/shopstream/topology"
)

// operator holds the settings of the operator's commands, each registered
// only by the commands that use it.
type operator struct {
	partitions, replication int
	clickhouse              chsink.ServerConfig
	sku, id                 string
	qty                     int64
	demoCfg                 demo.Config
	pipe                    pipeline
	load                    loadgen.Config
}

func (o *operator) topologyFlags(fs *conf.FlagSet) {
	fs.Int(&o.partitions, "partitions", topology.DefaultPartitions, "partitions of each data topic", "SHOPSTREAM_PARTITIONS")
	fs.Int(&o.replication, "replication", topology.DefaultReplicationFactor, "replication factor of each topic; 1 for a single local broker",
		"SHOPSTREAM_REPLICATION")
}

func (o *operator) clickhouseFlags(fs *conf.FlagSet) { o.clickhouse.RegisterFlags(fs) }

func (o *operator) adjustFlags(fs *conf.FlagSet) {
	fs.String(&o.sku, "sku", "", "SKU to adjust")
	fs.Int64(&o.qty, "qty", 0, "signed quantity to add")
	fs.String(&o.id, "id", "", "adjustment id, stable across retries: the same id applies once")
}

// demoFlags are every stage's settings (the sink's include ClickHouse's),
// the topics' and the demo's own.
func (o *operator) demoFlags(fs *conf.FlagSet) {
	o.topologyFlags(fs)
	for _, st := range o.pipe.stages() {
		st.flags(fs)
	}
	o.demoCfg.RegisterFlags(fs)
}

func (o *operator) loadFlags(fs *conf.FlagSet) { o.load.RegisterFlags(fs) }

func (o *operator) topicsPlan(ctx context.Context, s *settings, _ []string, out io.Writer) error {
	return o.topics(ctx, s, false, out)
}

func (o *operator) topicsApply(ctx context.Context, s *settings, _ []string, out io.Writer) error {
	return o.topics(ctx, s, true, out)
}

func (o *operator) topics(ctx context.Context, s *settings, apply bool, out io.Writer) error {
	if o.partitions < 1 || o.replication < 1 {
		return errors.New("partitions and replication must be at least 1")
	}
	cl, err := kgo.NewClient(s.kafka().Options()...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	plan, err := topology.Plan(ctx, adm, topology.Topics(topology.Options{Prefix: s.prefix,
		Partitions: int32(o.partitions), ReplicationFactor: int16(o.replication)}))
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
	if !apply {
		return nil
	}
	if err := topology.Apply(ctx, adm, plan); err != nil {
		return err
	}
	fmt.Fprintf(out, "topics: applied %d steps (drift, if any, is left to an operator)\n", len(plan))
	return nil
}

func (o *operator) migrate(ctx context.Context, _ *settings, _ []string, out io.Writer) error {
	conn, err := o.clickhouse.Open(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	done, err := chsink.Migrate(ctx, conn, o.clickhouse.Schema)
	for _, m := range done {
		fmt.Fprintf(out, "migrate: applied %03d_%s\n", m.Version, m.Name)
	}
	if err == nil && len(done) == 0 {
		fmt.Fprintln(out, "migrate: up to date")
	}
	return err
}

// adjust produces an operator's stock change: a delta on the delta log like
// any other, so a replay or a rebuild sees it too.
func (o *operator) adjust(ctx context.Context, s *settings, _ []string, _ io.Writer) error {
	if o.id == "" || o.qty == 0 {
		return errors.New("stock adjust needs -sku, a non-zero -qty and -id")
	}
	if err := stock.ValidSKU(o.sku); err != nil {
		return err
	}
	return produceDeltas(ctx, s, avro.InventoryDelta{DeltaID: "adjust:" + o.id, SKU: o.sku, Kind: avro.DeltaAdjustment,
		Quantity: o.qty, OccurredAt: time.Now().UTC().Truncate(time.Millisecond)})
}

func produceDeltas(ctx context.Context, s *settings, deltas ...avro.InventoryDelta) error {
	cl, err := s.kafka().Producer(10 * time.Second)
	if err != nil {
		return err
	}
	defer cl.Close()
	recs := make([]*kgo.Record, len(deltas))
	for i := range deltas {
		if recs[i], err = envelope.Record(s.topics().Deltas, &deltas[i], ""); err != nil {
			return err
		}
	}
	return cl.ProduceSync(ctx, recs...).FirstErr()
}

func (o *operator) show(ctx context.Context, s *settings, skus []string, out io.Writer) error {
	rdb := s.redis()
	defer rdb.Close()
	levels, err := stock.NewStore(rdb, stock.StoreConfig{Prefix: s.prefix}).Levels(ctx, skus)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "sku\tavailable\treserved\ton_hand\n")
	for _, l := range levels {
		fmt.Fprintf(out, "%s\t%d\t%d\t%d\n", l.SKU, l.Available(), l.Reserved, l.OnHand)
	}
	return nil
}

// catalogLoad loads a catalog file whole or not at all: every row is
// checked before the first is written.
func (o *operator) catalogLoad(ctx context.Context, s *settings, args []string, out io.Writer) error {
	if len(args) != 1 {
		return errors.New("catalog load needs one FILE.csv")
	}
	f, err := os.Open(args[0])
	if err != nil {
		return err
	}
	defer f.Close()
	items, err := stock.ReadCatalogCSV(f)
	if err != nil {
		return fmt.Errorf("%s: %w", args[0], err)
	}
	rdb := s.redis()
	defer rdb.Close()
	if err := stock.NewCatalog(rdb, s.prefix).Put(ctx, items); err != nil {
		return err
	}
	fmt.Fprintf(out, "catalog: loaded %d items\n", len(items))
	return nil
}

func (o *operator) catalogShow(ctx context.Context, s *settings, args []string, out io.Writer) error {
	if len(args) < 2 {
		return errors.New("catalog show needs a SOURCE and at least one ITEM_ID")
	}
	items := make([]stock.Item, 0, len(args)-1)
	for _, id := range args[1:] {
		items = append(items, stock.Item{Source: args[0], ItemID: id})
	}
	rdb := s.redis()
	defer rdb.Close()
	skus, err := stock.NewCatalog(rdb, s.prefix).SKUs(ctx, items)
	if err != nil {
		return err
	}
	for i, it := range items {
		sku := skus[i]
		if sku == "" {
			sku = "(unknown)"
		}
		fmt.Fprintf(out, "%s\t%s\t%s\n", it.Source, it.ItemID, sku)
	}
	return nil
}

func (o *operator) pause(ctx context.Context, s *settings, names []string, out io.Writer) error {
	return o.switchProviders(ctx, s, names, out, (*ingest.Pauses).Pause, "paused")
}

func (o *operator) resume(ctx context.Context, s *settings, names []string, out io.Writer) error {
	return o.switchProviders(ctx, s, names, out, (*ingest.Pauses).Resume, "resumed")
}

// switchProviders applies do to each named provider, refusing a name no
// provider has: a typo must not look like a pause that took.
func (o *operator) switchProviders(ctx context.Context, s *settings, names []string, out io.Writer,
	do func(*ingest.Pauses, context.Context, string) error, done string) error {
	if len(names) == 0 {
		return errors.New("name at least one provider: " + strings.Join(providers.Names(), ", "))
	}
	for _, n := range names {
		if !slices.Contains(providers.Names(), n) {
			return fmt.Errorf("no provider %q: %s", n, strings.Join(providers.Names(), ", "))
		}
	}
	rdb := s.redis()
	defer rdb.Close()
	p := ingest.NewPauses(rdb, s.prefix, s.log)
	for _, n := range names {
		if err := do(p, ctx, n); err != nil {
			return err
		}
		fmt.Fprintf(out, "%s %s\n", n, done)
	}
	return nil
}

func (o *operator) paused(ctx context.Context, s *settings, _ []string, out io.Writer) error {
	rdb := s.redis()
	defer rdb.Close()
	names, err := ingest.NewPauses(rdb, s.prefix, s.log).List(ctx)
	if err != nil {
		return err
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintln(out, n)
	}
	return nil
}

func (o *operator) loadgen(ctx context.Context, _ *settings, _ []string, out io.Writer) error {
	return loadgen.Run(ctx, o.load, out)
}
