package metadata

// Remote compaction (package tier, compact.go): a partition's remote
// segments rewritten without the records a newer one of their key
// supersedes. One compaction at a time per partition, driven through an
// intent record, so that a crash at any step leaves the old set of
// segments or the new one and every object the tier wrote owned by a
// record:
//
//	(none) --StartRemoteCompaction--> COMPACT_STARTED --SwitchRemoteCompaction--> COMPACT_SWITCHED --DropRemoteCompaction--> (none)
//
// COMPACT_STARTED owns the replacements' objects (New), written after it:
// rolling back deletes them and drops the record. The switch is one
// transaction: the replaced entries (Old) go, the replacements become
// COPY_FINISHED entries, the partition's remote cleaned-up-to offset moves,
// and the record becomes COMPACT_SWITCHED, which owns the replaced
// entries' objects until they are deleted.

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

var (
	bucketRemoteCompaction = []byte("remote_compaction") // partition key -> value{RemoteCompaction}
	bucketRemoteCleaned    = []byte("remote_cleaned")    // partition key -> value{remote cleaned-up-to offset}
)

// CompactionState is a remote compaction's place in its state machine.
type CompactionState uint8

const (
	CompactionStarted  CompactionState = 1
	CompactionSwitched CompactionState = 2
)

func (s CompactionState) String() string {
	switch s {
	case CompactionStarted:
		return "COMPACT_STARTED"
	case CompactionSwitched:
		return "COMPACT_SWITCHED"
	}
	return "UNKNOWN"
}

// RemoteCompaction is a partition's remote compaction in progress.
type RemoteCompaction struct {
	State CompactionState
	// Old are the COPY_FINISHED entries the compaction replaces, as they
	// were when it started; New the replacements (COPY_FINISHED, each at
	// the base offset of the Old entry it replaces). An Old entry without a
	// New one at its base is dropped at the switch.
	Old, New []RemoteSegment
	// CleanedUpTo is the partition's remote cleaned-up-to offset after the
	// switch (RemoteCleanedUpTo); -1 leaves it as it is.
	CleanedUpTo int64
}

func remoteCompactionName(topic string, partition int32) string {
	return fmt.Sprintf("remote_compaction/%s/%d", topic, partition)
}

func encodeCompaction(c RemoteCompaction) []byte {
	var e enc
	e.u8(uint8(c.State))
	e.i64(c.CleanedUpTo)
	for _, list := range [][]RemoteSegment{c.Old, c.New} {
		e.uvarint(uint64(len(list)))
		for _, s := range list {
			e.str(string(encodeSegment(s)))
		}
	}
	return seal(e.b)
}

func decodeCompaction(v []byte) (RemoteCompaction, error) {
	p, err := unseal(v)
	if err != nil {
		return RemoteCompaction{}, err
	}
	d := dec{b: p}
	c := RemoteCompaction{State: CompactionState(d.u8()), CleanedUpTo: d.i64()}
	for _, list := range []*[]RemoteSegment{&c.Old, &c.New} {
		n := d.uvarint()
		for i := uint64(0); i < n && d.err == nil; i++ {
			sv := []byte(d.str())
			if d.err != nil {
				break
			}
			if len(sv) < 1+8 {
				return RemoteCompaction{}, fmt.Errorf("segment value of %d bytes", len(sv))
			}
			// The segment's own encoding, checked against its own base.
			s, err := decodeSegment(sv[1:9], sv)
			if err != nil {
				return RemoteCompaction{}, err
			}
			*list = append(*list, s)
		}
	}
	if err := d.done(); err != nil {
		return RemoteCompaction{}, err
	}
	if c.State != CompactionStarted && c.State != CompactionSwitched {
		return RemoteCompaction{}, fmt.Errorf("unknown compaction state %d", c.State)
	}
	return c, nil
}

// StartRemoteCompaction records c as the partition's compaction, in state
// COMPACT_STARTED; ErrInvalid if one is in progress already. The partition
// must exist.
func (s *Store) StartRemoteCompaction(topic string, partition int32, c RemoteCompaction) error {
	if err := checkPartition(topic, partition); err != nil {
		return err
	}
	for _, seg := range append(append([]RemoteSegment{}, c.Old...), c.New...) {
		if err := checkSegment(seg); err != nil {
			return fmt.Errorf("%w: compaction of %s-%d: %v", ErrInvalid, topic, partition, err)
		}
	}
	c.State = CompactionStarted
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := checkExists(tx, topic, partition); err != nil {
			return err
		}
		b := tx.Bucket(bucketRemoteCompaction)
		k := partitionKey(topic, partition)
		if b.Get(k) != nil {
			return fmt.Errorf("%w: a remote compaction of %s-%d is in progress", ErrInvalid, topic, partition)
		}
		return b.Put(k, encodeCompaction(c))
	})
}

