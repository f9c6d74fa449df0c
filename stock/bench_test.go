package stock

import (
	"context"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/shopstream/shopstream/internal/testenv"
)

// BenchmarkApplyOne is one delta per call (lock, script and release: two
// round trips), the shape of the apply before batching.
// BenchmarkApplyRuns applies a batch of 500 deltas as per-SKU runs: two
// round trips for the whole batch. BenchmarkIncrBaseline is one INCRBY on
// the same client, the floor of any single Redis write from here.
func BenchmarkApplyOne(b *testing.B) {
	rdb := testenv.Redis(b)
	s := NewStore(rdb, StoreConfig{Prefix: testenv.Namespace(b)})
	ctx := context.Background()
	i := 0
	for b.Loop() {
		i++
		sku := "SKU-" + strconv.Itoa(i%64)
		if _, err := s.ApplyRuns(ctx, []Run{{SKU: sku, Deltas: []Delta{{ID: strconv.Itoa(i), SKU: sku, Quantity: 1}}}}, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deltas/s")
}

func BenchmarkApplyRuns(b *testing.B) {
	for _, tt := range []struct {
		name string
		sku  func(r *rand.Rand) int
	}{
		{"uniform10k", func(r *rand.Rand) int { return r.IntN(10000) }},
		{"zipf10k", zipf(10000)},
		{"hotHalf", func(r *rand.Rand) int {
			if r.IntN(2) == 0 {
				return 0
			}
			return 1 + r.IntN(9999)
		}},
	} {
		b.Run(tt.name, func(b *testing.B) {
			rdb := testenv.Redis(b)
			s := NewStore(rdb, StoreConfig{Prefix: testenv.Namespace(b)})
			ctx := context.Background()
			r := rand.New(rand.NewPCG(1, 2))
			const batch = 500
			id := 0
			for b.Loop() {
				runs := map[int]*Run{}
				var order []int
				for range batch {
					id++
					n := tt.sku(r)
					if runs[n] == nil {
						runs[n] = &Run{SKU: "SKU-" + strconv.Itoa(n)}
						order = append(order, n)
					}
					runs[n].Deltas = append(runs[n].Deltas, Delta{ID: strconv.Itoa(id), SKU: runs[n].SKU, Quantity: 1})
				}
				all := make([]Run, len(order))
				for i, n := range order {
					all[i] = *runs[n]
				}
				if _, err := s.ApplyRuns(ctx, all, time.Now()); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "deltas/s")
		})
	}
}

// zipf draws SKUs 0..n-1 with a Zipf skew (s=1.1): a few best sellers and a
// long tail, as a launch sells.
func zipf(n uint64) func(r *rand.Rand) int {
	var z *rand.Zipf
	return func(r *rand.Rand) int {
		if z == nil {
			z = rand.NewZipf(r, 1.1, 1, n-1)
		}
		return int(z.Uint64())
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
