package broker

// The group coordinator's offsets log: committed offsets and group metadata
// are records of the internal compacted topic __consumer_offsets, in Kafka's
// own key and value schemas (OffsetCommitKey/Value, GroupMetadataKey/Value),
// so tools that read Kafka's offsets topic read Strata's. A group lives on
// partition abs(javaHashCode(group id)) % partitions, as in Kafka.
//
// Each partition keeps, in memory, the latest value of every key it holds
// (what compaction would leave). A write appends a batch to the partition
// and, once the append returned (on one node that is the commit point, as
// Kafka acks an offset commit after its append), applies the same records to
// that view; replaying a partition at open applies every record from its log
// start. Loading is per partition (loadPartition), so a coordinator that
// becomes a partition's leader can load just that one.
//
// The topic is created on first use (a commit, group metadata, or
// FindCoordinator for a group), as Kafka does, with
// offsets.topic.num.partitions partitions, cleanup.policy=compact,
// segment.bytes=offsets.topic.segment.bytes and remote.storage.enable=false.
// A data directory from before the topic kept offsets in bbolt; they move
// into the topic at open (migrateFromMeta).

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf16"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/broker/group"
	"github.com/stratalog/strata/internal/crashpoint"
	"github.com/stratalog/strata/metadata"
)

// offsetsTopic is Kafka's internal topic of committed offsets.
const offsetsTopic = "__consumer_offsets"

// isInternalTopic reports whether name is a topic clients may not produce
// to, create or delete.
func isInternalTopic(name string) bool { return name == offsetsTopic }

// javaStringHash is Java's String.hashCode: s as UTF-16 code units, h = 31*h + c.
func javaStringHash(s string) int32 {
	var h int32
	for _, c := range utf16.Encode([]rune(s)) {
		h = 31*h + int32(c)
	}
	return h
}

// groupPartition is the offsets topic partition of group, as Kafka computes
// it: Utils.abs(groupId.hashCode()) % partitions (Utils.abs maps MinInt32 to 0).
func groupPartition(group string, partitions int32) int32 {
	h := javaStringHash(group)
	if h == -1<<31 {
		h = 0
	} else if h < 0 {
		h = -h
	}
	return h % partitions
}

// offsetLog implements group.OffsetStore and group.GroupStore over the
// __consumer_offsets partitions of the registry.
type offsetLog struct {
	reg          *registry
	partitions   int32 // offsets.topic.num.partitions, used when creating the topic
	segmentBytes int64 // offsets.topic.segment.bytes
	log          *slog.Logger

	createMu sync.Mutex                  // one creation at a time
	state    atomic.Pointer[offsetState] // nil until the topic exists and is loaded

	// In a cluster: clusterCreate creates the topic in etcd (the broker's
	// reconcile then creates it here); groups is the coordinator, told of
	// the groups of a partition this broker starts or stops leading.
	clusterCreate func() error
	groups        *group.Coordinator
}

type offsetState struct {
	t     *topic
	parts []*offsetPart
}

// offsetPart is one partition of the offsets topic and its latest values.
type offsetPart struct {
	p *partition
	// loadedEpoch is the leader epoch at which this broker loaded the
	// partition as its leader (a cluster); -1: not leading it.
	loadedEpoch atomic.Int32

	// mu orders appends with their application to the view, so the view
	// always equals the log replayed. A leaf lock.
	mu      sync.Mutex
	offsets map[string]map[metadata.TopicPartition]metadata.OffsetCommit
	groups  map[string]*kmsg.GroupMetadataValue
}

var (
	_ group.OffsetStore = (*offsetLog)(nil)
	_ group.GroupStore  = (*offsetLog)(nil)
)

func newOffsetLog(reg *registry, partitions int32, segmentBytes int64, logger *slog.Logger) *offsetLog {
	return &offsetLog{reg: reg, partitions: partitions, segmentBytes: segmentBytes, log: logger}
}

// open loads the offsets topic if it exists, and returns the group metadata
// it holds for the coordinator to restore.
func (o *offsetLog) open() (map[string]*kmsg.GroupMetadataValue, error) {
	t := o.reg.get(offsetsTopic)
	if t == nil {
		return nil, nil
	}
	return o.install(t)
}

// install loads every partition of t and publishes the state.
func (o *offsetLog) install(t *topic) (map[string]*kmsg.GroupMetadataValue, error) {
	st := &offsetState{t: t}
	groups := map[string]*kmsg.GroupMetadataValue{}
	for _, p := range t.parts() {
		op := &offsetPart{p: p}
		if err := op.load(); err != nil {
			return nil, err
		}
		for name, v := range op.groups {
			groups[name] = v
		}
		st.parts = append(st.parts, op)
	}
	o.state.Store(st)
	return groups, nil
}

