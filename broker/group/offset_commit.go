package group

// OffsetCommit: versions 0-10.
//
// Behaviour: commits are persisted through the OffsetStore before the
// response. A commit with generation -1 and no member id is a simple
// (groupless) commit: it creates the group if needed and is accepted only
// while the group is Empty. Otherwise the member id, group.instance.id and
// generation must be the group's current ones; a valid member's commit also
// counts as a heartbeat. Commits are accepted in PreparingRebalance (members
// commit before revoking partitions) but not in CompletingRebalance.
//
// Errors: per partition. UNKNOWN_TOPIC_OR_PARTITION (no such partition),
// UNKNOWN_TOPIC_ID (v10), OFFSET_METADATA_TOO_LARGE (metadata above 4096
// bytes), and for every partition of the request: UNKNOWN_MEMBER_ID
// (unknown member, or a simple commit to a group with members),
// FENCED_INSTANCE_ID, ILLEGAL_GENERATION (wrong generation; also an unknown
// group with a generation below v9), GROUP_ID_NOT_FOUND (unknown group with a
// generation, v9+), REBALANCE_IN_PROGRESS (CompletingRebalance),
// COORDINATOR_NOT_AVAILABLE (store write failed, or closing). An empty group
// id is allowed here, as in Kafka (for backward compatibility).
//
// Version notes:
//   - v0: no generation or member id: always a simple commit.
//   - v1: a commit timestamp per partition (-1: now), stored as the commit time.
//   - v2-v4: a retention time, which we ignore: offsets.retention.minutes
//     applies (the store keeps no per-offset expiry time).
//   - v6+: leader epoch. v7+: group.instance.id.
//   - v9+: GROUP_ID_NOT_FOUND instead of ILLEGAL_GENERATION for an unknown group.
//   - v10: topics by topic id (KIP-848 follow-up), resolved through Topics.

import (
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/metadata"
)

func (c *Coordinator) handleOffsetCommit(req *kmsg.OffsetCommitRequest) *kmsg.OffsetCommitResponse {
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	generation, memberID, instanceID := req.Generation, req.MemberID, req.InstanceID
	if req.Version == 0 {
		generation, memberID = -1, ""
	}
	if req.Version < 7 {
		instanceID = nil
	}
	nowMs := time.Now().UnixMilli()

	// Build the response first, with per-partition errors; commits hold the
	// indexes of the partitions to write.
	type slot struct{ t, p int }
	var (
		commits []metadata.OffsetCommit
		slots   []slot
	)
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetCommitResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		name, known := rt.Topic, true
		if req.Version >= 10 {
			name, known = c.topics.TopicName(rt.TopicID)
		}
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetCommitResponseTopicPartition()
			sp.Partition = rp.Partition
			switch {
			case !known:
				sp.ErrorCode = kerr.UnknownTopicID.Code
			case !c.topics.PartitionExists(name, rp.Partition):
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case rp.Metadata != nil && len(*rp.Metadata) > maxMetadataBytes:
				sp.ErrorCode = kerr.OffsetMetadataTooLarge.Code
			default:
				oc := metadata.OffsetCommit{
					Topic:           name,
					Partition:       rp.Partition,
					Offset:          rp.Offset,
					LeaderEpoch:     -1,
					CommitTimestamp: nowMs,
				}
				if rp.Metadata != nil {
					oc.Metadata = *rp.Metadata
				}
				if req.Version >= 6 {
					oc.LeaderEpoch = rp.LeaderEpoch
				}
				if req.Version == 1 && rp.Timestamp != -1 {
					oc.CommitTimestamp = rp.Timestamp
				}
				commits = append(commits, oc)
				slots = append(slots, slot{len(resp.Topics), len(st.Partitions)})
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	setAll := func(err *kerr.Error) *kmsg.OffsetCommitResponse {
		for _, s := range slots {
			resp.Topics[s.t].Partitions[s.p].ErrorCode = err.Code
		}
		return resp
	}

	g, err := c.lockGroup(req.Group, generation < 0)
	if err != nil {
		return setAll(err)
	}
	if g == nil {
		if req.Version >= 9 {
			return setAll(kerr.GroupIDNotFound)
		}
		return setAll(kerr.IllegalGeneration)
	}
	defer g.mu.Unlock()
	m, err := g.validateCommit(generation, memberID, instanceID)
	if err != nil {
		return setAll(err)
	}
	if m != nil {
		g.touch(m)
	}
	if len(commits) == 0 {
		return resp
	}
	if err := c.store.CommitOffsets(g.name, commits); err != nil {
		c.log.Error("group: cannot persist offsets", "group", g.name, "err", err)
		return setAll(kerr.CoordinatorNotAvailable)
	}
	return resp
}

// validateCommit checks who commits, as Kafka's classic group does, and
// returns the committing member (nil for a simple commit). Requires g.mu.
func (g *group) validateCommit(generation int32, memberID string, instanceID *string) (*member, *kerr.Error) {
	if generation < 0 && g.mu.state == stateEmpty {
		return nil, nil // simple commit: the admin client, or a consumer without group management
	}
	var m *member
	if generation >= 0 || memberID != "" || instanceID != nil {
		var err *kerr.Error
		if m, err = g.validateMember(memberID, instanceID); err != nil {
			return nil, err
		}
		if generation != g.mu.generation {
			return nil, kerr.IllegalGeneration
		}
	} else if g.mu.state != stateEmpty {
		return nil, kerr.UnknownMemberID // a simple commit to a group with members
	}
	if g.mu.state == stateCompletingRebalance {
		// Its generation is current, so it got the JoinGroup response: it
		// should sync first.
		return nil, kerr.RebalanceInProgress
	}
	return m, nil
}
