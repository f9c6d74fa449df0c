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

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/conf"
	"github.com/shopstream/shopstream/processors/inventory"
	"github.com/shopstream/shopstream/stock"
)

// rebuild is `shopstream rebuild inventory`: it recomputes every SKU's
// stock in Redis from the delta log, which is kept whole for this, into a
// namespace of its own; compares it with the live namespace SKU by SKU;
// and, unless it is a dry run, switches it in, each SKU in one atomic step
// (stock.Switch says why readers never see half a SKU).
//
// The deltas are applied by the inventory stage's own processor through
// the same stock.Store, so the same code turns a delta into its effect
// and the same apply.lua decides: a sale the live stock refused for want
// of stock is refused again, a delta seen twice applies once, and each
// SKU's watermark ends where the log does.
//
// The stage must be stopped: it is the one writer of the live namespace,
// and a delta it applied between the read of the log and the switch
// would be lost. The command refuses while the inventory group (or the
// reconcile stage's, a reader of two keys at once) has members, and
// again, before switching, if the inventory group's committed offsets
// moved meanwhile.
type rebuild struct {
	inv     inventory.Config
	dryRun  bool
	stopped stoppedFlags
}

func (r *rebuild) flags(fs *conf.FlagSet) {
	r.inv.RegisterFlags(fs)
	fs.Bool(&r.dryRun, "dry-run", false, "rebuild and compare, then delete the rebuilt namespace and switch nothing")
	r.stopped.flags(fs)
}

// clockedStore applies through a stock.Store at the time of the records
// being applied rather than the wall clock's. What a SKU remembers of a
// delta is forgotten a horizon after the delta was decided (stock.Prune);
// a rebuild decides in minutes what the stage decided over months, so it
// dates each batch's decisions by its newest record, which the stage
// decided moments after it was written.
type clockedStore struct {
	store *stock.Store
	at    time.Time
	skus  map[string]bool
}

func (c *clockedStore) ApplyRuns(ctx context.Context, runs []stock.Run, _ time.Time) ([][]stock.Outcome, error) {
	for _, r := range runs {
		c.skus[r.SKU] = true
	}
	return c.store.ApplyRuns(ctx, runs, c.at)
}

// skuDiff is one SKU's state live and rebuilt.
type skuDiff struct {
	sku                    string
	live, rebuilt          stock.Level
	liveLedger, newLedger  int64
	liveMissing, newAbsent bool
}

func (d skuDiff) differs() bool {
	return d.live != d.rebuilt || d.liveLedger != d.newLedger
}

