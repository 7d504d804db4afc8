package broker

// Topic administration: CreateTopics (key 19, v0-7), DeleteTopics (key 20,
// v0-6), CreatePartitions (key 37, v0-3).
//
// One broker: the replication factor must be 1 (or -1 for the default) and a
// manual assignment may name only this broker. Topic configs are validated as a
// whole before anything is created; ValidateOnly checks without creating. v5+
// CreateTopics answers with the topic's effective configs, v7 with its ID.
// DeleteTopics v6 names topics by ID; delete.topic.enable=false refuses.

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// adminError maps a registry error to a code and message.
func adminError(err error) (int16, *string) {
	if err == nil {
		return 0, nil
	}
	msg := err.Error()
	var code *kerr.Error
	switch {
	case errors.Is(err, errTopicExists):
		code = kerr.TopicAlreadyExists
	case errors.Is(err, errInvalidTopic):
		code = kerr.InvalidTopicException
	case errors.Is(err, errInvalidConfig):
		code = kerr.InvalidConfig
	case errors.Is(err, errInvalidParts):
		code = kerr.InvalidPartitions
	case errors.Is(err, errUnknownTopic):
		code = kerr.UnknownTopicOrPartition
	case errors.Is(err, errInvalidReplicationFactor):
		code = kerr.InvalidReplicationFactor
	case errors.Is(err, errInvalidAssignment):
		code = kerr.InvalidReplicaAssignment
	case errors.Is(err, context.DeadlineExceeded):
		code = kerr.RequestTimedOut
	default:
		code = kerr.UnknownServerError
	}
	return code.Code, &msg
}

func strp(s string) *string { return &s }

