package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/time/rate"

	"github.com/shopstream/shopstream/internal/conf"
	"github.com/shopstream/shopstream/internal/stream"
	"github.com/shopstream/shopstream/schemas/avro"
	"github.com/shopstream/shopstream/schemas/envelope"
	"github.com/shopstream/shopstream/topology"
)

// dlq is `shopstream dlq inspect` and `shopstream dlq redrive`.
//
// A dead letter's body is the record that failed, as it was: a receipt
// holds a webhook's raw body, which can name a customer. So inspect never
// prints a body: it prints its size, its schema fingerprint and event
// type, and of a value that decodes as its topic's contract only ids,
// types and quantities.
//
// Redriving is at least once, made once by two layers. Each dead letter
// redriven is recorded, after its origin topic acknowledged it, in a
// sorted set under the prefix (redrivenKey; member <dlq topic>/<partition>/
// <offset>), so running the same redrive again re-produces nothing. A
// crash between the produce and the record re-produces that one record
// on the next run, and there the stages' own idempotence decides: the
// deliveries stage forwards one copy of a delivery id, the orders stage
// moves an order once per state change, the inventory stage applies a
// delta id once, the sink's tables keep one row per id.
type dlq struct {
	topic, class string
	limit        int
	origin       string
	rate         int
	dryRun       bool
}

func (d *dlq) inspectFlags(fs *conf.FlagSet) {
	fs.String(&d.topic, "topic", "", "only this dead-letter topic (its name, or its origin topic's, with or without the prefix); default: every one")
	fs.Int(&d.limit, "limit", 10, "how many of the newest dead letters to show")
}

func (d *dlq) redriveFlags(fs *conf.FlagSet) {
	fs.String(&d.topic, "topic", "", "the dead-letter topic to redrive (its name, or its origin topic's, with or without the prefix)")
	fs.String(&d.class, "class", "", "only dead letters of this error class (dlq.error.class: permanent, transient)")
	fs.String(&d.origin, "origin-offset", "", "only the dead letters of these origin records, PARTITION:OFFSET[,PARTITION:OFFSET...] (dlq.origin.partition, dlq.origin.offset)")
	fs.Int(&d.rate, "rate", 100, "records redriven a second, at most")
	fs.Bool(&d.dryRun, "dry-run", false, "print what would be redriven, and produce nothing")
}

// dlqTopics returns the dead-letter topics under the prefix, or the one
// named, which may be given as its origin topic and without the prefix.
func dlqTopics(s *settings, name string) ([]string, error) {
	var all []string
	for _, t := range topology.Topics(topology.Options{Prefix: s.prefix}) {
		if strings.HasSuffix(t.Name, topology.DLQ("")) {
			all = append(all, t.Name)
		}
	}
	if name == "" {
		return all, nil
	}
	for _, n := range []string{name, s.prefix + name, topology.DLQ(name), topology.DLQ(s.prefix + name)} {
		if slices.Contains(all, n) {
			return []string{n}, nil
		}
	}
	return nil, fmt.Errorf("no dead-letter topic %q; they are %s", name, strings.Join(all, ", "))
}

// redrivenKey is the sorted set of the dead letters redriven, scored by
// when (Unix ms).
func redrivenKey(s *settings) string { return s.prefix + "dlq:redriven" }

func redrivenMember(r *kgo.Record) string {
	return r.Topic + "/" + strconv.Itoa(int(r.Partition)) + "/" + strconv.FormatInt(r.Offset, 10)
}

// redriven returns, for each record, whether it was redriven.
func redriven(ctx context.Context, rdb *redis.Client, key string, recs []*kgo.Record) ([]bool, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	members := make([]string, len(recs))
	for i, r := range recs {
		members[i] = redrivenMember(r)
	}
	scores, err := rdb.ZMScore(ctx, key, members...).Result()
	if err != nil {
		return nil, fmt.Errorf("dlq: which were redriven: %w", err)
	}
	out := make([]bool, len(recs))
	for i, sc := range scores {
		out[i] = sc != 0
	}
	return out, nil
}

// deadLetter is a dead-letter record with its dlq.* headers read.
type deadLetter struct {
	rec                       *kgo.Record
	class, reason, origin     string
	originPartition, originAt int64
	failedAt                  time.Time
	redriven                  bool
}

