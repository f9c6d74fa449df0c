// Command latency measures the pipeline's end-to-end latency: from a
// webhook's acknowledgement (its 2xx) until its movement row can be read in
// ClickHouse. It sends signed Standard Webhooks "order.paid" deliveries,
// each a new order of one unit of a SKU of its own run that has no stock,
// so each becomes a refused sale (a movement row all the same), at a fixed
// open-loop rate to a running `shopstream run`, and polls
// inventory_movements for the new rows. It prints one line a script can
// read, e.g.
//
//	pipeline latency at 1000/s: p50 262 ms, p99 431 ms, max 512 ms (10000 of 10000 landed; polled every 25 ms, a latency is late by at most one poll period: p50 27 ms, max 61 ms; ack p99 9.1 ms)
//
// It relies on the HTTP API, the table and the sink's committed offsets
// (its group and topic named from SHOPSTREAM_PREFIX, as `run` names them),
// so it measures any build that names them so.
// Traffic goes to loopback only; it sends -n webhooks and waits at most
// -wait after the last answer, then stops. It exits 1 when a webhook was
// not acknowledged or an acknowledged one did not land.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/ingest/providers"
	"github.com/shopstream/shopstream/ingest/providers/providertest"
	"github.com/shopstream/shopstream/topology"
)

type config struct {
	url        string
	rate, n    int
	inFlight   int
	poll, wait time.Duration
	chAddr, db string
	secret     string
	brokers    []string
	prefix     string
}

func main() {
	var c config
	flag.StringVar(&c.url, "url", "http://127.0.0.1:18080/webhooks/standardwebhooks", "the Standard Webhooks endpoint of a running shopstream run; loopback only")
	flag.IntVar(&c.rate, "rate", 1000, "webhooks a second, open loop")
	flag.IntVar(&c.n, "n", 10000, "webhooks to send")
	flag.IntVar(&c.inFlight, "c", 512, "webhooks in flight at most")
	flag.DurationVar(&c.poll, "poll", 25*time.Millisecond, "pause between two queries of ClickHouse")
	flag.DurationVar(&c.wait, "wait", 30*time.Second, "longest wait for the rows after the last answer")
	flag.Parse()
	c.chAddr = env("SHOPSTREAM_CLICKHOUSE_ADDR", "127.0.0.1:9000")
	c.db = env("SHOPSTREAM_CLICKHOUSE_DB", "shopstream")
	c.brokers = strings.Split(env("SHOPSTREAM_KAFKA_BROKERS", "127.0.0.1:9092"), ",")
	c.prefix = os.Getenv("SHOPSTREAM_PREFIX")
	c.secret = env("SHOPSTREAM_STANDARDWEBHOOKS_SECRET", os.Getenv("SHOPSTREAM_WEBHOOK_SECRET"))
	line, err := run(context.Background(), c)
	if line != "" {
		fmt.Println(line)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "latency:", err)
		os.Exit(1)
	}
}

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func loopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// delivery is one webhook's timeline.
type delivery struct {
	acked, landed time.Time
	ok            bool
}