func (s *Server) handleCreateTopics(ctx context.Context, _ *conn, req *kmsg.CreateTopicsRequest) (kmsg.Response, error) {
	resp := kmsg.NewPtrCreateTopicsResponse()
	resp.Version = req.Version
	seen := map[string]int{}
	for _, rt := range req.Topics {
		seen[rt.Topic]++
	}
	for _, rt := range req.Topics {
		st := kmsg.NewCreateTopicsResponseTopic()
		st.Topic = rt.Topic
		st.NumPartitions, st.ReplicationFactor = -1, -1
		fail := func(e *kerr.Error, msg string) {
			st.ErrorCode, st.ErrorMessage = e.Code, strp(msg)
		}
		nparts := rt.NumPartitions
		if nparts == -1 {
			nparts = s.cfg.NumPartitions
		}
		overrides := map[string]string{}
		for _, c := range rt.Configs {
			if c.Value == nil {
				fail(kerr.InvalidConfig, "config "+c.Name+" has a null value")
				break
			}
			overrides[c.Name] = *c.Value
		}
		switch {
		case st.ErrorCode != 0:
		case seen[rt.Topic] > 1:
			fail(kerr.InvalidRequest, "topic "+rt.Topic+" appears more than once in the request")
		case isInternalTopic(rt.Topic):
			// The broker creates its internal topic itself, with its own configs.
			fail(kerr.TopicAlreadyExists, "topic "+rt.Topic+" is internal: the broker creates it")
		case !s.clustered() && rt.ReplicationFactor != -1 && rt.ReplicationFactor != 1:
			fail(kerr.InvalidReplicationFactor, "this cluster has one broker: replication factor must be 1")
		case len(rt.ReplicaAssignment) > 0 && (rt.NumPartitions != -1 || rt.ReplicationFactor != -1):
			fail(kerr.InvalidRequest, "both a replica assignment and a partition count or replication factor were given")
		case s.clustered():
			var as [][]int32
			if len(rt.ReplicaAssignment) > 0 {
				as = make([][]int32, len(rt.ReplicaAssignment))
				for _, a := range rt.ReplicaAssignment {
					if a.Partition < 0 || int(a.Partition) >= len(as) || as[a.Partition] != nil {
						as = nil
						break
					}
					as[a.Partition] = a.Replicas
				}
				if as == nil {
					fail(kerr.InvalidReplicaAssignment, "replica assignment must name partitions 0..n-1 once each")
					break
				}
			}
			t, as, err := s.clusterCreateTopic(ctx, rt.Topic, nparts, rt.ReplicationFactor, as, overrides, req.ValidateOnly)
			st.ErrorCode, st.ErrorMessage = adminError(err)
			if err == nil {
				st.NumPartitions, st.ReplicationFactor = int32(len(as)), int16(len(as[0]))
				if t != nil {
					st.TopicID = t.id
				}
				s.describeCreated(&st, overrides)
			}
		case len(rt.ReplicaAssignment) > 0 && !assignmentToSelf(rt.ReplicaAssignment, s.cfg.BrokerID):
			fail(kerr.InvalidReplicaAssignment, "replica assignment may name only this broker, once per partition, partitions 0..n-1")
		default:
			if len(rt.ReplicaAssignment) > 0 {
				nparts = int32(len(rt.ReplicaAssignment))
			}
			t, err := s.topics.create(rt.Topic, nparts, overrides, req.ValidateOnly)
			st.ErrorCode, st.ErrorMessage = adminError(err)
			if err == nil {
				st.NumPartitions, st.ReplicationFactor = nparts, 1
				if t != nil {
					st.TopicID = t.id
				}
				s.describeCreated(&st, overrides)
			}
		}
		if req.Version == 0 {
			st.ErrorMessage = nil
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

// describeCreated lists a created topic's effective configs (v5+).
func (s *Server) describeCreated(st *kmsg.CreateTopicsResponseTopic, overrides map[string]string) {
	for _, e := range s.cfg.DescribeTopic(overrides) {
		c := kmsg.NewCreateTopicsResponseTopicConfig()
		c.Name, c.Value, c.ReadOnly, c.Source, c.IsSensitive = e.Name, strp(e.Value), e.ReadOnly, int8(e.Source), e.Sensitive
		st.Configs = append(st.Configs, c)
	}
}

func assignmentToSelf(as []kmsg.CreateTopicsRequestTopicReplicaAssignment, self int32) bool {
	seen := map[int32]bool{}
	for _, a := range as {
		if len(a.Replicas) != 1 || a.Replicas[0] != self || seen[a.Partition] || a.Partition < 0 || int(a.Partition) >= len(as) {
			return false
		}
		seen[a.Partition] = true
	}
	return true
}

func (s *Server) handleDeleteTopics(ctx context.Context, _ *conn, req *kmsg.DeleteTopicsRequest) (kmsg.Response, error) {
	resp := kmsg.NewPtrDeleteTopicsResponse()
	resp.Version = req.Version
	type target struct {
		name *string
		id   [16]byte
	}
	var targets []target
	if req.Version >= 6 {
		for _, rt := range req.Topics {
			targets = append(targets, target{rt.Topic, rt.TopicID})
		}
	} else {
		for _, n := range req.TopicNames {
			targets = append(targets, target{name: strp(n)})
		}
	}
	for _, tg := range targets {
		st := kmsg.NewDeleteTopicsResponseTopic()
		st.Topic, st.TopicID = tg.name, tg.id
		var t *topic
		if tg.name != nil {
			t = s.topics.get(*tg.name)
		} else {
			t = s.topics.getByID(tg.id)
		}
		switch {
		case !s.cfg.DeleteTopicEnable:
			st.ErrorCode, st.ErrorMessage = kerr.TopicDeletionDisabled.Code, strp("delete.topic.enable is false")
		case t == nil && tg.name == nil:
			st.ErrorCode = kerr.UnknownTopicID.Code
		case t == nil:
			st.ErrorCode = kerr.UnknownTopicOrPartition.Code
		case isInternalTopic(t.name):
			st.ErrorCode, st.ErrorMessage = kerr.InvalidRequest.Code, strp("topic "+t.name+" is internal and cannot be deleted")
		default:
			name := t.name
			st.Topic, st.TopicID = &name, t.id
			if s.clustered() {
				st.ErrorCode, st.ErrorMessage = adminError(s.clusterDeleteTopic(ctx, t))
			} else {
				st.ErrorCode, st.ErrorMessage = adminError(s.deleteTopic(t))
			}
		}
		if req.Version < 5 {
			st.ErrorMessage = nil
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

func (s *Server) handleCreatePartitions(ctx context.Context, _ *conn, req *kmsg.CreatePartitionsRequest) (kmsg.Response, error) {
	resp := kmsg.NewPtrCreatePartitionsResponse()
	resp.Version = req.Version
	for _, rt := range req.Topics {
		st := kmsg.NewCreatePartitionsResponseTopic()
		st.Topic = rt.Topic
		t := s.topics.get(rt.Topic)
		switch {
		case t == nil:
			st.ErrorCode = kerr.UnknownTopicOrPartition.Code
		case s.clustered():
			var as [][]int32
			for _, a := range rt.Assignment {
				as = append(as, a.Replicas)
			}
			st.ErrorCode, st.ErrorMessage = adminError(s.clusterGrow(ctx, t, rt.Count, as, req.ValidateOnly))
		default:
			ok := true
			for _, a := range rt.Assignment {
				if len(a.Replicas) != 1 || a.Replicas[0] != s.cfg.BrokerID {
					ok = false
				}
			}
			if !ok {
				st.ErrorCode, st.ErrorMessage = kerr.InvalidReplicaAssignment.Code, strp("replica assignment may name only this broker")
				break
			}
			st.ErrorCode, st.ErrorMessage = adminError(s.topics.grow(t, rt.Count, req.ValidateOnly))
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}
