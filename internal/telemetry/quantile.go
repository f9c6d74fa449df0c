package telemetry

import (
	"cmp"
	"math"
	"slices"
	"sort"
)

// bucket is one cumulative histogram bucket: how many observations were at
// most le.
type bucket struct{ le, count float64 }

// quantile returns the q-quantile (0 ≤ q ≤ 1) of the observations counted
// in buckets, which are cumulative and end with the +Inf bucket, the way
// Prometheus's histogram_quantile estimates it: linearly within the bucket
// the rank falls in, from 0 for the first bucket, and the largest finite
// bound when the rank falls in +Inf. It returns 0 when nothing was
// observed, which is what a quiet minute's row says.
func quantile(q float64, buckets []bucket) float64 {
	if len(buckets) < 2 {
		return 0
	}
	buckets = slices.SortedFunc(slices.Values(buckets), func(a, b bucket) int { return cmp.Compare(a.le, b.le) })
	total := buckets[len(buckets)-1].count
	if total == 0 {
		return 0
	}
	rank := q * total
	b := sort.Search(len(buckets)-1, func(i int) bool { return buckets[i].count >= rank })
	if b == len(buckets)-1 {
		return buckets[len(buckets)-2].le
	}
	if b == 0 && buckets[0].le <= 0 {
		return buckets[0].le
	}
	start, count := 0.0, buckets[b].count
	if b > 0 {
		start = buckets[b-1].le
		count -= buckets[b-1].count
		rank -= buckets[b-1].count
	}
	if count == 0 {
		return start
	}
	return start + (buckets[b].le-start)*(rank/count)
}

var inf = math.Inf(1)