// ensure returns the loaded state, creating the topic on first use.
func (o *offsetLog) ensure() (*offsetState, error) {
	if st := o.state.Load(); st != nil {
		return st, nil
	}
	o.createMu.Lock()
	defer o.createMu.Unlock()
	if st := o.state.Load(); st != nil {
		return st, nil
	}
	t := o.reg.get(offsetsTopic)
	if t == nil && o.clusterCreate != nil {
		if err := o.clusterCreate(); err != nil {
			return nil, fmt.Errorf("cannot create %s: %w", offsetsTopic, err)
		}
		if t = o.reg.get(offsetsTopic); t == nil {
			return nil, fmt.Errorf("cannot create %s: not replicated here yet", offsetsTopic)
		}
	}
	if t == nil {
		var err error
		t, err = o.reg.create(offsetsTopic, o.partitions, o.topicConfigs(), false)
		if errors.Is(err, errTopicExists) {
			t = o.reg.get(offsetsTopic)
		} else if err != nil {
			return nil, fmt.Errorf("cannot create %s: %w", offsetsTopic, err)
		}
		if t == nil {
			return nil, fmt.Errorf("cannot create %s: %w", offsetsTopic, err)
		}
	}
	if _, err := o.install(t); err != nil {
		return nil, err
	}
	return o.state.Load(), nil
}

// topicConfigs are the offsets topic's configs.
func (o *offsetLog) topicConfigs() map[string]string {
	return map[string]string{
		"cleanup.policy":        "compact",
		"segment.bytes":         strconv.FormatInt(o.segmentBytes, 10),
		"remote.storage.enable": "false",
	}
}

// clusterSync follows the leaderships of the offsets topic's partitions in
// a cluster: a partition this broker just started leading is loaded from
// its log and its groups restored into the coordinator; the groups of one
// it stopped leading are forgotten (requests for them get NOT_COORDINATOR).
func (o *offsetLog) clusterSync(t *topic) {
	st := o.state.Load()
	if st == nil || st.t != t || len(st.parts) != len(t.parts()) {
		if _, err := o.install(t); err != nil {
			o.log.Warn("cannot load the offsets topic", "err", err)
			return
		}
		st = o.state.Load()
		for _, op := range st.parts {
			op.loadedEpoch.Store(-1)
		}
	}
	for _, op := range st.parts {
		r := replicaFor(op.p)
		leading, epoch := false, int32(-1)
		if r != nil {
			leading, epoch = r.isLeader()
		}
		switch was := op.loadedEpoch.Load(); {
		case leading && was != epoch:
			op.mu.Lock()
			for name := range op.groups {
				o.groups.Forget(name)
			}
			op.mu.Unlock()
			if err := op.load(); err != nil {
				o.log.Warn("cannot load an offsets partition", "partition", op.p.index, "err", err)
				continue
			}
			op.mu.Lock()
			for name, v := range op.groups {
				o.groups.Restore(name, v)
			}
			op.mu.Unlock()
			op.loadedEpoch.Store(epoch)
			o.log.Info("coordinating the groups of an offsets partition", "partition", op.p.index, "leader_epoch", epoch)
		case !leading && was >= 0:
			op.loadedEpoch.Store(-1)
			op.mu.Lock()
			for name := range op.groups {
				o.groups.Forget(name)
			}
			op.mu.Unlock()
		}
	}
}

// coordinates reports whether this broker coordinates group: always on one
// node; in a cluster when it leads the group's partition and loaded it.
func (o *offsetLog) coordinates(group string) bool {
	if o.clusterCreate == nil {
		return true
	}
	op := o.loadedPartFor(group)
	if op == nil {
		return false
	}
	r := replicaFor(op.p)
	if r == nil {
		return false
	}
	leading, epoch := r.isLeader()
	return leading && op.loadedEpoch.Load() == epoch
}

// partFor returns the partition of group, creating the topic if need be.
func (o *offsetLog) partFor(group string) (*offsetPart, error) {
	st, err := o.ensure()
	if err != nil {
		return nil, err
	}
	return st.parts[groupPartition(group, int32(len(st.parts)))], nil
}

// loadedPartFor returns the partition of group, or nil if the topic does not
// exist yet (then nothing was ever committed).
func (o *offsetLog) loadedPartFor(group string) *offsetPart {
	st := o.state.Load()
	if st == nil {
		return nil
	}
	return st.parts[groupPartition(group, int32(len(st.parts)))]
}

