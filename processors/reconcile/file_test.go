package reconcile

import (
	"strings"
	"testing"
	"time"
)

func TestSnapshotFile(t *testing.T) {
	mod := time.Date(2026, 11, 24, 9, 0, 0, 123456789, time.UTC)
	now := mod.Add(time.Hour)
	content := []byte("sku,available,observed_at,note\nTEE,90,,counted\n MUG , -2 ,2026-11-24T08:30:00.5+01:00\n")
	snaps, err := ReadSnapshotFile(content, mod, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(snaps) != 2 {
		t.Fatalf("%d snapshots, want 2", len(snaps))
	}
	tee, mug := snaps[0], snaps[1]
	file := tee.CorrelationID
	if !strings.HasPrefix(file, "file:") || len(file) != len("file:")+12 || mug.CorrelationID != file {
		t.Fatalf("correlation ids %q and %q, want file:<12 hex> for both", file, mug.CorrelationID)
	}
	if tee.SnapshotID != file+":2" || mug.SnapshotID != file+":3" {
		t.Errorf("snapshot ids %q, %q, want the file's and the line", tee.SnapshotID, mug.SnapshotID)
	}
	if tee.SKU != "TEE" || tee.Available != 90 || tee.Source != "file" || !tee.ObservedAt.Equal(mod.Truncate(time.Millisecond)) {
		t.Errorf("TEE %+v: want 90, observed at the file's modification time to the ms", tee)
	}
	if mug.SKU != "MUG" || mug.Available != -2 || !mug.ObservedAt.Equal(time.Date(2026, 11, 24, 7, 30, 0, 5e8, time.UTC)) {
		t.Errorf("MUG %+v: want -2, observed at its own time", mug)
	}
	if !tee.ReceivedAt.Equal(now.Truncate(time.Millisecond)) {
		t.Errorf("received at %v, want now", tee.ReceivedAt)
	}

	again, err := ReadSnapshotFile(content, mod.Add(time.Minute), now.Add(time.Minute))
	if err != nil || again[0].SnapshotID != tee.SnapshotID {
		t.Errorf("the same content read again names %q (%v), want %q", again[0].SnapshotID, err, tee.SnapshotID)
	}
	other, err := ReadSnapshotFile(append(content, "CAP,1\n"...), mod, now)
	if err != nil || other[0].SnapshotID == tee.SnapshotID {
		t.Errorf("another content names %q (%v), the same as the first", other[0].SnapshotID, err)
	}
}

// A file with one bad row reconciles nothing, and the error names the line.
func TestSnapshotFileRefusesBadRows(t *testing.T) {
	now := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	for _, tt := range []struct{ content, want string }{
		{"", "header"},
		{"sku,quantity\nTEE,1\n", `no "available" column`},
		{"available\n1\n", `no "sku" column`},
		{"sku,available\n", "no rows"},
		{"sku,available\nTEE,1\nMUG,many\n", `line 3: available "many"`},
		{"sku,available\nTEE,1\n,2\n", "line 3: empty sku"},
		{"sku,available\nTEE,1\na{b},2\n", "line 3: sku \"a{b}\" contains a brace"},
		{"sku,available\nTEE,1\nTEE,2\n", "line 3: TEE is on line 2 too"},
		{"sku,available,observed_at\nTEE,1,yesterday\n", `line 2: observed_at "yesterday"`},
		{"sku,available,observed_at\nTEE,1,2026-11-24T09:02:00Z\n", "line 2: observed at 2026-11-24T09:02:00Z, later than now"},
	} {
		if _, err := ReadSnapshotFile([]byte(tt.content), now, now); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: err %v, want one saying %q", tt.content, err, tt.want)
		}
	}
}
