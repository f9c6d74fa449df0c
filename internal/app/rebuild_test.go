package app

import (
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
)

func TestRebuildRefusesBadArguments(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"rebuild", "inventory", "extra"}, "takes no arguments"},
		{[]string{"rebuild", "inventory", "-inventory-max-poll-records", "-1"}, "cannot be negative"},
		{[]string{"rebuild", "orders"}, "rebuild inventory"},
	} {
		_, err := run(tt.args, map[string]string{"SHOPSTREAM_KAFKA_BROKERS": "127.0.0.1:1"})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("shopstream %s: %v, want an error saying %q", strings.Join(tt.args, " "), err, tt.want)
		}
	}
}

// The lag is counted from each partition's commit to its end, a
// transactional partition's final marker aside, and from the start where
// the group committed nothing.
func TestLagBehind(t *testing.T) {
	ends := kadm.ListedOffsets{"d": {0: {Topic: "d", Partition: 0, Offset: 10}, 1: {Topic: "d", Partition: 1, Offset: 7},
		2: {Topic: "d", Partition: 2, Offset: 4}}}
	committed := map[string]map[int32]int64{"d": {0: 9, 1: 3}}
	if got := lagBehind(committed, ends, "d"); got != 4+4 {
		t.Fatalf("lag %d, want 8", got)
	}
}
