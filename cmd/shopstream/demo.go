package main

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/shopstream/shopstream/ingest/providers"
	"github.com/shopstream/shopstream/processors/inventory"
	"github.com/shopstream/shopstream/schemas/avro"
)

type demoOptions struct {
	orders      int
	concurrency int
	timeout     time.Duration
}

func (d *demoOptions) register(fs *flag.FlagSet) {
	fs.IntVar(&d.orders, "orders", 300, "paid orders in the burst")
	fs.IntVar(&d.concurrency, "concurrency", 16, "webhooks in flight at once")
	fs.DurationVar(&d.timeout, "settle-timeout", 2*time.Minute, "how long to wait for the pipeline to settle")
}

// demoStock is the stock the demo starts with; CAP is short on purpose so
// that some orders are refused rather than oversold.
var demoStock = map[string]int64{"TEE": 400, "HOODIE": 300, "MUG": 300, "CAP": 20}

// webhook is one delivery the demo sends, as a provider would.
type webhook struct {
	id, body string
	forged   bool
}

// run starts the whole pipeline in this process under a namespace of its
// own (topics, groups, Redis keys and a ClickHouse database), sends a burst
// of signed webhooks with duplicates, forged signatures and cancellations,
// waits until every delta has landed in ClickHouse, and prints what landed.
func (d *demoOptions) run(ctx context.Context, c *config, out io.Writer) error {
	runID := time.Now().UTC().Format("20060102_150405")
	c.prefix = "demo_" + runID + "_"
	c.chDB = "shopstream_demo_" + runID
	c.listen = "127.0.0.1:0"
	key := make([]byte, 24)
	_, _ = crand.Read(key)
	c.secrets = "whsec_" + base64.StdEncoding.EncodeToString(key)
	fmt.Fprintf(out, "demo %s: topics and Redis keys under %q, ClickHouse database %s\n\n", runID, c.prefix, c.chDB)

	if err := topics(ctx, c, "apply", io.Discard); err != nil {
		return fmt.Errorf("topics: %w", err)
	}
	if err := migrate(ctx, c, io.Discard); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	prod, err := c.producer(10 * time.Second)
	if err != nil {
		return err
	}
	var seeds []avro.InventoryDelta
	for sku, qty := range demoStock {
		seeds = append(seeds, avro.InventoryDelta{DeltaID: "adjust:seed-" + sku, SKU: sku, Kind: avro.DeltaAdjustment,
			Quantity: qty, OccurredAt: time.Now().UTC().Truncate(time.Millisecond)})
	}
	err = produceAdjustments(ctx, prod, c.topics().Deltas, seeds...)
	prod.Close()
	if err != nil {
		return fmt.Errorf("seed stock: %w", err)
	}

	pctx, stopPipeline := context.WithCancel(ctx)
	defer stopPipeline()
	ready := make(chan string, 1)
	pipelineErr := make(chan error, 2)
	go func() { pipelineErr <- serveIngest(pctx, c, ready) }()
	go func() { pipelineErr <- runStages(pctx, c, "orders", "inventory", "sink") }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-pipelineErr:
		return err
	}
	url := "http://" + addr + "/webhooks/standardwebhooks"

	paid, cancels, forged := demoBurst(runID, d.orders)
	tally := newTally()
	start := time.Now()
	sendAll(ctx, url, key, paid, d.concurrency, tally)
	sendAll(ctx, url, key, forged, d.concurrency, tally)
	// Providers retry: the same deliveries again, which must change nothing.
	sendAll(ctx, url, key, paid[:len(paid)/10], d.concurrency, tally)
	sendAll(ctx, url, key, cancels, d.concurrency, tally)
	elapsed := time.Since(start)

	conn, err := c.clickhouse(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	rdb := c.redis()
	defer rdb.Close()
	store := inventory.NewStore(rdb, inventory.StoreConfig{Prefix: c.prefix})

	// Every accepted paid order sells its lines and every accepted
	// cancellation restocks them (applied or refused): that many distinct
	// movements must land, plus the seeds.
	wantMovements := uint64(len(seeds)) + tally.lines
	deadline := time.Now().Add(d.timeout)
	var got uint64
	for {
		if err := conn.QueryRow(ctx, "SELECT count() FROM "+c.chDB+".inventory_movements_final").Scan(&got); err != nil {
			return err
		}
		if got >= wantMovements {
			break
		}
		select {
		case err := <-pipelineErr:
			return fmt.Errorf("pipeline stopped: %w", err)
		case <-time.After(300 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v only %d of %d movements reached ClickHouse", d.timeout, got, wantMovements)
		}
	}
	stopPipeline()

	fmt.Fprintf(out, "webhooks: %d sent in %v\n", tally.total(), elapsed.Round(time.Millisecond))
	for _, k := range tally.keys() {
		fmt.Fprintf(out, "  %-28s %d\n", k, tally.counts[k])
	}
	ok, err := printInventory(ctx, out, conn, c.chDB, store)
	if err != nil {
		return err
	}
	if err := printClickHouse(ctx, out, conn, c.chDB); err != nil {
		return err
	}
	if !ok {
		return errors.New("Redis and ClickHouse disagree; see above")
	}
	fmt.Fprintf(out, "\nRedis and ClickHouse agree for every SKU. Query it yourself:\n  clickhouse-client -d %s -q 'SELECT * FROM sales_per_sku_minute'\n", c.chDB)
	return nil
}

// demoBurst builds the deliveries: paid orders of one to three lines,
// cancellations of every eleventh, and deliveries with forged signatures.
func demoBurst(runID string, orders int) (paid, cancels, forged []webhook) {
	rng := rand.New(rand.NewPCG(7, 11))
	skus := []string{"TEE", "HOODIE", "MUG", "CAP"}
	now := time.Now().UTC()
	for i := range orders {
		orderID := fmt.Sprintf("o-%s-%04d", runID, i)
		var lines []map[string]any
		for l := range 1 + rng.IntN(3) {
			lines = append(lines, map[string]any{"id": fmt.Sprint(l + 1), "sku": skus[(i+l)%len(skus)],
				"quantity": 1 + rng.IntN(2), "unit_price_minor": 1500 + 500*l})
		}
		body := func(typ string, at time.Time) string {
			b, _ := json.Marshal(map[string]any{"type": typ, "timestamp": at.Format(time.RFC3339Nano),
				"data": map[string]any{"order_id": orderID, "currency": "EUR", "line_items": lines}})
			return string(b)
		}
		paid = append(paid, webhook{id: fmt.Sprintf("msg_%s_%04d_paid", runID, i), body: body("order.paid", now)})
		if i%11 == 0 {
			cancels = append(cancels, webhook{id: fmt.Sprintf("msg_%s_%04d_cancel", runID, i), body: body("order.cancelled", now.Add(time.Second))})
		}
		if i%20 == 0 {
			forged = append(forged, webhook{id: fmt.Sprintf("msg_%s_%04d_forged", runID, i),
				body: body("order.paid", now), forged: true})
		}
	}
	return paid, cancels, forged
}

type tally struct {
	mu     sync.Mutex
	counts map[string]int
	lines  uint64
}

func newTally() *tally { return &tally{counts: map[string]int{}} }

func (t *tally) add(k string, lines int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.counts[k]++
	t.lines += uint64(lines)
}

func (t *tally) total() int {
	n := 0
	for _, v := range t.counts {
		n += v
	}
	return n
}

func (t *tally) keys() []string {
	var ks []string
	for k := range t.counts {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// sendAll posts the webhooks, concurrency at a time, and counts the answers.
// A delivery answered 2xx "accepted" adds its lines to the movements
// expected downstream.
func sendAll(ctx context.Context, url string, key []byte, hooks []webhook, concurrency int, t *tally) {
	work := make(chan webhook)
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 30 * time.Second}
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for h := range work {
				status, answer := post(ctx, client, url, key, h)
				lines := 0
				if status == 200 && answer == "accepted" {
					lines = strings.Count(h.body, `"sku"`)
				}
				t.add(fmt.Sprintf("%d %s", status, answer), lines)
			}
		}()
	}
	for _, h := range hooks {
		work <- h
	}
	close(work)
	wg.Wait()
}

