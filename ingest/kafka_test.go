package ingest

import (
	"testing"
	"time"

	"github.com/shopstream/shopstream/ingest/providers"
	"github.com/shopstream/shopstream/internal/stream"
	"github.com/shopstream/shopstream/internal/testenv"
	"github.com/shopstream/shopstream/schemas/avro"
	"github.com/shopstream/shopstream/schemas/envelope"
	"github.com/shopstream/shopstream/topology"
)

func realServer(t *testing.T, brokers []string, names topology.Names, dedup Deduper, timeout time.Duration) string {
	t.Helper()
	cl, err := stream.ClientConfig{Brokers: brokers}.Producer(timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	p, _ := providers.NewStandardWebhooks(providers.StandardWebhooksConfig{Secrets: []string{testSecret}})
	h, err := NewHandler(HandlerConfig{Providers: []providers.Provider{p}, Producer: cl, Dedup: dedup, Topics: names,
		ProduceTimeout: timeout, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(t, h)
	return srv
}

// A delivery and its retry, on the real broker: one receipt carrying its
// order event, and both answers 200.
func TestRealKafkaOneReceiptPerDelivery(t *testing.T) {
	testenv.Kafka(t)
	prefix := testenv.Namespace(t)
	names := testenv.Topics(t, prefix)
	url := realServer(t, testenv.Brokers(), names, nil, 10*time.Second)
	for _, want := range []string{"accepted", "duplicate"} {
		resp, a := post{id: "msg_real", body: paidBody}.do(t, url)
		if resp.StatusCode != 200 || a.Accepted.Status != want {
			t.Fatalf("%d %q, want 200 %q", resp.StatusCode, a.Accepted.Status, want)
		}
	}
	raw := testenv.ReadTopic(t, names.WebhooksRaw, 1)
	if len(raw) != 1 || string(raw[0].Key) != "msg_real" {
		t.Fatalf("webhooks.raw has %d records", len(raw))
	}
	if v, _ := envelope.Header(raw[0], envelope.HeaderEventType); v != envelope.WebhookReceipt {
		t.Fatalf("event type header %q", v)
	}
	var receipt avro.WebhookReceipt
	if err := avro.Default().Unmarshal(raw[0].Value, &receipt); err != nil || receipt.Event == nil || receipt.Event.OrderID != "o-1" {
		t.Fatalf("receipt %+v (%v)", receipt, err)
	}
}

// No broker answers: the provider is told to retry, never told 2xx.
func TestBrokerUnreachableIs503(t *testing.T) {
	url := realServer(t, []string{"127.0.0.1:1"}, topology.NamesFor("none_"), nil, time.Second)
	resp, a := post{id: "msg_down", body: paidBody}.do(t, url)
	if resp.StatusCode != 503 || a.Code != "unavailable" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("got %d %+v", resp.StatusCode, a)
	}
}
