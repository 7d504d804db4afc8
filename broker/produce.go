package broker

// Produce (key 0), versions 3-13.
//
// v3 is the first version with v2 record batches, which is all the log stores.
// Each partition's records are validated whole (magic, length, CRC-32C, codec,
// max.message.bytes, and every record, decompressed if need be) before anything
// is written; the log then assigns offsets by rewriting baseOffset and appends
// the bytes as they came, compressed or not (zero-copy), unless the topic's
// compression.type names a codec: a batch in another codec is then rewritten
// in it first (localstore.Recompress), as Kafka does, and a rewritten batch
// larger than max.message.bytes gets MESSAGE_TOO_LARGE. acks 0, 1 and -1 are accepted; on one node -1 means appended and
// flushed as flush.messages / flush.ms say. A retried idempotent batch is
// answered with its original offset. v13 names topics by ID. Transactions are
// not supported: transactional batches get TRANSACTIONAL_ID_AUTHORIZATION_FAILED.
// With message.timestamp.type=CreateTime, a partition whose records carry a
// timestamp more than message.timestamp.before.max.ms behind the broker's
// clock, or more than message.timestamp.after.max.ms ahead, gets
// INVALID_TIMESTAMP and nothing of it is written (KIP-937).
//
// acks=0 is answered with nothing, so an error has no way to the client but
// the connection: as Kafka does, a produce with acks=0 in which any partition
// failed (a broker that is not, or not yet, the leader; an unknown topic; a
// bad batch) closes the connection, and the client refreshes its metadata.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/localstore"
)

