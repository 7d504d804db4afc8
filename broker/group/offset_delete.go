package group

// OffsetDelete: version 0.
//
// Behaviour: deletes committed offsets of one group. An Empty group (or one
// known only by its offsets) loses every requested partition. A group with
// members keeps the offsets of topics its members subscribe to (decoded from
// their consumer protocol metadata), answering GROUP_SUBSCRIBED_TO_TOPIC for
// them; a group with members of another protocol type keeps everything.
// Deleting an offset that was never committed succeeds.
//
// Errors: INVALID_GROUP_ID (empty group id), GROUP_ID_NOT_FOUND,
// NON_EMPTY_GROUP (members, protocol type not "consumer"),
// COORDINATOR_NOT_AVAILABLE (store failure, or closing); per partition
// UNKNOWN_TOPIC_OR_PARTITION and GROUP_SUBSCRIBED_TO_TOPIC.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/metadata"
)

func (c *Coordinator) handleOffsetDelete(req *kmsg.OffsetDeleteRequest) *kmsg.OffsetDeleteResponse {
	resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp
	}
	g, err := c.lockGroup(req.Group, false)
	if err != nil {
		resp.ErrorCode = err.Code
		return resp
	}
	subscribed := map[string]bool{}
	all := false // every topic counts as subscribed
	if g == nil {
		has, err := c.groupHasOffsets(req.Group)
		if err != nil {
			c.log.Error("group: cannot read offsets", "group", req.Group, "err", err)
			resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
			return resp
		}
		if !has {
			resp.ErrorCode = kerr.GroupIDNotFound.Code
			return resp
		}
	} else {
		defer g.mu.Unlock()
		if len(g.mu.members) > 0 {
			if g.mu.protocolType != consumerProtocolType {
				resp.ErrorCode = kerr.NonEmptyGroup.Code
				return resp
			}
			var ok bool
			subscribed, ok = g.subscribedTopics()
			all = !ok
		}
	}

	var tps []metadata.TopicPartition
	type slot struct{ t, p int }
	var slots []slot
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetDeleteResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetDeleteResponseTopicPartition()
			sp.Partition = rp.Partition
			switch {
			case !c.topics.PartitionExists(rt.Topic, rp.Partition):
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case all || subscribed[rt.Topic]:
				sp.ErrorCode = kerr.GroupSubscribedToTopic.Code
			default:
				tps = append(tps, metadata.TopicPartition{Topic: rt.Topic, Partition: rp.Partition})
				slots = append(slots, slot{len(resp.Topics), len(st.Partitions)})
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	if len(tps) == 0 {
		return resp
	}
	if err := c.store.DeleteOffsets(req.Group, tps); err != nil {
		c.log.Error("group: cannot delete offsets", "group", req.Group, "err", err)
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		for _, s := range slots {
			resp.Topics[s.t].Partitions[s.p].ErrorCode = kerr.CoordinatorNotAvailable.Code
		}
	}
	return resp
}
