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

// The clients of both loops refresh metadata within MetadataMinAge of an
// error, not franz-go's 5s, and fetch in batches of FetchMinBytes, waiting
// no longer than FetchMaxWait: what the options say is what a loop's client
// is built with.
func TestLoopClientsRefreshSoonAndFetchInBatches(t *testing.T) {
	transform := TransformConfig{Group: "g", Input: "t", DLQ: "t.dlq", TransactionalID: "g-1"}
	batch := BatchConfig{Group: "g", Inputs: []string{"t"}}
	if err := transform.setDefaults(); err != nil {
		t.Fatal(err)
	}
	if err := batch.setDefaults(); err != nil {
		t.Fatal(err)
	}
	for name, opts := range map[string][]kgo.Opt{"Transform": transform.options(), "Batch": batch.options()} {
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			name      string
			opt, want any
		}{{"metadata min age", kgo.MetadataMinAge, MetadataMinAge}, {"fetch min bytes", kgo.FetchMinBytes, int32(FetchMinBytes)}, {"fetch max wait", kgo.FetchMaxWait, FetchMaxWait}} {
			if got := cl.OptValue(c.opt); got != c.want {
				t.Errorf("%s: %s is %v, want %v", name, c.name, got, c.want)
			}
		}
		cl.Close()
	}
}
