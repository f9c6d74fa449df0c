package stream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func fetchesOf(recs ...*kgo.Record) kgo.Fetches {
	parts := map[int32][]*kgo.Record{}
	for _, r := range recs {
		parts[r.Partition] = append(parts[r.Partition], r)
	}
	var ft kgo.FetchTopic
	ft.Topic = "t"
	for p, rs := range parts {
		ft.Partitions = append(ft.Partitions, kgo.FetchPartition{Partition: p, Records: rs})
	}
	return kgo.Fetches{{Topics: []kgo.FetchTopic{ft}}}
}

// Each key's records are handled in offset order and never two at once,
// while different keys overlap.
func TestForEachRecordKeepsPerKeyOrder(t *testing.T) {
	var recs []*kgo.Record
	for i := range 200 {
		recs = append(recs, &kgo.Record{Topic: "t", Partition: int32(i % 2), Key: []byte(fmt.Sprint("k", i%10)), Offset: int64(i)})
	}
	var mu sync.Mutex
	last := map[string]int64{}
	busy := map[string]bool{}
	inFlight, maxInFlight := 0, 0
	err := forEachRecord(runsOf(fetchesOf(recs...)), 4, func(r *kgo.Record) error {
		k := string(r.Key)
		mu.Lock()
		if busy[k] {
			mu.Unlock()
			return fmt.Errorf("key %s handled twice at once", k)
		}
		if prev, ok := last[k]; ok && prev >= r.Offset {
			mu.Unlock()
			return fmt.Errorf("key %s: offset %d after %d", k, r.Offset, prev)
		}
		busy[k], last[k] = true, r.Offset
		inFlight++
		maxInFlight = max(maxInFlight, inFlight)
		mu.Unlock()
		time.Sleep(100 * time.Microsecond)
		mu.Lock()
		busy[k] = false
		inFlight--
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(last) != 10 || maxInFlight < 2 || maxInFlight > 4 {
		t.Fatalf("keys %d, at most %d at once (want 2..4)", len(last), maxInFlight)
	}
}

func TestForEachRecordStopsAtTheFirstError(t *testing.T) {
	var recs []*kgo.Record
	for i := range 50 {
		recs = append(recs, &kgo.Record{Topic: "t", Key: []byte("same"), Offset: int64(i)})
	}
	boom := errors.New("boom")
	calls := 0
	err := forEachRecord(runsOf(fetchesOf(recs...)), 4, func(r *kgo.Record) error {
		calls++
		if r.Offset == 3 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || calls != 4 {
		t.Fatalf("err %v after %d calls; want boom after 4", err, calls)
	}
}

// PerRecord rejects a record whose error is permanent, keeps each run's
// outputs in order, and fails the batch on a transient error.
func TestPerRecord(t *testing.T) {
	var recs []*kgo.Record
	for i := range 30 {
		recs = append(recs, &kgo.Record{Topic: "t", Key: []byte(fmt.Sprint("k", i%3)), Value: []byte(fmt.Sprint(i)), Offset: int64(i)})
	}
	h := HandlerFunc(func(_ context.Context, r *kgo.Record) ([]*kgo.Record, error) {
		if string(r.Value) == "7" {
			return nil, Permanentf("poison")
		}
		return []*kgo.Record{{Key: r.Key, Value: r.Value}}, nil
	})
	res, err := PerRecord(h, 3).HandleRuns(context.Background(), runsOf(fetchesOf(recs...)))
	if err != nil || len(res.Outputs) != 29 || len(res.Rejected) != 1 || res.Rejected[0].Record.Offset != 7 {
		t.Fatalf("%d outputs, rejected %v, err %v", len(res.Outputs), res.Rejected, err)
	}
	last := map[string]int{}
	for _, o := range res.Outputs {
		var v int
		fmt.Sscan(string(o.Value), &v)
		if prev, ok := last[string(o.Key)]; ok && v <= prev {
			t.Fatalf("key %s: output %d after %d", o.Key, v, prev)
		}
		last[string(o.Key)] = v
	}
	boom := errors.New("redis went away")
	failing := HandlerFunc(func(context.Context, *kgo.Record) ([]*kgo.Record, error) { return nil, boom })
	if _, err := PerRecord(failing, 3).HandleRuns(context.Background(), runsOf(fetchesOf(recs...))); !errors.Is(err, boom) {
		t.Fatalf("err %v, want the transient error", err)
	}
}

// Decode hands records back in each partition's order, whatever runs they
// came in, and rejects what it cannot decode.
func TestDecodeKeepsPartitionOrder(t *testing.T) {
	var recs []*kgo.Record
	for i := range 12 {
		recs = append(recs, &kgo.Record{Topic: "t", Partition: int32(i % 2), Key: []byte(fmt.Sprint("k", i%3)), Offset: int64(i),
			Value: []byte(fmt.Sprint(i))})
	}
	got, rejected := Decode(runsOf(fetchesOf(recs...)), func(r *kgo.Record) (int64, error) {
		if r.Offset == 5 {
			return 0, errors.New("undecodable")
		}
		return r.Offset, nil
	})
	if len(rejected) != 1 || rejected[0].Record.Offset != 5 || len(got) != 11 {
		t.Fatalf("%d decoded, rejected %v", len(got), rejected)
	}
	last := map[int32]int64{0: -1, 1: -1}
	for _, d := range got {
		if d.Value <= last[d.Record.Partition] {
			t.Fatalf("partition %d: offset %d after %d", d.Record.Partition, d.Value, last[d.Record.Partition])
		}
		last[d.Record.Partition] = d.Value
	}
}
