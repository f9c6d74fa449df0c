package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shopstream/shopstream/internal/testenv"
	"github.com/shopstream/shopstream/schemas/avro"
)

// The acceptance test (drift and heal): a SKU sold through the
// pipeline, then a snapshot of the source of truth that disagrees with
// Redis is a drift row in ClickHouse and nothing more; with healing on,
// the next such snapshot corrects Redis through one ADJUSTMENT movement,
// and the snapshot after it finds no drift. The healing snapshot's file
// reconciled again re-emits its identical drift row and heal, and changes
// neither the stock nor the movements.
func TestDriftIsReportedThenHealedOnce(t *testing.T) {
	p := newPipeline(t)
	const sku = "DRIFT"
	p.shopstream("stock", "adjust", "-sku", sku, "-qty", "100", "-id", "seed-"+sku)
	p.start()
	for _, d := range paidOrders(sku, 5) {
		p.mustSend(d, 200, "accepted")
	}
	p.settle(6)
	if got := p.stock(sku); got != 95 {
		t.Fatalf("stock %d after 5 sales of 100, want 95", got)
	}

	// The shop counted 90: five units Redis does not know went missing.
	dir := t.TempDir()
	snapshot := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		out := p.shopstream("reconcile", "-snapshot", path)
		if !strings.Contains(out, "reconcile: 1 snapshots of file:") {
			t.Fatalf("reconcile -snapshot %s: %s", name, out)
		}
		return path
	}
	snapshot("counted.csv", "sku,available\n"+sku+",90\n")
	p.analystViews(map[string]string{
		"SELECT sku, source, truth_available, redis_stock - reserved, in_flight, difference, action FROM $db.inventory_drift FINAL":          "DRIFT file 90 95 0 -5 NEEDS_REVIEW",
		"SELECT sku, sum(reconciliations), sum(total_difference), sum(healed), sum(needs_review) FROM $db.drift_per_sku_minute GROUP BY sku": "DRIFT 1 -5 0 1",
	})
	if got := p.stock(sku); got != 95 {
		t.Fatalf("stock %d: a drift not healed changed it", got)
	}

	// With healing on for the SKU, a new count heals it.
	p.stop()
	p.env = append(p.env, "SHOPSTREAM_RECONCILE_HEAL="+sku)
	p.start()
	heal := snapshot("recounted.csv", "sku,available,observed_at\n"+sku+",90,"+time.Now().UTC().Format(time.RFC3339Nano)+"\n")
	p.settle(7)
	if got := p.stock(sku); got != 90 {
		t.Fatalf("stock %d after the heal, want the source's 90", got)
	}
	p.analystViews(map[string]string{
		"SELECT kind, status, quantity, stock_after FROM $db.inventory_movements_final WHERE movement_id LIKE 'heal:file:%:2:DRIFT'": "ADJUSTMENT APPLIED -5 90",
		"SELECT action, difference FROM $db.inventory_drift FINAL ORDER BY observed_at, observed_ms":                                 "NEEDS_REVIEW -5\nHEALED -5",
	})

	// The next count agrees with Redis.
	snapshot("again.csv", "available,sku\n90,"+sku+"\n")
	p.analystViews(map[string]string{
		"SELECT action, difference FROM $db.inventory_drift FINAL ORDER BY observed_at, observed_ms":                                         "NEEDS_REVIEW -5\nHEALED -5\nNONE 0",
		"SELECT sku, sum(reconciliations), sum(total_difference), sum(healed), sum(needs_review) FROM $db.drift_per_sku_minute GROUP BY sku": "DRIFT 3 -10 1 1",
	})

	// The healing file once more: the same decision, the same bytes, no change.
	out := p.shopstream("reconcile", "-snapshot", heal)
	if !strings.Contains(out, "reconcile: 1 snapshots") {
		t.Fatalf("reconcile -snapshot again: %s", out)
	}
	drift := testenv.ReadTopic(t, p.names.Drift, 4)
	if len(drift) != 4 {
		t.Fatalf("%d drift records, want 4", len(drift))
	}
	if !bytes.Equal(drift[1].Value, drift[3].Value) {
		t.Error("the healing snapshot reconciled again wrote another drift row")
	}
	var again avro.StockDrift
	if err := avro.Default().Unmarshal(drift[3].Value, &again); err != nil || again.Action != avro.DriftHealed {
		t.Fatalf("drift %+v (%v), want the first decision, HEALED", again, err)
	}
	var heals [][]byte
	for _, r := range testenv.ReadTopic(t, p.names.Deltas, 8) {
		var d avro.InventoryDelta
		if err := avro.Default().Unmarshal(r.Value, &d); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(d.DeltaID, "heal:") {
			heals = append(heals, r.Value)
		}
	}
	if len(heals) != 2 || !bytes.Equal(heals[0], heals[1]) {
		t.Fatalf("%d heal deltas on the log, want the same one twice", len(heals))
	}
	p.settle(7)
	if got := p.stock(sku); got != 90 {
		t.Fatalf("stock %d after the heal was re-emitted, want 90", got)
	}
	p.analystViews(map[string]string{
		"SELECT count(), sum(quantity) FROM $db.inventory_movements_final WHERE sku = 'DRIFT'": "7 90",
		"SELECT count() FROM $db.inventory_drift FINAL":                                        "3",
	})
}