func run(ctx context.Context, c config) (string, error) {
	if !strings.HasPrefix(c.url, "http://") || !loopback(strings.SplitN(strings.TrimPrefix(c.url, "http://"), "/", 2)[0]) {
		return "", fmt.Errorf("-url %q: loopback http only", c.url)
	}
	if !loopback(c.chAddr) {
		return "", fmt.Errorf("ClickHouse at %q: loopback only", c.chAddr)
	}
	if c.rate <= 0 || c.n <= 0 || c.inFlight <= 0 || c.poll <= 0 {
		return "", errors.New("-rate, -n, -c and -poll must be positive")
	}
	secret, _, _ := strings.Cut(c.secret, ",")
	if secret == "" {
		return "", errors.New("set SHOPSTREAM_WEBHOOK_SECRET (or SHOPSTREAM_STANDARDWEBHOOKS_SECRET) to the ingest's secret")
	}
	key, err := providers.StandardWebhooksKey(secret)
	if err != nil {
		return "", fmt.Errorf("the Standard Webhooks secret: %w", err)
	}
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{c.chAddr}, DialTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second})
	if err != nil {
		return "", fmt.Errorf("clickhouse at %s: %w", c.chAddr, err)
	}
	defer conn.Close()
	kcl, err := kgo.NewClient(kgo.SeedBrokers(c.brokers...))
	if err != nil {
		return "", err
	}
	defer kcl.Close()
	adm := kadm.NewClient(kcl)
	if err := conn.Ping(ctx); err != nil {
		return "", fmt.Errorf("clickhouse at %s: %w", c.chAddr, err)
	}

	runID := time.Now().UnixNano() % 1e12
	// Eight SKUs spread the movements over partitions as a real catalogue
	// would; none has stock, so every sale is refused, which is a row too.
	skus := make([]string, 8)
	for k := range skus {
		skus[k] = fmt.Sprintf("LAT-%d-%d", runID, k)
	}
	orderID := func(i int) string { return fmt.Sprintf("lat-%d-%d", runID, i) }
	index := make(map[string]int, c.n)
	for i := range c.n {
		index[orderID(i)] = i
	}

	var mu sync.Mutex
	ds := make([]delivery, c.n)
	pollCtx, stopPolling := context.WithCancel(ctx)
	defer stopPolling()
	polled := make(chan pollResult, 1)
	go func() { polled <- pollLanded(pollCtx, conn, sinkCommits(adm, c.prefix), c, skus, index, &mu, ds) }()

	signer := providertest.StandardWebhooks{Key: key}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: c.inFlight, MaxConnsPerHost: c.inFlight}, Timeout: 15 * time.Second}
	var ackLatencies []time.Duration
	statuses := map[int]int{}
	slots := make(chan struct{}, c.inFlight)
	var wg sync.WaitGroup
	start := time.Now()
	interval := time.Second / time.Duration(c.rate)
	for i := range c.n {
		intended := start.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(intended))
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			now := time.Now()
			body := fmt.Sprintf(`{"type":"order.paid","timestamp":%q,"data":{"order_id":%q,"version":1,"currency":"EUR","line_items":[{"id":"1","sku":%q,"quantity":1,"unit_price_minor":1999}]}}`,
				now.UTC().Format(time.RFC3339Nano), orderID(i), skus[i%len(skus)])
			status := 0
			req, err := providertest.NewRequest(ctx, c.url, signer, providertest.Delivery{ID: fmt.Sprintf("msg_lat_%d_%d", runID, i), Body: []byte(body), At: now})
			if err == nil {
				resp, err := client.Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					status = resp.StatusCode
				}
			}
			acked := time.Now()
			mu.Lock()
			defer mu.Unlock()
			statuses[status]++
			if status/100 == 2 {
				ds[i].acked, ds[i].ok = acked, true
				ackLatencies = append(ackLatencies, acked.Sub(intended))
			}
		}()
	}
	wg.Wait()

	// Wait until every acknowledged delivery has landed, or -wait is over.
	deadline := time.Now().Add(c.wait)
	for time.Now().Before(deadline) {
		mu.Lock()
		missing := 0
		for _, d := range ds {
			if d.ok && d.landed.IsZero() {
				missing++
			}
		}
		mu.Unlock()
		if missing == 0 {
			break
		}
		time.Sleep(c.poll)
	}
	stopPolling()
	pr := <-polled

	mu.Lock()
	defer mu.Unlock()
	var latencies []time.Duration
	acked := 0
	for _, d := range ds {
		if !d.ok {
			continue
		}
		acked++
		if !d.landed.IsZero() {
			latencies = append(latencies, d.landed.Sub(d.acked))
		}
	}
	line := fmt.Sprintf("pipeline latency at %d/s: p50 %s ms, p99 %s ms, max %s ms (%d of %d landed; polled every %v, a latency is late by at most one poll period: p50 %s ms, max %s ms; ack p99 %s ms)",
		c.rate, msec(pct(latencies, 0.50)), msec(pct(latencies, 0.99)), msec(pct(latencies, 1)), len(latencies), acked,
		c.poll, msec(pct(pr.periods, 0.50)), msec(pct(pr.periods, 1)), msec(pct(ackLatencies, 0.99)))
	switch {
	case pr.err != nil:
		return line, fmt.Errorf("polling ClickHouse: %w", pr.err)
	case acked < c.n:
		return line, fmt.Errorf("%d of %d webhooks acknowledged; answers by status: %v", acked, c.n, statuses)
	case len(latencies) < acked:
		return line, fmt.Errorf("%d acknowledged webhooks not in %s.inventory_movements %v after the last answer", acked-len(latencies), c.db, c.wait)
	}
	return line, nil
}

