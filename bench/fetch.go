package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime/pprof"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The fetch settings of both consumers: the decoding kgo consumer
// (consumeLabelled) and the protocol-level one (fetchConsumeFor).
const (
	fetchMaxBytes          = 64 << 20
	fetchMaxPartitionBytes = 8 << 20
	fetchMaxWait           = 500 * time.Millisecond
)

// The two consumers, as named in Throughput.Client.
const (
	// clientDecoding is franz-go's consumer: PollFetches decodes every
	// record (CRC check, varints, one *kgo.Record each).
	clientDecoding = "kgo consumer (PollFetches, decodes every record)"
	// clientProtocol sends kmsg.FetchRequest through a kgo.Client and walks
	// the v2 batch headers of the response: bytes and records, no decoding.
	clientProtocol = "protocol-level fetch (kgo.Client + kmsg.FetchRequest, batch headers only)"
)

// fetchConsumeFor is the protocol-level consumer: it reads topic from offset
// 0 until every partition p has given upTo[p] records, repeating whole passes
// until minDur has passed. It is still franz-go (a kgo.Client sends
// kmsg.FetchRequest at the highest version both sides support, naming the
// topic by name and by ID) with the decoding consumer's max bytes, partition
// max bytes and max wait, but instead of decoding records it walks the
// record batch headers: baseOffset (byte 0), batchLength (byte 8), magic
// (byte 16), lastOffsetDelta (byte 23). Its client work is reading the
// response off the socket, about what the raw-sendfile client does, so its
// rate can be set against raw sendfile and raw GETs.
//
// The returned Throughput has Records, FetchedBytes and LogBytes (both the
// record-batch bytes received); PayloadBytes stays 0 (records are not
// decoded).
func fetchConsumeFor(ctx context.Context, addr, topic string, upTo map[int32]int64, name string, minDur time.Duration) (Throughput, error) {
	var total Throughput
	var err error
	start := time.Now()
	pprof.Do(ctx, pprof.Labels("side", "client"), func(ctx context.Context) {
		var cl *kgo.Client
		cl, err = kgo.NewClient(kgo.SeedBrokers(addr))
		if err != nil {
			return
		}
		defer cl.Close()
		for pass := 0; pass == 0 || time.Since(start) < minDur; pass++ {
			var res Throughput
			res, err = fetchPass(ctx, cl, topic, upTo, name)
			if err != nil {
				return
			}
			total.Records += res.Records
			total.FetchedBytes += res.FetchedBytes
			total.FetchVersion = res.FetchVersion
			if pass == 0 {
				total.Series = res.Series
			}
		}
	})
	total.LogBytes = total.FetchedBytes
	total.Client = clientProtocol
	total.finish(time.Since(start))
	return total, err
}

// fetchPass is one pass of fetchConsumeFor: one fetch loop per partition
// leader, in parallel.
func fetchPass(ctx context.Context, cl *kgo.Client, topic string, upTo map[int32]int64, name string) (Throughput, error) {
	id, leaders, err := topicLeaders(ctx, cl, topic)
	if err != nil {
		return Throughput{}, err
	}
	byLeader := map[int32][]int32{}
	for p, n := range upTo {
		if n <= 0 {
			continue
		}
		l, ok := leaders[p]
		if !ok {
			return Throughput{}, fmt.Errorf("bench: fetch %s: partition %d not in metadata", topic, p)
		}
		byLeader[l] = append(byLeader[l], p)
	}
	var (
		bytes   atomic.Int64
		records atomic.Int64
		version atomic.Int32
		wg      sync.WaitGroup
		mu      sync.Mutex
		errs    []error
	)
	stop := sampler(name, &bytes)
	start := time.Now()
	for leader, parts := range byLeader {
		sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fetchLoop(ctx, cl.Broker(int(leader)), topic, id, parts, upTo, &bytes, &records, &version); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res := Throughput{Records: records.Load(), FetchedBytes: bytes.Load(), FetchVersion: int16(version.Load())}
	res.finish(time.Since(start))
	res.Series = stop()
	return res, errors.Join(errs...)
}

// topicLeaders returns the topic's ID and the leader of each partition.
func topicLeaders(ctx context.Context, cl *kgo.Client, topic string) ([16]byte, map[int32]int32, error) {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return [16]byte{}, nil, fmt.Errorf("bench: metadata %s: %w", topic, err)
	}
	for _, t := range resp.Topics {
		if t.Topic == nil || *t.Topic != topic {
			continue
		}
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			return [16]byte{}, nil, fmt.Errorf("bench: metadata %s: %w", topic, err)
		}
		leaders := map[int32]int32{}
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return [16]byte{}, nil, fmt.Errorf("bench: metadata %s[%d]: %w", topic, p.Partition, err)
			}
			leaders[p.Partition] = p.Leader
		}
		return t.TopicID, leaders, nil
	}
	return [16]byte{}, nil, fmt.Errorf("bench: metadata: topic %s not returned", topic)
}

