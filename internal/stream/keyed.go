package stream

import (
	"sync"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"
)

// forEachKey calls fn for every record of fetches: the records of one
// partition and key in offset order, one at a time; different keys on up to
// workers goroutines. After the first error no further record is started,
// and that error is returned once the calls under way have finished: the
// caller aborts the whole batch, so what else was done is handled again.
func forEachKey(fetches kgo.Fetches, workers int, fn func(*kgo.Record) error) error {
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
	work := make(chan []*kgo.Record)
	var (
		wg     sync.WaitGroup
		failed atomic.Bool
		first  error
		once   sync.Once
	)
	for range min(workers, len(order)) {
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
	for _, k := range order {
		if failed.Load() {
			break
		}
		work <- groups[k]
	}
	close(work)
	wg.Wait()
	return first
}
