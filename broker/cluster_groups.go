package broker

// Group requests in a cluster go to the leader of the group's
// __consumer_offsets partition (FindCoordinator answers it); any other
// broker answers NOT_COORDINATOR, and the client looks the coordinator up
// again. A broker that just became the leader answers
// COORDINATOR_LOAD_IN_PROGRESS until it has loaded the partition.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// notCoordinator answers a group request this broker does not coordinate;
// ok is false when it does (or the request names no group).
func (s *Server) notCoordinator(req kmsg.Request) (kmsg.Response, bool) {
	mine := s.offsets.coordinates
	code := kerr.NotCoordinator.Code
	switch r := req.(type) {
	case *kmsg.JoinGroupRequest:
		if !mine(r.Group) {
			resp := r.ResponseKind().(*kmsg.JoinGroupResponse)
			resp.ErrorCode, resp.Generation = code, -1
			return resp, true
		}
	case *kmsg.SyncGroupRequest:
		if !mine(r.Group) {
			resp := r.ResponseKind().(*kmsg.SyncGroupResponse)
			resp.ErrorCode = code
			return resp, true
		}
	case *kmsg.HeartbeatRequest:
		if !mine(r.Group) {
			resp := r.ResponseKind().(*kmsg.HeartbeatResponse)
			resp.ErrorCode = code
			return resp, true
		}
	case *kmsg.LeaveGroupRequest:
		if !mine(r.Group) {
			resp := r.ResponseKind().(*kmsg.LeaveGroupResponse)
			resp.ErrorCode = code
			return resp, true
		}
	case *kmsg.OffsetCommitRequest:
		if !mine(r.Group) {
			resp := r.ResponseKind().(*kmsg.OffsetCommitResponse)
			for _, rt := range r.Topics {
				st := kmsg.NewOffsetCommitResponseTopic()
				st.Topic = rt.Topic
				for _, rp := range rt.Partitions {
					sp := kmsg.NewOffsetCommitResponseTopicPartition()
					sp.Partition, sp.ErrorCode = rp.Partition, code
					st.Partitions = append(st.Partitions, sp)
				}
				resp.Topics = append(resp.Topics, st)
			}
			return resp, true
		}
	case *kmsg.OffsetDeleteRequest:
		if !mine(r.Group) {
			resp := r.ResponseKind().(*kmsg.OffsetDeleteResponse)
			resp.ErrorCode = code
			return resp, true
		}
	case *kmsg.OffsetFetchRequest:
		if r.Version < 8 {
			if !mine(r.Group) {
				resp := r.ResponseKind().(*kmsg.OffsetFetchResponse)
				resp.ErrorCode = code
				return resp, true
			}
			return nil, false
		}
		for _, g := range r.Groups {
			if !mine(g.Group) {
				resp := r.ResponseKind().(*kmsg.OffsetFetchResponse)
				for _, g := range r.Groups {
					rg := kmsg.NewOffsetFetchResponseGroup()
					rg.Group = g.Group
					if !mine(g.Group) {
						rg.ErrorCode = code
					}
					resp.Groups = append(resp.Groups, rg)
				}
				return resp, true
			}
		}
	case *kmsg.DescribeGroupsRequest:
		for _, g := range r.Groups {
			if !mine(g) {
				resp := r.ResponseKind().(*kmsg.DescribeGroupsResponse)
				for _, g := range r.Groups {
					rg := kmsg.NewDescribeGroupsResponseGroup()
					rg.Group = g
					if !mine(g) {
						rg.ErrorCode = code
					}
					resp.Groups = append(resp.Groups, rg)
				}
				return resp, true
			}
		}
	case *kmsg.DeleteGroupsRequest:
		for _, g := range r.Groups {
			if !mine(g) {
				resp := r.ResponseKind().(*kmsg.DeleteGroupsResponse)
				for _, g := range r.Groups {
					rg := kmsg.NewDeleteGroupsResponseGroup()
					rg.Group = g
					if !mine(g) {
						rg.ErrorCode = code
					}
					resp.Groups = append(resp.Groups, rg)
				}
				return resp, true
			}
		}
	}
	return nil, false
}
