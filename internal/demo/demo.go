// Package demo is `shopstream demo`: a burst of signed webhooks from every
// provider (Standard Webhooks, Shopify, Webflow, and Shopify orders that
// Stripe's payments make sell), with provider retries, forged signatures
// and cancellations, sent to a pipeline running in a namespace of its own;
// then it waits until every movement is in ClickHouse and prints the
// answers per provider and Redis beside ClickHouse, SKU by SKU.
package demo

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/shopstream/shopstream/ingest/providers/providertest"
	"github.com/shopstream/shopstream/internal/conf"
	"github.com/shopstream/shopstream/schemas/avro"
	chsink "github.com/shopstream/shopstream/sinks/clickhouse"
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
	// URL is where webhooks go: URL/<provider>.
	URL string
	// Secrets are the pipeline's, by provider.
	Secrets map[string]string
	// Seed produces stock adjustments to the delta log.
	Seed func(context.Context, ...avro.InventoryDelta) error
	// Stock reads Redis.
	Stock *stock.Store
	// ClickHouse and DB are where the movements land.
	ClickHouse driver.Conn
	DB         string
	// Catalog maps the storefronts' items to SKUs.
	Catalog *stock.Catalog
	// Snapshots reads the snapshot topic until it holds want snapshots.
	Snapshots func(ctx context.Context, want int) ([]avro.StockSnapshot, error)
	// Stopped receives the pipeline's error if it stops early.
	Stopped <-chan error
}

// Stock is what the demo starts with; CAP is short on purpose so that some
// orders are refused rather than oversold.
var Stock = map[string]int64{"TEE": 400, "HOODIE": 300, "MUG": 300, "CAP": 20}

