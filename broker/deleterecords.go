package broker

// DeleteRecords (key 21), versions 0-2 (KIP-107).
//
// Moves each named partition's log start offset up to the offset given (-1:
// the high watermark) and answers the new low watermark (the log start
// offset). The new start may fall inside a segment: package partition makes
// it durable in the metadata store before the response, deletes the local
// segments wholly below it and asks the tier to delete the remote ones in its
// next round; fetches below it get OFFSET_OUT_OF_RANGE and ListOffsets
// earliest returns it. An offset at or below the current start changes
// nothing. Errors, as Kafka's: OFFSET_OUT_OF_RANGE for an offset above the
// high watermark (or negative other than -1), UNKNOWN_TOPIC_OR_PARTITION,
// POLICY_VIOLATION for a topic whose cleanup.policy lacks delete. The
// request's timeout is not waited on: one broker has no replicas to wait for.

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/localstore"
	"github.com/stratalog/strata/metadata"
	plog "github.com/stratalog/strata/partition"
)

// deleteRecordsHighWatermark is the offset that means "the high watermark".
const deleteRecordsHighWatermark = -1

func (s *Server) handleDeleteRecords(_ context.Context, _ *conn, req *kmsg.DeleteRecordsRequest) (kmsg.Response, error) {
	resp := kmsg.NewPtrDeleteRecordsResponse()
	resp.Version = req.Version
	for _, rt := range req.Topics {
		st := kmsg.NewDeleteRecordsResponseTopic()
		st.Topic = rt.Topic
		t := s.topics.get(rt.Topic)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewDeleteRecordsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.LowWatermark = -1
			p, perr := leaderPartition(t, rp.Partition, -1)
			if perr != nil {
				sp.ErrorCode = perr.Code
			} else {
				low, err := s.deleteRecords(p, rp.Offset)
				if err != nil {
					sp.ErrorCode = err.Code
				} else {
					sp.LowWatermark = low
				}
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

// deleteRecords moves one partition's log start offset and returns the new
// low watermark.
func (s *Server) deleteRecords(p *partition, offset int64) (int64, *kerr.Error) {
	if !slices.Contains(strings.Split(p.topic.cfg.Load().eff.CleanupPolicy, ","), "delete") {
		return -1, kerr.PolicyViolation
	}
	if offset == deleteRecordsHighWatermark {
		offset = p.log.HighWatermark()
	}
	low, err := p.log.DeleteRecordsBefore(offset)
	switch {
	case err == nil:
		return low, nil
	case errors.Is(err, plog.ErrBeyondHighWatermark):
		return -1, kerr.OffsetOutOfRange
	case errors.Is(err, localstore.ErrClosed), errors.Is(err, metadata.ErrTopicNotFound), errors.Is(err, metadata.ErrNotFound):
		return -1, kerr.UnknownTopicOrPartition // the topic is being deleted
	}
	s.log.Warn("delete records failed", "topic", p.topic.name, "partition", p.index, "offset", offset, "err", err)
	return -1, kerr.KafkaStorageError
}
