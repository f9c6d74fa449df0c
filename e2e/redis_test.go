package e2e

import (
	"context"
	"net"
	"os/exec"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shopstream/shopstream/internal/testenv"
)

// privateRedis is a redis-server of the test's own, configured as the local
// stack's (AOF, fsync on every write), so the test can crash it without
// disturbing the tests that share the stack.
type privateRedis struct {
	t    *testing.T
	addr string
	dir  string
	cmd  *exec.Cmd
}

func startPrivateRedis(t *testing.T) *privateRedis {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	r := &privateRedis{t: t, addr: addr, dir: t.TempDir()}
	r.start()
	t.Cleanup(r.crash)
	return r
}

func (r *privateRedis) start() {
	r.t.Helper()
	_, port, _ := net.SplitHostPort(r.addr)
	r.cmd = exec.Command("redis-server", "--bind", "127.0.0.1", "--port", port, "--dir", r.dir,
		"--appendonly", "yes", "--appendfsync", "always", "--save", "")
	if err := r.cmd.Start(); err != nil {
		if testenv.Required() {
			r.t.Fatalf("redis-server: %v", err)
		}
		r.t.Skipf("redis-server: %v", err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: r.addr})
	defer rdb.Close()
	testenv.Eventually(r.t, 10*time.Second, func() error { return rdb.Ping(context.Background()).Err() })
}

// crash kills the server as a power cut would.
func (r *privateRedis) crash() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
		r.cmd = nil
	}
}

// Redis dies in the middle of a burst and comes back from its AOF: ingest
// keeps accepting (it needs no Redis), the processors stall and retry
// instead of skipping, provider retries sent while Redis is down are not
// applied twice, and the stock comes out exact.
func TestRedisCrashMidBurstLosesNothing(t *testing.T) {
	r := startPrivateRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.addr})
	t.Cleanup(func() { rdb.Close() })
	p := newPipelineOn(t, services{rdb: rdb, redisAddr: r.addr})
	// An edge that remembers one delivery lets the retries below through to
	// webhooks.raw, as it does for a retry that reaches another instance:
	// the deliveries stage, which needs Redis, must drop them.
	p.env = append(p.env, "SHOPSTREAM_RECENT_DELIVERIES=1")
	const n = 150
	deliveries := p.burstBeforeCrash("R", n)
	r.crash()
	// Without Redis, ingest still takes deliveries: Kafka holds them.
	for _, d := range deliveries[n/3 : 2*n/3] {
		p.mustSend(d, 200, "accepted")
	}
	// A provider retrying while Redis is down is let through the edge...
	for _, d := range deliveries[n/3 : n/3+10] {
		p.mustSend(d, 200, "accepted")
	}
	time.Sleep(2 * time.Second)
	r.start()
	for _, d := range deliveries[2*n/3:] {
		p.mustSend(d, 200, "accepted")
	}
	// ...and dropped downstream: nothing is applied twice.
	p.settle(n + 1)
	if got := p.stock("R"); got != 1000-n {
		t.Fatalf("stock %d, want %d", got, 1000-n)
	}
	ledger, err := p.store.Ledger(context.Background(), "R")
	if err != nil || len(ledger) != n+1 {
		t.Fatalf("ledger has %d entries (%v), want %d", len(ledger), err, n+1)
	}
}
