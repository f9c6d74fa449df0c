// Package e2e tests the whole pipeline: the real shopstream binary, started
// as an operator would, against the real Kafka, Redis and ClickHouse.
package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/ingest/providers/providertest"
	"github.com/shopstream/shopstream/internal/testenv"
	chsink "github.com/shopstream/shopstream/sinks/clickhouse"
	"github.com/shopstream/shopstream/stock"
	"github.com/shopstream/shopstream/topology"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "shopstream-e2e")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "shopstream")
	build := exec.Command("go", "build", "-o", binary, "../cmd/shopstream")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building shopstream:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var secretKey = []byte("e2e-secret-that-must-never-be-logged")

// pipeline is one namespace on the real stack and the binary running in it.
type pipeline struct {
	t       *testing.T
	prefix  string
	db      string
	url     string
	env     []string
	names   topology.Names
	brokers []string
	rdb     *redis.Client
	ch      driver.Conn
	adm     *kadm.Client
	store   *stock.Store

	mu     sync.Mutex
	cmd    *exec.Cmd
	logs   *lockedBuffer
	exited chan struct{}
}

// lockedBuffer is the process's output: os/exec copies into it on a
// goroutine of its own while a test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// services are what a pipeline runs on: the shared stack unless a test
// brings a Redis or a broker of its own to break.
type services struct {
	rdb       *redis.Client
	redisAddr string
	brokers   []string
}

func newPipeline(t *testing.T) *pipeline {
	return newPipelineOn(t, services{})
}

func newPipelineOn(t *testing.T, svc services) *pipeline {
	if svc.rdb == nil {
		svc.rdb, svc.redisAddr = testenv.Redis(t), testenv.RedisAddr()
	}
	if svc.brokers == nil {
		svc.brokers = testenv.Brokers()
	}
	ns := testenv.Namespace(t)
	p := &pipeline{t: t, prefix: ns, db: "e2e_" + strings.TrimSuffix(ns, "_"), names: topology.NamesFor(ns), brokers: svc.brokers}
	p.adm = testenv.KafkaAt(t, svc.brokers)
	p.rdb = svc.rdb
	p.ch = testenv.ClickHouse(t, p.db)
	p.store = stock.NewStore(p.rdb, stock.StoreConfig{Prefix: ns})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p.url = "http://" + addr + "/webhooks/standardwebhooks"
	p.env = append(os.Environ(),
		"SHOPSTREAM_KAFKA_BROKERS="+strings.Join(svc.brokers, ","),
		"SHOPSTREAM_REDIS_ADDR="+svc.redisAddr,
		"SHOPSTREAM_CLICKHOUSE_ADDR="+testenv.ClickHouseAddr(),
		"SHOPSTREAM_CLICKHOUSE_DB="+p.db,
		"SHOPSTREAM_PREFIX="+ns,
		"SHOPSTREAM_LISTEN="+addr,
		"SHOPSTREAM_WEBHOOK_SECRET=whsec_"+base64.StdEncoding.EncodeToString(secretKey),
		"SHOPSTREAM_PARTITIONS=3",
		"SHOPSTREAM_REPLICATION=1",
		"SHOPSTREAM_INSTANCE=e2e",
	)
	p.shopstream("topics", "apply")
	p.shopstream("migrate")
	t.Cleanup(p.stop)
	return p
}

