// Command stages measures one stage of the pipeline alone, on the real
// stack: it fills the stage's input topic in a namespace of its own, runs
// the stage in this process, and times it from its start until every
// output is committed. For the inventory stage it then checks the effect
// was exactly once. It prints one line a script can read, e.g.
//
//	inventory uniform: 65979 deltas/s (100000 deltas, 10000 SKUs, 1.52s, 5000 a batch); 0.000 Redis round trips, 0.356 lock acquisitions and 0.003 script calls per delta
//
// `make bench` runs it; it needs `make up`. Traffic goes to loopback only,
// and every loop is bounded by -n.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/kit/metrics/discard"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/stream"
	"github.com/shopstream/shopstream/internal/stream/middleware"
	"github.com/shopstream/shopstream/internal/testenv"
	"github.com/shopstream/shopstream/processors/deliveries"
	"github.com/shopstream/shopstream/processors/inventory"
	"github.com/shopstream/shopstream/processors/orders"
	"github.com/shopstream/shopstream/schemas/avro"
	"github.com/shopstream/shopstream/schemas/envelope"
	"github.com/shopstream/shopstream/stock"
	"github.com/shopstream/shopstream/topology"
)

func main() {
	var (
		stage = flag.String("stage", "inventory", "inventory, orders or deliveries")
		n     = flag.Int("n", 100000, "records to fill the input topic with")
		skus  = flag.Int("skus", 10000, "distinct SKUs")
		dist  = flag.String("dist", "uniform", "how SKUs are drawn: uniform, zipf (s=1.1) or hot (one SKU takes half)")
		batch = flag.Int("batch", 0, "records in one transaction of the stage; 0: the stage's default")
		prof  = flag.String("cpuprofile", "", "write a CPU profile of the run to this file")
	)
	flag.Parse()
	if *prof != "" {
		f, err := os.Create(*prof)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "stages:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(*stage, *n, *skus, *dist, *batch); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "stages:", err)
		os.Exit(1)
	}
}

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func run(stage string, n, skus int, dist string, batch int) error {
	if batch == 0 {
		batch = stream.DefaultMaxPollRecords
		if stage == "inventory" {
			batch = inventory.DefaultMaxPollRecords
		}
	}
	draw, err := drawer(dist, skus)
	if err != nil {
		return err
	}
	ctx := context.Background()
	brokers := strings.Split(env("SHOPSTREAM_KAFKA_BROKERS", "127.0.0.1:9092"), ",")
	prefix := fmt.Sprintf("bench_%s_%d_", stage, time.Now().UnixNano()%1e9)
	names := topology.NamesFor(prefix)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	client := stream.ClientConfig{Brokers: brokers, ClientID: "shopstream-bench", Logger: log}

	adm, err := kgo.NewClient(client.Options()...)
	if err != nil {
		return err
	}
	defer adm.Close()
	plan, err := topology.Plan(ctx, kadm.NewClient(adm), topology.Topics(topology.Options{Prefix: prefix, ReplicationFactor: 1}))
	if err == nil {
		err = topology.Apply(ctx, kadm.NewClient(adm), plan)
	}
	if err != nil {
		return fmt.Errorf("topics: %w", err)
	}
	defer func() {
		_, _ = kadm.NewClient(adm).DeleteTopics(context.Background(), topicsOf(prefix)...)
	}()

	input, output, want := names.Deltas, names.Movements, n
	switch stage {
	case "orders":
		input, output = names.Orders, names.Deltas
	case "deliveries":
		input, output, want = names.WebhooksRaw, names.Orders, n-n/copyEvery
	}
	if err := fill(ctx, client, stage, input, n, draw); err != nil {
		return fmt.Errorf("fill %s: %w", input, err)
	}

	rdb := redis.NewClient(&redis.Options{Addr: env("SHOPSTREAM_REDIS_ADDR", "127.0.0.1:6379"), PoolSize: 64})
	defer rdb.Close()
	// Leave nothing behind: keys left by every run grow Redis and its AOF
	// until a background rewrite lands in the middle of a later benchmark.
	defer testenv.UnlinkPrefix(context.Background(), rdb, prefix)
	counter := &tripCounter{byName: map[string]int64{}}
	rdb.AddHook(counter)

	cfg := stream.TransformConfig{Client: client, Group: prefix + "bench", Input: input, DLQ: topology.DLQ(input),
		TransactionalID: prefix + "bench", MaxPollRecords: batch}
	var handling atomic.Int64
	stack := middleware.Stack(log, noMetrics(), middleware.RetryConfig{})
	cfg.Middleware = func(h stream.RunHandler) stream.RunHandler {
		h = stack(h)
		return stream.RunHandlerFunc(func(ctx context.Context, runs [][]*kgo.Record) (stream.Result, error) {
			t := time.Now()
			defer func() { handling.Add(int64(time.Since(t))) }()
			return h.HandleRuns(ctx, runs)
		})
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		switch stage {
		case "orders":
			done <- orders.Run(sctx, orders.Config{Stream: cfg, Topics: orders.Topics{Deltas: names.Deltas, Applied: names.Applied}, Redis: rdb, Prefix: prefix})
		case "deliveries":
			done <- deliveries.Run(sctx, deliveries.Config{Stream: cfg, Topics: deliveries.Topics{Orders: names.Orders, Snapshots: names.Snapshots, Outcomes: names.Outcomes}, Redis: rdb, Prefix: prefix})
		default:
			done <- inventory.Run(sctx, inventory.Config{Stream: cfg, Movements: names.Movements, Redis: rdb,
				Stock: stock.StoreConfig{Prefix: prefix}})
		}
	}()
	got, err := await(ctx, brokers, output, want, done)
	elapsed := time.Since(start)
	stop()
	<-done
	if err != nil {
		return err
	}

	fmt.Fprintf(os.Stderr, "stages: the handler took %v of the stage's %v; the rest is the loop (poll, produce, commit)\n",
		time.Duration(handling.Load()).Round(time.Millisecond), elapsed.Round(time.Millisecond))
	trips, sets, scripts := counter.trips.Load(), counter.calls("set"), counter.calls("evalsha")
	perDelta := func(v int64) string { return strconv.FormatFloat(float64(v)/float64(n), 'f', 3, 64) }
	switch stage {
	case "deliveries":
		fmt.Printf("deliveries: %.0f receipts/s (%d receipts, one in %d a second copy of a delivery; %d order events forwarded, %.2fs, %d a batch); %s Redis round trips per receipt\n",
			float64(n)/elapsed.Seconds(), n, copyEvery, got, elapsed.Seconds(), batch, perDelta(trips))
	case "orders":
		fmt.Printf("orders %s: %.0f orders/s (%d orders, %d deltas, %.2fs, %d a batch); %s Redis round trips per order\n",
			dist, float64(n)/elapsed.Seconds(), n, got, elapsed.Seconds(), batch, perDelta(trips))
	default:
		if err := exactlyOnce(ctx, stock.NewStore(rdb, stock.StoreConfig{Prefix: prefix}), skus, n); err != nil {
			return err
		}
		fmt.Printf("inventory %s: %.0f deltas/s (%d deltas, %d SKUs, %.2fs, %d a batch); %s Redis round trips, %s lock acquisitions and %s script calls per delta\n",
			dist, float64(n)/elapsed.Seconds(), n, skus, elapsed.Seconds(), batch, perDelta(trips), perDelta(sets), perDelta(scripts))
	}
	return nil
}

