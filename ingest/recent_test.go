package ingest

import (
	"context"
	"fmt"
	"testing"
)

func TestRecentDeliveriesRemembersBetweenSizeAndTwiceSize(t *testing.T) {
	ctx := context.Background()
	r := NewRecentDeliveries(10)
	accept := func(k string) {
		t.Helper()
		if c, _ := r.Claim(ctx, k); c != ClaimNew {
			t.Fatalf("%s: claim %v, want new", k, c)
		}
		_ = r.Complete(ctx, k)
	}
	for i := range 25 {
		accept(fmt.Sprint("d", i))
	}
	// The 10 to 20 most recent are remembered; the first five are not.
	for i := 15; i < 25; i++ {
		if c, _ := r.Claim(ctx, fmt.Sprint("d", i)); c != ClaimDone {
			t.Fatalf("d%d: claim %v, want done", i, c)
		}
	}
	for i := range 5 {
		if c, _ := r.Claim(ctx, fmt.Sprint("d", i)); c != ClaimNew {
			t.Fatalf("d%d was remembered past twice the size", i)
		}
	}
	// A claim in flight is answered in flight, and a released one is new.
	if c, _ := r.Claim(ctx, "d0"); c != ClaimInFlight {
		t.Fatalf("claim %v, want in flight", c)
	}
	_ = r.Release(ctx, "d0")
	if c, _ := r.Claim(ctx, "d0"); c != ClaimNew {
		t.Fatalf("after release: claim %v, want new", c)
	}
}

func BenchmarkRecentDeliveries(b *testing.B) {
	ctx := context.Background()
	r := NewRecentDeliveries(0)
	i := 0
	for b.Loop() {
		k := fmt.Sprint("standardwebhooks:msg_", i)
		i++
		_, _ = r.Claim(ctx, k)
		_ = r.Complete(ctx, k)
	}
}
