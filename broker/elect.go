package broker

// ElectLeaders (key 43), versions 0-2 (KIP-460 added the election type in
// v1): the preferred replica, the first of a partition's assignment, takes
// the leadership back if it is live and in the ISR (PREFERRED), or a
// partition without a live leader gets one, out of the ISR if need be
// (UNCLEAN, losing what only the old ISR held). In a cluster the new state
// is written to etcd by compare-and-swap (cluster.ElectLeaders) and the
// answer waits until this broker's view has it. One node leads every
// partition it has: ELECTION_NOT_NEEDED. Answers, as Kafka's:
// ELECTION_NOT_NEEDED, PREFERRED_LEADER_NOT_AVAILABLE,
// ELIGIBLE_LEADERS_NOT_AVAILABLE, UNKNOWN_TOPIC_OR_PARTITION,
// INVALID_REQUEST for an unknown election type. With no partitions named
// (null), every partition of every topic is tried and, as Kafka does, those
// that already have the leader asked for are left out of the answer.

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/stratalog/strata/cluster"
)

func (s *Server) handleElectLeaders(ctx context.Context, _ *conn, req *kmsg.ElectLeadersRequest) (kmsg.Response, error) {
	resp := kmsg.NewPtrElectLeadersResponse()
	resp.Version = req.Version
	unclean := false
	switch req.ElectionType {
	case 0:
	case 1:
		unclean = true
	default:
		resp.ErrorCode = kerr.InvalidRequest.Code
		return resp, nil
	}
	all := req.Topics == nil
	topics := req.Topics
	if all {
		for _, t := range s.topics.all() {
			rt := kmsg.NewElectLeadersRequestTopic()
			rt.Topic = t.name
			for i := range t.parts() {
				rt.Partitions = append(rt.Partitions, int32(i))
			}
			topics = append(topics, rt)
		}
		slices.SortFunc(topics, func(a, b kmsg.ElectLeadersRequestTopic) int { return strings.Compare(a.Topic, b.Topic) })
	}
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	var last int64
	for _, rt := range topics {
		st := kmsg.NewElectLeadersResponseTopic()
		st.Topic = rt.Topic
		t := s.topics.get(rt.Topic)
		for _, p := range rt.Partitions {
			sp := kmsg.NewElectLeadersResponseTopicPartition()
			sp.Partition = p
			var err error
			switch {
			case t == nil || t.partition(p) == nil:
				err = kerr.UnknownTopicOrPartition
			case s.clustered():
				var rev int64
				rev, err = s.cl.ElectLeaders(ctx, cluster.TP{Topic: rt.Topic, Partition: p}, unclean)
				last = max(last, rev)
			default:
				err = kerr.ElectionNotNeeded
			}
			code, msg := clusterError(err)
			if all && code == kerr.ElectionNotNeeded.Code {
				continue
			}
			sp.ErrorCode, sp.ErrorMessage = code, msg
			st.Partitions = append(st.Partitions, sp)
		}
		if !all || len(st.Partitions) > 0 {
			resp.Topics = append(resp.Topics, st)
		}
	}
	if last > 0 {
		if err := s.applied(ctx, last); err != nil {
			s.log.Warn("ElectLeaders: the new leaders are in etcd, but this broker's view has not applied them yet", "err", err)
		}
	}
	return resp, nil
}

// clusterError maps the outcome of a partition's election or reassignment
// in etcd to Kafka's error code: Kafka's own errors as they are, the
// cluster package's by kind, etcd's timeouts (it is electing a leader: the
// client may retry) as REQUEST_TIMED_OUT.
func clusterError(err error) (int16, *string) {
	var ke *kerr.Error
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &ke):
		return ke.Code, nil
	case errors.Is(err, cluster.ErrElectionNotNeeded):
		return kerr.ElectionNotNeeded.Code, nil
	case errors.Is(err, cluster.ErrPreferredLeaderNotAvailable):
		return kerr.PreferredLeaderNotAvailable.Code, strp(err.Error())
	case errors.Is(err, cluster.ErrEligibleLeadersNotAvailable):
		return kerr.EligibleLeadersNotAvailable.Code, strp(err.Error())
	case errors.Is(err, cluster.ErrUnknownTopic):
		return kerr.UnknownTopicOrPartition.Code, nil
	case errors.Is(err, cluster.ErrInvalidAssignment):
		return kerr.InvalidReplicaAssignment.Code, strp(err.Error())
	case errors.Is(err, cluster.ErrNoReassignmentInProgress):
		return kerr.NoReassignmentInProgress.Code, nil
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, rpctypes.ErrTimeout), errors.Is(err, rpctypes.ErrTimeoutDueToLeaderFail),
		errors.Is(err, rpctypes.ErrTimeoutDueToConnectionLost), errors.Is(err, rpctypes.ErrNoLeader):
		return kerr.RequestTimedOut.Code, strp(err.Error())
	}
	return kerr.UnknownServerError.Code, strp(err.Error())
}
