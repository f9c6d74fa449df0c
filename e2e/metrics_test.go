package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/shopstream/shopstream/internal/testenv"
)

// Every stage of `shopstream run` reports its work and its group's lag to
// pipeline.metrics, and the sink lands it in ClickHouse: records per stage
// add up to what went through, and every group's partitions have a lag row.
func TestPipelineMetricsLandInClickHouse(t *testing.T) {
	p := newPipeline(t)
	p.env = append(p.env, "SHOPSTREAM_PIPELINE_METRICS_EVERY=2s")
	p.shopstream("stock", "adjust", "-sku", "M", "-qty", "10", "-id", "seed-M")
	p.start()
	now := time.Now()
	for i := range 5 {
		p.mustSend(delivery{id: fmt.Sprintf("msg_m_%d", i), body: order(fmt.Sprintf("m-%d", i), "order.paid", now, line{"M", 1})}, 200, "accepted")
	}
	p.mustSend(delivery{id: "msg_m_forged", body: order("m-x", "order.paid", now, line{"M", 1}), forged: true}, 401, "invalid_signature")
	p.settle(6)
	testenv.Eventually(t, time.Minute, func() error {
		for stage, want := range map[string]uint64{"ingest": 5, "deliveries": 5, "orders": 5, "inventory": 6} {
			if n := p.count("SELECT toUInt64(sum(records)) FROM $db.pipeline_metrics FINAL WHERE stage = '" + stage + "' AND partition = -1"); n < want {
				return fmt.Errorf("%s: %d records reported, want %d", stage, n, want)
			}
		}
		if n := p.count("SELECT toUInt64(sum(errors_permanent)) FROM $db.pipeline_metrics FINAL WHERE stage = 'ingest'"); n != 1 {
			return fmt.Errorf("ingest reported %d permanent errors, want the forged one", n)
		}
		// deliveries, orders, inventory, reconcile and clickhouse
		if n := p.count("SELECT uniqExact(consumer_group) FROM $db.pipeline_metrics FINAL WHERE partition >= 0"); n != 5 {
			return fmt.Errorf("lag rows of %d groups, want 5", n)
		}
		return nil
	})
}
