package app

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/testenv"
)

func TestParseTarget(t *testing.T) {
	for _, tt := range []struct {
		to, want string
	}{
		{"earliest", "earliest"},
		{"latest", "latest"},
		{"2026-11-24T10:00:00Z", "time 2026-11-24 10:00:00 +0000 UTC"},
		{"2026-11-24T11:00:00.5+01:00", "time 2026-11-24 11:00:00.5 +0100 +0100"},
		{"0:12", "offsets map[0:12]"},
		{"0:12,2:7", "offsets map[0:12 2:7]"},
	} {
		got, err := parseTarget(tt.to)
		s := got.kind
		switch got.kind {
		case "time":
			s += " " + got.at.String()
		case "offsets":
			s += " " + fmt.Sprint(got.offsets)
		}
		if err != nil || s != tt.want {
			t.Errorf("%q: %s, %v; want %s", tt.to, s, err, tt.want)
		}
	}
	for _, bad := range []string{"", "yesterday", "0", "0:", ":4", "a:1", "0:-1", "0:1,0:2", "2026-11-24"} {
		if _, err := parseTarget(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// replayStack is a namespace on the real broker: its topics, a group of the
// inventory stage's name with known committed offsets, and the deltas
// topic filled with records of known timestamps.
type replayStack struct {
	t      *testing.T
	prefix string
	env    map[string]string
	adm    *kadm.Client
	group  string
	deltas string
	t0     time.Time
}

func newReplayStack(t *testing.T) *replayStack {
	prefix := testenv.Namespace(t)
	names := testenv.Topics(t, prefix)
	r := &replayStack{t: t, prefix: prefix, adm: testenv.Kafka(t), group: prefix + "shopstream-inventory", deltas: names.Deltas,
		env: map[string]string{"SHOPSTREAM_KAFKA_BROKERS": strings.Join(testenv.Brokers(), ","), "SHOPSTREAM_PREFIX": prefix,
			"SHOPSTREAM_INSTANCE": "test", "SHOPSTREAM_REDIS_ADDR": testenv.RedisAddr()},
		t0: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)}
	// Partition p holds 10, 6 and 4 records, one a minute from t0.
	cl, err := kgo.NewClient(kgo.SeedBrokers(testenv.Brokers()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for p, n := range []int{10, 6, 4} {
		for i := range n {
			recs = append(recs, &kgo.Record{Topic: r.deltas, Partition: int32(p), Value: []byte("d"), Timestamp: r.t0.Add(time.Duration(i) * time.Minute)})
		}
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// The group has read 8 of partition 0 and 6 of partition 1, and nothing
	// of partition 2.
	r.commit(map[int32]int64{0: 8, 1: 6})
	return r
}

func (r *replayStack) commit(at map[int32]int64) {
	r.t.Helper()
	offsets := kadm.Offsets{}
	for p, o := range at {
		offsets.Add(kadm.Offset{Topic: r.deltas, Partition: p, At: o, LeaderEpoch: -1})
	}
	resp, err := r.adm.CommitOffsets(context.Background(), r.group, offsets)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		r.t.Fatal(err)
	}
}

func (r *replayStack) committed() string {
	r.t.Helper()
	resp, err := r.adm.FetchOffsets(context.Background(), r.group)
	if err != nil {
		r.t.Fatal(err)
	}
	var parts []string
	for _, o := range resp.Offsets().Sorted() {
		parts = append(parts, fmt.Sprintf("%d:%d", o.Partition, o.At))
	}
	return strings.Join(parts, " ")
}

func (r *replayStack) replay(args ...string) (string, error) {
	return run(append([]string{"replay"}, args...), r.env)
}

// table is the plan replay prints, with the namespace's prefix taken out
// and its columns one space apart (their widths depend on the prefix).
func (r *replayStack) table(out string) string {
	return columns(strings.ReplaceAll(out, r.prefix, ""))
}

// columns joins the fields of each line of s with one space.
func columns(s string) string {
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	return strings.Join(lines, "\n")
}

// A dry run prints each partition's committed and target offsets and how
// many offsets will be read again or skipped, exactly, and commits nothing;
// a reset commits the targets.
func TestReplayPlansAndResetsOffsets(t *testing.T) {
	r := newReplayStack(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-group", "inventory", "-to", "earliest", "-dry-run"}, `replay shopstream-inventory to earliest (dry run, nothing is committed):
  topic             partition  current  target  re-read  skipped
  inventory.deltas  0          8        0       8        0
  inventory.deltas  1          6        0       6        0
  inventory.deltas  2          none     0       0        0
  total                                         14       0
`},
		{[]string{"-group", r.group, "-to", "latest", "-dry-run"}, `replay shopstream-inventory to latest (dry run, nothing is committed):
  topic             partition  current  target  re-read  skipped
  inventory.deltas  0          8        10      0        2
  inventory.deltas  1          6        6       0        0
  inventory.deltas  2          none     4       0        4
  total                                         0        6
`},
		// The first record at or after 10:03 is the fourth of each partition.
		{[]string{"-group", "inventory", "-to", "2026-11-24T10:03:00Z", "-dry-run"}, `replay shopstream-inventory to 2026-11-24T10:03:00Z (dry run, nothing is committed):
  topic             partition  current  target  re-read  skipped
  inventory.deltas  0          8        3       5        0
  inventory.deltas  1          6        3       3        0
  inventory.deltas  2          none     3       0        3
  total                                         8        3
`},
		{[]string{"-group", "inventory", "-topic", "inventory.deltas", "-to", "0:2,2:1", "-dry-run"}, `replay shopstream-inventory to 0:2,2:1 (dry run, nothing is committed):
  topic             partition  current  target  re-read  skipped
  inventory.deltas  0          8        2       6        0
  inventory.deltas  2          none     1       0        1
  total                                         6        1
`},
	} {
		out, err := r.replay(tt.args...)
		if err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		if got := r.table(out); got != columns(tt.want) {
			t.Errorf("%v:\n%s\nwant\n%s", tt.args, got, tt.want)
		}
	}
	if got := r.committed(); got != "0:8 1:6" {
		t.Fatalf("a dry run committed: %s", got)
	}

	if _, err := r.replay("-group", "inventory", "-to", "0:11"); err == nil || !strings.Contains(err.Error(), "holds offsets 0 to 10; 11 is outside them") {
		t.Fatalf("an offset past the end: %v", err)
	}
	if _, err := r.replay("-group", "inventory", "-to", "7:1"); err == nil || !strings.Contains(err.Error(), "no partition 7") {
		t.Fatalf("a partition that does not exist: %v", err)
	}
	if _, err := r.replay("-group", "inventory", "-topic", "orders", "-to", "earliest"); err == nil || !strings.Contains(err.Error(), "not orders") {
		t.Fatalf("a topic the group does not read: %v", err)
	}

	out, err := r.replay("-group", "inventory", "-to", "2026-11-24T10:03:00Z")
	if err != nil || !strings.Contains(out, "committed: "+r.group) {
		t.Fatalf("reset: %v\n%s", err, out)
	}
	if got := r.committed(); got != "0:3 1:3 2:3" {
		t.Fatalf("after the reset the group is at %s, want 0:3 1:3 2:3", got)
	}
}

// joinAs joins the group as the static member id and returns its client,
// which has consumed from the group.
func (r *replayStack) joinAs(id string) *kgo.Client {
	r.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(testenv.Brokers()...), kgo.ConsumerGroup(r.group), kgo.ConsumeTopics(r.deltas),
		kgo.InstanceID(id), kgo.DisableAutoCommit())
	if err != nil {
		r.t.Fatal(err)
	}
	testenv.Eventually(r.t, 20*time.Second, func() error {
		if m, _ := cl.GroupMetadata(); m == "" {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			cl.PollFetches(ctx)
			return fmt.Errorf("not joined yet")
		}
		return nil
	})
	return cl
}

// Replay refuses while the group has a member, and names it; a static
// member whose process is gone is removed on request; one that is alive
// comes back, and replay still refuses.
func TestReplayRefusesALiveGroup(t *testing.T) {
	r := newReplayStack(t)
	alive := r.joinAs(r.group + "-a")
	_, err := r.replay("-group", "inventory", "-to", "earliest")
	if err == nil || !strings.Contains(err.Error(), "has live members") || !strings.Contains(err.Error(), "instance "+r.group+"-a") ||
		!strings.Contains(err.Error(), "-remove-member "+r.group+"-a") {
		t.Fatalf("replay beside a live member: %v", err)
	}
	if _, err := r.replay("-group", "inventory", "-to", "earliest", "-dry-run"); err == nil {
		t.Fatal("a dry run beside a live member printed a plan that the group's own commits would make wrong")
	}
	// The member is alive: removed, it rejoins, and replay refuses.
	if _, err := r.replay("-group", "inventory", "-to", "earliest", "-remove-member", r.group+"-a"); err == nil || !strings.Contains(err.Error(), "has live members") {
		t.Fatalf("replay after removing a member that is alive: %v", err)
	}
	// Killed: the client goes without leaving, as a SIGKILLed process's does.
	alive.Close()
	if _, err := r.replay("-group", "inventory", "-to", "earliest"); err == nil || !strings.Contains(err.Error(), "-remove-member") {
		t.Fatalf("replay beside a killed static member: %v", err)
	}
	if _, err := r.replay("-group", "inventory", "-to", "earliest", "-remove-member", "nobody"); err == nil || !strings.Contains(err.Error(), "no member with instance id nobody") {
		t.Fatalf("removing a member the group does not have: %v", err)
	}
	out, err := r.replay("-group", "inventory", "-to", "earliest", "-remove-member", r.group+"-a")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "removed the static member "+r.group+"-a") || r.committed() != "0:0 1:0 2:0" {
		t.Fatalf("after removing the killed member: %s\ncommitted %s", out, r.committed())
	}
}

// replay refuses what it cannot do before it asks the broker anything.
func TestReplayRefusesBadArguments(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"replay"}, "needs -group and -to"},
		{[]string{"replay", "-group", "inventory"}, "needs -group and -to"},
		{[]string{"replay", "-group", "inventory", "-to", "soon"}, `-to "soon": want earliest, latest`},
		{[]string{"replay", "-group", "inventory", "-to", "earliest", "extra"}, "no arguments"},
	} {
		_, err := run(tt.args, map[string]string{"SHOPSTREAM_KAFKA_BROKERS": "127.0.0.1:1"})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("shopstream %s: %v, want an error saying %q", strings.Join(tt.args, " "), err, tt.want)
		}
	}
}
