package e2e

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// twin is a second `shopstream run` of p's pipeline: the same topics,
// groups, Redis and ClickHouse, another instance name and address, so that
// every stage has two members in its group.
func (p *pipeline) twin(instance string) *pipeline {
	p.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		p.t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	q := &pipeline{t: p.t, prefix: p.prefix, db: p.db, names: p.names, brokers: p.brokers, rdb: p.rdb, ch: p.ch, adm: p.adm, store: p.store,
		url: "http://" + addr + "/webhooks/standardwebhooks"}
	for _, kv := range p.env {
		if !strings.HasPrefix(kv, "SHOPSTREAM_INSTANCE=") && !strings.HasPrefix(kv, "SHOPSTREAM_LISTEN=") {
			q.env = append(q.env, kv)
		}
	}
	q.env = append(q.env, "SHOPSTREAM_INSTANCE="+instance, "SHOPSTREAM_LISTEN="+addr)
	p.t.Cleanup(q.stop)
	return q
}

// The test: two instances of every stage in one group, each
// SIGKILLed in turn in the middle of a burst and restarted, Redis crashed
// and restarted from its AOF in the middle of another, then every group
// replayed from earliest; on hand, reserved and the ledger of each SKU come
// out exact, and so do ClickHouse's views.
func TestTwoInstancesKilledInTurnRedisRestartAndReplay(t *testing.T) {
	r := startPrivateRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.addr})
	t.Cleanup(func() { rdb.Close() })
	a := newPipelineOn(t, services{rdb: rdb, redisAddr: r.addr})
	a.env = append(a.env, "SHOPSTREAM_RECENT_DELIVERIES=1")
	b := a.twin("e2e-b")
	a.shopstream("stock", "adjust", "-sku", "T", "-qty", "1000", "-id", "seed-T")
	a.start()
	b.start()

	// Sixty orders of one T each: a fourth only paid (reserved), a fourth
	// paid and shipped (committed), a fourth paid and cancelled (released),
	// a fourth shipped and refunded (restocked).
	const n = 60
	now := time.Now()
	var paid, shipped, ended []delivery
	for i := range n {
		id := fmt.Sprintf("t-%d", i)
		paid = append(paid, delivery{id: "msg_" + id + "_paid", body: order(id, "order.paid", now, line{"T", 1})})
		if i%4 == 1 || i%4 == 3 {
			shipped = append(shipped, delivery{id: "msg_" + id + "_shipped", body: order(id, "order.fulfilled", now.Add(time.Second), line{"T", 1})})
		}
		switch i % 4 {
		case 2:
			ended = append(ended, delivery{id: "msg_" + id + "_cancelled", body: order(id, "order.cancelled", now.Add(2*time.Second))})
		case 3:
			ended = append(ended, delivery{id: "msg_" + id + "_refunded", body: order(id, "order.refunded", now.Add(2*time.Second))})
		}
	}
	// send spreads deliveries over both instances; interrupt is called
	// once, when a third of those sent to instance who are acknowledged,
	// while both go on; what was not acknowledged is retried until it is.
	send := func(ds []delivery, who int, interrupt func()) {
		t.Helper()
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			retry []delivery
		)
		for i, p := range []*pipeline{a, b} {
			queue := make(chan delivery, len(ds))
			for j := i; j < len(ds); j += 2 {
				queue <- ds[j]
			}
			close(queue)
			at, do := -1, func() {}
			if i == who {
				at, do = len(queue)/3, interrupt
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, r := p.sendInterrupted(queue, at, do)
				mu.Lock()
				retry = append(retry, r...)
				mu.Unlock()
			}()
		}
		wg.Wait()
		if who >= 0 && len(retry) == 0 {
			t.Fatal("the interruption came after the burst: it tested nothing")
		}
		t.Logf("%d of %d deliveries to retry", len(retry), len(ds))
		a.retryUntilAccepted(retry, 2*time.Minute)
	}
	restart := func(p *pipeline) func() { return func() { p.kill(); p.start() } }

	send(paid, 0, restart(a))
	a.settle(1 + n)
	send(shipped, 1, func() { restart(b)(); r.crash(); r.start() })
	a.settle(1 + n + n/2)
	send(ended, -1, nil)
	a.settle(1 + n + n/2 + n/2)

	check := func(when string) {
		t.Helper()
		if got := strings.Split(strings.TrimSpace(a.shopstream("stock", "show", "T")), "\n")[1]; got != "T\t970\t15\t985" {
			t.Fatalf("%s: stock show T %q, want available 970, reserved 15, on hand 985", when, got)
		}
		ledger, err := a.store.Ledger(context.Background(), "T")
		if err != nil || len(ledger) != 1+n+n/2+n/2 {
			t.Fatalf("%s: ledger %d entries (%v), want %d", when, len(ledger), err, 1+n+n/2+n/2)
		}
		a.analystViews(map[string]string{
			"SELECT kind, count() FROM $db.inventory_movements FINAL WHERE status = 'APPLIED' GROUP BY kind ORDER BY kind": "ADJUSTMENT 1\nCOMMIT 30\nRELEASE 15\nRESTOCK 15\nSALE 60",
			"SELECT units_received, units_sold, units_returned, sell_through FROM $db.sell_through_per_sku":                "1000 60 30 0.03",
			"SELECT status_after, count() FROM $db.order_events FINAL GROUP BY status_after ORDER BY status_after":         "CANCELLED 15\nFULFILLED 30\nPAID 60\nREFUNDED 15",
		})
	}
	check("after the kills and the Redis restart")

	a.stop()
	b.stop()
	a.resetGroupsToEarliest()
	a.start()
	b.start()
	a.settle(1 + n + n/2 + n/2)
	check("after a replay from earliest")
}
