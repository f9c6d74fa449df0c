package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Static membership (KIP-345). A loop whose ClientConfig names its Instance
// joins its group with the instance id InstanceID(group). A restarted
// instance (after a crash, a deploy, a session that failed) then takes its
// own place back at once: the broker hands it the assignment its previous
// incarnation held, without a rebalance of the other members and without
// waiting out the old member's session (45s, franz-go's and Kafka's
// default, kept: a member that dies and does not come back holds its
// partitions that long, as a dynamic one would).
//
// The price is at the other end: a static member does not leave its group
// when its client closes (franz-go's Close sends no LeaveGroup for it; see
// kgo.InstanceID), so a group whose instances all stopped cleanly would
// still list them until their sessions expire, and an operator resetting
// its offsets (shopstream replay) would be refused for that long. So the
// loops leave explicitly once they have stopped: after their client is
// closed, with a LeaveGroup naming both the instance id and the member id
// the client last held. Naming the member id fences the leave: if another
// process with the same instance id has taken the place meanwhile (a
// restart that overlapped the stop), the broker answers
// FENCED_INSTANCE_ID and the newcomer stays.
//
// A SIGKILLed instance leaves nothing: its member stays listed until the
// session times out or the instance restarts. shopstream replay names such
// members and removes them on request with LeaveGroup.

// InstanceID returns the static member name of c's consumers in group,
// "<group>-<Instance>", or "" when c names no instance.
func (c ClientConfig) InstanceID(group string) string {
	if c.Instance == "" {
		return ""
	}
	return group + "-" + c.Instance
}

// membership returns the options that make a consumer of group a static
// member, when c names an instance.
func (c ClientConfig) membership(group string) []kgo.Opt {
	if id := c.InstanceID(group); id != "" {
		return []kgo.Opt{kgo.InstanceID(id)}
	}
	return nil
}

// leaveTimeout bounds the leave a stopping loop sends: a broker that does
// not answer must not hold up the process's exit.
const leaveTimeout = 5 * time.Second

// leave takes a stopped loop's static member out of group. memberID is the
// member id its closed client last held ("" if it never joined: then any
// member of this instance id is ours, from an earlier run, and goes). A
// failure is logged, not returned: the member then stays listed until its
// session times out, which shopstream replay explains to whoever asks.
func (c ClientConfig) leave(group, memberID string, log *slog.Logger) {
	id := c.InstanceID(group)
	if id == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
	defer cancel()
	cl, err := kgo.NewClient(c.Options()...)
	if err == nil {
		defer cl.Close()
		err = LeaveGroup(ctx, cl, group, id, memberID, "shopstream: the instance stopped")
	}
	switch {
	case err == nil:
		log.Info("left the group", "instance_id", id)
	case errors.Is(err, kerr.UnknownMemberID), errors.Is(err, kerr.FencedInstanceID):
		// Gone already, or the place is another process's now.
		log.Info("not leaving the group: the member is gone or taken over", "instance_id", id, "err", err)
	default:
		log.Warn("could not leave the group; it lists this static member until its session times out",
			"instance_id", id, "err", err)
	}
}

// LeaveGroup removes the static member instanceID from group, through cl,
// giving the broker reason (logged by brokers 3.2+). A non-empty memberID
// fences the removal: it applies only while that member holds the
// instance id. The error is kerr.UnknownMemberID when the
// group has no such member, kerr.FencedInstanceID when another member holds
// the instance id; both are final, not worth a retry.
func LeaveGroup(ctx context.Context, cl *kgo.Client, group, instanceID, memberID, reason string) error {
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Group = group
	m := kmsg.NewLeaveGroupRequestMember()
	m.InstanceID, m.MemberID = &instanceID, memberID
	m.Reason = &reason
	req.Members = append(req.Members, m)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("leave %s as %s: %w", group, instanceID, err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return fmt.Errorf("leave %s as %s: %w", group, instanceID, err)
	}
	for _, m := range resp.Members {
		if err := kerr.ErrorForCode(m.ErrorCode); err != nil {
			return fmt.Errorf("leave %s as %s: %w", group, instanceID, err)
		}
	}
	return nil
}
