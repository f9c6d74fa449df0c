package stream_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/shopstream/shopstream/internal/stream"
	"github.com/shopstream/shopstream/internal/testenv"
	"github.com/shopstream/shopstream/topology"
)

// members returns the instance ids of group's members.
func members(t *testing.T, group string) []string {
	t.Helper()
	described, err := testenv.Kafka(t).DescribeGroups(context.Background(), group)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range described[group].Members {
		id := "(dynamic)"
		if m.InstanceID != nil {
			id = *m.InstanceID
		}
		ids = append(ids, id)
	}
	return ids
}

// joined polls cl until it is a member of its group.
func joined(t *testing.T, cl *kgo.Client) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, func() error {
		if m, _ := cl.GroupMetadata(); m == "" {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			cl.PollFetches(ctx)
			return fmt.Errorf("not joined yet")
		}
		return nil
	})
}

// A static member that vanished without leaving (as a SIGKILLed process's
// does) is replaced at once by its restarted instance, not after its
// session times out; the restarted loop leaves the group when it stops, so
// the group is empty at once for an operator who resets its offsets.
func TestStaticMemberIsReplacedOnRestartAndLeavesOnStop(t *testing.T) {
	prefix := testenv.Namespace(t)
	names := testenv.Topics(t, prefix)
	in, out, group := names.Orders, names.Deltas, prefix+"g"
	client := stream.ClientConfig{Brokers: testenv.Brokers(), Instance: "i1"}
	id := client.InstanceID(group)
	if id != group+"-i1" {
		t.Fatalf("instance id %q", id)
	}

	// The crashed incarnation: it joined as the static member and closed
	// without leaving, which is all a SIGKILL leaves behind too.
	crashed, err := kgo.NewClient(append(client.Options(), kgo.ConsumerGroup(group), kgo.ConsumeTopics(in), kgo.InstanceID(id))...)
	if err != nil {
		t.Fatal(err)
	}
	joined(t, crashed)
	crashed.Close()
	if got := members(t, group); len(got) != 1 || got[0] != id {
		t.Fatalf("after the crash the group lists %v, want the static member %s", got, id)
	}

	produce(t, in, "a")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	started := time.Now()
	go func() {
		done <- stream.Transform(ctx, stream.TransformConfig{Client: client, Group: group, Input: in,
			DLQ: topology.DLQ(in), TransactionalID: prefix + "txn"},
			stream.RunHandlerFunc(func(_ context.Context, runs [][]*kgo.Record) (stream.Result, error) {
				var res stream.Result
				for _, run := range runs {
					for _, r := range run {
						res.Outputs = append(res.Outputs, &kgo.Record{Topic: out, Key: r.Key, Value: r.Value})
					}
				}
				return res, nil
			}))
	}()
	if got := testenv.ReadTopic(t, out, 1); len(got) != 1 {
		t.Fatalf("%d outputs, want 1", len(got))
	}
	// The session of the crashed member is 45s; the restart did not wait it out.
	if waited := time.Since(started); waited > 30*time.Second {
		t.Fatalf("the restarted instance took %v to consume", waited)
	}
	if got := members(t, group); len(got) != 1 || got[0] != id {
		t.Fatalf("while running the group lists %v, want %s alone", got, id)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := members(t, group); len(got) != 0 {
		t.Fatalf("after a clean stop the group still lists %v", got)
	}
}

// A leave that names a member id the instance no longer holds is fenced:
// it cannot remove the instance's newer incarnation.
func TestLeaveGroupIsFencedByMemberID(t *testing.T) {
	prefix := testenv.Namespace(t)
	names := testenv.Topics(t, prefix)
	group := prefix + "g"
	client := stream.ClientConfig{Brokers: testenv.Brokers(), Instance: "i1"}
	cl, err := kgo.NewClient(append(client.Options(), kgo.ConsumerGroup(group), kgo.ConsumeTopics(names.Orders),
		kgo.InstanceID(client.InstanceID(group)))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	joined(t, cl)
	admin, err := kgo.NewClient(client.Options()...)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ctx := context.Background()
	if err := stream.LeaveGroup(ctx, admin, group, client.InstanceID(group), "an-older-member-id", "test"); err == nil {
		t.Fatal("a leave naming another member id removed the member")
	}
	if got := members(t, group); len(got) != 1 {
		t.Fatalf("the group lists %v after a fenced leave", got)
	}
	// Closed first, as a stopped loop's client is, or it would rejoin.
	memberID, _ := cl.GroupMetadata()
	cl.Close()
	if err := stream.LeaveGroup(ctx, admin, group, client.InstanceID(group), memberID, "test"); err != nil {
		t.Fatal(err)
	}
	if got := members(t, group); len(got) != 0 {
		t.Fatalf("the group lists %v after the leave", got)
	}
}

// The sink's loop is a static member too, and leaves when it stops.
func TestBatchLeavesItsGroupOnStop(t *testing.T) {
	prefix := testenv.Namespace(t)
	names := testenv.Topics(t, prefix)
	group := prefix + "sink"
	produce(t, names.Movements, "m1")
	cfg := stream.BatchConfig{Client: stream.ClientConfig{Brokers: testenv.Brokers(), Instance: "i1"}, Group: group,
		Inputs: []string{names.Movements}}
	rec := &batchRecorder{attempts: 1}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- stream.Batch(ctx, cfg, rec) }()
	testenv.Eventually(t, 20*time.Second, func() error {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if len(rec.written) == 0 {
			return fmt.Errorf("nothing written yet")
		}
		return nil
	})
	if got := members(t, group); len(got) != 1 || got[0] != group+"-i1" {
		t.Fatalf("while running the group lists %v", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := members(t, group); len(got) != 0 {
		t.Fatalf("after a clean stop the group still lists %v", got)
	}
}

// A killed instance can leave a transaction open that holds offsets for
// its group: until it is aborted the group's committed offsets are
// unstable and a restarted instance polls nothing. The restarted loop
// fences it as it starts, not when the broker times it out.
func TestRestartFencesTheTransactionAKilledInstanceLeftOpen(t *testing.T) {
	prefix := testenv.Namespace(t)
	names := testenv.Topics(t, prefix)
	in, out, group, txnID := names.Orders, names.Deltas, prefix+"g", prefix+"txn"
	produce(t, in, "a")
	ctx := context.Background()

	// The killed incarnation: a transaction with the group's offsets in
	// it, neither committed nor aborted, that the broker would time out
	// only after a minute. Kafka 3.6's protocol: offsets named by topic.
	killed, err := kgo.NewClient(kgo.SeedBrokers(testenv.Brokers()...), kgo.TransactionalID(txnID),
		kgo.TransactionTimeout(time.Minute), kgo.MaxVersions(kversion.V3_6_0()))
	if err != nil {
		t.Fatal(err)
	}
	defer killed.Close()
	id, epoch, err := killed.ProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	add := kmsg.NewPtrAddOffsetsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = txnID, id, epoch, group
	if resp, err := add.RequestWith(ctx, killed); err != nil || resp.ErrorCode != 0 {
		t.Fatalf("add offsets to the transaction: %v %+v", err, resp)
	}
	commit := kmsg.NewPtrTxnOffsetCommitRequest()
	commit.TransactionalID, commit.Group, commit.ProducerID, commit.ProducerEpoch, commit.Generation = txnID, group, id, epoch, -1
	topic := kmsg.NewTxnOffsetCommitRequestTopic()
	topic.Topic = in
	for p := range int32(3) {
		part := kmsg.NewTxnOffsetCommitRequestTopicPartition()
		part.Partition, part.Offset, part.LeaderEpoch = p, 0, -1
		topic.Partitions = append(topic.Partitions, part)
	}
	commit.Topics = append(commit.Topics, topic)
	if resp, err := commit.RequestWith(ctx, killed); err != nil || resp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("commit offsets in the transaction: %v %+v", err, resp)
	}

	started := time.Now()
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- stream.Transform(runCtx, stream.TransformConfig{Client: stream.ClientConfig{Brokers: testenv.Brokers(), Instance: "i1"},
			Group: group, Input: in, DLQ: topology.DLQ(in), TransactionalID: txnID},
			stream.RunHandlerFunc(func(_ context.Context, runs [][]*kgo.Record) (stream.Result, error) {
				var res stream.Result
				for _, run := range runs {
					for _, r := range run {
						res.Outputs = append(res.Outputs, &kgo.Record{Topic: out, Key: r.Key, Value: r.Value})
					}
				}
				return res, nil
			}))
	}()
	if got := testenv.ReadTopic(t, out, 1); len(got) != 1 {
		t.Fatalf("%d outputs, want 1", len(got))
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(started); waited > 20*time.Second {
		t.Fatalf("the restarted instance took %v to consume: it waited for the open transaction to time out", waited)
	}
}
