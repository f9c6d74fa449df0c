package stream

import (
	"errors"
	"fmt"
	"testing"

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

// runsOf puts each partition and key's records in one run, in offset
// order, the runs in the order their first record came.
func TestRunsOfGroupsByPartitionAndKey(t *testing.T) {
	var recs []*kgo.Record
	for i := range 60 {
		recs = append(recs, &kgo.Record{Topic: "t", Partition: int32(i % 2), Key: []byte(fmt.Sprint("k", i%5)), Offset: int64(i)})
	}
	runs := runsOf(fetchesOf(recs...))
	if len(runs) != 10 {
		t.Fatalf("%d runs, want 10 (5 keys in each of 2 partitions)", len(runs))
	}
	n := 0
	for _, run := range runs {
		for i, r := range run {
			if string(r.Key) != string(run[0].Key) || r.Partition != run[0].Partition || i > 0 && r.Offset <= run[i-1].Offset {
				t.Fatalf("run %v mixes keys or partitions, or is out of order", run)
			}
			n++
		}
	}
	if n != len(recs) {
		t.Fatalf("%d records in runs, want %d", n, len(recs))
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
