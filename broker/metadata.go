package broker

// Metadata (key 3), versions 0-13.
//
// One broker, which leads every partition with leader epoch 0 and is the
// controller (admin clients send CreateTopics to the controller). Topics carry
// their UUID from v10; v10+ requests may name topics by ID. A requested topic
// that does not exist is created when auto.create.topics.enable is true and the
// request allows it (always before v4, AllowAutoTopicCreation from v4).

import (
	"context"
	"errors"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const clusterID = "strata-single-node"

// noAuthorizedOps is what Kafka sends when authorized operations were not asked for.
const noAuthorizedOps = -2147483648

func (s *Server) handleMetadata(ctx context.Context, c *conn, req *kmsg.MetadataRequest) (kmsg.Response, error) {
	if s.clustered() {
		return s.handleClusterMetadata(ctx, req)
	}
	resp := kmsg.NewPtrMetadataResponse()
	resp.Version = req.Version
	host, port := s.advertised()
	resp.Brokers = []kmsg.MetadataResponseBroker{{NodeID: s.cfg.BrokerID, Host: host, Port: port}}
	cid := clusterID
	resp.ClusterID = &cid
	resp.ControllerID = s.cfg.BrokerID
	resp.AuthorizedOperations = noAuthorizedOps

	allowAuto := s.cfg.AutoCreateTopicsEnable && (req.Version < 4 || req.AllowAutoTopicCreation)
	var topics []*topic
	var missing []kmsg.MetadataResponseTopic
	switch {
	case req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0):
		topics = s.topics.all()
		sort.Slice(topics, func(i, j int) bool { return topics[i].name < topics[j].name })
	default:
		for _, rt := range req.Topics {
			var t *topic
			if rt.Topic == nil || *rt.Topic == "" {
				if rt.TopicID == ([16]byte{}) {
					missing = append(missing, metadataTopicError(req.Version, "", rt.TopicID, kerr.InvalidTopicException))
					continue
				}
				if t = s.topics.getByID(rt.TopicID); t == nil {
					missing = append(missing, metadataTopicError(req.Version, "", rt.TopicID, kerr.UnknownTopicID))
					continue
				}
			} else {
				name := *rt.Topic
				if t = s.topics.get(name); t == nil {
					code := kerr.UnknownTopicOrPartition
					if err := validTopicName(name); err != nil {
						code = kerr.InvalidTopicException
					} else if isInternalTopic(name) && allowAuto {
						// Created by the broker with its own configs, as Kafka does.
						if st, cerr := s.offsets.ensure(); cerr != nil {
							s.log.Warn("cannot create the offsets topic", "err", cerr)
							code = kerr.UnknownServerError
						} else {
							t = st.t
						}
					} else if allowAuto {
						var cerr error
						t, cerr = s.topics.create(name, s.cfg.NumPartitions, nil, false)
						if errors.Is(cerr, errTopicExists) {
							t, cerr = s.topics.get(name), nil
						}
						// Creation is synchronous here, so the topic is answered at
						// once (Kafka answers LEADER_NOT_AVAILABLE first, costing a retry).
						if cerr != nil {
							s.log.Warn("auto-create failed", "topic", name, "err", cerr)
							code = kerr.UnknownServerError
						}
					}
					if t == nil {
						missing = append(missing, metadataTopicError(req.Version, name, [16]byte{}, code))
						continue
					}
				}
			}
			topics = append(topics, t)
		}
	}
	for _, t := range topics {
		mt := kmsg.NewMetadataResponseTopic()
		name := t.name
		mt.Topic = &name
		mt.TopicID = t.id
		mt.IsInternal = isInternalTopic(name)
		mt.AuthorizedOperations = noAuthorizedOps
		for _, p := range t.parts() {
			mp := kmsg.NewMetadataResponseTopicPartition()
			mp.Partition = p.index
			mp.Leader = s.cfg.BrokerID
			mp.LeaderEpoch = 0
			mp.Replicas = []int32{s.cfg.BrokerID}
			mp.ISR = []int32{s.cfg.BrokerID}
			mt.Partitions = append(mt.Partitions, mp)
		}
		resp.Topics = append(resp.Topics, mt)
	}
	resp.Topics = append(resp.Topics, missing...)
	return resp, nil
}

