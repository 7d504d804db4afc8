package metadata

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"math"
	"slices"
)

// Value encoding: version u8 | payload | crc32c u32 BE (see doc.go).
const (
	valueVersion = 1
	crcSize      = 4
	maxStringLen = 1 << 20 // sanity bound when decoding; no stored string comes close
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// seal prefixes the version and appends the CRC-32C of version and payload.
func seal(payload []byte) []byte {
	v := make([]byte, 0, 1+len(payload)+crcSize)
	v = append(v, valueVersion)
	v = append(v, payload...)
	return binary.BigEndian.AppendUint32(v, crc32.Checksum(v, castagnoli))
}

// unseal checks the version and CRC of a stored value and returns its payload,
// still aliasing v.
func unseal(v []byte) ([]byte, error) {
	if len(v) < 1+crcSize {
		return nil, fmt.Errorf("value of %d bytes is shorter than its header", len(v))
	}
	body, sum := v[:len(v)-crcSize], binary.BigEndian.Uint32(v[len(v)-crcSize:])
	if got := crc32.Checksum(body, castagnoli); got != sum {
		return nil, fmt.Errorf("checksum mismatch: stored %08x, computed %08x", sum, got)
	}
	if body[0] != valueVersion {
		return nil, fmt.Errorf("unknown value version %d", body[0])
	}
	return body[1:], nil
}

// corrupt wraps a decoding problem with ErrCorrupt and where it was found.
func corrupt(bucket string, key []byte, err error) error {
	return fmt.Errorf("%w: bucket %s, key %q: %v", ErrCorrupt, bucket, key, err)
}

// enc builds a payload.
type enc struct{ b []byte }

func (e *enc) u8(v uint8)   { e.b = append(e.b, v) }
func (e *enc) u32(v uint32) { e.b = binary.BigEndian.AppendUint32(e.b, v) }
func (e *enc) i32(v int32)  { e.u32(uint32(v)) }
func (e *enc) i64(v int64)  { e.b = binary.BigEndian.AppendUint64(e.b, uint64(v)) }
func (e *enc) uvarint(v uint64) {
	e.b = binary.AppendUvarint(e.b, v)
}
func (e *enc) str(s string) {
	e.uvarint(uint64(len(s)))
	e.b = append(e.b, s...)
}

// dec reads a payload; the first error sticks and later reads return zeros.
type dec struct {
	b   []byte
	err error
}

var errShort = errors.New("payload truncated")

func (d *dec) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.err = errShort
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *dec) u8() uint8 {
	if p := d.take(1); p != nil {
		return p[0]
	}
	return 0
}

func (d *dec) u32() uint32 {
	if p := d.take(4); p != nil {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}

func (d *dec) i32() int32 { return int32(d.u32()) }

func (d *dec) i64() int64 {
	if p := d.take(8); p != nil {
		return int64(binary.BigEndian.Uint64(p))
	}
	return 0
}

func (d *dec) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errors.New("bad uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) str() string {
	n := d.uvarint()
	if n > maxStringLen {
		if d.err == nil {
			d.err = fmt.Errorf("string length %d too large", n)
		}
		return ""
	}
	return string(d.take(int(n))) // string() copies out of the mmap
}

// done reports the sticky error, or trailing bytes.
func (d *dec) done() error {
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%d trailing bytes", len(d.b))
	}
	return nil
}

// Topics.

func encodeTopic(t Topic) []byte {
	var e enc
	e.b = append(e.b, t.ID[:]...)
	e.i32(t.Partitions)
	e.str(t.Name)
	e.uvarint(uint64(len(t.Configs)))
	for _, k := range slices.Sorted(maps.Keys(t.Configs)) {
		e.str(k)
		e.str(t.Configs[k])
	}
	return seal(e.b)
}

func decodeTopic(v []byte) (Topic, error) {
	p, err := unseal(v)
	if err != nil {
		return Topic{}, err
	}
	d := dec{b: p}
	var t Topic
	copy(t.ID[:], d.take(16))
	t.Partitions = d.i32()
	t.Name = d.str()
	n := d.uvarint()
	if n > uint64(len(d.b)) { // each entry takes at least two bytes
		return Topic{}, fmt.Errorf("config count %d exceeds payload", n)
	}
	if n > 0 {
		t.Configs = make(map[string]string, n)
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		k := d.str()
		t.Configs[k] = d.str()
	}
	if err := d.done(); err != nil {
		return Topic{}, err
	}
	if t.Partitions < 1 {
		return Topic{}, fmt.Errorf("partition count %d", t.Partitions)
	}
	return t, nil
}

