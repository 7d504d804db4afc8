package broker

// AlterPartitionReassignments (key 45) and ListPartitionReassignments (key
// 46), version 0 (KIP-455). A reassignment moves a partition to target
// replicas: in a cluster it is written to etcd (cluster.Node.
// AlterPartitionReassignment), the partition's replicas are the union of
// the original and the target while the adding replicas catch up, and the
// controller completes it once the ISR holds the whole target (a leader
// outside the target hands over to a target replica; the removed brokers
// stop serving the partition and delete their copy). Null replicas cancel
// a pending reassignment. Answers, as Kafka's: UNKNOWN_TOPIC_OR_PARTITION,
// INVALID_REPLICA_ASSIGNMENT (empty, duplicates, unregistered brokers),
// NO_REASSIGNMENT_IN_PROGRESS (a cancel of none). One node is a one-broker
// cluster: a reassignment to itself has nothing to do, any other broker id
// is invalid, and nothing is ever in progress. ListPartitionReassignments
// answers the pending moves, of every topic when topics is null, with
// their replicas (the union), adding and removing replicas.

import (
	"context"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/cluster"
)

func (s *Server) handleAlterPartitionAssignments(ctx context.Context, _ *conn, req *kmsg.AlterPartitionAssignmentsRequest) (kmsg.Response, error) {
	resp := kmsg.NewPtrAlterPartitionAssignmentsResponse()
	resp.Version = req.Version
	timeout := adminTimeout
	if req.TimeoutMillis > 0 {
		timeout = min(timeout, time.Duration(req.TimeoutMillis)*time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last int64
	for _, rt := range req.Topics {
		st := kmsg.NewAlterPartitionAssignmentsResponseTopic()
		st.Topic = rt.Topic
		t := s.topics.get(rt.Topic)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewAlterPartitionAssignmentsResponseTopicPartition()
			sp.Partition = rp.Partition
			var err error
			switch {
			case t == nil || t.partition(rp.Partition) == nil:
				err = kerr.UnknownTopicOrPartition
			case s.clustered():
				var rev int64
				rev, err = s.cl.AlterPartitionReassignment(ctx, cluster.TP{Topic: rt.Topic, Partition: rp.Partition}, rp.Replicas)
				last = max(last, rev)
			case rp.Replicas == nil:
				err = kerr.NoReassignmentInProgress
			case !slices.Equal(rp.Replicas, []int32{s.cfg.BrokerID}):
				err = kerr.InvalidReplicaAssignment
			}
			sp.ErrorCode, sp.ErrorMessage = clusterError(err)
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	if last > 0 {
		if err := s.applied(ctx, last); err != nil {
			s.log.Warn("AlterPartitionReassignments: the reassignments are in etcd, but this broker's view has not applied them yet", "err", err)
		}
	}
	return resp, nil
}

func (s *Server) handleListPartitionReassignments(_ context.Context, _ *conn, req *kmsg.ListPartitionReassignmentsRequest) (kmsg.Response, error) {
	resp := kmsg.NewPtrListPartitionReassignmentsResponse()
	resp.Version = req.Version
	if !s.clustered() {
		return resp, nil // one node never moves a partition
	}
	var want map[cluster.TP]bool
	if req.Topics != nil {
		want = map[cluster.TP]bool{}
		for _, rt := range req.Topics {
			for _, p := range rt.Partitions {
				want[cluster.TP{Topic: rt.Topic, Partition: p}] = true
			}
		}
	}
	for _, pe := range s.cl.View().Snapshot().Reassigning() {
		if want != nil && !want[pe.TP] {
			continue
		}
		if n := len(resp.Topics); n == 0 || resp.Topics[n-1].Topic != pe.Topic {
			rt := kmsg.NewListPartitionReassignmentsResponseTopic()
			rt.Topic = pe.Topic
			resp.Topics = append(resp.Topics, rt)
		}
		rp := kmsg.NewListPartitionReassignmentsResponseTopicPartition()
		rp.Partition = pe.Partition
		rp.Replicas, rp.AddingReplicas, rp.RemovingReplicas = pe.Replicas(), pe.Adding(), pe.Removing()
		rt := &resp.Topics[len(resp.Topics)-1]
		rt.Partitions = append(rt.Partitions, rp)
	}
	return resp, nil
}