func metadataTopicError(version int16, name string, id [16]byte, e *kerr.Error) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	if name != "" || version < 12 {
		mt.Topic = &name
	}
	mt.TopicID = id
	mt.ErrorCode = e.Code
	mt.AuthorizedOperations = noAuthorizedOps
	return mt
}

// FindCoordinator (key 10), versions 0-6: this broker coordinates every group.
// Transactions are not supported, so a transaction coordinator lookup fails
// with a non-retriable error instead of leaving the client to retry forever.
func (s *Server) handleFindCoordinator(_ context.Context, _ *conn, req *kmsg.FindCoordinatorRequest) (kmsg.Response, error) {
	resp := kmsg.NewPtrFindCoordinatorResponse()
	resp.Version = req.Version
	host, port := s.advertised()
	self := s.cfg.BrokerID
	if s.clustered() && req.CoordinatorType == 0 {
		return s.clusterFindCoordinator(req, resp), nil
	}
	answer := func(keyType int8) (int16, *string) {
		if keyType != 0 {
			msg := "Strata has no transaction coordinator: transactions are not supported"
			return kerr.InvalidRequest.Code, &msg
		}
		return 0, nil
	}
	if req.CoordinatorType == 0 {
		// As in Kafka, the first group lookup creates the offsets topic.
		if _, err := s.offsets.ensure(); err != nil {
			s.log.Warn("cannot create the offsets topic", "err", err)
		}
	}
	if req.Version >= 4 {
		for _, key := range req.CoordinatorKeys {
			c := kmsg.NewFindCoordinatorResponseCoordinator()
			c.Key = key
			c.ErrorCode, c.ErrorMessage = answer(req.CoordinatorType)
			if c.ErrorCode == 0 {
				c.NodeID, c.Host, c.Port = self, host, port
			} else {
				c.NodeID = -1
			}
			resp.Coordinators = append(resp.Coordinators, c)
		}
		return resp, nil
	}
	resp.ErrorCode, resp.ErrorMessage = answer(req.CoordinatorType)
	if resp.ErrorCode == 0 {
		resp.NodeID, resp.Host, resp.Port = s.cfg.BrokerID, host, port
	} else {
		resp.NodeID = -1
	}
	return resp, nil
}

// DescribeCluster (key 60), versions 0-1: this broker, which is the controller.
func (s *Server) handleDescribeCluster(_ context.Context, _ *conn, req *kmsg.DescribeClusterRequest) (kmsg.Response, error) {
	resp := kmsg.NewPtrDescribeClusterResponse()
	resp.Version = req.Version
	if req.Version >= 1 && req.EndpointType != 1 {
		resp.ErrorCode = kerr.UnsupportedEndpointType.Code
		msg := "only broker endpoints (type 1) are served"
		resp.ErrorMessage = &msg
		return resp, nil
	}
	resp.EndpointType = 1
	resp.ClusterID = clusterID
	resp.ControllerID = s.cfg.BrokerID
	host, port := s.advertised()
	resp.Brokers = []kmsg.DescribeClusterResponseBroker{{NodeID: s.cfg.BrokerID, Host: host, Port: port}}
	if s.clustered() {
		snap := s.cl.View().Snapshot()
		resp.ClusterID, resp.ControllerID, resp.Brokers = clusterIDMulti, snap.Controller, nil
		for _, b := range liveBrokers(snap) {
			db := kmsg.NewDescribeClusterResponseBroker()
			db.NodeID, db.Host, db.Port = b.ID, b.Host, b.Port
			if b.Rack != "" {
				rack := b.Rack
				db.Rack = &rack
			}
			resp.Brokers = append(resp.Brokers, db)
		}
	}
	resp.ClusterAuthorizedOperations = noAuthorizedOps
	return resp, nil
}