// shopstream runs one command of the binary to completion.
func (p *pipeline) shopstream(args ...string) string {
	p.t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = p.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		p.t.Fatalf("shopstream %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// start runs `shopstream run` and waits until ingest answers.
func (p *pipeline) start() {
	p.t.Helper()
	p.mu.Lock()
	p.logs = &lockedBuffer{}
	p.cmd = exec.Command(binary, "run")
	p.cmd.Env = p.env
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		p.mu.Unlock()
		p.t.Fatal(err)
	}
	p.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(p.cmd, p.exited)
	p.mu.Unlock()
	health := strings.Replace(p.url, "/webhooks/standardwebhooks", "/healthz", 1)
	testenv.Eventually(p.t, 30*time.Second, func() error {
		select {
		case <-p.exited:
			p.t.Fatalf("shopstream run exited:\n%s", p.logs)
		default:
		}
		resp, err := http.Get(health)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
}

func (p *pipeline) signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	p.cmd = nil
}

func (p *pipeline) stop() { p.signal(syscall.SIGTERM) }
func (p *pipeline) kill() { p.signal(syscall.SIGKILL) }

func (p *pipeline) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

type delivery struct {
	id, body string
	forged   bool
}

func order(id string, typ string, at time.Time, lines ...line) string {
	items := make([]map[string]any, len(lines))
	for i, l := range lines {
		items[i] = map[string]any{"id": fmt.Sprint(i + 1), "sku": l.sku, "quantity": l.qty}
	}
	b, _ := json.Marshal(map[string]any{"type": typ, "timestamp": at.UTC().Format(time.RFC3339Nano),
		"data": map[string]any{"order_id": id, "line_items": items}})
	return string(b)
}

type line struct {
	sku string
	qty int
}

// send posts one delivery and returns the status and the answer's status or
// error code; status 0 means the connection failed.
func (p *pipeline) send(d delivery) (int, string) {
	key := secretKey
	if d.forged {
		key = []byte("forged")
	}
	a, err := providertest.Post(context.Background(), &http.Client{Timeout: 20 * time.Second}, p.url,
		providertest.StandardWebhooks{Key: key}, providertest.Delivery{ID: d.id, Body: []byte(d.body)})
	if err != nil && a.Code == 0 {
		return 0, err.Error()
	}
	return a.Code, a.Outcome()
}

// paidOrders returns n deliveries, each a paid order of one unit of sku.
func paidOrders(sku string, n int) []delivery {
	now := time.Now()
	name := strings.ToLower(sku)
	out := make([]delivery, n)
	for i := range out {
		out[i] = delivery{id: fmt.Sprintf("msg_%s_%d", name, i), body: order(fmt.Sprintf("%s-%d", name, i), "order.paid", now, line{sku, 1})}
	}
	return out
}

// queuedBurst seeds sku with 1000 units, starts the pipeline and returns n
// paid orders of sku, queued for concurrent senders.
func (p *pipeline) queuedBurst(sku string, n int) <-chan delivery {
	p.t.Helper()
	p.shopstream("stock", "adjust", "-sku", sku, "-qty", "1000", "-id", "seed-"+sku)
	p.start()
	pending := make(chan delivery, n)
	for _, d := range paidOrders(sku, n) {
		pending <- d
	}
	close(pending)
	return pending
}

// sendInterrupted sends pending from eight senders, as a provider's
// concurrent deliveries come, and calls interrupt once, when the at-th
// delivery has been acknowledged, while the senders go on. It returns the
// delivery ids answered 2xx and the deliveries that were not, for the
// provider to retry.
func (p *pipeline) sendInterrupted(pending <-chan delivery, at int, interrupt func()) (map[string]bool, []delivery) {
	var (
		mu    sync.Mutex
		acked = map[string]bool{}
		retry []delivery
		once  sync.Once
		wg    sync.WaitGroup
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range pending {
				s, _ := p.send(d)
				mu.Lock()
				if s == 200 {
					acked[d.id] = true
				} else {
					retry = append(retry, d)
				}
				now := len(acked) == at
				mu.Unlock()
				if now {
					once.Do(interrupt)
				}
			}
		}()
	}
	wg.Wait()
	return acked, retry
}

// burstBeforeCrash seeds sku with 1000 units, starts the pipeline and gets
// the first third of n paid orders of sku accepted: the state a crash test
// breaks. It returns all n deliveries.
func (p *pipeline) burstBeforeCrash(sku string, n int) []delivery {
	p.t.Helper()
	p.shopstream("stock", "adjust", "-sku", sku, "-qty", "1000", "-id", "seed-"+sku)
	p.start()
	deliveries := paidOrders(sku, n)
	for _, d := range deliveries[:n/3] {
		p.mustSend(d, 200, "accepted")
	}
	return deliveries
}

// retryUntilAccepted resends each delivery, as a provider does, until every
// one has been answered 2xx.
func (p *pipeline) retryUntilAccepted(retry []delivery, timeout time.Duration) {
	p.t.Helper()
	testenv.Eventually(p.t, timeout, func() error {
		var still []delivery
		for _, d := range retry {
			if s, _ := p.send(d); s != 200 {
				still = append(still, d)
			}
		}
		retry = still
		if len(retry) > 0 {
			return fmt.Errorf("%d deliveries not yet acknowledged", len(retry))
		}
		return nil
	})
}

func (p *pipeline) mustSend(d delivery, status int, answer string) {
	p.t.Helper()
	if s, a := p.send(d); s != status || a != answer {
		p.t.Fatalf("delivery %s: %d %s, want %d %s", d.id, s, a, status, answer)
	}
}

func (p *pipeline) count(query string) uint64 {
	p.t.Helper()
	var n uint64
	if err := p.ch.QueryRow(context.Background(), strings.ReplaceAll(query, "$db", p.db)).Scan(&n); err != nil {
		p.t.Fatal(err)
	}
	return n
}

// settle waits until ClickHouse holds want deduplicated movements and every
// group has consumed everything.
func (p *pipeline) settle(want uint64) {
	p.t.Helper()
	testenv.Eventually(p.t, 90*time.Second, func() error {
		if got := p.count("SELECT count() FROM $db.inventory_movements_final"); got != want {
			return fmt.Errorf("%d movements in ClickHouse, want %d", got, want)
		}
		return p.noLag()
	})
}

func (p *pipeline) groups() []string {
	return []string{p.prefix + "shopstream-deliveries", p.prefix + "shopstream-orders", p.prefix + "shopstream-inventory", p.prefix + "shopstream-clickhouse"}
}

// resetGroupsToEarliest commits every group's offsets back to the start of
// what its topics still hold, as an operator's replay does.
func (p *pipeline) resetGroupsToEarliest() {
	p.t.Helper()
	ctx := context.Background()
	for _, g := range p.groups() {
		offsets, err := p.adm.FetchOffsets(ctx, g)
		if err != nil {
			p.t.Fatal(err)
		}
		starts, err := p.adm.ListStartOffsets(ctx, offsets.Offsets().TopicsSet().Topics()...)
		if err != nil {
			p.t.Fatal(err)
		}
		resp, err := p.adm.CommitOffsets(ctx, g, starts.Offsets())
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			p.t.Fatalf("reset %s: %v", g, err)
		}
	}
}