func post(ctx context.Context, client *http.Client, url string, key []byte, h webhook) (int, string) {
	now := time.Now()
	sig := providers.Sign(key, h.id, now, []byte(h.body))
	if h.forged {
		sig = providers.Sign([]byte("not the secret"), h.id, now, []byte(h.body))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader([]byte(h.body)))
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Webhook-Id", h.id)
	req.Header.Set("Webhook-Timestamp", fmt.Sprint(now.Unix()))
	req.Header.Set("Webhook-Signature", sig)
	resp, err := client.Do(req)
	if err != nil {
		return 0, "transport error"
	}
	defer resp.Body.Close()
	var a struct {
		Status string `json:"status"`
		Error  struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&a)
	if a.Status != "" {
		return resp.StatusCode, a.Status
	}
	return resp.StatusCode, a.Error.Code
}

// printInventory prints each SKU's stock from Redis beside what ClickHouse's
// applied movements add up to, and reports whether they agree everywhere
// (invariants 2 and 3 of DESIGN.md).
func printInventory(ctx context.Context, out io.Writer, conn driver.Conn, db string, store *inventory.Store) (bool, error) {
	fmt.Fprintf(out, "\ninventory (Redis stock beside ClickHouse's applied movements):\n")
	fmt.Fprintf(out, "  %-8s %8s %8s %8s %10s %10s %12s  %s\n", "sku", "initial", "sold", "refused", "restocked", "redis", "clickhouse", "ledger")
	ok := true
	skus := make([]string, 0, len(demoStock))
	for sku := range demoStock {
		skus = append(skus, sku)
	}
	sort.Strings(skus)
	for _, sku := range skus {
		stock, err := store.Stock(ctx, sku)
		if err != nil {
			return false, err
		}
		ledger, err := store.Ledger(ctx, sku)
		if err != nil {
			return false, err
		}
		var ledgerSum int64
		for _, e := range ledger {
			ledgerSum += e.Quantity
		}
		var applied, sold, restocked int64
		var refused, appliedRows uint64
		err = conn.QueryRow(ctx, `SELECT
			sumIf(quantity, status = 'APPLIED'),
			-sumIf(quantity, status = 'APPLIED' AND kind = 'SALE'),
			countIf(status = 'REFUSED' AND kind = 'SALE'),
			sumIf(quantity, status = 'APPLIED' AND kind = 'RESTOCK'),
			countIf(status = 'APPLIED')
			FROM `+db+`.inventory_movements_final WHERE sku = ?`, sku).Scan(&applied, &sold, &refused, &restocked, &appliedRows)
		if err != nil {
			return false, err
		}
		agree := stock == applied && stock == ledgerSum && uint64(len(ledger)) == appliedRows && stock >= 0
		mark := "ok"
		if !agree {
			mark, ok = "MISMATCH", false
		}
		fmt.Fprintf(out, "  %-8s %8d %8d %8d %10d %10d %12d  %d entries %s\n",
			sku, demoStock[sku], sold, refused, restocked, stock, applied, len(ledger), mark)
	}
	return ok, nil
}

func printClickHouse(ctx context.Context, out io.Writer, conn driver.Conn, db string) error {
	var rows, final uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM "+db+".inventory_movements").Scan(&rows); err != nil {
		return err
	}
	if err := conn.QueryRow(ctx, "SELECT count() FROM "+db+".inventory_movements_final").Scan(&final); err != nil {
		return err
	}
	fmt.Fprintf(out, "\nclickhouse %s.inventory_movements: %d rows, %d after deduplication by movement id\n", db, rows, final)
	fmt.Fprintf(out, "\nanalyst query: SELECT sku, sum(units_sold), sum(orders) FROM sales_per_sku_minute GROUP BY sku\n")
	r, err := conn.Query(ctx, "SELECT sku, sum(units_sold), sum(orders) FROM "+db+".sales_per_sku_minute GROUP BY sku ORDER BY sku")
	if err != nil {
		return err
	}
	defer r.Close()
	for r.Next() {
		var sku string
		var units int64
		var orders uint64
		if err := r.Scan(&sku, &units, &orders); err != nil {
			return err
		}
		fmt.Fprintf(out, "  %-8s %5d units in %4d orders\n", sku, units, orders)
	}
	return r.Err()
}
