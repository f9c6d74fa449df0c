package clickhouse

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/testenv"
	"github.com/shopstream/shopstream/schemas/avro"
	"github.com/shopstream/shopstream/topology"
)

func TestMigrationsRenderForACluster(t *testing.T) {
	ms, err := Migrations(SchemaConfig{DB: "analytics", Cluster: "main"})
	if err != nil {
		t.Fatal(err)
	}
	all := ""
	for _, m := range ms {
		for _, s := range m.Statements {
			all += s + "\n"
			if !strings.Contains(s, "ON CLUSTER main") {
				t.Errorf("%03d_%s: statement without ON CLUSTER: %s", m.Version, m.Name, s)
			}
		}
	}
	if !strings.Contains(all, "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/analytics.inventory_movements', '{replica}', version)") {
		t.Fatalf("no replicated engine in:\n%s", all)
	}
	for _, banned := range []string{"DateTime64", "LowCardinality", "Map(", " TTL "} {
		if strings.Contains(all, banned) {
			t.Errorf("the schema uses %s, which ClickHouse 18.16 lacks", banned)
		}
	}
}

func movementRecord(t *testing.T, m avro.InventoryMovement, offset int64) *kgo.Record {
	v, err := avro.Default().Marshal(&m)
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: "inventory.movements", Partition: 1, Offset: offset, Key: []byte(m.SKU), Value: v}
}

func TestMigrateAndSinkOnRealClickHouse(t *testing.T) {
	db := strings.TrimSuffix(testenv.Namespace(t), "_")
	conn := testenv.ClickHouse(t, db)
	ctx := context.Background()
	applied, err := Migrate(ctx, conn, SchemaConfig{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) < 2 {
		t.Fatalf("applied %d migrations", len(applied))
	}
	if again, err := Migrate(ctx, conn, SchemaConfig{DB: db}); err != nil || len(again) != 0 {
		t.Fatalf("second migrate applied %d, %v", len(again), err)
	}

	at := time.Date(2026, 11, 24, 10, 0, 5, 250e6, time.UTC)
	sale := avro.InventoryMovement{MovementID: "o1:1:sale", SKU: "A", Kind: avro.DeltaSale, Status: avro.MovementApplied,
		Quantity: -2, StockAfter: 8, OrderID: "o1", OccurredAt: at, AppliedAt: at.Add(time.Second)}
	refused := avro.InventoryMovement{MovementID: "o2:1:sale", SKU: "A", Kind: avro.DeltaSale, Status: avro.MovementRefused,
		Quantity: -9, StockAfter: 8, Reason: "insufficient_stock", OrderID: "o2", OccurredAt: at, AppliedAt: at.Add(time.Second)}
	batch := []*kgo.Record{movementRecord(t, sale, 1), movementRecord(t, refused, 2), {Topic: "inventory.movements", Offset: 3, Value: []byte("junk")}}
	sink := newSink(conn, db, routes(topology.NamesFor("")))
	// The same batch twice, as after a failed commit: counts stay exact.
	for i := 0; i < 2; i++ {
		rejected, err := sink.HandleBatch(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		if len(rejected) != 1 || rejected[0].Record.Offset != 3 {
			t.Fatalf("rejected %v", rejected)
		}
	}
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM "+db+".inventory_movements_final").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("%d deduplicated movements, want 2", n)
	}
	var units int64
	var ms uint16
	if err := conn.QueryRow(ctx, "SELECT units_sold FROM "+db+".sales_per_sku_minute WHERE sku = 'A'").Scan(&units); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, "SELECT occurred_ms FROM "+db+".inventory_movements_final WHERE movement_id = 'o1:1:sale'").Scan(&ms); err != nil {
		t.Fatal(err)
	}
	var refusedUnits int64
	if err := conn.QueryRow(ctx, "SELECT units_refused FROM "+db+".refused_per_sku_minute WHERE sku = 'A'").Scan(&refusedUnits); err != nil {
		t.Fatal(err)
	}
	if units != 2 || ms != 250 || refusedUnits != 9 {
		t.Fatalf("units sold %d, occurred_ms %d, units refused %d", units, ms, refusedUnits)
	}
}

func TestSinkWithClickHouseGoneFails(t *testing.T) {
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{"127.0.0.1:1"}, DialTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rec := movementRecord(t, avro.InventoryMovement{MovementID: "m", SKU: "A", Kind: avro.DeltaSale, Status: avro.MovementApplied, Quantity: -1}, 1)
	if _, err := newSink(conn, "x", routes(topology.NamesFor(""))).HandleBatch(context.Background(), []*kgo.Record{rec}); err == nil {
		t.Fatal("a batch into an unreachable ClickHouse reported success")
	}
}
