// Package deliveries owns "once per delivery": it consumes the receipts the
// edge wrote to webhooks.raw, lets the first sighting of each provider
// delivery id through, and forwards what that receipt carries, an order
// event to the orders topic or a stock snapshot to inventory.snapshots, in
// a Kafka transaction with its input offsets. Every receipt also gets its
// outcome on webhooks.outcomes, in the same transaction: accepted for a
// first copy, duplicate for a later one, which with the edge's own
// rejections is what analysts count webhooks by.
//
// A snapshot reaches its topic named by SKU, its key there. An inventory
// webhook names the storefront's own item, so the stage asks the catalog
// (stock.Catalog) for its SKU, a batch's items in one round trip. One the
// catalog does not know is dead-lettered with the reason, and recorded as
// seen nowhere, so that once the item is loaded, redriving it from the DLQ
// forwards it like a first copy.
//
// The edge writes a delivery again when a provider's retry reaches another
// instance, comes after a restart, or after the edge's in-memory window
// forgot it. The stage records, per delivery, the position (topic,
// partition, offset) of the first copy it handles in Redis with SET NX GET
// (Redis 7.0 or later), a whole batch in one pipelined round trip; SET NX
// lets exactly one position win, whatever order copies arrive in. A record
// that finds its own position there is that copy seen again (its
// transaction aborted, the stage was killed, or an operator replays from
// earliest) and is forwarded again, identically; one that finds another
// position is another copy and is dropped. So the decision is the same on
// every replay, and nothing depends on what an earlier attempt left behind.
// Receipts are keyed by delivery id, so the copies of one delivery share a
// partition and are decided in the order the edge wrote them.
//
// The records are kept for Horizon (default 7 days, webhooks.raw's
// retention): a replay reads nothing much older than the topic keeps, and
// a provider's retry comes within days (Stripe's and Svix's span about
// three). A copy that comes after its first one's record expired, or after
// Redis lost a write, is forwarded again; the orders stage is the backstop:
// it orders events by the provider's version and gives every delta a stable
// id, so such a copy changes no stock twice; a snapshot forwarded twice
// says the same thing twice. A receipt that carries neither (a kind kept
// only as a receipt) decides nothing and records nothing.
//
// A record written with a schema this binary does not know (a newer
// release's receipt) stalls the stage rather than being dead-lettered: it is
// an acknowledged webhook, and an upgraded binary will read it. Upgrade the
// readers of a topic before its writers.
package deliveries

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/stream"
	"github.com/shopstream/shopstream/schemas/avro"
	"github.com/shopstream/shopstream/schemas/envelope"
	"github.com/shopstream/shopstream/stock"
)

// Sighting is one copy of a delivery: the delivery's key and where the copy
// is in the log.
type Sighting struct {
	Key      string
	Position string
}

// FirstSeen remembers where each delivery was first seen.
type FirstSeen interface {
	// Record records each sighting's position unless its key has one,
	// and reports, sighting by sighting, whether it is the first: its key
	// had no position, or had this very one. Sightings of one key are
	// decided in the order given.
	Record(ctx context.Context, sightings []Sighting) ([]bool, error)
}

// RedisFirstSeen is a FirstSeen on Redis: one string a delivery, under the
// delivery's own hash tag, written a batch per pipelined round trip (a
// pipeline, not a script over many keys, because a batch's keys live in
// many slots of a Redis Cluster).
type RedisFirstSeen struct {
	rdb     redis.Cmdable
	prefix  string
	horizon time.Duration
}

// NewRedisFirstSeen returns a FirstSeen whose keys start with prefix and
// live for horizon.
func NewRedisFirstSeen(rdb redis.Cmdable, prefix string, horizon time.Duration) *RedisFirstSeen {
	return &RedisFirstSeen{rdb: rdb, prefix: prefix, horizon: horizon}
}

func (r *RedisFirstSeen) key(k string) string { return r.prefix + "dlv:{" + k + "}" }

// Record implements FirstSeen.
func (r *RedisFirstSeen) Record(ctx context.Context, sightings []Sighting) ([]bool, error) {
	if len(sightings) == 0 {
		return nil, nil
	}
	pipe := r.rdb.Pipeline()
	cmds := make([]*redis.StatusCmd, len(sightings))
	for i, s := range sightings {
		cmds[i] = pipe.SetArgs(ctx, r.key(s.Key), s.Position, redis.SetArgs{Mode: "NX", Get: true, TTL: r.horizon})
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("deliveries: record %d sightings: %w", len(sightings), err)
	}
	first := make([]bool, len(sightings))
	for i, c := range cmds {
		prev, err := c.Result()
		switch {
		case errors.Is(err, redis.Nil):
			first[i] = true
		case err != nil:
			return nil, fmt.Errorf("deliveries: record %s: %w", sightings[i].Key, err)
		default:
			first[i] = prev == sightings[i].Position
		}
	}
	return first, nil
}

// Catalog names the SKU of a storefront's item: "" for one it does not know.
type Catalog interface {
	SKUs(ctx context.Context, items []stock.Item) ([]string, error)
}

// Topics are where the stage forwards to.
type Topics struct {
	Orders, Snapshots string
	// Outcomes receives, for every receipt, whether it was its delivery's
	// first copy (accepted) or a later one (duplicate).
	Outcomes string
}

// Processor is the stream.RunHandler of the deliveries stage.
type Processor struct {
	seen    FirstSeen
	catalog Catalog
	codec   *avro.Registry
	topics  Topics
}

// NewProcessor returns a Processor that decides first sightings with seen,
// names snapshots' SKUs with catalog, and forwards to topics.
func NewProcessor(seen FirstSeen, catalog Catalog, topics Topics) *Processor {
	return &Processor{seen: seen, catalog: catalog, codec: avro.Default(), topics: topics}
}

