package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shopstream/shopstream/ingest/providers/providertest"
	"github.com/shopstream/shopstream/internal/testenv"
	"github.com/shopstream/shopstream/stock"
	"github.com/shopstream/shopstream/topology"
)

// shopstreamFails runs one command of the binary that must fail, and
// returns what it said.
func (p *pipeline) shopstreamFails(args ...string) string {
	p.t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = p.env
	out, err := cmd.CombinedOutput()
	if err == nil {
		p.t.Fatalf("shopstream %s succeeded:\n%s", strings.Join(args, " "), out)
	}
	return string(out)
}

// columns joins the fields of each line of s with one space, and takes the
// namespace's prefix out, so that a table compares whatever its widths.
func (p *pipeline) columns(s string) string {
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(strings.ReplaceAll(s, p.prefix, "")), "\n") {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	return strings.Join(lines, "\n")
}

// paidBurst seeds sku with seed units, starts the pipeline and sends n
// paid orders of one unit each, and waits until all landed.
func (p *pipeline) paidBurst(sku string, seed, n int) {
	p.t.Helper()
	p.shopstream("stock", "adjust", "-sku", sku, "-qty", fmt.Sprint(seed), "-id", "seed-"+sku)
	p.start()
	for _, d := range paidOrders(sku, n) {
		p.mustSend(d, 200, "accepted")
	}
	p.settle(uint64(n + 1))
}

// replay refuses beside a running stage and names its member; right after
// a clean stop it plans exactly what the group will read again, and the
// reset makes the stage read it again, changing nothing; after a SIGKILL
// it refuses until the dead static member is removed.
func TestReplayResetsAStoppedStage(t *testing.T) {
	p := newPipeline(t)
	const n = 12
	p.paidBurst("R", 100, n)
	instance := p.prefix + "shopstream-inventory-e2e"
	if out := p.shopstreamFails("replay", "-group", "inventory", "-to", "earliest"); !strings.Contains(out, "has live members") ||
		!strings.Contains(out, "instance "+instance) {
		t.Fatalf("replay beside the running stage:\n%s", out)
	}

	p.stop()
	ctx := context.Background()
	group := p.prefix + "shopstream-inventory"
	committed, err := p.adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	starts, err := p.adm.ListStartOffsets(ctx, p.names.Deltas)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"replay shopstream-inventory to earliest (dry run, nothing is committed):", "topic partition current target re-read skipped"}
	var total int64
	for part := range int32(3) {
		s, _ := starts.Lookup(p.names.Deltas, part)
		c, ok := committed.Lookup(p.names.Deltas, part)
		if !ok {
			// One SKU's deltas share a partition: the others hold none.
			want = append(want, fmt.Sprintf("inventory.deltas %d none %d 0 0", part, s.Offset))
			continue
		}
		want = append(want, fmt.Sprintf("inventory.deltas %d %d %d %d 0", part, c.At, s.Offset, c.At-s.Offset))
		total += c.At - s.Offset
	}
	want = append(want, fmt.Sprintf("total %d 0", total))
	if total < n+1 {
		t.Fatalf("the group committed %d offsets for %d deltas", total, n+1)
	}
	// Right after the stop: the stage left its group as it stopped.
	if got := p.columns(p.shopstream("replay", "-group", "inventory", "-to", "earliest", "-dry-run")); got != strings.Join(want, "\n") {
		t.Fatalf("dry run:\n%s\nwant\n%s", got, strings.Join(want, "\n"))
	}
	if out := p.shopstream("replay", "-group", "inventory", "-to", "earliest"); !strings.Contains(out, "committed: "+group) {
		t.Fatalf("replay:\n%s", out)
	}
	after, err := p.adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	for part := range int32(3) {
		a, _ := after.Lookup(p.names.Deltas, part)
		s, _ := starts.Lookup(p.names.Deltas, part)
		if a.At != s.Offset {
			t.Fatalf("partition %d committed at %d after the reset, want %d", part, a.At, s.Offset)
		}
	}

	// The stage reads every delta again: each movement is emitted a second
	// time, identical, and nothing else moves.
	movements := p.topicRecords(p.names.Movements, n+1)
	p.start()
	testenv.Eventually(t, 60*time.Second, func() error {
		if got := len(testenv.ReadTopic(t, p.names.Movements, 2*movements)); got != 2*movements {
			return fmt.Errorf("%d movements, want %d: the stage has not read the deltas again", got, 2*movements)
		}
		return nil
	})
	p.settle(n + 1)
	if got := p.stock("R"); got != 100-n {
		t.Fatalf("stock %d after the replay, want %d", got, 100-n)
	}

	// Killed, the static member stays listed: replay says how to remove it.
	p.kill()
	out := p.shopstreamFails("replay", "-group", "inventory", "-to", "latest")
	if !strings.Contains(out, "instance "+instance) || !strings.Contains(out, "-remove-member "+instance) {
		t.Fatalf("replay after a SIGKILL:\n%s", out)
	}
	out = p.shopstream("replay", "-group", "inventory", "-to", "latest", "-remove-member", instance)
	if !strings.Contains(out, "removed the static member "+instance) || !strings.Contains(out, "committed: "+group) {
		t.Fatalf("replay removing the killed member:\n%s", out)
	}
}

