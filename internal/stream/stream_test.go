package stream_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/stream"
	"github.com/shopstream/shopstream/internal/testenv"
	"github.com/shopstream/shopstream/schemas/envelope"
	"github.com/shopstream/shopstream/topology"
)

func produce(t *testing.T, topic string, values ...string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(testenv.Brokers()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for _, v := range values {
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte("k"), Value: []byte(v)})
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func values(recs []*kgo.Record) string {
	var vs []string
	for _, r := range recs {
		vs = append(vs, string(r.Value))
	}
	return strings.Join(vs, ",")
}

// One permanent failure goes to the DLQ with its reason and origin; one
// transient failure is retried until it succeeds; every output is
// committed exactly once.
func TestTransformRetriesTransientAndDeadLettersPermanent(t *testing.T) {
	prefix := testenv.Namespace(t)
	names := testenv.Topics(t, prefix)
	in, out := names.Orders, names.Deltas
	produce(t, in, "a", "bad", "flaky", "b")

	var mu sync.Mutex
	flakes := 0
	seen := map[string]int{}
	h := stream.RunHandlerFunc(func(_ context.Context, runs [][]*kgo.Record) (stream.Result, error) {
		mu.Lock()
		defer mu.Unlock()
		var res stream.Result
		for _, run := range runs {
			for _, r := range run {
				v := string(r.Value)
				seen[v]++
				switch {
				case v == "bad":
					res.Rejected = append(res.Rejected, stream.Rejection{Record: r, Err: fmt.Errorf("cannot use %q", v)})
				case v == "flaky" && flakes < 2:
					flakes++
					return stream.Result{}, errors.New("redis went away")
				default:
					res.Outputs = append(res.Outputs, &kgo.Record{Topic: out, Key: r.Key, Value: []byte("out:" + v)})
				}
			}
		}
		return res, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- stream.Transform(ctx, stream.TransformConfig{
			Client: stream.ClientConfig{Brokers: testenv.Brokers()}, Group: prefix + "g", Input: in,
			DLQ: topology.DLQ(in), TransactionalID: prefix + "txn", Backoff: stream.Backoff{Min: 10 * time.Millisecond},
		}, h)
	}()
	got := testenv.ReadTopic(t, out, 3)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if values(got) != "out:a,out:flaky,out:b" {
		t.Fatalf("outputs %s", values(got))
	}
	if seen["flaky"] != 3 || seen["a"] < 2 {
		t.Fatalf("handled %v: the aborted batch must be handled again", seen)
	}
	dead := testenv.ReadTopic(t, topology.DLQ(in), 1)
	if len(dead) != 1 || string(dead[0].Value) != "bad" {
		t.Fatalf("dlq %s", values(dead))
	}
	for k, want := range map[string]string{
		stream.HeaderErrorClass: stream.ClassPermanent, stream.HeaderErrorReason: `cannot use "bad"`,
		stream.HeaderOriginTopic: in, stream.HeaderOriginOffset: "1",
	} {
		if v, _ := envelope.Header(dead[0], k); v != want {
			t.Errorf("header %s = %q, want %q", k, v, want)
		}
	}
}

type batchRecorder struct {
	mu       sync.Mutex
	attempts int
	written  []string
}

func (b *batchRecorder) HandleBatch(_ context.Context, recs []*kgo.Record) ([]stream.Rejection, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.attempts++
	if b.attempts == 1 {
		return nil, errors.New("clickhouse unavailable")
	}
	var rejected []stream.Rejection
	for _, r := range recs {
		if string(r.Value) == "junk" {
			rejected = append(rejected, stream.Rejection{Record: r, Err: fmt.Errorf("undecodable")})
			continue
		}
		b.written = append(b.written, string(r.Value))
	}
	return rejected, nil
}

// A failed batch is written again, never skipped; rejections reach the DLQ;
// offsets are committed after the write, so a second run finds nothing.
func TestBatchCommitsOnlyAfterTheWrite(t *testing.T) {
	prefix := testenv.Namespace(t)
	names := testenv.Topics(t, prefix)
	produce(t, names.Movements, "m1", "junk", "m2")
	cfg := stream.BatchConfig{Client: stream.ClientConfig{Brokers: testenv.Brokers()}, Group: prefix + "sink",
		Inputs: []string{names.Movements}, Backoff: stream.Backoff{Min: 10 * time.Millisecond}}
	rec := &batchRecorder{}
	run := func(h stream.BatchHandler, until func() bool) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- stream.Batch(ctx, cfg, h) }()
		testenv.Eventually(t, 20*time.Second, func() error {
			if !until() {
				return errors.New("not yet")
			}
			return nil
		})
		time.Sleep(500 * time.Millisecond)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	run(rec, func() bool { rec.mu.Lock(); defer rec.mu.Unlock(); return len(rec.written) == 2 })
	if rec.attempts < 2 || strings.Join(rec.written, ",") != "m1,m2" {
		t.Fatalf("attempts %d, written %v", rec.attempts, rec.written)
	}
	if dead := testenv.ReadTopic(t, topology.DLQ(names.Movements), 1); len(dead) != 1 || string(dead[0].Value) != "junk" {
		t.Fatalf("dlq %s", values(dead))
	}
	again := &batchRecorder{attempts: 1}
	produce(t, names.Movements, "m3")
	run(again, func() bool { again.mu.Lock(); defer again.mu.Unlock(); return len(again.written) >= 1 })
	if strings.Join(again.written, ",") != "m3" {
		t.Fatalf("after a restart the group wrote %v; committed records came back", again.written)
	}
}