// noLag reports whether every group has consumed every committed record.
// Offset lag alone cannot say: on a transactional topic the log ends with a
// commit marker that a consumer never commits past, so a group that is done
// still lags by one. What is left past the committed offset is read instead.
func (p *pipeline) noLag() error {
	ctx := context.Background()
	lags, err := p.adm.Lag(ctx, p.groups()...)
	if err != nil {
		return err
	}
	behind := map[string]map[int32]kgo.Offset{}
	for g, l := range lags {
		if l.Error() != nil {
			return fmt.Errorf("%s: %w", g, l.Error())
		}
		for _, ml := range l.Lag.Sorted() {
			if ml.Lag <= 0 {
				continue
			}
			if behind[ml.Topic] == nil {
				behind[ml.Topic] = map[int32]kgo.Offset{}
			}
			at := kgo.NewOffset().AtStart()
			if ml.Commit.At >= 0 {
				at = kgo.NewOffset().At(ml.Commit.At)
			}
			behind[ml.Topic][ml.Partition] = at
		}
	}
	if len(behind) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.brokers...), kgo.ConsumePartitions(behind),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		return err
	}
	defer cl.Close()
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if n := cl.PollFetches(pctx).NumRecords(); n > 0 {
		return fmt.Errorf("records past a committed offset are not consumed yet (%d seen)", n)
	}
	return nil
}

func (p *pipeline) stock(sku string) int64 {
	p.t.Helper()
	v, err := p.store.Stock(context.Background(), sku)
	if err != nil {
		p.t.Fatal(err)
	}
	return v
}