type pollResult struct {
	// periods are the times between the starts of two queries: a row
	// that a query sees became visible at most one period earlier.
	periods []time.Duration
	err     error
}

// pollLanded queries inventory_movements for the run's rows until ctx is
// done, stamping each delivery with the start of the first query that saw
// its row. A query skips what the previous one was sure to see: the sink
// commits a partition's offset only after every row below it is inserted,
// so the rows below the offsets committed before a query began are visible
// to it. What is above is read again until then: the sink writes two
// batches at once, and a later batch's rows can be visible before an
// earlier one's, so the highest offset seen is no floor.
func pollLanded(ctx context.Context, conn driver.Conn, committed func(context.Context) (map[int32]int64, error), c config, skus []string, index map[string]int, mu *sync.Mutex, ds []delivery) pollResult {
	var res pollResult
	var last time.Time
	var floor map[int32]int64
	for ctx.Err() == nil {
		visible, err := committed(ctx)
		if err != nil {
			if ctx.Err() == nil {
				res.err = err
			}
			return res
		}
		q := fmt.Sprintf("SELECT kafka_partition, kafka_offset, order_id FROM %s.inventory_movements WHERE sku IN ('%s')",
			c.db, strings.Join(skus, "', '"))
		for p, off := range floor {
			q += fmt.Sprintf(" AND NOT (kafka_partition = %d AND kafka_offset < %d)", p, off)
		}
		floor = visible
		began := time.Now()
		if !last.IsZero() {
			res.periods = append(res.periods, began.Sub(last))
		}
		last = began
		rows, err := conn.Query(ctx, q)
		if err != nil {
			if ctx.Err() == nil {
				res.err = err
			}
			return res
		}
		mu.Lock()
		for rows.Next() {
			var (
				p     int32
				off   int64
				order string
			)
			if err := rows.Scan(&p, &off, &order); err != nil {
				res.err = err
				break
			}
			if i, ok := index[order]; ok && ds[i].landed.IsZero() {
				ds[i].landed = began
			}
		}
		mu.Unlock()
		rows.Close()
		if res.err == nil {
			res.err = rows.Err()
		}
		if res.err != nil {
			if ctx.Err() != nil {
				res.err = nil
			}
			return res
		}
		select {
		case <-ctx.Done():
		case <-time.After(c.poll):
		}
	}
	return res
}

// sinkCommits returns what the sink's group has committed on the
// movements topic, by partition, for the prefix a `shopstream run` was
// started with (SHOPSTREAM_PREFIX).
func sinkCommits(adm *kadm.Client, prefix string) func(context.Context) (map[int32]int64, error) {
	group, topic := topology.Group(prefix, "clickhouse"), topology.NamesFor(prefix).Movements
	return func(ctx context.Context) (map[int32]int64, error) {
		resp, err := adm.FetchOffsets(ctx, group)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			return nil, fmt.Errorf("the sink's committed offsets: %w", err)
		}
		floor := map[int32]int64{}
		for p, o := range resp[topic] {
			floor[p] = o.At
		}
		return floor, nil
	}
}

func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

func msec(d time.Duration) string {
	return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond))
}