// RemoteCompaction returns the partition's compaction in progress, if any.
func (s *Store) RemoteCompaction(topic string, partition int32) (RemoteCompaction, bool, error) {
	if err := checkPartition(topic, partition); err != nil {
		return RemoteCompaction{}, false, err
	}
	var (
		c     RemoteCompaction
		found bool
	)
	err := s.db.View(func(tx *bolt.Tx) error {
		k := partitionKey(topic, partition)
		v := tx.Bucket(bucketRemoteCompaction).Get(k)
		if v == nil {
			return nil
		}
		var err error
		if c, err = decodeCompaction(v); err != nil {
			return corrupt(remoteCompactionName(topic, partition), k, err)
		}
		found = true
		return nil
	})
	return c, found, err
}

// RemoteCompactions lists the partitions with a compaction in progress.
func (s *Store) RemoteCompactions() ([]TopicPartition, error) {
	var out []TopicPartition
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRemoteCompaction).ForEach(func(k, _ []byte) error {
			topic, part, err := splitPartitionKey(k)
			if err != nil {
				return corrupt("remote_compaction", k, err)
			}
			out = append(out, TopicPartition{Topic: topic, Partition: part})
			return nil
		})
	})
	return out, err
}

// SwitchRemoteCompaction is the compaction's commit, one transaction: every
// Old entry must still be in the index as recorded (else ErrNotFound, and
// nothing changes: the caller rolls back); they are replaced by the New
// entries or dropped, the cleaned-up-to offset is set, and the record
// becomes COMPACT_SWITCHED.
func (s *Store) SwitchRemoteCompaction(topic string, partition int32) error {
	if err := checkPartition(topic, partition); err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		k := partitionKey(topic, partition)
		cb := tx.Bucket(bucketRemoteCompaction)
		v := cb.Get(k)
		if v == nil {
			return fmt.Errorf("%w: no remote compaction of %s-%d", ErrNotFound, topic, partition)
		}
		c, err := decodeCompaction(v)
		if err != nil {
			return corrupt(remoteCompactionName(topic, partition), k, err)
		}
		if c.State != CompactionStarted {
			return fmt.Errorf("%w: the remote compaction of %s-%d is %s", ErrInvalid, topic, partition, c.State)
		}
		idx := tx.Bucket(bucketRemoteIndex).Bucket(k)
		if idx == nil {
			return fmt.Errorf("%w: remote index of %s-%d", ErrNotFound, topic, partition)
		}
		for _, old := range c.Old {
			cur := idx.Get(offsetKey(old.BaseOffset))
			if cur == nil {
				return fmt.Errorf("%w: remote segment %d of %s-%d", ErrNotFound, old.BaseOffset, topic, partition)
			}
			seg, err := decodeSegment(offsetKey(old.BaseOffset), cur)
			if err != nil {
				return corrupt(remoteBucketName(topic, partition), offsetKey(old.BaseOffset), err)
			}
			if seg.UploadID != old.UploadID || seg.State != CopyFinished {
				return fmt.Errorf("%w: remote segment %d of %s-%d changed since the compaction started (%s %s)",
					ErrNotFound, old.BaseOffset, topic, partition, seg.UploadID, seg.State)
			}
			if err := idx.Delete(offsetKey(old.BaseOffset)); err != nil {
				return err
			}
		}
		for _, n := range c.New {
			if err := idx.Put(offsetKey(n.BaseOffset), encodeSegment(n)); err != nil {
				return err
			}
		}
		if c.CleanedUpTo >= 0 {
			if err := tx.Bucket(bucketRemoteCleaned).Put(k, encodeInt64(c.CleanedUpTo)); err != nil {
				return err
			}
		}
		c.State = CompactionSwitched
		return cb.Put(k, encodeCompaction(c))
	})
}

// DropRemoteCompaction removes the partition's compaction record (after a
// roll-back, or once the replaced objects are deleted). No record is not an
// error.
func (s *Store) DropRemoteCompaction(topic string, partition int32) error {
	if err := checkPartition(topic, partition); err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRemoteCompaction).Delete(partitionKey(topic, partition))
	})
}

// RemoteCleanedUpTo is the partition's remote cleaned-up-to offset: every
// remote offset below it has been through a remote compaction (0: none).
func (s *Store) RemoteCleanedUpTo(topic string, partition int32) (int64, error) {
	if err := checkPartition(topic, partition); err != nil {
		return 0, err
	}
	var off int64
	err := s.db.View(func(tx *bolt.Tx) error {
		k := partitionKey(topic, partition)
		v := tx.Bucket(bucketRemoteCleaned).Get(k)
		if v == nil {
			return nil
		}
		var err error
		if off, err = decodeInt64(v); err != nil {
			return corrupt("remote_cleaned", k, err)
		}
		return nil
	})
	return off, err
}

// dropCompactionState removes a topic's compaction records and cleaned-up-to
// offsets (its remote index is going). The objects of a compaction that was
// in progress are then owned by nothing: the reconciler deletes them.
func dropCompactionState(tx *bolt.Tx, name string) error {
	prefix := topicPrefix(name)
	for _, bn := range [][]byte{bucketRemoteCompaction, bucketRemoteCleaned} {
		b := tx.Bucket(bn)
		var keys [][]byte
		c := b.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			keys = append(keys, bytes.Clone(k))
		}
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
	}
	return nil
}
