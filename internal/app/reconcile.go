package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/conf"
	"github.com/shopstream/shopstream/processors/reconcile"
	"github.com/shopstream/shopstream/schemas/envelope"
)

// reconciler is the operator's reconcile command: a file of what the
// source of truth says, made snapshots for the reconcile stage.
type reconciler struct{ snapshot string }

func (r *reconciler) flags(fs *conf.FlagSet) {
	fs.String(&r.snapshot, "snapshot", "", "CSV file of the source of truth: sku,available[,observed_at RFC 3339, default the file's modification time]")
}

// run produces the file's snapshots to inventory.snapshots, keyed by SKU,
// once every row is checked. A produce that failed part way is made whole
// by running it again: the same file names the same snapshots. The
// reconcile stage (shopstream run, or process reconcile) compares them.
func (r *reconciler) run(ctx context.Context, s *settings, args []string, out io.Writer) error {
	if r.snapshot == "" || len(args) > 0 {
		return errors.New("reconcile needs -snapshot FILE.csv and nothing else")
	}
	content, err := os.ReadFile(r.snapshot)
	if err != nil {
		return err
	}
	info, err := os.Stat(r.snapshot)
	if err != nil {
		return err
	}
	snaps, err := reconcile.ReadSnapshotFile(content, info.ModTime(), time.Now())
	if err != nil {
		return fmt.Errorf("%s: %w", r.snapshot, err)
	}
	recs := make([]*kgo.Record, len(snaps))
	for i := range snaps {
		if recs[i], err = envelope.Record(s.topics().Snapshots, &snaps[i], ""); err != nil {
			return err
		}
	}
	cl, err := s.kafka().Producer(10 * time.Second)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return err
	}
	fmt.Fprintf(out, "reconcile: %d snapshots of %s to %s\n", len(snaps), snaps[0].CorrelationID, s.topics().Snapshots)
	return nil
}