// kv is one record of the offsets topic; a nil value is a tombstone.
type kv struct{ key, value []byte }

func offsetKey(group, topic string, partition int32) []byte {
	k := kmsg.OffsetCommitKey{Version: 1, Group: group, Topic: topic, Partition: partition}
	return k.AppendTo(nil)
}

func offsetValue(c metadata.OffsetCommit) []byte {
	v := kmsg.OffsetCommitValue{Version: 3, Offset: c.Offset, LeaderEpoch: c.LeaderEpoch,
		Metadata: c.Metadata, CommitTimestamp: c.CommitTimestamp}
	return v.AppendTo(nil)
}

func groupKey(group string) []byte {
	k := kmsg.GroupMetadataKey{Version: 2, Group: group}
	return k.AppendTo(nil)
}

// write appends recs as one batch and applies them to the view. Callers
// hold op.mu.
func (op *offsetPart) write(recs []kv) error {
	if len(recs) == 0 {
		return nil
	}
	batch := encodeBatch(recs, time.Now().UnixMilli())
	if r := replicaFor(op.p); r != nil {
		// A cluster: appended by the leader and answered once the ISR has
		// it, as Kafka's coordinator writes with acks=all.
		minISR := op.p.topic.cfg.Load().eff.MinInsyncReplicas
		lerr, epoch := r.checkProduce(-1, minISR)
		if lerr != nil {
			return fmt.Errorf("%s-%d: %w", offsetsTopic, op.p.index, lerr)
		}
		res, err := op.p.log.Local().AppendLeader(batch, epoch)
		if err != nil {
			return fmt.Errorf("%s-%d: %w", offsetsTopic, op.p.index, err)
		}
		r.appended()
		op.p.notify()
		ctx, cancel := context.WithTimeout(context.Background(), offsetCommitTimeout)
		defer cancel()
		if werr := r.waitHW(ctx, epoch, res.LastOffset+1); werr != nil {
			return fmt.Errorf("%s-%d: %w", offsetsTopic, op.p.index, werr)
		}
	} else {
		if _, err := op.p.log.Append(batch); err != nil {
			return fmt.Errorf("%s-%d: %w", offsetsTopic, op.p.index, err)
		}
		op.p.notify()
	}
	for _, r := range recs {
		op.apply(r.key, r.value)
	}
	return nil
}

// encodeBatch builds an uncompressed v2 record batch of recs (base offset 0:
// the log assigns offsets) with timestamp ts.
func encodeBatch(recs []kv, ts int64) []byte {
	var body []byte
	for i, r := range recs {
		rec := kmsg.Record{OffsetDelta: int32(i), Key: r.key, Value: r.value}
		n := len(rec.AppendTo(nil)) - 1 // the zero Length took one byte
		rec.Length = int32(n)
		body = rec.AppendTo(body)
	}
	b := kmsg.RecordBatch{
		Magic: 2, LastOffsetDelta: int32(len(recs) - 1), FirstTimestamp: ts, MaxTimestamp: ts,
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: int32(len(recs)), Records: body,
	}
	b.Length = int32(61 - 12 + len(body))
	raw := b.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return raw
}

// apply records one key's latest value in the view. Keys of unknown
// versions are skipped, as Kafka's loader does. Callers hold op.mu (or own op).
func (op *offsetPart) apply(key, value []byte) {
	if len(key) < 2 {
		return
	}
	switch binary.BigEndian.Uint16(key) {
	case 0, 1:
		var k kmsg.OffsetCommitKey
		if k.ReadFrom(key) != nil {
			return
		}
		tp := metadata.TopicPartition{Topic: k.Topic, Partition: k.Partition}
		if value == nil {
			if m := op.offsets[k.Group]; m != nil {
				delete(m, tp)
				if len(m) == 0 {
					delete(op.offsets, k.Group)
				}
			}
			return
		}
		var v kmsg.OffsetCommitValue
		if v.ReadFrom(value) != nil {
			return
		}
		le := v.LeaderEpoch
		if v.Version < 3 {
			le = -1
		}
		if op.offsets == nil {
			op.offsets = map[string]map[metadata.TopicPartition]metadata.OffsetCommit{}
		}
		m := op.offsets[k.Group]
		if m == nil {
			m = map[metadata.TopicPartition]metadata.OffsetCommit{}
			op.offsets[k.Group] = m
		}
		m[tp] = metadata.OffsetCommit{Topic: k.Topic, Partition: k.Partition, Offset: v.Offset,
			LeaderEpoch: le, Metadata: v.Metadata, CommitTimestamp: v.CommitTimestamp}
	case 2:
		var k kmsg.GroupMetadataKey
		if k.ReadFrom(key) != nil {
			return
		}
		if value == nil {
			delete(op.groups, k.Group)
			return
		}
		v := new(kmsg.GroupMetadataValue)
		if v.ReadFrom(value) != nil {
			return
		}
		if op.groups == nil {
			op.groups = map[string]*kmsg.GroupMetadataValue{}
		}
		op.groups[k.Group] = v
	}
}

