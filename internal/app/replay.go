package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/conf"
	"github.com/shopstream/shopstream/internal/stream"
)

// replay is `shopstream replay`: it moves a stopped consumer group's
// committed offsets, so that the stage reads a stretch of history again
// (or skips one) when it starts. Every stage's effects are idempotent by a
// stable id, so reading again changes nothing that was done; what the
// command guards against is a group that is running, whose own commits
// would race the reset.
type replay struct {
	group, to, topic string
	dryRun           bool
	stopped          stoppedFlags
}

func (r *replay) flags(fs *conf.FlagSet) {
	fs.String(&r.group, "group", "", "the consumer group: a stage's name ("+strings.Join(stageNames(), ", ")+") or a whole group id")
	fs.String(&r.to, "to", "", "where the group reads from next: earliest, latest, an RFC 3339 time (the first record at or after it), "+
		"or PARTITION:OFFSET[,PARTITION:OFFSET...] of one topic")
	fs.String(&r.topic, "topic", "", "only this topic of the group's (with or without the prefix); default: every topic the group reads")
	fs.Bool(&r.dryRun, "dry-run", false, "print the current and the target offsets, and commit nothing")
	r.stopped.flags(fs)
}

// stageNames are the stages that consume, by the name replay takes.
func stageNames() []string {
	var names []string
	for _, st := range (&pipeline{}).stages() {
		if st.consumes != nil {
			names = append(names, st.name)
		}
	}
	return names
}

// resolveGroup returns the group id that name means, and the topics the
// group reads when it is a stage's (nil for a group shopstream does not
// run, whose topics are those it committed offsets for). A stage's name,
// its group's suffix (clickhouse for the sink) and its whole group id all
// name it.
func resolveGroup(s *settings, name string) (string, []string) {
	for _, st := range (&pipeline{}).stages() {
		if st.consumes == nil {
			continue
		}
		group, topics := st.consumes(s)
		if name == st.name || name == group || s.group(name) == group {
			return group, topics
		}
	}
	return name, nil
}

// partitionOffsets are one partition's offsets in a reset.
type partitionOffsets struct {
	topic     string
	partition int32
	// current is the committed offset, -1 for none: the group then starts
	// at the partition's start (stream.ConsumerOptions).
	current, start, target int64
}

// reread is how many offsets the group reads again: from target up to
// where it would have gone on from. Transaction markers take offsets too,
// so a transactional topic holds fewer records than this.
func (p partitionOffsets) reread() int64 { return max(p.from()-p.target, 0) }

// skipped is how many offsets the group will not read.
func (p partitionOffsets) skipped() int64 { return max(p.target-p.from(), 0) }

func (p partitionOffsets) from() int64 {
	if p.current < 0 {
		return p.start
	}
	return p.current
}