// analystViews returns every query's rows, a line each, once every query
// with a non-empty want returns exactly it (waiting for the sink to settle).
func (p *pipeline) analystViews(want map[string]string) map[string]string {
	p.t.Helper()
	got := map[string]string{}
	queries := slices.Collect(maps.Keys(want))
	testenv.Eventually(p.t, time.Minute, func() error {
		for _, q := range queries {
			rows, err := p.ch.Query(context.Background(), strings.ReplaceAll(q, "$db", p.db))
			if err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
			answer, err := chsink.Strings(rows)
			if err != nil {
				return err
			}
			lines := make([]string, len(answer))
			for i, row := range answer {
				lines[i] = strings.Join(row, " ")
			}
			got[q] = strings.Join(lines, "\n")
			if w := want[q]; w != "" && got[q] != w {
				return fmt.Errorf("%s:\n got %q\nwant %q", q, got[q], w)
			}
		}
		return nil
	})
	return got
}

// produceJunk writes a record no stage wrote to topic.
func (p *pipeline) produceJunk(topic string) {
	p.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.brokers...))
	if err != nil {
		p.t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Key: []byte("junk"), Value: []byte("not avro")}).FirstErr(); err != nil {
		p.t.Fatal(err)
	}
}

// topicRecords counts the committed records of a topic.
func (p *pipeline) topicRecords(topic string, want int) int {
	return len(testenv.ReadTopic(p.t, topic, want))
}

