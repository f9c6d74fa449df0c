// Package demo is `shopstream demo`: a burst of signed webhooks, with
// provider retries, forged signatures and cancellations, sent to a pipeline
// running in a namespace of its own; then it waits until every movement is
// in ClickHouse and prints Redis beside ClickHouse, SKU by SKU.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/shopstream/shopstream/ingest/providers/providertest"
	"github.com/shopstream/shopstream/internal/conf"
	"github.com/shopstream/shopstream/schemas/avro"
	"github.com/shopstream/shopstream/stock"
)

// Config is the demo's own settings.
type Config struct {
	// Orders is how many paid orders the burst holds. Default 300.
	Orders int
	// Concurrency is how many webhooks are in flight at once. Default 16.
	Concurrency int
	// SettleTimeout bounds the wait for the pipeline to settle. Default 2m.
	SettleTimeout time.Duration
}

func (c *Config) setDefaults() {
	if c.Orders == 0 {
		c.Orders = 300
	}
	if c.Concurrency == 0 {
		c.Concurrency = 16
	}
	if c.SettleTimeout == 0 {
		c.SettleTimeout = 2 * time.Minute
	}
}

// RegisterFlags registers -orders, -concurrency and -settle-timeout.
func (c *Config) RegisterFlags(fs *conf.FlagSet) {
	fs.Int(&c.Orders, "orders", 300, "paid orders in the burst")
	fs.Int(&c.Concurrency, "concurrency", 16, "webhooks in flight at once")
	fs.Duration(&c.SettleTimeout, "settle-timeout", 2*time.Minute, "how long to wait for the pipeline to settle")
}

// Pipeline is a running pipeline in the demo's own namespace.
type Pipeline struct {
	// RunID names the namespace; delivery and order ids carry it.
	RunID string
	// URL is where Standard Webhooks deliveries go.
	URL string
	// Key signs them (the secret's bytes).
	Key []byte
	// Seed produces stock adjustments to the delta log.
	Seed func(context.Context, ...avro.InventoryDelta) error
	// Stock reads Redis.
	Stock *stock.Store
	// ClickHouse and DB are where the movements land.
	ClickHouse driver.Conn
	DB         string
	// Stopped receives the pipeline's error if it stops early.
	Stopped <-chan error
}

// Stock is what the demo starts with; CAP is short on purpose so that some
// orders are refused rather than oversold.
var Stock = map[string]int64{"TEE": 400, "HOODIE": 300, "MUG": 300, "CAP": 20}

// webhook is one delivery the demo sends, as a provider would.
type webhook struct {
	id, body string
	forged   bool
}

// Run seeds the stock, sends the burst to p, waits until every delta has
// landed in ClickHouse, and prints what landed. It fails when Redis and
// ClickHouse disagree.
func Run(ctx context.Context, cfg Config, p Pipeline, out io.Writer) error {
	cfg.setDefaults()
	var seeds []avro.InventoryDelta
	for sku, qty := range Stock {
		seeds = append(seeds, avro.InventoryDelta{DeltaID: "adjust:seed-" + sku, SKU: sku, Kind: avro.DeltaAdjustment,
			Quantity: qty, OccurredAt: time.Now().UTC().Truncate(time.Millisecond)})
	}
	if err := p.Seed(ctx, seeds...); err != nil {
		return fmt.Errorf("seed stock: %w", err)
	}
	paid, cancels, forged := burst(p.RunID, cfg.Orders)
	t := newTally()
	signer := providertest.StandardWebhooks{Key: p.Key}
	start := time.Now()
	sendAll(ctx, p.URL, signer, paid, cfg.Concurrency, t)
	sendAll(ctx, p.URL, signer, forged, cfg.Concurrency, t)
	// Providers retry: the same deliveries again, which must change nothing.
	sendAll(ctx, p.URL, signer, paid[:len(paid)/10], cfg.Concurrency, t)
	sendAll(ctx, p.URL, signer, cancels, cfg.Concurrency, t)
	elapsed := time.Since(start)

	// Every accepted paid order sells its lines and every accepted
	// cancellation restocks them (applied or refused): that many distinct
	// movements must land, plus the seeds.
	want := uint64(len(seeds)) + t.lines
	deadline := time.Now().Add(cfg.SettleTimeout)
	var got uint64
	for {
		if err := p.ClickHouse.QueryRow(ctx, "SELECT count() FROM "+p.DB+".inventory_movements_final").Scan(&got); err != nil {
			return err
		}
		if got >= want {
			break
		}
		select {
		case err := <-p.Stopped:
			return fmt.Errorf("pipeline stopped: %w", err)
		case <-time.After(300 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v only %d of %d movements reached ClickHouse", cfg.SettleTimeout, got, want)
		}
	}

	fmt.Fprintf(out, "webhooks: %d sent in %v\n", t.total(), elapsed.Round(time.Millisecond))
	for _, k := range t.keys() {
		fmt.Fprintf(out, "  %-28s %d\n", k, t.counts[k])
	}
	ok, err := printInventory(ctx, out, p.ClickHouse, p.DB, p.Stock)
	if err != nil {
		return err
	}
	if err := printClickHouse(ctx, out, p.ClickHouse, p.DB); err != nil {
		return err
	}
	if !ok {
		return errors.New("Redis and ClickHouse disagree; see above")
	}
	fmt.Fprintf(out, "\nRedis and ClickHouse agree for every SKU. Query it yourself:\n  clickhouse-client -d %s -q 'SELECT * FROM sales_per_sku_minute'\n", p.DB)
	return nil
}

// burst builds the deliveries: paid orders of one to three lines,
// cancellations of every eleventh, and deliveries with forged signatures.
func burst(runID string, orders int) (paid, cancels, forged []webhook) {
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
func sendAll(ctx context.Context, url string, signer providertest.StandardWebhooks, hooks []webhook, concurrency int, t *tally) {
	work := make(chan webhook)
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 30 * time.Second}
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for h := range work {
				s := signer
				if h.forged {
					s.Key = []byte("not the secret")
				}
				a, err := providertest.Post(ctx, client, url, s, providertest.Delivery{ID: h.id, Body: []byte(h.body)})
				outcome := a.Outcome()
				if err != nil && a.Code == 0 {
					outcome = "transport error"
				}
				lines := 0
				if a.Code == 200 && outcome == "accepted" {
					lines = strings.Count(h.body, `"sku"`)
				}
				t.add(fmt.Sprintf("%d %s", a.Code, outcome), lines)
			}
		}()
	}
	for _, h := range hooks {
		work <- h
	}
	close(work)
	wg.Wait()
}

// printInventory prints each SKU's stock from Redis beside what ClickHouse's
// applied movements add up to, and reports whether they agree everywhere
// (invariants 2 and 3 of DESIGN.md).
func printInventory(ctx context.Context, out io.Writer, conn driver.Conn, db string, store *stock.Store) (bool, error) {
	fmt.Fprintf(out, "\ninventory (Redis stock beside ClickHouse's applied movements):\n")
	fmt.Fprintf(out, "  %-8s %8s %8s %8s %10s %10s %12s  %s\n", "sku", "initial", "sold", "refused", "restocked", "redis", "clickhouse", "ledger")
	ok := true
	skus := make([]string, 0, len(Stock))
	for sku := range Stock {
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
			sku, Stock[sku], sold, refused, restocked, stock, applied, len(ledger), mark)
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