func (r *rebuild) run(ctx context.Context, s *settings, args []string, out io.Writer) error {
	if len(args) > 0 {
		return errors.New("rebuild inventory takes no arguments")
	}
	if err := r.inv.Stream.Validate(); err != nil {
		return err
	}
	inv := r.inv.WithDefaults()
	horizon, reversible := inv.Horizon, inv.ReversibleHorizon
	cl, err := kgo.NewClient(s.kafka().Options()...)
	if err != nil {
		return err
	}
	defer cl.Close()
	group, deltas := s.group("inventory"), s.topics().Deltas
	// The reconcile stage reads a SKU's stock and its watermark in two
	// commands, which a switch between them would make disagree.
	stopped := []string{group, s.group("reconcile")}
	if err := r.stopped.check(ctx, cl, stopped, r.dryRun, out); err != nil {
		return err
	}
	committed, err := committedOffsets(ctx, cl, group)
	if err != nil {
		return err
	}
	rdb := s.redis()
	defer rdb.Close()

	started := time.Now()
	ns := s.prefix + "rebuild:" + strconv.FormatInt(started.UnixMilli(), 10) + ":"
	liveSKUs, err := stock.SKUs(ctx, rdb, s.prefix)
	if err != nil {
		return err
	}
	if err := stock.CopyBackorders(ctx, rdb, s.prefix, ns, liveSKUs); err != nil {
		return err
	}
	defer func() {
		// The rebuilt namespace goes whatever happens: switched in, it
		// holds only copies of settings; given up, all of it.
		left, err := stock.SKUs(context.WithoutCancel(ctx), rdb, ns)
		if err == nil {
			err = stock.Drop(context.WithoutCancel(ctx), rdb, ns, left)
		}
		if err != nil {
			fmt.Fprintf(out, "the rebuilt namespace %s could not be deleted: %v\n", ns, err)
		}
	}()

	store := &clockedStore{store: stock.NewStore(rdb, stock.StoreConfig{Prefix: ns}), skus: map[string]bool{}}
	proc := inventory.NewProcessor(store, s.topics().Movements)
	var (
		read, rejected int
		lastPrune      time.Time
	)
	ends, err := readLog(ctx, s, []string{deltas}, inv.Stream.MaxPollRecords, func(recs []*kgo.Record) error {
		runs := make([][]*kgo.Record, len(recs))
		for i, rec := range recs {
			runs[i] = []*kgo.Record{rec}
			store.at = later(store.at, rec.Timestamp)
		}
		res, err := proc.HandleRuns(ctx, runs)
		if err != nil {
			return fmt.Errorf("rebuild: apply %d deltas: %w", len(recs), err)
		}
		read += len(recs)
		rejected += len(res.Rejected)
		// Forget as the stage would have, by the log's clock; once a
		// horizon rather than the stage's 24 times, since each pass scans
		// the keyspace: what is remembered longer is only remembered.
		if lastPrune.IsZero() {
			lastPrune = store.at
		}
		if store.at.Sub(lastPrune) >= horizon {
			if _, err := store.store.Prune(ctx, horizon, reversible, store.at); err != nil {
				return err
			}
			lastPrune = store.at
		}
		return nil
	})
	if err != nil {
		return err
	}
	if _, err := store.store.Prune(ctx, horizon, reversible, time.Now()); err != nil {
		return err
	}

	diffs, err := compareNamespaces(ctx, rdb, s.prefix, ns, liveSKUs, slices.Sorted(maps.Keys(store.skus)))
	if err != nil {
		return err
	}
	printRebuild(out, deltas, ns, ends, read, rejected, diffs)
	if behind := lagBehind(committed, ends, deltas); behind > 0 {
		fmt.Fprintf(out, "the inventory group had not read %d offsets of the log yet; the rebuilt stock includes them, so the SKUs they touch differ for that reason\n", behind)
	}
	if r.dryRun {
		fmt.Fprintln(out, "dry run: nothing switched; the rebuilt namespace is deleted")
		return nil
	}

	// Nothing may have written the live namespace since the log was read.
	if err := (&stoppedFlags{}).check(ctx, cl, stopped, false, out); err != nil {
		return fmt.Errorf("rebuild: nothing switched: %w", err)
	}
	now, err := committedOffsets(ctx, cl, group)
	if err != nil {
		return err
	}
	if !maps.EqualFunc(committed, now, maps.Equal[map[int32]int64]) {
		return fmt.Errorf("rebuild: nothing switched: the inventory group's offsets moved while the log was read, so something ran the stage; stop it and rebuild again")
	}
	all := slices.Sorted(maps.Keys(unionSet(liveSKUs, slices.Collect(maps.Keys(store.skus)))))
	if err := stock.Switch(ctx, rdb, ns, s.prefix, all); err != nil {
		return err
	}
	fmt.Fprintf(out, "switched: the live namespace holds the rebuilt stock of %d SKUs (%v)\n", len(all), time.Since(started).Round(time.Millisecond))
	return nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func unionSet(a, b []string) map[string]bool {
	out := map[string]bool{}
	for _, s := range append(slices.Clone(a), b...) {
		out[s] = true
	}
	return out
}

// committedOffsets returns group's committed offsets, by topic and partition.
func committedOffsets(ctx context.Context, cl *kgo.Client, group string) (map[string]map[int32]int64, error) {
	resp, err := kadm.NewClient(cl).FetchOffsets(ctx, group)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("offsets of %s: %w", group, err)
	}
	out := map[string]map[int32]int64{}
	resp.Offsets().Each(func(o kadm.Offset) {
		if out[o.Topic] == nil {
			out[o.Topic] = map[int32]int64{}
		}
		out[o.Topic][o.Partition] = o.At
	})
	return out, nil
}