// webhook is one delivery the demo sends, as a provider would: lines is
// how many movements it causes once accepted.
type webhook struct {
	provider, id string
	body         []byte
	lines        int
	forged       bool
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
	if err := p.Catalog.Put(ctx, catalog()); err != nil {
		return fmt.Errorf("catalog: %w", err)
	}
	// Each provider signs as it does, with the pipeline's secret, and its
	// forgeries the same way under a secret the pipeline does not have.
	signers, forged := map[string]providertest.Signer{}, map[string]providertest.Signer{}
	for name, secret := range p.Secrets {
		var err error
		if signers[name], err = providertest.SignerFor(name, secret); err != nil {
			return err
		}
		if forged[name], err = providertest.SignerFor(name, "whsec_"+base64.StdEncoding.EncodeToString([]byte("not the secret"))); err != nil {
			return err
		}
	}
	orders, paid, cancels, forgeries := burst(p.RunID, cfg.Orders)
	t := newTally()
	var elapsed time.Duration
	send := func(hooks []webhook) {
		start := time.Now()
		sendAll(ctx, p.URL, signers, forged, hooks, cfg.Concurrency, t)
		elapsed += time.Since(start)
	}
	// A storefront's unpaid orders first; the gateway's payments after.
	send(orders)
	send(paid)
	send(forgeries)
	// Providers retry: the same deliveries again, which must change nothing.
	send(paid[:len(paid)/10])
	// Every accepted paid order sells its lines (applied or refused): that
	// many distinct movements land, plus the seeds. The cancellations come
	// once they have, as they do in a shop: a cancellation that overtook
	// its payment (their receipts sit in different partitions of
	// webhooks.raw) would find the order cancelled before it sold, and
	// neither sell nor restock it, which leaves the same stock but fewer
	// movements than counted here.
	deadline := time.Now().Add(cfg.SettleTimeout)
	if err := settle(ctx, p, uint64(len(seeds))+t.lines, deadline); err != nil {
		return err
	}
	send(cancels)
	// Every accepted cancellation restocks what its order sold.
	if err := settle(ctx, p, uint64(len(seeds))+t.lines, deadline); err != nil {
		return err
	}

	fmt.Fprintf(out, "webhooks: %d sent in %v\n", t.total(), elapsed.Round(time.Millisecond))
	for _, k := range t.keys() {
		fmt.Fprintf(out, "  %-40s %d\n", k, t.counts[k])
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
	if err := reportStock(ctx, out, p, signers, cfg.Concurrency); err != nil {
		return err
	}
	// Every request but the inventory webhooks is in the tally; those are
	// two a SKU.
	if err := printAnalysts(ctx, out, p, t.total()+2*len(Stock), deadline); err != nil {
		return err
	}
	fmt.Fprintf(out, "\nRedis and ClickHouse agree for every SKU. Query it yourself:\n  clickhouse-client -d %s -q 'SELECT * FROM sales_per_sku_minute'\n", p.DB)
	return nil
}

// settle waits until want distinct movements are in ClickHouse.
func settle(ctx context.Context, p Pipeline, want uint64, deadline time.Time) error {
	return await(ctx, p, "SELECT count() FROM "+p.DB+".inventory_movements_final", want, "movements", deadline)
}

// await polls count, a query of one UInt64, until it reaches want, the
// pipeline stops, or deadline passes; what names what it counts.
func await(ctx context.Context, p Pipeline, count string, want uint64, what string, deadline time.Time) error {
	var got uint64
	for {
		if err := p.ClickHouse.QueryRow(ctx, count).Scan(&got); err != nil {
			return err
		}
		if got >= want {
			return nil
		}
		select {
		case err := <-p.Stopped:
			return fmt.Errorf("pipeline stopped: %w", err)
		case <-time.After(300 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after the settle timeout only %d of %d %s reached ClickHouse", got, want, what)
		}
	}
}

// catalog is the storefronts' items of the demo's SKUs: Shopify inventory
// items 9001, 9002, ..., and Webflow SKU items wf-<sku>.
func catalog() []stock.Item {
	var items []stock.Item
	for i, sku := range skuNames() {
		items = append(items, stock.Item{Source: "shopify", ItemID: fmt.Sprint(shopifyItem(i)), SKU: sku},
			stock.Item{Source: "webflow", ItemID: "wf-" + sku, SKU: sku})
	}
	return items
}

func skuNames() []string {
	skus := make([]string, 0, len(Stock))
	for sku := range Stock {
		skus = append(skus, sku)
	}
	sort.Strings(skus)
	return skus
}

func shopifyItem(i int) int64 { return 9001 + int64(i) }

// reportStock has Shopify and Webflow report each SKU's stock as it now
// stands, as their inventory webhooks do, and prints the snapshots that
// reached the snapshot topic, named by SKU through the catalog.
func reportStock(ctx context.Context, out io.Writer, p Pipeline, signers map[string]providertest.Signer, concurrency int) error {
	var hooks []webhook
	now := time.Now().UTC()
	for i, sku := range skuNames() {
		n, err := p.Stock.Stock(ctx, sku)
		if err != nil {
			return err
		}
		l := providertest.Level{ShopifyItem: shopifyItem(i), WebflowItem: "wf-" + sku, Available: n, At: now}
		hooks = append(hooks, webhook{provider: "shopify", id: fmt.Sprintf("shopify_%s_level_%s", p.RunID, sku), body: l.Shopify()},
			webhook{provider: "webflow", body: l.Webflow()})
	}
	t := newTally()
	sendAll(ctx, p.URL, signers, nil, hooks, concurrency, t)
	fmt.Fprintf(out, "\nstorefronts report their stock (inventory webhooks): %d sent\n", t.total())
	for _, k := range t.keys() {
		fmt.Fprintf(out, "  %-40s %d\n", k, t.counts[k])
	}
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	snaps, err := p.Snapshots(rctx, len(hooks))
	if err != nil {
		return fmt.Errorf("snapshots: %w", err)
	}
	fmt.Fprintf(out, "\ninventory.snapshots (key: SKU, from the catalog):\n")
	sort.Slice(snaps, func(i, j int) bool { return snaps[i].SKU+snaps[i].Source < snaps[j].SKU+snaps[j].Source })
	for _, s := range snaps {
		fmt.Fprintf(out, "  %-8s %-8s item %-26s available %d\n", s.SKU, s.Source, s.ItemID, s.Available)
	}
	return nil
}

// burst builds the deliveries: paid orders of one to three lines, each
// from one provider in turn, cancellations or refunds of every eleventh,
// and deliveries with forged signatures. A fourth of the orders are
// Shopify orders placed unpaid (orders), which Stripe's payment makes sell.
func burst(runID string, n int) (orders, paid, cancels, forged []webhook) {
	rng := rand.New(rand.NewPCG(7, 11))
	skus := []string{"TEE", "HOODIE", "MUG", "CAP"}
	now := time.Now().UTC()
	for i := range n {
		var lines []providertest.Line
		for l := range 1 + rng.IntN(3) {
			lines = append(lines, providertest.Line{ID: i*10 + l + 1, SKU: skus[(i+l)%len(skus)], Qty: 1 + rng.IntN(2), Price: 1500 + 500*l})
		}
		o := providertest.Order{ID: fmt.Sprintf("%s-%04d", runID, i), ShopifyID: int64(i + 1), Lines: lines, At: now}
		var pay, cancel webhook
		switch i % 4 {
		case 0:
			pay = webhook{provider: "standardwebhooks", id: fmt.Sprintf("msg_%s_%04d_paid", runID, i), body: o.StandardWebhooks("order.paid", now)}
			cancel = webhook{provider: "standardwebhooks", id: fmt.Sprintf("msg_%s_%04d_cancel", runID, i), body: o.StandardWebhooks("order.cancelled", now.Add(time.Second))}
		case 1:
			pay = webhook{provider: "shopify", id: fmt.Sprintf("shopify_%s_%04d_paid", runID, i), body: o.Shopify("paid", now, false)}
			cancel = webhook{provider: "shopify", id: fmt.Sprintf("shopify_%s_%04d_cancel", runID, i), body: o.Shopify("paid", now.Add(time.Second), true)}
		case 2:
			pay = webhook{provider: "webflow", body: o.Webflow("ecomm_new_order", "unfulfilled", now)}
			cancel = webhook{provider: "webflow", body: o.Webflow("ecomm_order_changed", "refunded", now.Add(time.Second))}
		case 3:
			orders = append(orders, webhook{provider: "shopify", id: fmt.Sprintf("shopify_%s_%04d_created", runID, i), body: o.Shopify("pending", now, false)})
			pay = webhook{provider: "stripe", body: o.Stripe("payment_intent.succeeded", now)}
			cancel = webhook{provider: "stripe", body: o.Stripe("charge.refunded", now.Add(time.Second))}
		}
		pay.lines, cancel.lines = len(lines), len(lines)
		paid = append(paid, pay)
		if i%11 == 0 {
			cancels = append(cancels, cancel)
		}
		// 19 and 4 are coprime: every provider gets its forgeries.
		if i%19 == 0 {
			f := pay
			f.id, f.forged = f.id+"_forged", true
			forged = append(forged, f)
		}
	}
	return orders, paid, cancels, forged
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

// sendAll posts the webhooks, concurrency at a time, each to its provider
// signed as that provider signs (a forged one under another secret), and
// counts the answers per provider. A delivery answered 2xx "accepted" adds
// its lines to the movements expected downstream.
func sendAll(ctx context.Context, url string, signers, forged map[string]providertest.Signer, hooks []webhook, concurrency int, t *tally) {
	work := make(chan webhook)
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 30 * time.Second}
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for h := range work {
				s := signers[h.provider]
				if h.forged {
					s = forged[h.provider]
				}
				a, err := providertest.Post(ctx, client, url+"/"+h.provider, s, providertest.Delivery{ID: h.id, Body: h.body})
				outcome := a.Outcome()
				if err != nil && a.Code == 0 {
					outcome = "transport error"
				}
				lines := 0
				if a.Code == 200 && outcome == "accepted" {
					lines = h.lines
				}
				t.add(fmt.Sprintf("%-16s %d %s", h.provider, a.Code, outcome), lines)
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
	fmt.Fprintf(out, "  %-8s %8s %8s %8s %10s %10s %12s  %s\n", "sku", "initial", "sold", "refused", "returned", "redis", "clickhouse", "ledger")
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
		// A commit ships what a sale reserved: it moves units out of the
		// shop, not out of what can be sold, which is what Redis's stock
		// counts.
		var applied, sold, restocked int64
		var refused, appliedRows uint64
		err = conn.QueryRow(ctx, `SELECT
			sumIf(quantity, status = 'APPLIED' AND kind != 'COMMIT'),
			-sumIf(quantity, status = 'APPLIED' AND kind = 'SALE'),
			countIf(status = 'REFUSED' AND kind = 'SALE'),
			sumIf(quantity, status = 'APPLIED' AND kind IN ('RELEASE', 'RESTOCK')),
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
	return nil
}

// AnalystQueries are the questions the README's analysts' section answers,
// each a query of the views, as the demo prints them.
var AnalystQueries = []struct{ Title, Query string }{
	{"sales per SKU (sales_per_sku_minute, summed over the minutes)",
		"SELECT sku, sum(units_sold) AS units_sold, sum(orders) AS orders FROM sales_per_sku_minute GROUP BY sku ORDER BY sku"},
	{"sell-through per SKU", "SELECT * FROM sell_through_per_sku ORDER BY sku"},
	{"top SKUs", "SELECT * FROM top_skus LIMIT 3"},
	{"refused (would-have-oversold) orders per SKU",
		"SELECT sku, count() AS orders, sum(units) AS units, min(stock_then) AS stock_then FROM refused_orders GROUP BY sku ORDER BY sku"},
	{"webhooks and duplicates per provider", "SELECT * FROM webhooks_per_provider ORDER BY provider"},
	{"rejection reasons per provider", "SELECT * FROM rejections_per_provider ORDER BY provider, reason"},
	{"orders per provider: transitions and customers",
		"SELECT provider, countIf(transition = 'SALE') AS sold, countIf(transition IN ('RELEASE', 'RESTOCK')) AS returned, countIf(stale = 1) AS stale, uniqExact(customer_hash) AS customers FROM order_events FINAL GROUP BY provider ORDER BY provider"},
	{"dead letters by class", "SELECT * FROM dead_letters_per_class ORDER BY origin_topic, error_class"},
	{"latency from acknowledgement, ms (to applied in Redis; to a queryable row)", "SELECT * FROM latency_per_provider ORDER BY provider"},
	{"drift by SKU (shopstream reconcile writes it)", "SELECT * FROM drift_per_sku_minute ORDER BY sku, minute"},
}

// printAnalysts waits until the sink has the outcome of every one of the
// requests sent, then prints every analyst query's answer.
func printAnalysts(ctx context.Context, out io.Writer, p Pipeline, requests int, deadline time.Time) error {
	if err := await(ctx, p, "SELECT toUInt64(sum(requests)) FROM "+p.DB+".webhooks_per_provider", uint64(requests), "webhook outcomes", deadline); err != nil {
		return err
	}
	for _, q := range AnalystQueries {
		fmt.Fprintf(out, "\n%s:\n  %s\n", q.Title, q.Query)
		if err := printQuery(ctx, out, p.ClickHouse, strings.Replace(q.Query, "FROM ", "FROM "+p.DB+".", 1)); err != nil {
			return fmt.Errorf("%s: %w", q.Query, err)
		}
	}
	return nil
}

// printQuery prints query's answer as a table under its column names.
func printQuery(ctx context.Context, out io.Writer, conn driver.Conn, query string) error {
	rows, err := conn.Query(ctx, query)
	if err != nil {
		return err
	}
	cols := rows.Columns()
	answer, err := chsink.Strings(rows)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  %s\n", strings.Join(cols, "\t"))
	for _, row := range answer {
		fmt.Fprintf(tw, "  %s\n", strings.Join(row, "\t"))
	}
	if len(answer) == 0 {
		fmt.Fprintf(tw, "  (no rows)\n")
	}
	return tw.Flush()
}