// load replays the partition from its log start into a fresh view.
func (op *offsetPart) load() error {
	op.mu.Lock()
	defer op.mu.Unlock()
	op.offsets, op.groups = nil, nil
	l := op.p.log
	off, end := l.LogStartOffset(), l.LogEndOffset()
	for off < end {
		// Up to the log end, not the high watermark: a new leader's high
		// watermark may lag what its ISR holds.
		slices, err := l.ReadReplica(context.Background(), off, 1<<20, true)
		if err != nil {
			return fmt.Errorf("broker: cannot load %s-%d at offset %d: %w", offsetsTopic, op.p.index, off, err)
		}
		if len(slices) == 0 {
			break
		}
		next := off
		for _, sl := range slices {
			buf := make([]byte, sl.Len)
			_, rerr := sl.File.ReadAt(buf, sl.Pos)
			sl.Done()
			if rerr != nil {
				return fmt.Errorf("broker: cannot load %s-%d: %w", offsetsTopic, op.p.index, rerr)
			}
			n, err := op.replay(buf, off)
			if err != nil {
				return fmt.Errorf("broker: cannot load %s-%d: %w", offsetsTopic, op.p.index, err)
			}
			next = max(next, n)
		}
		if next <= off {
			break
		}
		off = next
	}
	return nil
}

// replay applies every record at or above from of the batches in b and
// returns the offset after the last batch.
func (op *offsetPart) replay(b []byte, from int64) (int64, error) {
	next := from
	for len(b) >= 61 {
		var batch kmsg.RecordBatch
		size := int(binary.BigEndian.Uint32(b[8:])) + 12
		if size < 61 || size > len(b) {
			return next, fmt.Errorf("bad batch length at offset %d", next)
		}
		if err := batch.ReadFrom(b[:size]); err != nil {
			return next, err
		}
		b = b[size:]
		next = batch.FirstOffset + int64(batch.LastOffsetDelta) + 1
		if batch.Attributes&0x20 != 0 { // control batch
			continue
		}
		if batch.Attributes&0x07 != 0 {
			return next, fmt.Errorf("compressed batch at offset %d: the offsets topic is written uncompressed", batch.FirstOffset)
		}
		recs := batch.Records
		for i := int32(0); i < batch.NumRecords; i++ {
			length, n := binary.Varint(recs)
			if n <= 0 || length < 0 || int(length) > len(recs)-n {
				return next, fmt.Errorf("bad record in batch at offset %d", batch.FirstOffset)
			}
			var r kmsg.Record
			if err := r.ReadFrom(recs[:n+int(length)]); err != nil {
				return next, fmt.Errorf("bad record in batch at offset %d: %w", batch.FirstOffset, err)
			}
			recs = recs[n+int(length):]
			if batch.FirstOffset+int64(r.OffsetDelta) < from {
				continue
			}
			op.apply(r.Key, r.Value)
		}
	}
	return next, nil
}

// group.OffsetStore

func (o *offsetLog) CommitOffsets(group string, commits []metadata.OffsetCommit) error {
	if len(commits) == 0 {
		return nil
	}
	op, err := o.partFor(group)
	if err != nil {
		return err
	}
	recs := make([]kv, 0, len(commits))
	for _, c := range commits {
		recs = append(recs, kv{offsetKey(group, c.Topic, c.Partition), offsetValue(c)})
	}
	op.mu.Lock()
	defer op.mu.Unlock()
	return op.write(recs)
}

