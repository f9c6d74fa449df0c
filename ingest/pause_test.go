package ingest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shopstream/shopstream/ingest/providers"
	"github.com/shopstream/shopstream/internal/testenv"
)

// On the real Redis: a provider paused through one Pauses (an operator's
// command) is answered 503 paused, with Retry-After and nothing written, by
// an instance once it has read the set; resumed, it is accepted again.
// While Redis is gone the instance keeps what it last read.
func TestAPausedProviderIs503AndResumes(t *testing.T) {
	rdb := testenv.Redis(t)
	prefix := testenv.Namespace(t)
	operator := NewPauses(rdb, prefix, slog.Default())
	instance := NewPauses(rdb, prefix, slog.Default())
	prod := &recordingProducer{}
	p, _ := providers.NewStandardWebhooks(providers.StandardWebhooksConfig{Secrets: []string{testSecret}})
	h, err := NewHandler(HandlerConfig{Providers: []providers.Provider{p}, Producer: prod, Paused: instance.Paused,
		Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	url := newServer(t, h)
	ctx := context.Background()

	if err := operator.Pause(ctx, "standardwebhooks"); err != nil {
		t.Fatal(err)
	}
	if err := instance.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	resp, a := post{id: "msg_paused", body: paidBody}.do(t, url)
	if resp.StatusCode != 503 || a.Code != "paused" || resp.Header.Get("Retry-After") == "" || len(prod.recs) != 0 {
		t.Fatalf("paused: %d %+v, %d records", resp.StatusCode, a, len(prod.recs))
	}

	gone := NewPauses(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1}), prefix, slog.Default())
	gone.set.Store(instance.set.Load())
	if err := gone.Refresh(ctx); err == nil || !gone.Paused("standardwebhooks") {
		t.Fatal("an instance without Redis forgot the pause it had read")
	}

	if err := operator.Resume(ctx, "standardwebhooks"); err != nil {
		t.Fatal(err)
	}
	if err := instance.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if resp, a := (post{id: "msg_paused", body: paidBody}).do(t, url); resp.StatusCode != 200 || len(prod.recs) != 1 {
		t.Fatalf("resumed: %d %+v", resp.StatusCode, a)
	}
}
