package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"runtime/pprof"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/kwire"
)

// The fetch settings of the decoding kgo consumer (consumeLabelled) and of
// the protocol-level one over kgo's connection (fetchConsumeFor with viaKgo);
// over its own connection (viaWire) the protocol-level consumer asks for
// wireFetchBytes instead. All three wait up to fetchMaxWait.
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
	// clientWire is clientProtocol over a connection of its own that reads
	// every response into one reused buffer (kwire.Conn).
	clientWire = "protocol-level fetch, reused read buffer (kmsg.FetchRequest on its own connection, batch headers only)"
)

// transport is how the protocol-level consumer reaches the broker.
type transport int

const (
	viaKgo  transport = iota // kgo.Client's connection: a new buffer per response
	viaWire                  // kwire.Conn: one reused buffer
)

// wireFetchBytes is the fetch max bytes and the partition max bytes of the
// reused-buffer consumer: each response fits the 1 MiB buffer that the
// raw-sendfile client reads into. A response is read into memory before it
// is walked, so the response size is the buffer the receiving copy writes
// into; at 32 MiB (the kgo settings below) that buffer no longer stays in
// the CPU's caches, and the client's read syscalls cost several times more
// per byte than the raw client's.
const wireFetchBytes = 1 << 20

// limits returns the fetch max bytes and partition max bytes t asks for.
func (t transport) limits() (maxBytes, partBytes int32) {
	if t == viaWire {
		return wireFetchBytes, wireFetchBytes
	}
	return fetchMaxBytes, fetchMaxPartitionBytes
}

func (t transport) client() string {
	if t == viaWire {
		return clientWire
	}
	return clientProtocol
}

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
//
// via says which connection carries the fetches: kgo.Client's own, or a
// kwire.Conn that reads every response into one reused buffer.
func fetchConsumeFor(ctx context.Context, addr, topic string, upTo map[int32]int64, name string, minDur time.Duration, via transport) (Throughput, error) {
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
			res, err = fetchPass(ctx, cl, topic, upTo, name, via)
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
	total.Client = via.client()
	total.finish(time.Since(start))
	return total, err
}

// fetchPass is one pass of fetchConsumeFor: one fetch loop per partition
// leader, in parallel.
func fetchPass(ctx context.Context, cl *kgo.Client, topic string, upTo map[int32]int64, name string, via transport) (Throughput, error) {
	id, leaders, addrs, err := topicLeaders(ctx, cl, topic)
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
			err := func() error {
				var br requester = cl.Broker(int(leader))
				if via == viaWire {
					w, err := kwire.Dial(ctx, addrs[leader], "strata-bench")
					if err != nil {
						return err
					}
					defer w.Close()
					br = w
				}
				maxBytes, partBytes := via.limits()
				return fetchLoop(ctx, br, maxBytes, partBytes, topic, id, parts, upTo, &bytes, &records, &version)
			}()
			if err != nil {
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

// topicLeaders returns the topic's ID, the leader of each partition and the
// address of each broker.
func topicLeaders(ctx context.Context, cl *kgo.Client, topic string) (id [16]byte, leaders map[int32]int32, addrs map[int32]string, err error) {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return id, nil, nil, fmt.Errorf("bench: metadata %s: %w", topic, err)
	}
	addrs = map[int32]string{}
	for _, b := range resp.Brokers {
		addrs[b.NodeID] = net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port)))
	}
	for _, t := range resp.Topics {
		if t.Topic == nil || *t.Topic != topic {
			continue
		}
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			return id, nil, nil, fmt.Errorf("bench: metadata %s: %w", topic, err)
		}
		leaders = map[int32]int32{}
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return id, nil, nil, fmt.Errorf("bench: metadata %s[%d]: %w", topic, p.Partition, err)
			}
			leaders[p.Partition] = p.Leader
		}
		return t.TopicID, leaders, addrs, nil
	}
	return id, nil, nil, fmt.Errorf("bench: metadata: topic %s not returned", topic)
}

// fetchLoop fetches parts of topic from one broker, one request at a time,
// until each partition p has reached offset upTo[p].
func fetchLoop(ctx context.Context, br requester, maxBytes, partBytes int32, topic string, id [16]byte, parts []int32, upTo map[int32]int64,
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
		req.MaxBytes = maxBytes
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
			fp.PartitionMaxBytes = partBytes
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