// HandleRuns forwards the order event or stock snapshot of every receipt in
// the batch that is its delivery's first copy, in each partition's order. A
// record that is not a receipt, whose event cannot be encoded, or whose
// snapshot's item the catalog does not know, is rejected before its
// delivery is recorded, so that it marks nothing as seen; one of an unknown
// schema fails the batch, to be retried.
func (p *Processor) HandleRuns(ctx context.Context, runs [][]*kgo.Record) (stream.Result, error) {
	receipts, rejected := stream.Decode(runs, p.decode)
	res := stream.Result{Rejected: rejected}
	for _, r := range rejected {
		if errors.Is(r.Err, avro.ErrUnknownSchema) {
			return stream.Result{}, fmt.Errorf("deliveries: a receipt at %s was written by a newer release; upgrade this stage: %w",
				position(r.Record), r.Err)
		}
	}
	if err := p.nameSKUs(ctx, receipts); err != nil {
		return stream.Result{}, err
	}
	// forward is a receipt that passed, with what it forwards (nil for a
	// kind kept only as a receipt) and its sighting's index (-1: none).
	type forward struct {
		receipt  stream.Decoded[avro.WebhookReceipt]
		out      *kgo.Record
		sighting int
	}
	var (
		sightings []Sighting
		forwards  []forward
	)
	for _, r := range receipts {
		corr, _ := envelope.Header(r.Record, envelope.HeaderCorrelationID)
		var (
			out *kgo.Record
			err error
		)
		switch v := r.Value; {
		case v.Event != nil:
			out, err = envelope.Record(p.topics.Orders, v.Event, corr)
		case v.Stock != nil && v.Stock.SKU == "":
			err = fmt.Errorf("deliveries: the catalog has no SKU for %s item %s; load it (shopstream catalog load) and redrive this record",
				v.Stock.Source, v.Stock.ItemID)
		case v.Stock != nil:
			out, err = envelope.Record(p.topics.Snapshots, v.Stock, corr)
		default:
			// Kept only as a receipt: nothing is forwarded, so nothing is
			// recorded either, and every copy is reported accepted under
			// the delivery's own id, one row once deduplicated.
			forwards = append(forwards, forward{receipt: r, sighting: -1})
			continue
		}
		if err != nil {
			res.Rejected = append(res.Rejected, stream.Rejection{Record: r.Record, Err: stream.Permanent(err)})
			continue
		}
		forwards = append(forwards, forward{receipt: r, out: out, sighting: len(sightings)})
		sightings = append(sightings, Sighting{Key: r.Value.Provider + ":" + r.Value.DeliveryID, Position: position(r.Record)})
	}
	first, err := p.seen.Record(ctx, sightings)
	if err != nil {
		return stream.Result{}, err
	}
	for _, f := range forwards {
		isFirst := f.sighting < 0 || first[f.sighting]
		o, err := p.outcome(f.receipt, isFirst)
		if err != nil {
			return stream.Result{}, err
		}
		res.Outputs = append(res.Outputs, o)
		if isFirst && f.out != nil {
			res.Outputs = append(res.Outputs, f.out)
		}
	}
	return res, nil
}

// outcome reports what became of a receipt: the first copy of its delivery
// is accepted under the delivery's id, a later copy a duplicate under its
// own position, so that a replay writes the same rows again and
// deduplicating by id counts each delivery once and each copy once.
func (p *Processor) outcome(r stream.Decoded[avro.WebhookReceipt], first bool) (*kgo.Record, error) {
	v := r.Value
	o := &avro.WebhookOutcome{OutcomeID: v.Provider + ":" + v.DeliveryID, Provider: v.Provider, DeliveryID: v.DeliveryID,
		EventType: v.EventType, Outcome: avro.OutcomeAccepted, Status: 200, Size: int64(len(v.Body)), ReceivedAt: v.ReceivedAt}
	if !first {
		o.OutcomeID, o.Outcome, o.Reason = position(r.Record), avro.OutcomeDuplicate, "deliveries"
	}
	corr, _ := envelope.Header(r.Record, envelope.HeaderCorrelationID)
	return envelope.Record(p.topics.Outcomes, o, corr)
}

// nameSKUs fills in the SKU of every snapshot that names only its item,
// from the catalog, in one round trip for the batch.
func (p *Processor) nameSKUs(ctx context.Context, receipts []stream.Decoded[avro.WebhookReceipt]) error {
	var (
		items []stock.Item
		snaps []*avro.StockSnapshot
	)
	for _, r := range receipts {
		if s := r.Value.Stock; s != nil && s.SKU == "" && s.ItemID != "" {
			items = append(items, stock.Item{Source: s.Source, ItemID: s.ItemID})
			snaps = append(snaps, s)
		}
	}
	skus, err := p.catalog.SKUs(ctx, items)
	if err != nil {
		return err
	}
	for i, s := range snaps {
		s.SKU = skus[i]
	}
	return nil
}

// position names a record's place in the log: stable across every
// redelivery and replay of that record, and different for every other copy.
func position(r *kgo.Record) string {
	return r.Topic + "/" + strconv.Itoa(int(r.Partition)) + "/" + strconv.FormatInt(r.Offset, 10)
}

// decode reads and checks one receipt.
func (p *Processor) decode(rec *kgo.Record) (avro.WebhookReceipt, error) {
	var r avro.WebhookReceipt
	if err := p.codec.Unmarshal(rec.Value, &r); err != nil {
		return r, err
	}
	if r.DeliveryID == "" || r.Provider == "" {
		return r, fmt.Errorf("deliveries: receipt at %s lacks a delivery id or provider", position(rec))
	}
	return r, nil
}