// Single int64 values: partition state and the producer id counter.

func encodeInt64(x int64) []byte {
	var e enc
	e.i64(x)
	return seal(e.b)
}

func decodeInt64(v []byte) (int64, error) {
	p, err := unseal(v)
	if err != nil {
		return 0, err
	}
	d := dec{b: p}
	x := d.i64()
	return x, d.done()
}

// Offset commits; topic and partition live in the key.

func encodeCommit(c OffsetCommit) []byte {
	var e enc
	e.i64(c.Offset)
	e.i32(c.LeaderEpoch)
	e.i64(c.CommitTimestamp)
	e.str(c.Metadata)
	return seal(e.b)
}

func decodeCommit(key, v []byte) (OffsetCommit, error) {
	topic, part, err := splitPartitionKey(key)
	if err != nil {
		return OffsetCommit{}, err
	}
	p, err := unseal(v)
	if err != nil {
		return OffsetCommit{}, err
	}
	d := dec{b: p}
	c := OffsetCommit{Topic: topic, Partition: part}
	c.Offset = d.i64()
	c.LeaderEpoch = d.i32()
	c.CommitTimestamp = d.i64()
	c.Metadata = d.str()
	return c, d.done()
}

// Remote segments.

func encodeSegment(s RemoteSegment) []byte {
	var e enc
	e.i64(s.BaseOffset)
	e.i64(s.EndOffset)
	e.i64(s.FirstTimestamp)
	e.i64(s.MaxTimestamp)
	e.i64(s.Size)
	e.i32(s.LeaderEpoch)
	e.u8(uint8(s.State))
	e.u32(s.CRC32C)
	e.i64(s.RolledAtMs)
	e.i64(s.UpdatedAtMs)
	e.str(s.UploadID)
	return seal(e.b)
}

func decodeSegment(key, v []byte) (RemoteSegment, error) {
	if len(key) != 8 {
		return RemoteSegment{}, fmt.Errorf("key of %d bytes, want 8", len(key))
	}
	p, err := unseal(v)
	if err != nil {
		return RemoteSegment{}, err
	}
	d := dec{b: p}
	var s RemoteSegment
	s.BaseOffset = d.i64()
	s.EndOffset = d.i64()
	s.FirstTimestamp = d.i64()
	s.MaxTimestamp = d.i64()
	s.Size = d.i64()
	s.LeaderEpoch = d.i32()
	s.State = RemoteState(d.u8())
	s.CRC32C = d.u32()
	s.RolledAtMs = d.i64()
	s.UpdatedAtMs = d.i64()
	s.UploadID = d.str()
	if err := d.done(); err != nil {
		return RemoteSegment{}, err
	}
	if k := int64(binary.BigEndian.Uint64(key)); k != s.BaseOffset {
		return RemoteSegment{}, fmt.Errorf("base offset %d stored under key %d", s.BaseOffset, k)
	}
	if err := checkSegment(s); err != nil {
		return RemoteSegment{}, err
	}
	return s, nil
}

// checkSegment is the invariant every stored segment keeps.
func checkSegment(s RemoteSegment) error {
	switch {
	case s.BaseOffset < 0:
		return fmt.Errorf("negative base offset %d", s.BaseOffset)
	case s.EndOffset < s.BaseOffset:
		return fmt.Errorf("end offset %d below base offset %d", s.EndOffset, s.BaseOffset)
	case s.State < CopyStarted || s.State > DeleteStarted:
		return fmt.Errorf("unknown state %d", s.State)
	case s.Size < 0:
		return fmt.Errorf("negative size %d", s.Size)
	}
	return nil
}

// Keys.

// partitionKey is topic 0x00 partition(u32 BE).
func partitionKey(topic string, partition int32) []byte {
	k := make([]byte, 0, len(topic)+5)
	k = append(k, topic...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint32(k, uint32(partition))
}

// topicPrefix is the prefix shared by every partitionKey of topic.
func topicPrefix(topic string) []byte {
	return append([]byte(topic), 0)
}

func splitPartitionKey(k []byte) (string, int32, error) {
	if len(k) < 5 || k[len(k)-5] != 0 {
		return "", 0, fmt.Errorf("malformed partition key %q", k)
	}
	p := binary.BigEndian.Uint32(k[len(k)-4:])
	if p > math.MaxInt32 {
		return "", 0, fmt.Errorf("partition %d out of range in key %q", p, k)
	}
	return string(k[:len(k)-5]), int32(p), nil
}

func offsetKey(off int64) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(off))
}