func (r *replay) run(ctx context.Context, s *settings, args []string, out io.Writer) error {
	if r.group == "" || r.to == "" || len(args) > 0 {
		return errors.New("replay needs -group and -to (earliest, latest, an RFC 3339 time, or PARTITION:OFFSET), and no arguments")
	}
	target, err := parseTarget(r.to)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(s.kafka().Options()...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	group, topics := resolveGroup(s, r.group)
	if err := r.stopped.check(ctx, cl, []string{group}, r.dryRun, out); err != nil {
		return err
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err == nil {
		err = committed.Error()
	}
	if err != nil {
		return fmt.Errorf("replay: offsets of %s: %w", group, err)
	}
	if topics == nil {
		topics = committed.Offsets().TopicsSet().Topics()
	}
	if topics, err = onlyTopic(s, topics, r.topic, group); err != nil {
		return err
	}
	plan, err := target.plan(ctx, adm, topics, committed)
	if err != nil {
		return err
	}
	printPlan(out, group, r.to, plan, r.dryRun)
	if r.dryRun {
		return nil
	}
	offsets := kadm.Offsets{}
	for _, p := range plan {
		offsets.Add(kadm.Offset{Topic: p.topic, Partition: p.partition, At: p.target, LeaderEpoch: -1})
	}
	// The broker refuses this commit if a member joined since the check: a
	// commit without a generation applies only to a group with no members.
	resp, err := adm.CommitOffsets(ctx, group, offsets)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return fmt.Errorf("replay: commit to %s: %w", group, err)
	}
	fmt.Fprintf(out, "committed: %s reads from these offsets when it starts\n", group)
	return nil
}

// onlyTopic narrows topics to the one the operator named, if any.
func onlyTopic(s *settings, topics []string, only, group string) ([]string, error) {
	if len(topics) == 0 {
		if only == "" {
			return nil, fmt.Errorf("replay: %s is no stage's group and has no committed offsets; name its topic with -topic", group)
		}
		return []string{only}, nil
	}
	if only == "" {
		return topics, nil
	}
	for _, t := range topics {
		if t == only || t == s.prefix+only {
			return []string{t}, nil
		}
	}
	return nil, fmt.Errorf("replay: %s reads %s, not %s", group, strings.Join(topics, ", "), only)
}

// target is where -to resets a group to.
type target struct {
	// kind is earliest, latest, time or offsets.
	kind string
	at   time.Time
	// offsets are the partitions -to names, with their offsets.
	offsets map[int32]int64
}

func parseTarget(to string) (target, error) {
	switch to {
	case "earliest", "latest":
		return target{kind: to}, nil
	}
	if at, err := time.Parse(time.RFC3339, to); err == nil {
		return target{kind: "time", at: at}, nil
	}
	t := target{kind: "offsets", offsets: map[int32]int64{}}
	for _, po := range strings.Split(to, ",") {
		ps, os, ok := strings.Cut(po, ":")
		p, err1 := strconv.ParseInt(ps, 10, 32)
		o, err2 := strconv.ParseInt(os, 10, 64)
		if !ok || err1 != nil || err2 != nil || p < 0 || o < 0 {
			return target{}, fmt.Errorf("-to %q: want earliest, latest, an RFC 3339 time such as 2026-11-24T10:00:00Z, or PARTITION:OFFSET[,PARTITION:OFFSET...]", to)
		}
		if _, dup := t.offsets[int32(p)]; dup {
			return target{}, fmt.Errorf("-to %q names partition %d twice", to, p)
		}
		t.offsets[int32(p)] = o
	}
	return t, nil
}

// plan returns, for every partition of topics the reset moves, where the
// group is and where it is to go, sorted by topic and partition.
func (t target) plan(ctx context.Context, adm *kadm.Client, topics []string, committed kadm.OffsetResponses) ([]partitionOffsets, error) {
	if t.kind == "offsets" && len(topics) != 1 {
		return nil, fmt.Errorf("replay: PARTITION:OFFSET names the partitions of one topic; the group reads %s: pick one with -topic",
			strings.Join(topics, ", "))
	}
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("replay: start offsets of %s: %w", strings.Join(topics, ", "), err)
	}
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("replay: end offsets of %s: %w", strings.Join(topics, ", "), err)
	}
	var targets kadm.ListedOffsets
	switch t.kind {
	case "earliest":
		targets = starts
	case "latest":
		targets = ends
	case "time":
		if targets, err = adm.ListOffsetsAfterMilli(ctx, t.at.UnixMilli(), topics...); err == nil {
			err = targets.Error()
		}
		if err != nil {
			return nil, fmt.Errorf("replay: offsets at %s: %w", t.at.Format(time.RFC3339), err)
		}
	}
	var plan []partitionOffsets
	var errs []error
	ends.Each(func(end kadm.ListedOffset) {
		start, _ := starts.Lookup(end.Topic, end.Partition)
		p := partitionOffsets{topic: end.Topic, partition: end.Partition, current: -1, start: start.Offset}
		if c, ok := committed.Lookup(end.Topic, end.Partition); ok {
			p.current = c.At
		}
		switch t.kind {
		case "offsets":
			o, ok := t.offsets[end.Partition]
			if !ok {
				return // a partition -to does not name is left where it is
			}
			if o < start.Offset || o > end.Offset {
				errs = append(errs, fmt.Errorf("replay: %s partition %d holds offsets %d to %d; %d is outside them",
					end.Topic, end.Partition, start.Offset, end.Offset, o))
			}
			p.target = o
			delete(t.offsets, end.Partition)
		default:
			to, _ := targets.Lookup(end.Topic, end.Partition)
			p.target = to.Offset
		}
		plan = append(plan, p)
	})
	for p := range t.offsets {
		errs = append(errs, fmt.Errorf("replay: %s has no partition %d", topics[0], p))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	slices.SortFunc(plan, func(a, b partitionOffsets) int {
		if c := strings.Compare(a.topic, b.topic); c != 0 {
			return c
		}
		return int(a.partition - b.partition)
	})
	return plan, nil
}

