package stock

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/shopstream/shopstream/internal/testenv"
)

// BenchmarkApply is one delta applied under the SKU's lock (obtain, the
// script, release: three round trips); BenchmarkIncrBaseline is one INCRBY
// on the same client, the floor of any Redis write from here.
func BenchmarkApply(b *testing.B) {
	rdb := testenv.Redis(b)
	s := NewStore(rdb, StoreConfig{Prefix: testenv.Namespace(b)})
	ctx := context.Background()
	i := 0
	for b.Loop() {
		i++
		if _, err := s.Apply(ctx, Delta{ID: strconv.Itoa(i), SKU: "SKU-" + strconv.Itoa(i%64), Quantity: 1}, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkIncrBaseline(b *testing.B) {
	rdb := testenv.Redis(b)
	prefix := testenv.Namespace(b)
	ctx := context.Background()
	i := 0
	for b.Loop() {
		i++
		if err := rdb.IncrBy(ctx, prefix+"baseline:{SKU-"+strconv.Itoa(i%64)+"}", 1).Err(); err != nil {
			b.Fatal(err)
		}
	}
}
