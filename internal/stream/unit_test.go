package stream

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/schemas/envelope"
)

func TestBackoffDefaultsAndBounds(t *testing.T) {
	var b Backoff
	for attempt, max := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 6: 3200 * time.Millisecond, 7: 5 * time.Second, 100: 5 * time.Second} {
		for range 50 {
			w := b.Wait(attempt)
			if w > max || w < max*4/5 {
				t.Fatalf("attempt %d waits %v, want within [%v, %v]", attempt, w, max*4/5, max)
			}
		}
	}
}

func TestErrorClasses(t *testing.T) {
	base := errors.New("boom")
	if IsPermanent(base) || Class(base) != ClassTransient {
		t.Fatal("a plain error must be transient")
	}
	wrapped := fmt.Errorf("decode: %w", Permanent(base))
	if !IsPermanent(wrapped) || !errors.Is(wrapped, base) || Class(wrapped) != ClassPermanent {
		t.Fatal("Permanent must survive wrapping and keep its cause")
	}
	if Permanent(nil) != nil {
		t.Fatal("Permanent(nil) must be nil")
	}
}

func TestDeadLetterKeepsRecordAndBoundsReason(t *testing.T) {
	rec := &kgo.Record{Topic: "orders", Partition: 2, Offset: 41, Key: []byte("k"), Value: []byte("v"),
		Headers: []kgo.RecordHeader{{Key: "correlation.id", Value: []byte("c")}}}
	d := DeadLetter(rec, "orders.dlq", Permanent(errors.New(strings.Repeat("x", 2000))), time.Unix(0, 0))
	if d.Topic != "orders.dlq" || string(d.Key) != "k" || string(d.Value) != "v" {
		t.Fatalf("dead letter %+v", d)
	}
	if v, _ := envelope.Header(d, "correlation.id"); v != "c" {
		t.Fatal("the record's own headers must be kept")
	}
	if v, _ := envelope.Header(d, HeaderErrorReason); len(v) != maxReason {
		t.Fatalf("reason of %d bytes, want %d", len(v), maxReason)
	}
	if v, _ := envelope.Header(d, HeaderOriginPartition); v != "2" {
		t.Fatalf("partition header %q", v)
	}
}

// The loops' documented defaults are the ones they run with.
func TestConfigDefaults(t *testing.T) {
	tc := TransformConfig{Group: "g", Input: "in", DLQ: "in.dlq", TransactionalID: "t"}
	if err := tc.setDefaults(); err != nil || tc.MaxPollRecords != 2000 ||
		tc.Backoff != (Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second}) {
		t.Fatalf("transform defaults %+v (%v), documented 2000, 100ms to 5s", tc, err)
	}
	bc := BatchConfig{Group: "g", Inputs: []string{"in"}}
	if err := bc.setDefaults(); err != nil || bc.MaxRecords != 5000 || bc.DLQ("in") != "in.dlq" {
		t.Fatalf("batch defaults %+v (%v), documented 5000 and topology.DLQ", bc, err)
	}
	var cc ClientConfig
	cc.setDefaults()
	if len(cc.Brokers) != 1 || cc.Brokers[0] != "127.0.0.1:9092" || cc.ClientID != "shopstream" || cc.Logger == nil {
		t.Fatalf("client defaults %+v", cc)
	}
	if err := (&TransformConfig{Group: "g", Input: "in"}).setDefaults(); err == nil {
		t.Fatal("a transform without a DLQ was accepted")
	}
}

// A rejected record of a DLQ topic is passed over, not dead-lettered to a
// topic that does not exist; the others go to their DLQ.
func TestDeadLettersPassOverADeadLetter(t *testing.T) {
	dlq := func(topic string) string {
		if strings.HasSuffix(topic, ".dlq") {
			return ""
		}
		return topic + ".dlq"
	}
	rejected := []Rejection{
		{Record: &kgo.Record{Topic: "orders.dlq", Offset: 1}, Err: errors.New("bad")},
		{Record: &kgo.Record{Topic: "orders", Offset: 2}, Err: errors.New("bad")},
	}
	dead := deadLetters(rejected, dlq, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if len(dead) != 1 || dead[0].Topic != "orders.dlq" {
		t.Fatalf("dead letters %+v", dead)
	}
}

// A produce retry waits for a metadata refresh; every client of
// ClientConfig must refresh within MetadataMinAge, not franz-go's 5s.
func TestClientsRefreshMetadataSoonAfterAnError(t *testing.T) {
	cl, err := ClientConfig{}.Producer(time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if got := cl.OptValue(kgo.MetadataMinAge); got != MetadataMinAge {
		t.Fatalf("metadata min age %v, want %v", got, MetadataMinAge)
	}
}

// Every group consumer fetches in batches, and waits for one no longer
// than FetchMaxWait.
func TestConsumersFetchInBatches(t *testing.T) {
	cl, err := kgo.NewClient(append(ClientConfig{}.Options(), ConsumerOptions("g", "t")...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if got := cl.OptValue(kgo.FetchMinBytes); got != int32(FetchMinBytes) {
		t.Fatalf("fetch min bytes %v, want %d", got, FetchMinBytes)
	}
	if got := cl.OptValue(kgo.FetchMaxWait); got != FetchMaxWait {
		t.Fatalf("fetch max wait %v, want %v", got, FetchMaxWait)
	}
}