// The acceptance test: N signed webhooks, some duplicated, some
// forged, give exact Redis stock and exact ClickHouse rows; then a replay
// from the earliest offsets changes none of it.
func TestSignedWebhooksLandExactlyAndReplayChangesNothing(t *testing.T) {
	p := newPipeline(t)
	p.shopstream("stock", "adjust", "-sku", "A", "-qty", "50", "-id", "seed-A")
	p.shopstream("stock", "adjust", "-sku", "B", "-qty", "50", "-id", "seed-B")
	p.shopstream("stock", "adjust", "-sku", "C", "-qty", "3", "-id", "seed-C")
	// The same adjustment id again changes nothing.
	p.shopstream("stock", "adjust", "-sku", "C", "-qty", "3", "-id", "seed-C")
	p.start()

	now := time.Now()
	var paid []delivery
	for i := range 40 {
		lines := []line{{"A", 1}}
		if i%2 == 0 {
			lines = append(lines, line{"B", 2})
		}
		if i < 4 {
			lines = append(lines, line{"C", 1})
		}
		paid = append(paid, delivery{id: fmt.Sprintf("msg_paid_%d", i), body: order(fmt.Sprintf("o-%d", i), "order.paid", now, lines...)})
	}
	for _, d := range paid {
		p.mustSend(d, 200, "accepted")
	}
	for _, d := range paid[:10] {
		p.mustSend(d, 200, "duplicate")
	}
	for i := range 5 {
		p.mustSend(delivery{id: fmt.Sprintf("msg_forged_%d", i), body: order(fmt.Sprintf("x-%d", i), "order.paid", now, line{"A", 5}), forged: true},
			401, "invalid_signature")
	}
	// A signed but malformed body changes nothing either.
	p.mustSend(delivery{id: "msg_bad_json", body: `{"type":"order.paid","data":`}, 400, "malformed_payload")
	// Order 5 (one A) is cancelled after it was paid: its A comes back.
	p.mustSend(delivery{id: "msg_cancel_5", body: order("o-5", "order.cancelled", now.Add(time.Second), line{"A", 1})}, 200, "accepted")
	// A record on orders that no stage wrote is dead-lettered, and counted.
	p.produceJunk(p.names.Orders)

	// 3 seeds + 40 A + 20 B + 4 C + 1 restock = 68 movements; the fourth C
	// is refused (stock 3), the other 67 are applied.
	p.settle(68)
	check := func(when string) {
		t.Helper()
		for sku, want := range map[string]int64{"A": 50 - 40 + 1, "B": 50 - 2*20, "C": 0} {
			if got := p.stock(sku); got != want {
				t.Fatalf("%s: stock of %s is %d, want %d", when, sku, got, want)
			}
		}
		if n := p.count("SELECT count() FROM $db.inventory_movements_final WHERE status = 'APPLIED'"); n != 67 {
			t.Fatalf("%s: %d applied movements, want 67", when, n)
		}
		if n := p.count("SELECT count() FROM $db.inventory_movements_final WHERE status = 'REFUSED' AND sku = 'C'"); n != 1 {
			t.Fatalf("%s: %d refused C, want 1", when, n)
		}
		var ledger int
		for _, sku := range []string{"A", "B", "C"} {
			l, err := p.store.Ledger(context.Background(), sku)
			if err != nil {
				t.Fatal(err)
			}
			ledger += len(l)
		}
		if ledger != 67 {
			t.Fatalf("%s: the Redis ledger has %d entries, ClickHouse 67 applied movements", when, ledger)
		}
		if n := p.count("SELECT toUInt64(sum(units_sold)) FROM $db.sales_per_sku_minute WHERE sku = 'A'"); n != 40 {
			t.Fatalf("%s: sales_per_sku_minute says %d A sold, want 40", when, n)
		}
	}
	check("first run")
	// The analysts' views, exactly: 41 accepted deliveries, 10 duplicates
	// the edge answered, 6 rejections; 41 order events with 65 lines; the
	// sales of the check above; the junk record's dead letter.
	queries := map[string]string{
		"SELECT provider, requests, accepted, duplicates, rejected, duplicate_rate FROM $db.webhooks_per_provider":               "standardwebhooks 57 41 10 6 0.1961",
		"SELECT provider, reason, status, rejected FROM $db.rejections_per_provider ORDER BY reason":                             "standardwebhooks invalid_signature 401 5\nstandardwebhooks malformed_payload 400 1",
		"SELECT transition, count(), sum(lines), sum(units) FROM $db.order_events FINAL GROUP BY transition ORDER BY transition": "RELEASE 1 1 1\nSALE 40 64 84",
		"SELECT count(), sum(quantity) FROM $db.order_lines FINAL":                                                               "65 85",
		"SELECT sku, units_sold, orders FROM $db.top_skus":                                                                       "A 40 40\nB 40 20\nC 3 3",
		"SELECT sku, units_received, units_sold, units_returned, sell_through FROM $db.sell_through_per_sku ORDER BY sku":        "A 50 40 1 0.78\nB 50 40 0 0.8\nC 3 3 0 1",
		"SELECT sku, units, stock_then FROM $db.refused_orders":                                                                  "C 1 0",
		"SELECT origin_topic, error_class, dead_letters FROM $db.dead_letters_per_class":                                         p.names.Orders + " permanent 1",
		"SELECT provider, movements FROM $db.latency_per_provider":                                                               "standardwebhooks 65",
		"SELECT count() FROM $db.drift_per_sku_minute":                                                                           "0",
		// Not known before the run, but a replay must not move them.
		"SELECT applied_p50_ms, applied_p99_ms, queryable_p50_ms, queryable_p99_ms FROM $db.latency_per_provider": "",
	}
	views := p.analystViews(queries)
	// Every accepted delivery is in webhooks.raw once; duplicates and
	// rejections are not.
	if n := p.topicRecords(p.names.WebhooksRaw, 41); n != 41 {
		t.Fatalf("webhooks.raw has %d records, want 41", n)
	}
	// ... and in orders once, beside the junk record.
	if n := p.topicRecords(p.names.Orders, 42); n != 42 {
		t.Fatalf("orders has %d records, want 41 and the junk", n)
	}
	logs := p.output()
	if strings.Contains(logs, base64.StdEncoding.EncodeToString(secretKey)) || strings.Contains(logs, string(secretKey)) {
		t.Fatal("the webhook secret appears in the logs")
	}

	// Replay: stop, reset every group to the earliest offsets, start.
	p.stop()
	p.resetGroupsToEarliest()
	if err := p.noLag(); err == nil {
		t.Fatal("after the reset the groups should lag")
	}
	p.start()
	p.settle(68)
	check("after a replay from earliest")
	if again := p.analystViews(queries); !maps.Equal(again, views) {
		t.Fatalf("the analysts' views moved with the replay:\nbefore %v\nafter  %v", views, again)
	}
}

