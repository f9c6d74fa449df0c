package app

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/stream"
	"github.com/shopstream/shopstream/internal/testenv"
	"github.com/shopstream/shopstream/schemas/avro"
	"github.com/shopstream/shopstream/schemas/envelope"
	"github.com/shopstream/shopstream/topology"
)

const personal = "jane.doe@example.com"

// deadLetters fills the namespace's DLQs as the stages would: a delta the
// inventory stage could not apply, a receipt whose webhook names a
// customer, and bytes on orders that are no contract at all.
func deadLetters(t *testing.T, names topology.Names) {
	t.Helper()
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	delta, err := envelope.Record(names.Deltas, &avro.InventoryDelta{DeltaID: "o-1:1:sale", SKU: "TEE", Kind: avro.DeltaSale, Quantity: -2,
		OrderID: "o-1", OccurredAt: now, ReceivedAt: now}, "c-1")
	if err != nil {
		t.Fatal(err)
	}
	delta.Partition, delta.Offset = 1, 7
	receipt, err := envelope.Record(names.WebhooksRaw, &avro.WebhookReceipt{DeliveryID: "msg_1", Provider: "shopify", ReceivedAt: now,
		EventType: "orders/paid", Headers: map[string]string{"x-forwarded-for": "203.0.113.9"},
		Body: []byte(`{"id":1,"email":"` + personal + `","line_items":[]}`)}, "c-2")
	if err != nil {
		t.Fatal(err)
	}
	receipt.Offset = 3
	junk := &kgo.Record{Topic: names.Orders, Key: []byte("junk"), Value: []byte(`{"email":"` + personal + `"}`), Offset: 11}
	var dead []*kgo.Record
	for i, r := range []*kgo.Record{delta, receipt, junk} {
		dead = append(dead, stream.DeadLetter(r, topology.DLQ(r.Topic), stream.Permanentf("failed %d", i), now.Add(time.Duration(i)*time.Minute)))
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(testenv.Brokers()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), dead...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func dlqEnv(t *testing.T) (map[string]string, topology.Names) {
	prefix := testenv.Namespace(t)
	names := testenv.Topics(t, prefix)
	rdb := testenv.Redis(t)
	t.Cleanup(func() { rdb.Del(context.Background(), prefix+"dlq:redriven") })
	return map[string]string{"SHOPSTREAM_KAFKA_BROKERS": strings.Join(testenv.Brokers(), ","), "SHOPSTREAM_PREFIX": prefix,
		"SHOPSTREAM_REDIS_ADDR": testenv.RedisAddr(), "SHOPSTREAM_INSTANCE": "test"}, names
}

// inspect counts the dead letters by topic and class and shows the newest
// with their headers, and never a body: a receipt's webhook and a record
// that is no contract at all are told by size, the others by ids and types.
func TestDLQInspectRedactsBodies(t *testing.T) {
	env, names := dlqEnv(t)
	deadLetters(t, names)
	out, err := run([]string{"dlq", "inspect", "-limit", "2"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, personal) || strings.Contains(out, "203.0.113.9") {
		t.Fatalf("inspect printed personal data:\n%s", out)
	}
	prefix := env["SHOPSTREAM_PREFIX"]
	got := columns(strings.ReplaceAll(out, prefix, ""))
	for _, want := range []string{
		"dead letters by topic and error class:\ndlq topic class dead letters redriven\n" +
			"inventory.deltas.dlq permanent 1 0\norders.dlq permanent 1 0\nwebhooks.raw.dlq permanent 1 0\ntotal 3\n",
		"the newest 2 (bodies are never printed: a webhook's can name a customer):\n" +
			"orders.dlq 0@0 failed 2026-11-24T10:02:00Z permanent not redriven\norigin orders 0@11\nreason failed 2\nkey \"junk\"\nheaders (none)\n" +
			"body 32 bytes redacted (not Avro single-object encoded)\n" +
			"webhooks.raw.dlq 0@0 failed 2026-11-24T10:01:00Z permanent not redriven\norigin webhooks.raw 0@3\nreason failed 1\nkey \"msg_1\"\n",
		`, WebhookReceipt: delivery_id="msg_1" provider="shopify" event_type="orders/paid"`,
	} {
		if !strings.Contains(got, want) {
			t.Fatalf("inspect printed\n%s\nwithout\n%s", got, want)
		}
	}
	if strings.Contains(got, "inventory.deltas.dlq 0@0 failed") {
		t.Fatalf("inspect showed more than the newest 2:\n%s", got)
	}
	one, err := run([]string{"dlq", "inspect", "-topic", "inventory.deltas"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(one, `InventoryDelta: delta_id="o-1:1:sale" sku="TEE" kind="SALE" quantity="-2" order_id="o-1"`) || strings.Contains(one, "orders.dlq") {
		t.Fatalf("inspect -topic inventory.deltas:\n%s", one)
	}
}

// A redrive re-produces the selected dead letters to their origin topic
// without their failure's headers, and records each; run again, it
// re-produces nothing.
func TestDLQRedriveOnce(t *testing.T) {
	env, names := dlqEnv(t)
	deadLetters(t, names)
	redrive := func(args ...string) string {
		t.Helper()
		out, err := run(append([]string{"dlq", "redrive"}, args...), env)
		if err != nil {
			t.Fatalf("dlq redrive %v: %v", args, err)
		}
		return out
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-topic", "inventory.deltas", "-class", "transient", "-dry-run"}, "0 selected, 0 redriven before, 0 to redrive"},
		{[]string{"-topic", "inventory.deltas", "-origin-offset", "0:7", "-dry-run"}, "0 selected"},
		{[]string{"-topic", "inventory.deltas", "-origin-offset", "1:7,2:1", "-class", "permanent", "-dry-run"}, "1 selected, 0 redriven before, 1 to redrive"},
	} {
		if out := redrive(tt.args...); !strings.Contains(out, tt.want) {
			t.Fatalf("%v:\n%s\nwant %q", tt.args, out, tt.want)
		}
	}
	if n := len(testenv.ReadTopic(t, names.Deltas, 0)); n != 0 {
		t.Fatalf("a dry run produced %d records", n)
	}
	if out := redrive("-topic", "inventory.deltas.dlq"); !strings.Contains(out, "1 to redrive") || !strings.Contains(out, "redrove 1 to "+names.Deltas) {
		t.Fatalf("redrive:\n%s", out)
	}
	if out := redrive("-topic", names.Deltas); !strings.Contains(out, "1 selected, 1 redriven before, 0 to redrive") {
		t.Fatalf("the second redrive:\n%s", out)
	}
	got := testenv.ReadTopic(t, names.Deltas, 1)
	if len(got) != 1 {
		t.Fatalf("%d records on the deltas topic after two redrives, want 1", len(got))
	}
	var d avro.InventoryDelta
	if err := avro.Default().Unmarshal(got[0].Value, &d); err != nil || d.DeltaID != "o-1:1:sale" || string(got[0].Key) != "TEE" {
		t.Fatalf("redriven %+v keyed %q: %v", d, got[0].Key, err)
	}
	if from, _ := envelope.Header(got[0], headerRedrivenFrom); from != names.Deltas+".dlq/0/0" {
		t.Fatalf("dlq.redriven.from = %q", from)
	}
	if _, ok := envelope.Header(got[0], stream.HeaderErrorClass); ok {
		t.Fatal("the redriven record still carries its failure's headers")
	}
	if typ, _ := envelope.Header(got[0], envelope.HeaderEventType); typ != "inventory.delta.sale" {
		t.Fatalf("the redriven record lost its own headers: event.type %q", typ)
	}
	out, err := run([]string{"dlq", "inspect", "-topic", "inventory.deltas"}, env)
	if err != nil || !strings.Contains(columns(out), "permanent 1 1") || !strings.Contains(out, "permanent  redriven") {
		t.Fatalf("inspect after the redrive (%v):\n%s", err, out)
	}
}

func TestDLQRefusesBadArguments(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"dlq", "redrive"}, "needs -topic"},
		{[]string{"dlq", "redrive", "-topic", "orders", "-rate", "0"}, "-rate must be at least 1"},
		{[]string{"dlq", "redrive", "-topic", "orders", "-origin-offset", "7"}, "want PARTITION:OFFSET"},
		{[]string{"dlq", "redrive", "-topic", "payments"}, `no dead-letter topic "payments"`},
		{[]string{"dlq", "inspect", "-limit", "-1"}, "-limit of 0 or more"},
		{[]string{"dlq", "purge"}, "dlq inspect|redrive"},
	} {
		_, err := run(tt.args, map[string]string{"SHOPSTREAM_KAFKA_BROKERS": "127.0.0.1:1", "SHOPSTREAM_REDIS_ADDR": "127.0.0.1:1"})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("shopstream %s: %v, want an error saying %q", strings.Join(tt.args, " "), err, tt.want)
		}
	}
}
