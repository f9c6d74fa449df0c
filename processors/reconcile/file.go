package reconcile

import (
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/shopstream/shopstream/schemas/avro"
	"github.com/shopstream/shopstream/stock"
)

// FileSource is the source of the snapshots of an operator's file.
const FileSource = "file"

// ReadSnapshotFile reads an operator's snapshot file (shopstream reconcile
// -snapshot): a CSV whose header names the columns sku, available and,
// optionally, observed_at (in any order; others are ignored), then a SKU a
// row. available is what the source of truth says can still be sold;
// observed_at, RFC 3339, when it was so: by default modTime, the file's
// modification time; at most a minute after now. Every row is checked
// before any is returned, so a file with a bad row reconciles nothing; an
// error names the line.
//
// A snapshot's id is "file:<first 12 hex of the content's SHA-256>:<line>":
// the same file reconciled again names the same snapshots, whose kept
// decisions are re-emitted rather than decided again. Its correlation id
// is "file:<the same 12 hex>", shared by the file's rows and their heals.
func ReadSnapshotFile(content []byte, modTime, now time.Time) ([]avro.StockSnapshot, error) {
	sum := sha256.Sum256(content)
	file := "file:" + hex.EncodeToString(sum[:])[:12]
	cr := csv.NewReader(bytes.NewReader(content))
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("snapshot file: header: %w", err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.ToLower(strings.TrimSpace(h))] = i
	}
	for _, want := range []string{"sku", "available"} {
		if _, ok := col[want]; !ok {
			return nil, fmt.Errorf("snapshot file: the header has no %q column (want sku,available[,observed_at])", want)
		}
	}
	var out []avro.StockSnapshot
	lines := map[string]int{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("snapshot file: %w", err)
		}
		line, _ := cr.FieldPos(0)
		field := func(name string) string {
			if i, ok := col[name]; ok && i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		sku := field("sku")
		if err := stock.ValidSKU(sku); err != nil {
			return nil, fmt.Errorf("snapshot file: line %d: %w", line, err)
		}
		if prev, dup := lines[sku]; dup {
			return nil, fmt.Errorf("snapshot file: line %d: %s is on line %d too", line, sku, prev)
		}
		lines[sku] = line
		available, err := strconv.ParseInt(field("available"), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("snapshot file: line %d: available %q is not a whole number", line, field("available"))
		}
		observed := modTime
		if v := field("observed_at"); v != "" {
			if observed, err = time.Parse(time.RFC3339Nano, v); err != nil {
				return nil, fmt.Errorf("snapshot file: line %d: observed_at %q is not RFC 3339", line, v)
			}
		}
		// A snapshot from the future would be the SKU's newest until then,
		// and keep every real one from healing.
		if observed.After(now.Add(time.Minute)) {
			return nil, fmt.Errorf("snapshot file: line %d: observed at %s, later than now", line, observed.Format(time.RFC3339))
		}
		out = append(out, avro.StockSnapshot{SnapshotID: file + ":" + strconv.Itoa(line), Source: FileSource, SKU: sku,
			Available: available, ObservedAt: observed.UTC().Truncate(time.Millisecond),
			ReceivedAt: now.UTC().Truncate(time.Millisecond), CorrelationID: file})
	}
	if len(out) == 0 {
		return nil, errors.New("snapshot file: no rows under the header")
	}
	return out, nil
}