func (o *offsetLog) GroupOffsets(group string) ([]metadata.OffsetCommit, error) {
	op := o.loadedPartFor(group)
	if op == nil {
		return nil, nil
	}
	op.mu.Lock()
	defer op.mu.Unlock()
	out := make([]metadata.OffsetCommit, 0, len(op.offsets[group]))
	for _, c := range op.offsets[group] {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out, nil
}

// DeleteGroupOffsets writes a tombstone for every offset of group and for
// its group metadata (DeleteGroups).
func (o *offsetLog) DeleteGroupOffsets(group string) error {
	op := o.loadedPartFor(group)
	if op == nil {
		return nil
	}
	op.mu.Lock()
	defer op.mu.Unlock()
	var recs []kv
	for tp := range op.offsets[group] {
		recs = append(recs, kv{key: offsetKey(group, tp.Topic, tp.Partition)})
	}
	if op.groups[group] != nil {
		recs = append(recs, kv{key: groupKey(group)})
	}
	return op.write(recs)
}

// DeleteOffsets writes a tombstone for each of tps that group committed.
func (o *offsetLog) DeleteOffsets(group string, tps []metadata.TopicPartition) error {
	op := o.loadedPartFor(group)
	if op == nil {
		return nil
	}
	op.mu.Lock()
	defer op.mu.Unlock()
	var recs []kv
	for _, tp := range tps {
		if _, ok := op.offsets[group][tp]; ok {
			recs = append(recs, kv{key: offsetKey(group, tp.Topic, tp.Partition)})
		}
	}
	return op.write(recs)
}

func (o *offsetLog) OffsetGroups() ([]string, error) {
	st := o.state.Load()
	if st == nil {
		return nil, nil
	}
	var out []string
	for _, op := range st.parts {
		op.mu.Lock()
		for g := range op.offsets {
			out = append(out, g)
		}
		op.mu.Unlock()
	}
	sort.Strings(out)
	return out, nil
}

// ExpireOffsets writes a tombstone for every commit older than beforeMs of
// the groups keep returns false for.
func (o *offsetLog) ExpireOffsets(beforeMs int64, keep func(group string) bool) (int, error) {
	groups, err := o.OffsetGroups()
	if err != nil {
		return 0, err
	}
	expire := map[string]bool{}
	for _, g := range groups {
		if keep == nil || !keep(g) {
			expire[g] = true
		}
	}
	st := o.state.Load()
	if st == nil || len(expire) == 0 {
		return 0, nil
	}
	n := 0
	var first error
	for _, op := range st.parts {
		op.mu.Lock()
		var recs []kv
		for g, m := range op.offsets {
			if !expire[g] {
				continue
			}
			for tp, c := range m {
				if c.CommitTimestamp < beforeMs {
					recs = append(recs, kv{key: offsetKey(g, tp.Topic, tp.Partition)})
				}
			}
		}
		if err := op.write(recs); err != nil {
			if first == nil {
				first = err
			}
		} else {
			n += len(recs)
		}
		op.mu.Unlock()
	}
	return n, first
}

// StoreGroup writes group's metadata; nil writes its tombstone (if it has any).
func (o *offsetLog) StoreGroup(group string, v *kmsg.GroupMetadataValue) error {
	if v == nil {
		op := o.loadedPartFor(group)
		if op == nil {
			return nil
		}
		op.mu.Lock()
		defer op.mu.Unlock()
		if op.groups[group] == nil {
			return nil
		}
		return op.write([]kv{{key: groupKey(group)}})
	}
	op, err := o.partFor(group)
	if err != nil {
		return err
	}
	op.mu.Lock()
	defer op.mu.Unlock()
	return op.write([]kv{{key: groupKey(group), value: v.AppendTo(nil)}})
}

// migrateHook, when set (tests), runs after a group's bbolt offsets are in
// the topic and before they leave bbolt; an error stops the migration there,
// as a crash would.
var migrateHook func(group string) error

// migrateFromMeta moves the committed offsets a data directory from before
// the offsets topic kept in bbolt into the topic: each group's are appended,
// then deleted from bbolt. A crash in between leaves them in both; the next
// open appends them again (the same values: idempotent) and deletes them.
func (o *offsetLog) migrateFromMeta(meta *metadata.Store) error {
	groups, err := meta.OffsetGroups()
	if err != nil || len(groups) == 0 {
		return err
	}
	for _, g := range groups {
		offs, err := meta.GroupOffsets(g)
		if err != nil {
			return err
		}
		if err := o.CommitOffsets(g, offs); err != nil {
			return fmt.Errorf("broker: cannot migrate offsets of group %q to %s: %w", g, offsetsTopic, err)
		}
		if migrateHook != nil {
			if err := migrateHook(g); err != nil {
				return err
			}
		}
		crashpoint.At("offsets-migrated-group")
		if err := meta.DeleteGroupOffsets(g); err != nil {
			return err
		}
	}
	o.log.Info("moved committed offsets from the metadata store to "+offsetsTopic, "groups", len(groups))
	return nil
}

// offsetCommitTimeout bounds how long a commit waits for the ISR of its
// offsets partition (Kafka's offsets.commit.timeout.ms default).
const offsetCommitTimeout = 5 * time.Second