// A webhook the deliveries stage dead-letters (its item is not in the
// catalog yet) is shown by dlq inspect without its body; once the catalog
// knows the item, dlq redrive sends it back and it lands once; the same
// redrive again sends nothing, and had it sent the record again, the
// deliveries stage would have dropped it.
func TestDLQRedriveAppliesOnce(t *testing.T) {
	p := newPipeline(t)
	const webflowSecret = "webflow-e2e-secret"
	p.env = append(p.env, "SHOPSTREAM_WEBFLOW_SECRET="+webflowSecret)
	p.start()
	webflow := providertest.Webflow{Secret: []byte(webflowSecret)}
	body := []byte(`{"triggerType":"ecomm_inventory_changed","payload":{"id":"wf-new-item","quantity":7,"inventoryType":"finite"}}`)
	p.sendAs("webflow", webflow, providertest.Delivery{Body: body}, 200, "accepted")
	dlq := topology.DLQ(p.names.WebhooksRaw)
	if dead := testenv.ReadTopic(t, dlq, 1); len(dead) != 1 {
		t.Fatalf("%d dead letters, want the snapshot of an unknown item", len(dead))
	}

	out := p.shopstream("dlq", "inspect")
	if strings.Contains(out, "triggerType") || strings.Contains(out, `"quantity"`) {
		t.Fatalf("dlq inspect printed the webhook's body:\n%s", out)
	}
	for _, want := range []string{"webhooks.raw.dlq permanent 1 0\ntotal 1", "reason deliveries: the catalog has no SKU for webflow item wf-new-item",
		`WebhookReceipt: delivery_id=`, `provider="webflow" event_type="ecomm_inventory_changed" source="webflow" item_id="wf-new-item" sku=""`} {
		if !strings.Contains(p.columns(out), want) {
			t.Fatalf("dlq inspect:\n%s\nwithout %q", out, want)
		}
	}

	catalog := filepath.Join(t.TempDir(), "catalog.csv")
	if err := os.WriteFile(catalog, []byte("source,item_id,sku\nwebflow,wf-new-item,NEW\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.shopstream("catalog", "load", catalog)
	if out := p.shopstream("dlq", "redrive", "-topic", "webhooks.raw", "-dry-run"); !strings.Contains(out, "1 selected, 0 redriven before, 1 to redrive") {
		t.Fatalf("dry run:\n%s", out)
	}
	if out := p.shopstream("dlq", "redrive", "-topic", "webhooks.raw", "-rate", "10"); !strings.Contains(out, "redrove 1 to "+p.names.WebhooksRaw) {
		t.Fatalf("redrive:\n%s", out)
	}
	snapshotsOf := func(sku string) int {
		n := 0
		for _, r := range testenv.ReadTopic(t, p.names.Snapshots, 1) {
			if string(r.Key) == sku {
				n++
			}
		}
		return n
	}
	if n := snapshotsOf("NEW"); n != 1 {
		t.Fatalf("%d snapshots of NEW after the redrive, want 1", n)
	}
	if out := p.shopstream("dlq", "redrive", "-topic", "webhooks.raw"); !strings.Contains(out, "1 selected, 1 redriven before, 0 to redrive") {
		t.Fatalf("the second redrive:\n%s", out)
	}
	// Without the record of what was redriven the record goes back again,
	// and the deliveries stage forwards one copy of a delivery id.
	if err := p.rdb.Del(context.Background(), p.prefix+"dlq:redriven").Err(); err != nil {
		t.Fatal(err)
	}
	if out := p.shopstream("dlq", "redrive", "-topic", "webhooks.raw"); !strings.Contains(out, "redrove 1") {
		t.Fatalf("the redrive without its record:\n%s", out)
	}
	if n := len(testenv.ReadTopic(t, p.names.WebhooksRaw, 3)); n != 3 {
		t.Fatalf("webhooks.raw holds %d records, want the webhook and its two redrives", n)
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		if err := p.noLag(); err != nil {
			return err
		}
		return nil
	})
	if n := snapshotsOf("NEW"); n != 1 {
		t.Fatalf("%d snapshots of NEW after the same record was redriven twice, want 1", n)
	}
	if out := p.columns(p.shopstream("dlq", "inspect")); !strings.Contains(out, "webhooks.raw.dlq permanent 1 1") {
		t.Fatalf("dlq inspect after the redrive:\n%s", out)
	}
}

// skuState is what a rebuild must give back of a SKU exactly.
type skuState struct {
	level     stock.Level
	ledger    []stock.LedgerEntry
	watermark string
	decided   int64
}

func (p *pipeline) skuState(sku string) skuState {
	p.t.Helper()
	ctx := context.Background()
	levels, err := p.store.Levels(ctx, []string{sku})
	if err != nil {
		p.t.Fatal(err)
	}
	ledger, err := p.store.Ledger(ctx, sku)
	if err != nil {
		p.t.Fatal(err)
	}
	k := stock.KeysFor(p.prefix, sku)
	wm, _ := p.rdb.Get(ctx, k.Watermark).Result()
	decided, _ := p.rdb.HLen(ctx, k.Applied).Result()
	return skuState{levels[0], ledger, wm, decided}
}

func (a skuState) equal(b skuState) bool {
	return a.level == b.level && slices.Equal(a.ledger, b.ledger) && a.watermark == b.watermark && a.decided == b.decided
}

// A SKU whose keys Redis lost is rebuilt from the delta log: its stock,
// reserved units, ledger, watermark and remembered deltas come back
// exactly, the other SKUs stay as they were, and the stage goes on from
// there applying nothing twice, a replay from earliest included.
func TestRebuildInventoryRestoresALostSKU(t *testing.T) {
	p := newPipeline(t)
	p.shopstream("stock", "adjust", "-sku", "KEEP", "-qty", "40", "-id", "seed-KEEP")
	p.shopstream("stock", "adjust", "-sku", "LOST", "-qty", "5", "-id", "seed-LOST")
	p.start()
	now := time.Now()
	for i := range 10 {
		lines := []line{{"KEEP", 1}}
		if i%2 == 0 {
			lines = append(lines, line{"LOST", 1})
		}
		p.mustSend(delivery{id: fmt.Sprintf("msg_rb_%d", i), body: order(fmt.Sprintf("rb-%d", i), "order.paid", now, lines...)}, 200, "accepted")
	}
	// 2 seeds, 10 KEEP, 5 LOST of which the 6th would oversell: refused.
	p.mustSend(delivery{id: "msg_rb_over", body: order("rb-over", "order.paid", now, line{"LOST", 1})}, 200, "accepted")
	p.settle(2 + 10 + 5 + 1)
	before := map[string]skuState{"KEEP": p.skuState("KEEP"), "LOST": p.skuState("LOST")}
	if before["LOST"].level.OnHand != 5 || len(before["LOST"].ledger) != 6 {
		t.Fatalf("before: LOST %+v", before["LOST"])
	}

	if out := p.shopstreamFails("rebuild", "inventory", "-dry-run"); !strings.Contains(out, "has live members") {
		t.Fatalf("rebuild beside the running stage:\n%s", out)
	}
	p.stop()
	k := stock.KeysFor(p.prefix, "LOST")
	if err := p.rdb.Del(context.Background(), k.StateKeys()...).Err(); err != nil {
		t.Fatal(err)
	}
	lost := p.skuState("LOST")

	out := p.columns(p.shopstream("rebuild", "inventory", "-dry-run"))
	for _, want := range []string{
		"rebuild inventory: 18 deltas of inventory.deltas",
		fmt.Sprintf("LOST 0 → %d 0 → %d 0 → 6 no keys live", before["LOST"].level.OnHand, before["LOST"].level.Reserved),
		"2 SKUs compared, 1 differ", "dry run: nothing switched",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("rebuild -dry-run:\n%s\nwithout %q", out, want)
		}
	}
	if got := p.skuState("LOST"); !got.equal(lost) {
		t.Fatalf("a dry run changed LOST: %+v", got)
	}
	if left, _ := stock.SKUs(context.Background(), p.rdb, p.prefix+"rebuild:"); len(left) != 0 {
		t.Fatalf("the dry run left a rebuilt namespace behind")
	}

	out = p.shopstream("rebuild", "inventory")
	if !strings.Contains(out, "switched: the live namespace holds the rebuilt stock of 2 SKUs") {
		t.Fatalf("rebuild:\n%s", out)
	}
	for sku, want := range before {
		if got := p.skuState(sku); !got.equal(want) {
			t.Fatalf("%s after the rebuild:\n %+v\nwant\n %+v", sku, got, want)
		}
	}
	if again := p.columns(p.shopstream("rebuild", "inventory", "-dry-run")); !strings.Contains(again, "2 SKUs compared, 0 differ") {
		t.Fatalf("a rebuild after the rebuild:\n%s", again)
	}

	// The stage goes on from the rebuilt stock, and a replay of the whole
	// log changes nothing of it.
	p.shopstream("replay", "-group", "inventory", "-to", "earliest")
	p.start()
	p.mustSend(delivery{id: "msg_rb_after", body: order("rb-after", "order.paid", time.Now(), line{"KEEP", 1})}, 200, "accepted")
	p.settle(2 + 10 + 5 + 1 + 1)
	if got := p.skuState("LOST"); !got.equal(before["LOST"]) {
		t.Fatalf("LOST after the replay:\n %+v\nwant\n %+v", got, before["LOST"])
	}
	if got := p.stock("KEEP"); got != before["KEEP"].level.Available()-1 {
		t.Fatalf("KEEP can sell %d after one more sale, want %d", got, before["KEEP"].level.Available()-1)
	}
}