// fetchLoop fetches parts of topic from one broker, one request at a time,
// until each partition p has reached offset upTo[p].
func fetchLoop(ctx context.Context, br *kgo.Broker, topic string, id [16]byte, parts []int32, upTo map[int32]int64,
	bytes, records *atomic.Int64, version *atomic.Int32) error {
	next := map[int32]int64{}
	for _, p := range parts {
		next[p] = 0
	}
	for round := 0; len(parts) > 0; round++ {
		req := kmsg.NewPtrFetchRequest()
		req.ReplicaID = -1
		req.MaxWaitMillis = int32(fetchMaxWait / time.Millisecond)
		req.MinBytes = 1
		req.MaxBytes = fetchMaxBytes
		req.IsolationLevel = 0 // read uncommitted, kgo's default
		req.SessionID = 0      // no fetch session: every request is full
		req.SessionEpoch = -1
		ft := kmsg.NewFetchRequestTopic()
		ft.Topic = topic // v0-v12
		ft.TopicID = id  // v13+
		// Rotate the partition order, as kgo does, so that no partition
		// always comes last under the request's max bytes.
		for i := range parts {
			p := parts[(i+round)%len(parts)]
			fp := kmsg.NewFetchRequestTopicPartition()
			fp.Partition = p
			fp.FetchOffset = next[p]
			fp.PartitionMaxBytes = fetchMaxPartitionBytes
			fp.CurrentLeaderEpoch = -1
			fp.LogStartOffset = -1
			ft.Partitions = append(ft.Partitions, fp)
		}
		req.Topics = append(req.Topics, ft)
		kresp, err := br.Request(ctx, req)
		if err != nil {
			return fmt.Errorf("bench: fetch %s: %w", topic, err)
		}
		resp := kresp.(*kmsg.FetchResponse)
		version.Store(int32(resp.Version))
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			return fmt.Errorf("bench: fetch %s: %w", topic, err)
		}
		for _, t := range resp.Topics {
			for _, rp := range t.Partitions {
				from, ok := next[rp.Partition]
				if !ok {
					continue
				}
				if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
					return fmt.Errorf("bench: fetch %s[%d] at %d: %w", topic, rp.Partition, from, err)
				}
				n, recs, err := walkBatches(rp.RecordBatches, from, upTo[rp.Partition])
				if err != nil {
					return fmt.Errorf("bench: fetch %s[%d] at %d: %w", topic, rp.Partition, from, err)
				}
				bytes.Add(int64(len(rp.RecordBatches)))
				records.Add(recs)
				next[rp.Partition] = n
			}
		}
		kept := parts[:0]
		for _, p := range parts {
			if next[p] < upTo[p] {
				kept = append(kept, p)
			}
		}
		parts = kept
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// recordBatchHeader is the size of a v2 record batch header (up to and
// including the record count).
const recordBatchHeader = 61

// walkBatches walks the v2 record batches in b, fetched at offset from, and
// returns the offset after the last whole batch and how many of the offsets
// it covered are in [from, upTo). Batches that end below from (the broker
// starts at the batch holding from) are skipped; a batch cut short at the end
// of b (the partition's max bytes) is left for the next fetch.
func walkBatches(b []byte, from, upTo int64) (next, records int64, err error) {
	next = from
	whole := 0
	for len(b) >= 12 {
		base := int64(binary.BigEndian.Uint64(b[0:8]))
		length := int64(int32(binary.BigEndian.Uint32(b[8:12])))
		if length < recordBatchHeader-12 {
			return next, records, fmt.Errorf("record batch at offset %d: length %d", base, length)
		}
		size := 12 + length
		if int64(len(b)) < size {
			break
		}
		if magic := b[16]; magic != 2 {
			return next, records, fmt.Errorf("record batch at offset %d: magic %d, want 2", base, magic)
		}
		last := base + int64(int32(binary.BigEndian.Uint32(b[23:27])))
		whole++
		if last >= next {
			if lo, hi := max(base, next), min(last, upTo-1); hi >= lo {
				records += hi - lo + 1
			}
			next = last + 1
		}
		b = b[size:]
	}
	if whole == 0 && len(b) > 0 {
		return next, records, fmt.Errorf("%d bytes and no whole record batch (a batch above the partition max bytes?)", len(b))
	}
	return next, records, nil
}
