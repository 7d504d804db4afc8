package broker

// ListOffsets (key 2), versions 0-11.
//
// Special timestamps: -1 latest (the high watermark), -2 earliest (the log
// start, remote tier included), -3 the record with the largest timestamp
// (KIP-734, v7+), -4 the local log start (KIP-405, v8+), -5 the last offset in
// the remote tier (KIP-1005, v9+; -1 when nothing is tiered), -6 the first
// offset not yet in the remote tier (KIP-1023, v11+; -1 when the topic does
// not tier or nothing waits). A timestamp finds the first record at or after
// it, in the remote tier first, then locally: package partition answers all
// of them. v0 answers with the old offsets array. Leader epoch 0: a CurrentLeaderEpoch above
// it is UNKNOWN_LEADER_EPOCH.

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	plog "github.com/stratalog/strata/partition"
)

func (s *Server) handleListOffsets(ctx context.Context, _ *conn, req *kmsg.ListOffsetsRequest) (kmsg.Response, error) {
	resp := kmsg.NewPtrListOffsetsResponse()
	resp.Version = req.Version
	for _, rt := range req.Topics {
		st := kmsg.NewListOffsetsResponseTopic()
		st.Topic = rt.Topic
		t := s.topics.get(rt.Topic)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewListOffsetsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.Timestamp, sp.Offset, sp.LeaderEpoch = -1, -1, -1
			p, perr := leaderPartition(t, rp.Partition, rp.CurrentLeaderEpoch)
			switch {
			case perr != nil:
				sp.ErrorCode = perr.Code
			default:
				off, ts, err := s.listOffset(ctx, p, rp.Timestamp, req.Version)
				if err != nil {
					sp.ErrorCode = err.Code
				} else {
					sp.Offset, sp.Timestamp = off, ts
					if off >= 0 {
						sp.LeaderEpoch = 0
					}
					if req.Version == 0 && off >= 0 {
						sp.OldStyleOffsets = []int64{off}
					}
				}
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

// listOffset answers one partition; offset -1 means "no such offset".
func (s *Server) listOffset(ctx context.Context, p *partition, ts int64, version int16) (int64, int64, *kerr.Error) {
	off, fts, err := p.log.ListOffset(ctx, ts, version)
	switch {
	case errors.Is(err, plog.ErrUnsupportedTimestamp):
		return -1, -1, kerr.InvalidRequest
	case err != nil:
		s.log.Warn("list offsets failed", "topic", p.topic.name, "partition", p.index, "timestamp", ts, "err", err)
		return -1, -1, kerr.KafkaStorageError
	}
	return off, fts, nil
}

// OffsetForLeaderEpoch (key 23), versions 0-4.
//
// The log has one leader epoch, 0, from its first offset: epoch 0 (or an older
// one a client may carry, -1 excluded) ends at the log end offset; a later
// epoch is unknown (UNDEFINED: epoch -1, offset -1), as Kafka answers.
func (s *Server) handleOffsetForLeaderEpoch(_ context.Context, _ *conn, req *kmsg.OffsetForLeaderEpochRequest) (kmsg.Response, error) {
	resp := kmsg.NewPtrOffsetForLeaderEpochResponse()
	resp.Version = req.Version
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetForLeaderEpochResponseTopic()
		st.Topic = rt.Topic
		t := s.topics.get(rt.Topic)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.LeaderEpoch, sp.EndOffset = -1, -1
			p, perr := leaderPartition(t, rp.Partition, rp.CurrentLeaderEpoch)
			switch {
			case perr != nil:
				sp.ErrorCode = perr.Code
			default:
				sp.LeaderEpoch, sp.EndOffset = p.log.Local().EndOffsetForEpoch(rp.LeaderEpoch)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

// leaderPartition finds partition index of t (nil t: an unknown topic) and
// checks the client's current leader epoch against ours, 0 (-1: no check).
func leaderPartition(t *topic, index, currentLeaderEpoch int32) (*partition, *kerr.Error) {
	var p *partition
	if t != nil {
		p = t.partition(index)
	}
	if r := replicaFor(p); r != nil {
		if err := r.checkLeader(currentLeaderEpoch); err != nil {
			return nil, err
		}
		return p, nil
	}
	switch {
	case p == nil:
		return nil, kerr.UnknownTopicOrPartition
	case currentLeaderEpoch > 0:
		return nil, kerr.UnknownLeaderEpoch
	}
	return p, nil
}