func (s *Server) handleProduce(ctx context.Context, c *conn, req *kmsg.ProduceRequest) (kmsg.Response, error) {
	resp := kmsg.NewPtrProduceResponse()
	resp.Version = req.Version
	acksOK := req.Acks == 0 || req.Acks == 1 || req.Acks == -1
	var waits []hwWait // acks=all in a cluster: the partitions waiting for their ISR
	for ti, rt := range req.Topics {
		st := kmsg.NewProduceResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		var t *topic
		if req.Version >= 13 {
			t = s.topics.getByID(rt.TopicID)
		} else {
			t = s.topics.get(rt.Topic)
		}
		for _, rp := range rt.Partitions {
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.BaseOffset, sp.LogAppendTime, sp.LogStartOffset = -1, -1, -1
			var err *kerr.Error
			var msg string
			switch {
			case !acksOK:
				err = kerr.InvalidRequiredAcks
			case req.TransactionID != nil:
				err, msg = kerr.TransactionalIDAuthorizationFailed, "transactions are not supported"
			case t != nil && isInternalTopic(t.name), t == nil && isInternalTopic(rt.Topic):
				err, msg = kerr.InvalidTopicException, "Cannot append to internal topic "+offsetsTopic
			case t == nil && req.Version >= 13:
				err = kerr.UnknownTopicID
			case t == nil:
				err = kerr.UnknownTopicOrPartition
				if validTopicName(rt.Topic) != nil {
					err = kerr.InvalidTopicException
				}
			case t.partition(rp.Partition) == nil:
				err = kerr.UnknownTopicOrPartition
			default:
				p := t.partition(rp.Partition)
				r := replicaFor(p)
				epoch := int32(0)
				if r != nil {
					var lerr *kerr.Error
					if lerr, epoch = r.checkProduce(req.Acks, t.cfg.Load().eff.MinInsyncReplicas); lerr != nil {
						err = lerr
						if lerr == kerr.NotEnoughReplicas {
							msg = fmt.Sprintf("the ISR of %s-%d has fewer than min.insync.replicas (%d) replicas", t.name, rp.Partition, t.cfg.Load().eff.MinInsyncReplicas)
						}
						s.leaderHint(req.Version, resp, &sp, r)
						break
					}
				}
				res, aerr := s.produceTo(p, rp.Records, epoch)
				if aerr != nil {
					err, msg = produceError(aerr), aerr.Error()
					s.log.Debug("produce rejected", "topic", t.name, "partition", rp.Partition, "err", aerr)
				} else {
					sp.BaseOffset = res.BaseOffset
					sp.LogAppendTime = res.LogAppendTime
					sp.LogStartOffset = s.logStartOffset(p)
					s.metrics.produceBytes.Add(float64(len(rp.Records)))
					if r != nil {
						r.appended()
						if req.Acks == -1 {
							waits = append(waits, hwWait{r: r, epoch: epoch, target: res.LastOffset + 1, topic: ti, part: len(st.Partitions),
								minISR: int(t.cfg.Load().eff.MinInsyncReplicas)})
						}
					}
				}
			}
			if err != nil {
				sp.ErrorCode = err.Code
				if msg != "" {
					sp.ErrorMessage = &msg
				}
				s.metrics.produceErrors.Inc()
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	if len(waits) > 0 {
		start := time.Now()
		s.waitISR(ctx, req, resp, waits)
		c.q.waited += time.Since(start) // not handler time
	}
	s.chargeProduce(c)
	if req.Acks == 0 {
		c.q.recorded = true // Kafka does not charge an acks=0 produce to the request quota
		return nil, acksZeroFailure(resp)
	}
	return resp, nil
}

// acksZeroFailure is the error that closes the connection of an acks=0
// produce in which some partition failed, naming each failure; nil if none.
func acksZeroFailure(resp *kmsg.ProduceResponse) error {
	var failed []string
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode != 0 {
				failed = append(failed, fmt.Sprintf("%s-%d: %s", t.Topic, p.Partition, kerr.ErrorForCode(p.ErrorCode)))
			}
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", errAcksZeroFailed, strings.Join(failed, ", "))
}

// errAcksZeroFailed closes the connection of an acks=0 produce that failed.
var errAcksZeroFailed = errors.New("broker: produce with acks=0 failed, closing the connection so the client refreshes its metadata")

// hwWait is one partition of an acks=all produce waiting for its ISR: its
// answer is resp.Topics[topic].Partitions[part].
type hwWait struct {
	r           *replica
	epoch       int32
	target      int64
	topic, part int
	minISR      int
}

// waitISR is the produce purgatory: it waits, at most the request's
// timeout, until every partition's high watermark covers what was appended
// (the whole ISR has it). A partition whose leader changed meanwhile gets
// NOT_LEADER_OR_FOLLOWER, one still short at the timeout REQUEST_TIMED_OUT,
// and one committed by an ISR that shrank below min.insync.replicas
// NOT_ENOUGH_REPLICAS_AFTER_APPEND, as in Kafka: the client retries, and
// its idempotent retry is answered with the original offset.
func (s *Server) waitISR(ctx context.Context, req *kmsg.ProduceRequest, resp *kmsg.ProduceResponse, waits []hwWait) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(max(req.TimeoutMillis, 0))*time.Millisecond)
	defer cancel()
	for _, w := range waits {
		sp := &resp.Topics[w.topic].Partitions[w.part]
		err := w.r.waitHW(ctx, w.epoch, w.target)
		if err == nil && w.r.inSync() < w.minISR {
			err = kerr.NotEnoughReplicasAfterAppend
		}
		if err != nil {
			sp.ErrorCode = err.Code
			sp.BaseOffset, sp.LogAppendTime = -1, -1
			if err == kerr.NotLeaderForPartition {
				s.leaderHint(req.Version, resp, sp, w.r)
			}
			s.metrics.produceErrors.Inc()
		}
	}
}

// leaderHint fills KIP-951's new-leader hint (Produce v10+): the leader this
// broker knows of and its endpoint.
func (s *Server) leaderHint(version int16, resp *kmsg.ProduceResponse, sp *kmsg.ProduceResponseTopicPartition, r *replica) {
	if version < 10 {
		return
	}
	leader, epoch := r.leaderHint()
	if leader < 0 {
		return
	}
	sp.CurrentLeader.LeaderID, sp.CurrentLeader.LeaderEpoch = leader, epoch
	for _, ep := range resp.Brokers {
		if ep.NodeID == leader {
			return
		}
	}
	if b, ok := s.cl.View().Snapshot().Brokers[leader]; ok {
		ep := kmsg.NewProduceResponseBroker()
		ep.NodeID, ep.Host, ep.Port = b.ID, b.Host, b.Port
		if b.Rack != "" {
			rack := b.Rack
			ep.Rack = &rack
		}
		resp.Brokers = append(resp.Brokers, ep)
	}
}

// produceTo validates and appends one partition's records and wakes its fetches.
func (s *Server) produceTo(p *partition, records []byte, leaderEpoch int32) (localstore.AppendResult, error) {
	cfg := p.topic.cfg.Load().eff
	hdrs, err := localstore.ValidateBatches(records, cfg.MaxMessageBytes)
	if err != nil {
		return localstore.AppendResult{}, err
	}
	if cfg.Compact() {
		// Kafka's LogValidator: a compacted topic needs every record keyed.
		if err := localstore.RequireKeys(records, hdrs); err != nil {
			return localstore.AppendResult{}, err
		}
	}
	if cfg.TimestampType != "LogAppendTime" {
		if err := checkTimestamps(records, hdrs, time.Now().UnixMilli(), cfg.MessageTimestampBeforeMaxMs, cfg.MessageTimestampAfterMaxMs); err != nil {
			return localstore.AppendResult{}, err
		}
	}
	for _, h := range hdrs {
		if h.Transactional() || h.Control() {
			return localstore.AppendResult{}, errTransactional
		}
	}
	// compression.type other than producer: batches in another codec are
	// rewritten here, outside the log's writer lock, so appends to the
	// partition do not queue behind a compressor. Offsets, sequences and the
	// rest of the header are kept, so Append's sequence check and offset
	// assignment see what the producer sent.
	if codec, ok := localstore.CompressionCodec(cfg.CompressionType); ok {
		target := localstore.Target{Codec: codec}
		switch codec {
		case localstore.CodecGzip:
			target.Level = int(cfg.CompressionGzipLevel)
		case localstore.CodecZstd:
			target.Level = int(cfg.CompressionZstdLevel)
		}
		if records, _, err = localstore.Recompress(records, hdrs, target, cfg.MaxMessageBytes); err != nil {
			return localstore.AppendResult{}, err
		}
	}
	// Every batch is stamped with the leader epoch (0 on one node; the CRC
	// does not cover it): followers and consumers use it for
	// OffsetForLeaderEpoch and truncation.
	res, err := p.log.Local().AppendLeader(records, leaderEpoch)
	if err != nil {
		return res, err
	}
	if !res.Duplicate {
		p.notify()
	}
	return res, nil
}

var errTransactional = errors.New("transactional and control batches are not supported")

// checkTimestamps applies message.timestamp.before.max.ms and
// message.timestamp.after.max.ms (CreateTime only) to every batch of a
// validated produce. Records with no timestamp (-1) are not checked, as in
// Kafka. An uncompressed batch's records are each checked (first timestamp
// plus delta). A compressed batch's records are inside the compression: only
// its FirstTimestamp (the first record's) and MaxTimestamp (the largest of
// all) are checked, which bounds every record from above but, since a later
// record may carry an earlier timestamp, not every record from below.
func checkTimestamps(records []byte, hdrs []localstore.BatchHeader, nowMs, beforeMax, afterMax int64) error {
	if beforeMax == math.MaxInt64 && afterMax == math.MaxInt64 {
		return nil
	}
	bad := func(ts int64) error {
		if ts == -1 {
			return nil
		}
		// now-ts and ts-now may overflow int64 for absurd timestamps: compare
		// in a way that cannot.
		if ts < nowMs && uint64(nowMs)-uint64(ts) > uint64(beforeMax) {
			return fmt.Errorf("%w: timestamp %d is more than message.timestamp.before.max.ms (%d) before the broker's time %d", localstore.ErrInvalidTimestamp, ts, beforeMax, nowMs)
		}
		if ts > nowMs && uint64(ts)-uint64(nowMs) > uint64(afterMax) {
			return fmt.Errorf("%w: timestamp %d is more than message.timestamp.after.max.ms (%d) after the broker's time %d", localstore.ErrInvalidTimestamp, ts, afterMax, nowMs)
		}
		return nil
	}
	pos := int64(0)
	for _, h := range hdrs {
		b := records[pos : pos+h.TotalSize()]
		pos += h.TotalSize()
		if err := bad(h.FirstTimestamp); err != nil {
			return err
		}
		if err := bad(h.MaxTimestamp); err != nil {
			return err
		}
		if h.Compression() != 0 {
			continue
		}
		var err error
		ferr := localstore.ForEachRecord(b, func(_, ts int64) bool {
			err = bad(ts)
			return err == nil
		})
		if err != nil {
			return err
		}
		if ferr != nil {
			return ferr
		}
	}
	return nil
}

// produceError maps an append error to its Kafka error code.
func produceError(err error) *kerr.Error {
	switch {
	case errors.Is(err, errTransactional):
		return kerr.TransactionalIDAuthorizationFailed
	case errors.Is(err, localstore.ErrCorruptBatch):
		return kerr.CorruptMessage
	case errors.Is(err, localstore.ErrBatchTooLarge):
		return kerr.MessageTooLarge
	case errors.Is(err, localstore.ErrInvalidRecord):
		return kerr.InvalidRecord
	case errors.Is(err, localstore.ErrUnsupportedMagic):
		return kerr.UnsupportedForMessageFormat
	case errors.Is(err, localstore.ErrOutOfOrderSequence):
		return kerr.OutOfOrderSequenceNumber
	case errors.Is(err, localstore.ErrInvalidProducerEpoch):
		return kerr.InvalidProducerEpoch
	case errors.Is(err, localstore.ErrUnknownProducerID):
		return kerr.UnknownProducerID
	case errors.Is(err, localstore.ErrInvalidTimestamp):
		return kerr.InvalidTimestamp
	case errors.Is(err, localstore.ErrClosed):
		return kerr.NotLeaderForPartition // the partition went away (topic deleted)
	case errors.Is(err, localstore.ErrStorage):
		return kerr.KafkaStorageError
	}
	return kerr.UnknownServerError
}

// logStartOffset is the partition's first offset, remote tier included
// (and never below the start DeleteRecords set).
func (s *Server) logStartOffset(p *partition) int64 {
	return p.log.LogStartOffset()
}

// producerIDs hands out producer ids from blocks reserved in the metadata store,
// so an InitProducerId costs a bbolt write once per block.
type producerIDs struct {
	meta interface{ AllocateProducerIDs(int64) (int64, error) }
	mu   sync.Mutex // guards next, end
	next int64
	end  int64
}

const producerIDBlock = 1000

func (p *producerIDs) allocate() (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.next >= p.end {
		first, err := p.meta.AllocateProducerIDs(producerIDBlock)
		if err != nil {
			return -1, err
		}
		p.next, p.end = first, first+producerIDBlock
	}
	id := p.next
	p.next++
	return id, nil
}

// InitProducerId (key 22), versions 0-5.
//
// Idempotent producers only: a new producer id with epoch 0, or, when a client
// asks to bump the epoch of the id it has (v3+, KIP-360), the same id with the
// next epoch (a fresh id when the epoch would overflow). A transactional id is
// refused: transactions are not supported.
func (s *Server) handleInitProducerID(_ context.Context, _ *conn, req *kmsg.InitProducerIDRequest) (kmsg.Response, error) {
	resp := kmsg.NewPtrInitProducerIDResponse()
	resp.Version = req.Version
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil {
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		return resp, nil
	}
	if req.Version >= 3 && req.ProducerID >= 0 && req.ProducerEpoch >= 0 && req.ProducerEpoch < 32766 {
		resp.ProducerID, resp.ProducerEpoch = req.ProducerID, req.ProducerEpoch+1
		return resp, nil
	}
	id, err := s.pids.allocate()
	if err != nil {
		s.log.Error("cannot allocate producer id", "err", err)
		resp.ErrorCode = kerr.KafkaStorageError.Code
		return resp, nil
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return resp, nil
}