func printPlan(out io.Writer, group, to string, plan []partitionOffsets, dryRun bool) {
	mode := "committing"
	if dryRun {
		mode = "dry run, nothing is committed"
	}
	fmt.Fprintf(out, "replay %s to %s (%s):\n", group, to, mode)
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "  topic\tpartition\tcurrent\ttarget\tre-read\tskipped")
	var reread, skipped int64
	for _, p := range plan {
		current := strconv.FormatInt(p.current, 10)
		if p.current < 0 {
			current = "none"
		}
		fmt.Fprintf(w, "  %s\t%d\t%s\t%d\t%d\t%d\n", p.topic, p.partition, current, p.target, p.reread(), p.skipped())
		reread += p.reread()
		skipped += p.skipped()
	}
	fmt.Fprintf(w, "  total\t\t\t\t%d\t%d\n", reread, skipped)
	w.Flush()
}

// stoppedFlags are how a command that must not run beside a stage is told
// which of the stage's static members are gone.
type stoppedFlags struct{ remove []string }

func (f *stoppedFlags) flags(fs *conf.FlagSet) {
	fs.Strings(&f.remove, "remove-member", nil,
		"instance ids of static members whose processes are gone (killed, not stopped) but which the group still lists: remove them first")
}

// rejoinWait is how long check waits, after removing members, for one
// whose process is in fact alive to rejoin: its next heartbeat (every 3s,
// franz-go's default) learns that it was removed, and it joins again.
const rejoinWait = 5 * time.Second

// check returns nil when none of groups has members, after removing those
// f.remove names (only pretending to, in a dry run). Otherwise its error
// names each member and says how to stop or remove it.
func (f *stoppedFlags) check(ctx context.Context, cl *kgo.Client, groups []string, dryRun bool, out io.Writer) error {
	members := map[string][]kadm.DescribedGroupMember{}
	describe := func() error {
		for _, g := range groups {
			m, err := groupMembers(ctx, cl, g)
			if err != nil {
				return err
			}
			members[g] = m
		}
		return nil
	}
	if err := describe(); err != nil {
		return err
	}
	removed := false
	for _, id := range f.remove {
		group, i := "", -1
		for _, g := range groups {
			if i = slices.IndexFunc(members[g], func(m kadm.DescribedGroupMember) bool { return m.InstanceID != nil && *m.InstanceID == id }); i >= 0 {
				group = g
				break
			}
		}
		if group == "" {
			var all []kadm.DescribedGroupMember
			for _, g := range groups {
				all = append(all, members[g]...)
			}
			return fmt.Errorf("%s has no member with instance id %s%s", strings.Join(groups, " or "), id, describeMembers(all))
		}
		if dryRun {
			fmt.Fprintf(out, "dry run: would remove the static member %s from %s\n", id, group)
			members[group] = slices.Delete(members[group], i, i+1)
			continue
		}
		// Fenced by the member id seen: an instance restarted since is
		// alive, and stays.
		if err := stream.LeaveGroup(ctx, cl, group, id, members[group][i].MemberID, "shopstream: an operator removed a stopped instance"); err != nil {
			return fmt.Errorf("remove %s from %s: %w", id, group, err)
		}
		fmt.Fprintf(out, "removed the static member %s from %s\n", id, group)
		removed = true
	}
	if removed {
		time.Sleep(rejoinWait)
		if err := describe(); err != nil {
			return err
		}
	}
	var live, static []string
	for _, g := range groups {
		if len(members[g]) == 0 {
			continue
		}
		live = append(live, fmt.Sprintf("%s has live members; it must be stopped first:%s", g, describeMembers(members[g])))
		for _, m := range members[g] {
			if m.InstanceID != nil {
				static = append(static, *m.InstanceID)
			}
		}
	}
	if len(live) == 0 {
		return nil
	}
	msg := strings.Join(live, "\n") + "\nStop what runs the stage (SIGTERM or Ctrl-C: a stopped stage leaves its group at once). " +
		"A member whose process was killed stays listed until its session times out (45s) or its instance starts again"
	if len(static) > 0 {
		msg += fmt.Sprintf("; once its process is gone, run this again with -remove-member %s", strings.Join(static, ","))
	}
	return errors.New(msg)
}

func groupMembers(ctx context.Context, cl *kgo.Client, group string) ([]kadm.DescribedGroupMember, error) {
	described, err := kadm.NewClient(cl).DescribeGroups(ctx, group)
	if err == nil {
		err = described.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("describe %s: %w", group, err)
	}
	return described[group].Members, nil
}

func describeMembers(members []kadm.DescribedGroupMember) string {
	var b strings.Builder
	for _, m := range members {
		id := "(dynamic)"
		if m.InstanceID != nil {
			id = *m.InstanceID
		}
		fmt.Fprintf(&b, "\n  instance %s  member %s  client %s  host %s", id, m.MemberID, m.ClientID, m.ClientHost)
	}
	return b.String()
}