// lagBehind is how many offsets of topic, up to ends, the group has not
// committed past: transaction markers included, so an upper bound on the
// deltas it had not applied.
func lagBehind(committed map[string]map[int32]int64, ends kadm.ListedOffsets, topic string) int64 {
	var behind int64
	ends.Each(func(end kadm.ListedOffset) {
		if end.Topic != topic {
			return
		}
		at, ok := committed[topic][end.Partition]
		if !ok {
			at = 0
		}
		// The last commit of a transactional partition stops before its
		// final marker.
		if n := end.Offset - at; n > 1 {
			behind += n
		}
	})
	return behind
}

// compareNamespaces returns each SKU of either namespace with its stock,
// reserved units and ledger length in both.
func compareNamespaces(ctx context.Context, rdb *redis.Client, live, rebuilt string, liveSKUs, rebuiltSKUs []string) ([]skuDiff, error) {
	all := slices.Sorted(maps.Keys(unionSet(liveSKUs, rebuiltSKUs)))
	liveStore, newStore := stock.NewStore(rdb, stock.StoreConfig{Prefix: live}), stock.NewStore(rdb, stock.StoreConfig{Prefix: rebuilt})
	var out []skuDiff
	for batch := range slices.Chunk(all, 1000) {
		a, err := liveStore.Levels(ctx, batch)
		if err != nil {
			return nil, err
		}
		b, err := newStore.Levels(ctx, batch)
		if err != nil {
			return nil, err
		}
		la, err := liveStore.LedgerLengths(ctx, batch)
		if err != nil {
			return nil, err
		}
		lb, err := newStore.LedgerLengths(ctx, batch)
		if err != nil {
			return nil, err
		}
		for i, sku := range batch {
			out = append(out, skuDiff{sku: sku, live: a[i], rebuilt: b[i], liveLedger: la[i], newLedger: lb[i],
				liveMissing: !slices.Contains(liveSKUs, sku), newAbsent: !slices.Contains(rebuiltSKUs, sku)})
		}
	}
	return out, nil
}

func printRebuild(out io.Writer, deltas, ns string, ends kadm.ListedOffsets, read, rejected int, diffs []skuDiff) {
	var to []string
	ends.Each(func(o kadm.ListedOffset) { to = append(to, fmt.Sprintf("%d:%d", o.Partition, o.Offset)) })
	slices.Sort(to)
	fmt.Fprintf(out, "rebuild inventory: %d deltas of %s, from its start to %s, applied into %s", read, deltas, strings.Join(to, " "), ns)
	if rejected > 0 {
		fmt.Fprintf(out, " (%d not valid deltas, which the stage dead-letters too)", rejected)
	}
	fmt.Fprintln(out)
	n := 0
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for _, d := range diffs {
		if !d.differs() {
			continue
		}
		if n == 0 {
			fmt.Fprintln(w, "  sku\ton hand (live → rebuilt)\treserved\tledger entries\t")
		}
		n++
		note := ""
		switch {
		case d.liveMissing:
			note = "no keys live"
		case d.newAbsent:
			note = "in no delta"
		}
		fmt.Fprintf(w, "  %s\t%d → %d\t%d → %d\t%d → %d\t%s\n", d.sku, d.live.OnHand, d.rebuilt.OnHand, d.live.Reserved, d.rebuilt.Reserved,
			d.liveLedger, d.newLedger, note)
	}
	w.Flush()
	fmt.Fprintf(out, "%d SKUs compared, %d differ\n", len(diffs), n)
}
