package stream

import (
	"github.com/twmb/franz-go/pkg/kgo"
)

// runsOf groups fetches into runs: the records of one partition and key, in
// offset order, the runs in the order their first record came.
func runsOf(fetches kgo.Fetches) [][]*kgo.Record {
	type key struct {
		topic     string
		partition int32
		key       string
	}
	var order []key
	groups := map[key][]*kgo.Record{}
	fetches.EachRecord(func(r *kgo.Record) {
		k := key{r.Topic, r.Partition, string(r.Key)}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	})
	runs := make([][]*kgo.Record, len(order))
	for i, k := range order {
		runs[i] = groups[k]
	}
	return runs
}