func readDeadLetter(r *kgo.Record) deadLetter {
	d := deadLetter{rec: r, failedAt: r.Timestamp, originPartition: -1, originAt: -1}
	d.class, _ = envelope.Header(r, stream.HeaderErrorClass)
	d.reason, _ = envelope.Header(r, stream.HeaderErrorReason)
	d.origin, _ = envelope.Header(r, stream.HeaderOriginTopic)
	if v, ok := envelope.Header(r, stream.HeaderOriginPartition); ok {
		d.originPartition, _ = strconv.ParseInt(v, 10, 32)
	}
	if v, ok := envelope.Header(r, stream.HeaderOriginOffset); ok {
		d.originAt, _ = strconv.ParseInt(v, 10, 64)
	}
	if v, ok := envelope.Header(r, stream.HeaderFailedAt); ok {
		if at, err := time.Parse(time.RFC3339Nano, v); err == nil {
			d.failedAt = at
		}
	}
	return d
}

func (d *dlq) inspect(ctx context.Context, s *settings, args []string, out io.Writer) error {
	if len(args) > 0 || d.limit < 0 {
		return errors.New("dlq inspect takes no arguments, and a -limit of 0 or more")
	}
	topics, err := dlqTopics(s, d.topic)
	if err != nil {
		return err
	}
	rdb := s.redis()
	defer rdb.Close()
	type count struct{ dead, redriven int }
	counts := map[[2]string]*count{}
	var newest []deadLetter
	_, err = readLog(ctx, s, topics, 1000, func(recs []*kgo.Record) error {
		done, err := redriven(ctx, rdb, redrivenKey(s), recs)
		if err != nil {
			return err
		}
		for i, r := range recs {
			dl := readDeadLetter(r)
			dl.redriven = done[i]
			c := counts[[2]string{r.Topic, dl.class}]
			if c == nil {
				c = &count{}
				counts[[2]string{r.Topic, dl.class}] = c
			}
			c.dead++
			if dl.redriven {
				c.redriven++
			}
			// newest stays sorted, newest first, and no longer than the limit.
			at, _ := slices.BinarySearchFunc(newest, dl, func(a, b deadLetter) int { return b.failedAt.Compare(a.failedAt) })
			if at < d.limit {
				newest = slices.Insert(newest, at, dl)
				newest = newest[:min(len(newest), d.limit)]
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	keys := slices.Collect(maps.Keys(counts))
	slices.SortFunc(keys, func(a, b [2]string) int { return strings.Compare(a[0]+"\x00"+a[1], b[0]+"\x00"+b[1]) })
	total := 0
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "dead letters by topic and error class:")
	fmt.Fprintln(w, "  dlq topic\tclass\tdead letters\tredriven")
	for _, k := range keys {
		fmt.Fprintf(w, "  %s\t%s\t%d\t%d\n", k[0], k[1], counts[k].dead, counts[k].redriven)
		total += counts[k].dead
	}
	fmt.Fprintf(w, "  total\t\t%d\t\n", total)
	w.Flush()
	if len(newest) == 0 {
		return nil
	}
	fmt.Fprintf(out, "\nthe newest %d (bodies are never printed: a webhook's can name a customer):\n", len(newest))
	codec, names := avro.Default(), s.topics()
	for _, dl := range newest {
		r := dl.rec
		state := "not redriven"
		if dl.redriven {
			state = "redriven"
		}
		fmt.Fprintf(out, "%s %d@%d  failed %s  %s  %s\n", r.Topic, r.Partition, r.Offset, dl.failedAt.UTC().Format(time.RFC3339), dl.class, state)
		fmt.Fprintf(out, "  origin   %s %d@%d\n", dl.origin, dl.originPartition, dl.originAt)
		fmt.Fprintf(out, "  reason   %s\n", printable(dl.reason, maxReasonShown))
		fmt.Fprintf(out, "  key      %s\n", strconv.Quote(printable(string(r.Key), maxValueShown)))
		var headers []string
		for _, h := range r.Headers {
			if !strings.HasPrefix(h.Key, "dlq.") {
				headers = append(headers, h.Key+"="+printable(string(h.Value), maxValueShown))
			}
		}
		if len(headers) == 0 {
			headers = []string{"(none)"}
		}
		fmt.Fprintf(out, "  headers  %s\n", strings.Join(headers, " "))
		fmt.Fprintf(out, "  body     %s\n", redacted(codec, names, dl.origin, r.Value))
	}
	return nil
}

// How much of a header inspect shows: dlq.error.reason is bounded where it
// is written (stream.DeadLetter), the others by these.
const (
	maxReasonShown = 512
	maxValueShown  = 128
)

// printable returns s cut to n bytes, with anything that is not a
// printable character escaped, so a header cannot move the terminal.
func printable(s string, n int) string {
	cut := len(s) > n
	if cut {
		s = s[:n]
	}
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		s = strings.Trim(strconv.Quote(s), `"`)
	}
	if cut {
		s += "…"
	}
	return s
}

// redacted says what a dead letter's body is without showing it: its
// size, and of a value that decodes as its origin topic's contract only
// fields that name no person (ids, types, SKUs, quantities). A receipt's
// raw body and HTTP headers, an order's customer hash and prices are left
// out.
func redacted(codec *avro.Registry, n topology.Names, origin string, value []byte) string {
	size := fmt.Sprintf("%d bytes", len(value))
	var (
		fields   []string
		contract string
		err      error
	)
	f := func(kv ...string) {
		for i := 0; i+1 < len(kv); i += 2 {
			fields = append(fields, kv[i]+"="+strconv.Quote(printable(kv[i+1], maxValueShown)))
		}
	}
	switch origin {
	case n.WebhooksRaw:
		var v avro.WebhookReceipt
		if contract, err = "WebhookReceipt", codec.Unmarshal(value, &v); err == nil {
			f("delivery_id", v.DeliveryID, "provider", v.Provider, "event_type", v.EventType)
			if v.Event != nil {
				f("order_id", v.Event.OrderID, "type", v.Event.Type)
			}
			if v.Stock != nil {
				f("source", v.Stock.Source, "item_id", v.Stock.ItemID, "sku", v.Stock.SKU)
			}
		}
	case n.Orders:
		var v avro.OrderEvent
		if contract, err = "OrderEvent", codec.Unmarshal(value, &v); err == nil {
			f("event_id", v.EventID, "provider", v.Provider, "type", v.Type, "order_id", v.OrderID, "lines", strconv.Itoa(len(v.Lines)))
		}
	case n.Deltas:
		var v avro.InventoryDelta
		if contract, err = "InventoryDelta", codec.Unmarshal(value, &v); err == nil {
			f("delta_id", v.DeltaID, "sku", v.SKU, "kind", v.Kind, "quantity", strconv.FormatInt(v.Quantity, 10), "order_id", v.OrderID)
		}
	case n.Movements:
		var v avro.InventoryMovement
		if contract, err = "InventoryMovement", codec.Unmarshal(value, &v); err == nil {
			f("movement_id", v.MovementID, "sku", v.SKU, "status", v.Status, "quantity", strconv.FormatInt(v.Quantity, 10))
		}
	case n.Snapshots:
		var v avro.StockSnapshot
		if contract, err = "StockSnapshot", codec.Unmarshal(value, &v); err == nil {
			f("snapshot_id", v.SnapshotID, "source", v.Source, "item_id", v.ItemID, "sku", v.SKU, "available", strconv.FormatInt(v.Available, 10))
		}
	case n.Outcomes:
		var v avro.WebhookOutcome
		if contract, err = "WebhookOutcome", codec.Unmarshal(value, &v); err == nil {
			f("outcome_id", v.OutcomeID, "provider", v.Provider, "delivery_id", v.DeliveryID, "outcome", v.Outcome)
		}
	case n.Applied:
		var v avro.OrderApplied
		if contract, err = "OrderApplied", codec.Unmarshal(value, &v); err == nil {
			f("order_id", v.Event.OrderID, "type", v.Event.Type, "transition", v.Transition)
		}
	case n.Drift:
		var v avro.StockDrift
		if contract, err = "StockDrift", codec.Unmarshal(value, &v); err == nil {
			f("drift_id", v.DriftID, "sku", v.SKU, "action", v.Action)
		}
	case n.Metrics:
		var v avro.PipelineMetric
		if contract, err = "PipelineMetric", codec.Unmarshal(value, &v); err == nil {
			f("stage", v.Stage, "instance", v.Instance)
		}
	default:
		return size + " redacted (no contract is known for its origin topic)"
	}
	switch {
	case errors.Is(err, avro.ErrNotSingleObject):
		return size + " redacted (not Avro single-object encoded)"
	case errors.Is(err, avro.ErrUnknownSchema):
		return size + " redacted (a writer schema this binary does not know)"
	case err != nil:
		return size + " redacted (does not decode as a " + contract + ")"
	}
	return size + ", " + contract + ": " + strings.Join(fields, " ")
}

func (d *dlq) redrive(ctx context.Context, s *settings, args []string, out io.Writer) error {
	if d.topic == "" || len(args) > 0 {
		return errors.New("dlq redrive needs -topic, and no arguments")
	}
	if d.rate < 1 {
		return errors.New("dlq redrive: -rate must be at least 1 a second")
	}
	origins, err := parseOrigins(d.origin)
	if err != nil {
		return err
	}
	topics, err := dlqTopics(s, d.topic)
	if err != nil {
		return err
	}
	rdb := s.redis()
	defer rdb.Close()
	key := redrivenKey(s)
	var selected, done []deadLetter
	_, err = readLog(ctx, s, topics, 1000, func(recs []*kgo.Record) error {
		var keep []*kgo.Record
		for _, r := range recs {
			dl := readDeadLetter(r)
			if (d.class == "" || dl.class == d.class) && (origins == nil || origins[[2]int64{dl.originPartition, dl.originAt}]) {
				keep = append(keep, r)
			}
		}
		was, err := redriven(ctx, rdb, key, keep)
		if err != nil {
			return err
		}
		for i, r := range keep {
			dl := readDeadLetter(r)
			if was[i] {
				done = append(done, dl)
			} else {
				selected = append(selected, dl)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	mode := ""
	if d.dryRun {
		mode = " (dry run, nothing is produced)"
	}
	fmt.Fprintf(out, "redrive %s: %d selected, %d redriven before, %d to redrive at up to %d a second%s\n",
		topics[0], len(selected)+len(done), len(done), len(selected), d.rate, mode)
	for _, dl := range selected {
		fmt.Fprintf(out, "  %d@%d  %s  to %s (from %d@%d)  %s\n", dl.rec.Partition, dl.rec.Offset, dl.class, dl.origin,
			dl.originPartition, dl.originAt, printable(dl.reason, maxReasonShown))
	}
	if d.dryRun || len(selected) == 0 {
		return nil
	}
	cl, err := s.kafka().Producer(10 * time.Second)
	if err != nil {
		return err
	}
	defer cl.Close()
	limit := rate.NewLimiter(rate.Limit(d.rate), 1)
	if err := forgetOldRedrives(ctx, rdb, s, key, topics[0]); err != nil {
		return err
	}
	for i, dl := range selected {
		if dl.origin == "" {
			return fmt.Errorf("dlq redrive: %s %d@%d has no %s header; redrove %d", dl.rec.Topic, dl.rec.Partition, dl.rec.Offset,
				stream.HeaderOriginTopic, i)
		}
		if err := limit.Wait(ctx); err != nil {
			return fmt.Errorf("dlq redrive: stopped after %d: %w", i, err)
		}
		if err := cl.ProduceSync(ctx, redriveRecord(dl)).FirstErr(); err != nil {
			return fmt.Errorf("dlq redrive: produce %s %d@%d to %s: %w; redrove %d", dl.rec.Topic, dl.rec.Partition, dl.rec.Offset, dl.origin, err, i)
		}
		// Recorded once the origin topic has it: a crash in between
		// redrives this one again next time, which the stage absorbs.
		if err := rdb.ZAdd(ctx, key, redis.Z{Score: float64(time.Now().UnixMilli()), Member: redrivenMember(dl.rec)}).Err(); err != nil {
			return fmt.Errorf("dlq redrive: record %s: %w; redrove %d", redrivenMember(dl.rec), err, i+1)
		}
	}
	fmt.Fprintf(out, "redrove %d to %s (recorded in Redis %s)\n", len(selected), selected[0].origin, key)
	return nil
}

// redriveRecord is what a dead letter goes back to its origin topic as:
// its key, value and own headers, without the dlq.* headers of its
// failure, and with dlq.redriven.from naming the dead letter. Its
// partition is its key's, as for every record of the topic.
func redriveRecord(dl deadLetter) *kgo.Record {
	var headers []kgo.RecordHeader
	for _, h := range dl.rec.Headers {
		if !strings.HasPrefix(h.Key, "dlq.") {
			headers = append(headers, h)
		}
	}
	headers = append(headers, kgo.RecordHeader{Key: headerRedrivenFrom, Value: []byte(redrivenMember(dl.rec))})
	return &kgo.Record{Topic: dl.origin, Key: dl.rec.Key, Value: dl.rec.Value, Headers: headers}
}

// headerRedrivenFrom names, on a redriven record, the dead letter it was:
// <dlq topic>/<partition>/<offset>.
const headerRedrivenFrom = "dlq.redriven.from"

// forgetOldRedrives drops from the record of redrives the dead letters of
// dlqTopic that its retention has deleted by now, so the record stays as
// small as the topic.
func forgetOldRedrives(ctx context.Context, rdb *redis.Client, s *settings, key, dlqTopic string) error {
	for _, t := range topology.Topics(topology.Options{Prefix: s.prefix}) {
		if t.Name != dlqTopic {
			continue
		}
		ms, err := strconv.ParseInt(t.Configs["retention.ms"], 10, 64)
		if err != nil || ms < 0 {
			return nil
		}
		old := strconv.FormatInt(time.Now().UnixMilli()-ms, 10)
		if err := rdb.ZRemRangeByScore(ctx, key, "0", "("+old).Err(); err != nil {
			return fmt.Errorf("dlq redrive: forget old redrives: %w", err)
		}
	}
	return nil
}

// parseOrigins reads -origin-offset: nil for none.
func parseOrigins(s string) (map[[2]int64]bool, error) {
	if s == "" {
		return nil, nil
	}
	out := map[[2]int64]bool{}
	for _, po := range strings.Split(s, ",") {
		ps, os, ok := strings.Cut(po, ":")
		p, err1 := strconv.ParseInt(ps, 10, 32)
		o, err2 := strconv.ParseInt(os, 10, 64)
		if !ok || err1 != nil || err2 != nil || p < 0 || o < 0 {
			return nil, fmt.Errorf("-origin-offset %q: want PARTITION:OFFSET[,PARTITION:OFFSET...]", s)
		}
		out[[2]int64{p, o}] = true
	}
	return out, nil
}

// logReadIdle bounds how long readLog waits for a record it knows is
// there: a broker that stops answering ends the read with an error, not a
// silently short answer.
const logReadIdle = 15 * time.Second

// readLog reads topics from their start to the end they have now, and
// hands each poll's records (at most max) to fn, in each partition's order.
// The end is the last stable offset: every transaction below it is
// decided, and only committed records are read. It returns the end
// offsets it read to.
//
// It knows it reached the end because it keeps control records (a
// transaction's commit or abort marker) and so sees every offset up to the
// end, and the one before it; fn never gets them.
func readLog(ctx context.Context, s *settings, topics []string, max int, fn func([]*kgo.Record) error) (kadm.ListedOffsets, error) {
	admCl, err := kgo.NewClient(s.kafka().Options()...)
	if err != nil {
		return nil, err
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("start offsets of %s: %w", strings.Join(topics, ", "), err)
	}
	ends, err := adm.ListCommittedOffsets(ctx, topics...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("end offsets of %s: %w", strings.Join(topics, ", "), err)
	}
	from := map[string]map[int32]kgo.Offset{}
	left := map[string]map[int32]int64{}
	ends.Each(func(end kadm.ListedOffset) {
		start, _ := starts.Lookup(end.Topic, end.Partition)
		if start.Offset >= end.Offset {
			return
		}
		if from[end.Topic] == nil {
			from[end.Topic], left[end.Topic] = map[int32]kgo.Offset{}, map[int32]int64{}
		}
		from[end.Topic][end.Partition] = kgo.NewOffset().At(start.Offset)
		left[end.Topic][end.Partition] = end.Offset
	})
	if len(from) == 0 {
		return ends, nil
	}
	cl, err := kgo.NewClient(append(s.kafka().Options(), kgo.ConsumePartitions(from),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	for len(left) > 0 {
		pollCtx, cancel := context.WithTimeout(ctx, logReadIdle)
		fetches := cl.PollRecords(pollCtx, max)
		cancel()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var errs []error
		fetches.EachError(func(t string, p int32, err error) {
			if t == "" && errors.Is(err, context.DeadlineExceeded) {
				errs = append(errs, fmt.Errorf("nothing came for %v before the end", logReadIdle))
				return
			}
			errs = append(errs, fmt.Errorf("%s partition %d: %w", t, p, err))
		})
		if err := errors.Join(errs...); err != nil {
			return nil, fmt.Errorf("read %s: %w", strings.Join(topics, ", "), err)
		}
		var recs []*kgo.Record
		fetches.EachRecord(func(r *kgo.Record) {
			end, ok := left[r.Topic][r.Partition]
			if !ok || r.Offset >= end {
				return // past the end this read is to
			}
			if r.Offset+1 >= end {
				delete(left[r.Topic], r.Partition)
				if len(left[r.Topic]) == 0 {
					delete(left, r.Topic)
				}
			}
			if !r.Attrs.IsControl() {
				recs = append(recs, r)
			}
		})
		if len(recs) > 0 {
			if err := fn(recs); err != nil {
				return nil, err
			}
		}
	}
	return ends, nil
}