// drawer returns how a SKU is drawn for each record.
func drawer(dist string, skus int) (func(*rand.Rand) int, error) {
	switch dist {
	case "uniform":
		return func(r *rand.Rand) int { return r.IntN(skus) }, nil
	case "zipf":
		var z *rand.Zipf
		return func(r *rand.Rand) int {
			if z == nil {
				z = rand.NewZipf(r, 1.1, 1, uint64(skus-1))
			}
			return int(z.Uint64())
		}, nil
	case "hot":
		return func(r *rand.Rand) int {
			if r.IntN(2) == 0 {
				return 0
			}
			return 1 + r.IntN(skus-1)
		}, nil
	}
	return nil, fmt.Errorf("-dist %q: uniform, zipf or hot", dist)
}

// copyEvery: in the deliveries stage's input, one receipt in copyEvery is a
// second copy of the delivery before it, as a provider's retry that got past
// the edge would be.
const copyEvery = 10

// fill produces n records to topic: for the inventory stage, deltas that
// each add one unit to a SKU (so the stock of every SKU is the count of its
// deltas: exactly once is checkable); for the orders stage, paid orders of
// one line; for the deliveries stage, the receipts of such orders, one in
// copyEvery a copy of the one before (so it must forward n-n/copyEvery).
func fill(ctx context.Context, client stream.ClientConfig, stage, topic string, n int, draw func(*rand.Rand) int) error {
	cl, err := client.Producer(30 * time.Second)
	if err != nil {
		return err
	}
	defer cl.Close()
	r := rand.New(rand.NewPCG(1, 2))
	at := time.Now().UTC().Truncate(time.Millisecond)
	var failed atomic.Value
	for i := range n {
		sku := "SKU-" + strconv.Itoa(draw(r))
		order := func(i int) *avro.OrderEvent {
			return &avro.OrderEvent{EventID: "e-" + strconv.Itoa(i), Provider: "bench", Type: avro.OrderPaid, OrderID: "o-" + strconv.Itoa(i),
				Version: 1, OccurredAt: at, ReceivedAt: at, Lines: []avro.LineItem{{LineID: "1", SKU: sku, Quantity: 1}}}
		}
		var v any
		switch stage {
		case "orders":
			v = order(i)
		case "deliveries":
			id := i
			if i%copyEvery == copyEvery-1 {
				id = i - 1
			}
			v = &avro.WebhookReceipt{DeliveryID: "e-" + strconv.Itoa(id), Provider: "bench", ReceivedAt: at,
				Headers: map[string]string{"content-type": "application/json", "webhook-id": "e-" + strconv.Itoa(id)},
				Body:    []byte(`{"type":"order.paid","data":{"order_id":"o-` + strconv.Itoa(id) + `"}}`), Event: order(id)}
		default:
			v = &avro.InventoryDelta{DeltaID: "d-" + strconv.Itoa(i), SKU: sku, Kind: avro.DeltaAdjustment, Quantity: 1, OccurredAt: at}
		}
		rec, err := envelope.Record(topic, v, "")
		if err != nil {
			return err
		}
		cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Store(err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	if err, _ := failed.Load().(error); err != nil {
		return err
	}
	return nil
}

// await reads topic (committed records only) until want records came,
// which is when the stage has committed every output.
func await(ctx context.Context, brokers []string, topic string, want int, stopped <-chan error) (int, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	deadline := time.Now().Add(10 * time.Minute)
	got := 0
	for got < want {
		select {
		case err := <-stopped:
			return got, fmt.Errorf("the stage stopped after %d of %d outputs: %v", got, want, err)
		default:
		}
		if time.Now().After(deadline) {
			return got, fmt.Errorf("%d of %d outputs after 10 minutes", got, want)
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		got += cl.PollFetches(pctx).NumRecords()
		cancel()
	}
	return got, nil
}

// exactlyOnce checks that every delta was applied once: each added one
// unit, so the stocks add up to n, and each left one ledger entry, so a
// delta applied twice cannot hide behind one that was missed.
func exactlyOnce(ctx context.Context, s *stock.Store, skus, n int) error {
	var sum, entries int64
	for i := range skus {
		sku := "SKU-" + strconv.Itoa(i)
		v, err := s.Stock(ctx, sku)
		if err != nil {
			return err
		}
		l, err := s.Ledger(ctx, sku)
		if err != nil {
			return err
		}
		sum, entries = sum+v, entries+int64(len(l))
	}
	if sum != int64(n) || entries != int64(n) {
		return fmt.Errorf("stocks add up to %d and ledgers hold %d entries, want %d: not exactly once", sum, entries, n)
	}
	return nil
}

// tripCounter counts round trips to Redis (a command or a pipeline each)
// and the commands sent, by name.
type tripCounter struct {
	trips  atomic.Int64
	mu     sync.Mutex
	byName map[string]int64
}

func (t *tripCounter) count(cmds ...redis.Cmder) {
	t.trips.Add(1)
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range cmds {
		t.byName[c.Name()]++
	}
}

func (t *tripCounter) calls(name string) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.byName[name]
}

func (t *tripCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (t *tripCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		t.count(cmd)
		return next(ctx, cmd)
	}
}

func (t *tripCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		t.count(cmds...)
		return next(ctx, cmds)
	}
}

func topicsOf(prefix string) []string {
	var out []string
	for _, t := range topology.Topics(topology.Options{Prefix: prefix, ReplicationFactor: 1}) {
		out = append(out, t.Name)
	}
	return out
}

// noMetrics records nothing: the benchmark times the stage, not a backend.
func noMetrics() middleware.Metrics {
	return middleware.Metrics{Records: discard.NewCounter(), Duration: discard.NewHistogram()}
}
