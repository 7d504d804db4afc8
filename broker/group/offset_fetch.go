package group

// OffsetFetch: versions 0-10.
//
// Behaviour: answers the committed offset, leader epoch and metadata of each
// requested partition from the OffsetStore. A partition without a commit, and
// every partition of a group that does not exist, gets offset -1, leader epoch
// -1, empty metadata and no error, as in Kafka: kcat treats GROUP_ID_NOT_FOUND
// here as fatal. Null topics (v2+) ask for every committed partition. An empty
// group id is allowed, as in Kafka.
//
// Errors: COORDINATOR_NOT_AVAILABLE when the store cannot be read or the
// coordinator is closing (per partition in v0-v1, for the group from v2);
// UNKNOWN_TOPIC_ID per partition for an unknown topic id (v10).
//
// Version notes:
//   - v2+: null topics; a top-level error code. v5+: leader epoch.
//   - v7+: RequireStable. Transactional offset commits are not served, so
//     no offset is ever pending and the flag changes nothing.
//   - v8+: several groups per request, each with its own error.
//   - v9+: member id and epoch, which only KIP-848 consumer groups check;
//     classic groups ignore them, as Kafka does.
//   - v10: topics by topic id; with null topics, committed topics that have
//     no id (deleted topics) are left out.

import (
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/metadata"
)

func (c *Coordinator) handleOffsetFetch(req *kmsg.OffsetFetchRequest) *kmsg.OffsetFetchResponse {
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	if req.Version >= 8 {
		for _, rg := range req.Groups {
			resp.Groups = append(resp.Groups, c.fetchGroup(req.Version, rg))
		}
		return resp
	}

	// Up to v7: one group, answered in the old shape.
	rg := kmsg.NewOffsetFetchRequestGroup()
	rg.Group = req.Group
	if req.Topics != nil || req.Version < 2 {
		rg.Topics = make([]kmsg.OffsetFetchRequestGroupTopic, 0, len(req.Topics))
	}
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetFetchRequestGroupTopic()
		rt.Topic, rt.Partitions = t.Topic, t.Partitions
		rg.Topics = append(rg.Topics, rt)
	}
	sg := c.fetchGroup(req.Version, rg)
	if req.Version >= 2 {
		resp.ErrorCode = sg.ErrorCode
	}
	for _, t := range sg.Topics {
		st := kmsg.NewOffsetFetchResponseTopic()
		st.Topic = t.Topic
		for _, p := range t.Partitions {
			sp := kmsg.NewOffsetFetchResponseTopicPartition()
			sp.Partition, sp.Offset, sp.LeaderEpoch, sp.Metadata, sp.ErrorCode =
				p.Partition, p.Offset, p.LeaderEpoch, p.Metadata, p.ErrorCode
			if req.Version < 2 && sg.ErrorCode != 0 {
				sp.ErrorCode = sg.ErrorCode
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// fetchGroup answers one group of an OffsetFetch. Takes no lock: committed
// offsets are read from the store, which is safe for concurrent use.
func (c *Coordinator) fetchGroup(version int16, rg kmsg.OffsetFetchRequestGroup) kmsg.OffsetFetchResponseGroup {
	sg := kmsg.NewOffsetFetchResponseGroup()
	sg.Group = rg.Group
	byID := version >= 10

	var offs []metadata.OffsetCommit
	var err error
	if c.closed.Load() {
		sg.ErrorCode = kerr.CoordinatorNotAvailable.Code
	} else if offs, err = c.store.GroupOffsets(rg.Group); err != nil {
		c.log.Error("group: cannot read offsets", "group", rg.Group, "err", err)
		sg.ErrorCode = kerr.CoordinatorNotAvailable.Code
	}
	committed := make(map[metadata.TopicPartition]metadata.OffsetCommit, len(offs))
	for _, o := range offs {
		committed[metadata.TopicPartition{Topic: o.Topic, Partition: o.Partition}] = o
	}
	fill := func(sp *kmsg.OffsetFetchResponseGroupTopicPartition, o metadata.OffsetCommit, ok bool) {
		sp.Offset, sp.LeaderEpoch, sp.Metadata = -1, -1, kmsg.StringPtr("")
		if ok {
			sp.Offset, sp.LeaderEpoch, sp.Metadata = o.Offset, o.LeaderEpoch, kmsg.StringPtr(o.Metadata)
		}
	}

	if rg.Topics == nil { // every committed partition
		if sg.ErrorCode != 0 {
			return sg
		}
		sort.Slice(offs, func(i, j int) bool {
			if offs[i].Topic != offs[j].Topic {
				return offs[i].Topic < offs[j].Topic
			}
			return offs[i].Partition < offs[j].Partition
		})
		for _, o := range offs {
			if n := len(sg.Topics); n == 0 || sg.Topics[n-1].Topic != o.Topic {
				st := kmsg.NewOffsetFetchResponseGroupTopic()
				st.Topic = o.Topic
				if byID {
					id, ok := c.topics.TopicID(o.Topic)
					if !ok {
						continue
					}
					st.TopicID = id
				}
				sg.Topics = append(sg.Topics, st)
			}
			sp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
			sp.Partition = o.Partition
			fill(&sp, o, true)
			st := &sg.Topics[len(sg.Topics)-1]
			st.Partitions = append(st.Partitions, sp)
		}
		return sg
	}

	for _, rt := range rg.Topics {
		st := kmsg.NewOffsetFetchResponseGroupTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		name, known := rt.Topic, true
		if byID {
			name, known = c.topics.TopicName(rt.TopicID)
		}
		for _, p := range rt.Partitions {
			sp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
			sp.Partition = p
			o, ok := committed[metadata.TopicPartition{Topic: name, Partition: p}]
			fill(&sp, o, ok && known)
			if !known {
				sp.ErrorCode = kerr.UnknownTopicID.Code
			}
			st.Partitions = append(st.Partitions, sp)
		}
		sg.Topics = append(sg.Topics, st)
	}
	return sg
}
