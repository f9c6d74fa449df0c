package stream

import (
	"sync"
	"sync/atomic"

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

// forEachRecord calls fn for every record of runs: a run's records in
// order, one at a time; different runs on up to workers goroutines. After
// the first error no further record is started, and that error is returned
// once the calls under way have finished: the caller aborts the whole batch,
// so what else was done is handled again.
func forEachRecord(runs [][]*kgo.Record, workers int, fn func(*kgo.Record) error) error {
	work := make(chan []*kgo.Record)
	var (
		wg     sync.WaitGroup
		failed atomic.Bool
		first  error
		once   sync.Once
	)
	for range min(workers, len(runs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for recs := range work {
				for _, r := range recs {
					if failed.Load() {
						break
					}
					if err := fn(r); err != nil {
						once.Do(func() { first = err })
						failed.Store(true)
					}
				}
			}
		}()
	}
	for _, run := range runs {
		if failed.Load() {
			break
		}
		work <- run
	}
	close(work)
	wg.Wait()
	return first
}