// A process killed with SIGKILL in the middle of a burst loses nothing that
// was acknowledged and applies nothing twice, once the provider retries what
// was not acknowledged.
func TestSIGKILLMidBurstLosesNothing(t *testing.T) {
	p := newPipeline(t)
	const n = 300
	acked, retry := p.sendInterrupted(p.queuedBurst("K", n), n/3, p.kill)
	t.Logf("before the kill %d acknowledged; %d to retry", len(acked), len(retry))
	if len(retry) == 0 {
		t.Fatal("the kill came too late to test anything")
	}

	p.start()
	// The provider retries until it gets a 2xx. A delivery whose answer the
	// kill swallowed may be held by its claim (409) until the claim expires.
	p.retryUntilAccepted(retry, 90*time.Second)
	p.settle(n + 1)
	if got := p.stock("K"); got != 1000-n {
		t.Fatalf("stock %d, want %d", got, 1000-n)
	}
	if a := p.count("SELECT count() FROM $db.inventory_movements_final WHERE status = 'APPLIED'"); a != n+1 {
		t.Fatalf("%d applied movements, want %d", a, n+1)
	}
	ledger, err := p.store.Ledger(context.Background(), "K")
	if err != nil || len(ledger) != n+1 {
		t.Fatalf("ledger has %d entries (%v), want %d", len(ledger), err, n+1)
	}
}

// A sink whose ClickHouse is gone waits for it; the webhook receiver in the
// same process goes on taking deliveries, and once ClickHouse is reachable
// again what was accepted lands.
func TestClickHouseMissingDoesNotStopIngest(t *testing.T) {
	p := newPipeline(t)
	p.shopstream("stock", "adjust", "-sku", "H", "-qty", "10", "-id", "seed-H")
	real := slices.Clone(p.env)
	p.env = append(p.env, "SHOPSTREAM_CLICKHOUSE_ADDR=127.0.0.1:1")
	p.start()
	d := delivery{id: "msg_noch", body: order("noch-1", "order.paid", time.Now(), line{"H", 1})}
	p.mustSend(d, 200, "accepted")
	testenv.Eventually(t, 30*time.Second, func() error {
		if !strings.Contains(p.output(), "clickhouse not reachable; retrying") {
			return fmt.Errorf("the sink has not said it is waiting for ClickHouse")
		}
		return nil
	})
	select {
	case <-p.exited:
		t.Fatalf("shopstream run ended without ClickHouse:\n%s", p.output())
	default:
	}
	p.stop()
	p.env = real
	p.start()
	p.settle(2)
}

// SIGTERM in the middle of a burst: shopstream stops taking webhooks,
// answers those it is writing once Kafka has them, and exits; every
// delivery it answered 2xx is in webhooks.raw, and once the provider has
// retried the rest on a new process every order is applied exactly once.
func TestSIGTERMUnderLoadKeepsEveryAcknowledgedDelivery(t *testing.T) {
	p := newPipeline(t)
	const n = 300
	// Not p.stop(): it waits for the exit, and the senders must go on
	// sending while shopstream shuts down.
	acked, retry := p.sendInterrupted(p.queuedBurst("T", n), n/3, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	})
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("shopstream did not exit within 30 s of SIGTERM")
	}
	p.mu.Lock()
	p.cmd = nil
	p.mu.Unlock()
	t.Logf("%d acknowledged before and during the shutdown; %d to retry", len(acked), len(retry))
	if len(retry) == 0 {
		t.Fatal("the SIGTERM came too late to test anything")
	}
	inRaw := map[string]bool{}
	for _, r := range testenv.ReadTopic(t, p.names.WebhooksRaw, len(acked)) {
		inRaw[string(r.Key)] = true
	}
	for id := range acked {
		if !inRaw[id] {
			t.Fatalf("%s was answered 2xx but is not in webhooks.raw", id)
		}
	}
	p.start()
	p.retryUntilAccepted(retry, 90*time.Second)
	p.settle(n + 1)
	if got := p.stock("T"); got != 1000-n {
		t.Fatalf("stock %d, want %d", got, 1000-n)
	}
}
