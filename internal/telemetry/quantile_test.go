package telemetry

import (
	"math"
	"testing"
)

func TestQuantileInterpolatesWithinTheBucketLikeHistogramQuantile(t *testing.T) {
	even := []bucket{{1, 10}, {2, 20}, {4, 40}, {inf, 40}}
	tail := []bucket{{1, 5}, {2, 5}, {inf, 10}}
	positive := []bucket{{0.1, 5}, {0.2, 7}, {1, 11}, {inf, 12}}
	negative := []bucket{{-0.2, 1}, {-0.1, 2}, {0.3, 2}, {inf, 3}}
	for _, c := range []struct {
		name    string
		q       float64
		buckets []bucket
		want    float64
	}{
		{"at a bucket's bound", 0.25, even, 1},
		{"the first bucket starts at 0", 0.1, even, 0.4},
		{"the middle", 0.5, even, 2},
		{"p95", 0.95, even, 3.8},
		{"p99", 0.99, even, 3.96},
		{"buckets in any order", 0.95, []bucket{{inf, 40}, {2, 20}, {4, 40}, {1, 10}}, 3.8},
		{"a rank in +Inf is the largest finite bound", 0.99, tail, 2},
		{"a rank that an empty bucket passes over", 0.5, tail, 1},
		{"nothing observed reads as 0", 0.5, []bucket{{1, 0}, {2, 0}, {inf, 0}}, 0},
		{"no finite bucket", 0.5, []bucket{{inf, 3}}, 0},
		{"p20 in the first bucket", 0.2, positive, 0.048},
		{"p50 in the second", 0.5, positive, 0.15},
		{"p80 in the third", 0.8, positive, 0.72},
		{"a first bound at or below 0 is not interpolated from 0", 0.2, negative, -0.2},
		{"between negative bounds", 0.5, negative, -0.15},
		{"past every finite count", 0.8, negative, 0.3},
	} {
		if got := quantile(c.q, c.buckets); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%s: quantile(%v, %v) = %v, want %v", c.name, c.q, c.buckets, got, c.want)
		}
	}
}
