package metadata

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Errors beyond the contract in api.go.
var (
	// ErrLocked: another process (or another Store in this one) holds the file.
	ErrLocked = errors.New("metadata: database is locked by another process")
	// ErrInvalid: an argument the store refuses (bad name, negative offset,
	// shrinking partition count...). Wrapped with detail.
	ErrInvalid = errors.New("metadata: invalid argument")
)

// openTimeout bounds the wait for bbolt's file lock.
const openTimeout = time.Second

// formatVersion is the layout described in doc.go.
const formatVersion = 1

// Bucket and key names.
var (
	bucketMeta         = []byte("meta")
	bucketTopics       = []byte("topics")
	bucketPartitions   = []byte("partitions")
	bucketProducerIDs  = []byte("producer_ids")
	bucketGroupOffsets = []byte("group_offsets")
	bucketRemoteIndex  = []byte("remote_index")

	keyFormat = []byte("format")
	keyNextID = []byte("next")

	allBuckets = [][]byte{bucketMeta, bucketTopics, bucketPartitions, bucketProducerIDs, bucketGroupOffsets, bucketRemoteIndex,
		bucketTopicDeletions, bucketDeletedRemote, bucketRemoteCompaction, bucketRemoteCleaned}
)

// Store is the broker's bbolt database. Safe for concurrent use.
type Store struct {
	db   *bolt.DB
	path string
}

// Open opens or creates the database at path. If another process holds the
// file, Open fails after about a second with an error wrapping ErrLocked.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: openTimeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: cannot open %q within %v (is another broker using this data directory?)", ErrLocked, path, openTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("metadata: cannot open %q: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		v := meta.Get(keyFormat)
		if v == nil {
			var e enc
			e.u32(formatVersion)
			return meta.Put(keyFormat, seal(e.b))
		}
		p, err := unseal(v)
		if err != nil {
			return corrupt("meta", keyFormat, err)
		}
		d := dec{b: p}
		f := d.u32()
		if err := d.done(); err != nil {
			return corrupt("meta", keyFormat, err)
		}
		if f > formatVersion {
			return fmt.Errorf("metadata: format %d was written by a newer Strata (this one reads %d)", f, formatVersion)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("metadata: cannot open %q: %w", path, err)
	}
	return &Store{db: db, path: path}, nil
}

// Close releases the file. Calls after Close fail.
func (s *Store) Close() error { return s.db.Close() }

// Path is the database file's path.
func (s *Store) Path() string { return s.path }

// Topics.

func checkTopicName(name string) error {
	if name == "" || strings.IndexByte(name, 0) >= 0 {
		return fmt.Errorf("%w: topic name %q", ErrInvalid, name)
	}
	return nil
}

func checkPartition(topic string, partition int32) error {
	if err := checkTopicName(topic); err != nil {
		return err
	}
	if partition < 0 {
		return fmt.Errorf("%w: partition %d of topic %q", ErrInvalid, partition, topic)
	}
	return nil
}

// getTopic reads and decodes a topic inside tx.
func getTopic(tx *bolt.Tx, name string) (Topic, error) {
	v := tx.Bucket(bucketTopics).Get([]byte(name))
	if v == nil {
		return Topic{}, fmt.Errorf("%w: %q", ErrTopicNotFound, name)
	}
	t, err := decodeTopic(v)
	if err != nil {
		return Topic{}, corrupt("topics", []byte(name), err)
	}
	if t.Name != name {
		return Topic{}, corrupt("topics", []byte(name), fmt.Errorf("value names topic %q", t.Name))
	}
	return t, nil
}

// checkExists fails unless topic exists and has the partition.
func checkExists(tx *bolt.Tx, topic string, partition int32) error {
	t, err := getTopic(tx, topic)
	if err != nil {
		return err
	}
	if partition >= t.Partitions {
		return fmt.Errorf("%w: partition %d of topic %q (%d partitions)", ErrNotFound, partition, topic, t.Partitions)
	}
	return nil
}

// CreateTopic stores a new topic. A zero ID is replaced by a random (version 4)
// UUID; read it back with Topic. Fails with ErrTopicExists if the name is taken.
func (s *Store) CreateTopic(t Topic) error {
	if err := checkTopicName(t.Name); err != nil {
		return err
	}
	if t.Partitions < 1 {
		return fmt.Errorf("%w: topic %q with %d partitions", ErrInvalid, t.Name, t.Partitions)
	}
	if t.ID == ([16]byte{}) {
		rand.Read(t.ID[:])
		t.ID[6] = t.ID[6]&0x0f | 0x40
		t.ID[8] = t.ID[8]&0x3f | 0x80
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTopics)
		if b.Get([]byte(t.Name)) != nil {
			return fmt.Errorf("%w: %q", ErrTopicExists, t.Name)
		}
		return b.Put([]byte(t.Name), encodeTopic(t))
	})
}

// Topic returns one topic, or an error wrapping ErrTopicNotFound.
func (s *Store) Topic(name string) (Topic, error) {
	var t Topic
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		t, err = getTopic(tx, name)
		return err
	})
	return t, err
}

// Topics returns every topic, sorted by name.
func (s *Store) Topics() ([]Topic, error) {
	var ts []Topic
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTopics).ForEach(func(k, v []byte) error {
			t, err := decodeTopic(v)
			if err != nil {
				return corrupt("topics", k, err)
			}
			if t.Name != string(k) {
				return corrupt("topics", k, fmt.Errorf("value names topic %q", t.Name))
			}
			ts = append(ts, t)
			return nil
		})
	})
	return ts, err
}

// DeleteTopic removes the topic, its partition states and the groups'
// committed offsets for it (as Kafka does, so a re-created topic of the same
// name does not inherit stale positions), and records a TopicDeletion in the
// same transaction: the topic's remote index moves under the deletion, where
// the cleanup finds every object left to delete. A re-created topic of the
// same name starts with an empty index and a new ID.
func (s *Store) DeleteTopic(name string) (TopicDeletion, error) {
	if err := checkTopicName(name); err != nil {
		return TopicDeletion{}, err
	}
	prefix := topicPrefix(name)
	var d TopicDeletion
	err := s.db.Update(func(tx *bolt.Tx) error {
		t, err := getTopic(tx, name)
		if err != nil {
			return err
		}
		if d, err = deleteTopicTx(tx, t, nowMs()); err != nil {
			return err
		}
		if err := tx.Bucket(bucketTopics).Delete([]byte(name)); err != nil {
			return err
		}
		if err := deletePrefix(tx.Bucket(bucketPartitions), prefix, false); err != nil {
			return err
		}
		groups := tx.Bucket(bucketGroupOffsets)
		var empty [][]byte
		err = groups.ForEachBucket(func(g []byte) error {
			gb := groups.Bucket(g)
			if err := deletePrefix(gb, prefix, false); err != nil {
				return err
			}
			if k, _ := gb.Cursor().First(); k == nil {
				empty = append(empty, bytes.Clone(g))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, g := range empty {
			if err := groups.DeleteBucket(g); err != nil {
				return err
			}
		}
		return nil
	})
	return d, err
}

// deletePrefix deletes every key (or nested bucket) of b that starts with prefix.
func deletePrefix(b *bolt.Bucket, prefix []byte, buckets bool) error {
	var keys [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		var err error
		if buckets {
			err = b.DeleteBucket(k)
		} else {
			err = b.Delete(k)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// updateTopic applies fn to a stored topic and writes it back.
func (s *Store) updateTopic(name string, fn func(*Topic) error) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		t, err := getTopic(tx, name)
		if err != nil {
			return err
		}
		if err := fn(&t); err != nil {
			return err
		}
		return tx.Bucket(bucketTopics).Put([]byte(name), encodeTopic(t))
	})
}

// SetTopicConfigs replaces the topic's overrides with cfg (nil or empty clears them).
func (s *Store) SetTopicConfigs(name string, cfg map[string]string) error {
	return s.updateTopic(name, func(t *Topic) error {
		t.Configs = cfg
		return nil
	})
}

// SetPartitionCount raises the topic's partition count. As in Kafka, the count
// never shrinks: a lower n fails with ErrInvalid; the same n is a no-op.
func (s *Store) SetPartitionCount(name string, n int32) error {
	return s.updateTopic(name, func(t *Topic) error {
		if n < t.Partitions {
			return fmt.Errorf("%w: topic %q has %d partitions, cannot decrease to %d", ErrInvalid, name, t.Partitions, n)
		}
		t.Partitions = n
		return nil
	})
}

// Partition state.

// SetLogStartOffset records the log start offset of the whole log (remote and
// local). The partition must exist (ErrTopicNotFound, ErrNotFound).
func (s *Store) SetLogStartOffset(topic string, partition int32, off int64) error {
	if err := checkPartition(topic, partition); err != nil {
		return err
	}
	if off < 0 {
		return fmt.Errorf("%w: log start offset %d", ErrInvalid, off)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := checkExists(tx, topic, partition); err != nil {
			return err
		}
		return tx.Bucket(bucketPartitions).Put(partitionKey(topic, partition), encodeInt64(off))
	})
}

// LogStartOffset returns the recorded log start offset; false if none was set.
func (s *Store) LogStartOffset(topic string, partition int32) (int64, bool, error) {
	if err := checkPartition(topic, partition); err != nil {
		return 0, false, err
	}
	var (
		off   int64
		found bool
	)
	err := s.db.View(func(tx *bolt.Tx) error {
		k := partitionKey(topic, partition)
		v := tx.Bucket(bucketPartitions).Get(k)
		if v == nil {
			return nil
		}
		var err error
		if off, err = decodeInt64(v); err != nil {
			return corrupt("partitions", k, err)
		}
		found = true
		return nil
	})
	return off, found, err
}

// Producer ids.

// AllocateProducerIDs reserves n consecutive producer ids and returns the first.
// The counter is committed (fsynced) before the ids are returned, so no id is
// handed out twice, across restarts too. Ids start at 0.
func (s *Store) AllocateProducerIDs(n int64) (int64, error) {
	if n < 1 {
		return 0, fmt.Errorf("%w: allocate %d producer ids", ErrInvalid, n)
	}
	var first int64
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketProducerIDs)
		if v := b.Get(keyNextID); v != nil {
			var err error
			if first, err = decodeInt64(v); err != nil {
				return corrupt("producer_ids", keyNextID, err)
			}
			if first < 0 {
				return corrupt("producer_ids", keyNextID, fmt.Errorf("negative next id %d", first))
			}
		}
		if first > math.MaxInt64-n {
			return fmt.Errorf("metadata: producer ids exhausted (next %d, want %d more)", first, n)
		}
		return b.Put(keyNextID, encodeInt64(first+n))
	})
	if err != nil {
		return 0, err
	}
	return first, nil
}

// Committed group offsets.

// CommitOffsets stores commits for group, all or none.
func (s *Store) CommitOffsets(group string, commits []OffsetCommit) error {
	if group == "" {
		return fmt.Errorf("%w: empty group id", ErrInvalid)
	}
	for _, c := range commits {
		if err := checkPartition(c.Topic, c.Partition); err != nil {
			return err
		}
	}
	if len(commits) == 0 {
		return nil
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		gb, err := tx.Bucket(bucketGroupOffsets).CreateBucketIfNotExists([]byte(group))
		if err != nil {
			return err
		}
		for _, c := range commits {
			if err := gb.Put(partitionKey(c.Topic, c.Partition), encodeCommit(c)); err != nil {
				return err
			}
		}
		return nil
	})
}

// GroupOffsets returns the group's commits ordered by topic, then partition;
// none (and no error) for an unknown group.
func (s *Store) GroupOffsets(group string) ([]OffsetCommit, error) {
	if group == "" {
		return nil, nil
	}
	var out []OffsetCommit
	err := s.db.View(func(tx *bolt.Tx) error {
		gb := tx.Bucket(bucketGroupOffsets).Bucket([]byte(group))
		if gb == nil {
			return nil
		}
		return gb.ForEach(func(k, v []byte) error {
			c, err := decodeCommit(k, v)
			if err != nil {
				return corrupt("group_offsets/"+group, k, err)
			}
			out = append(out, c)
			return nil
		})
	})
	return out, err
}

// DeleteGroupOffsets removes every commit of group. An unknown group is not an error.
func (s *Store) DeleteGroupOffsets(group string) error {
	if group == "" {
		return nil
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		err := tx.Bucket(bucketGroupOffsets).DeleteBucket([]byte(group))
		if errors.Is(err, berrors.ErrBucketNotFound) {
			return nil
		}
		return err
	})
}

// DeleteOffsets removes the group's commits for tps (OffsetDelete). Missing
// commits are skipped; a group left with none disappears from OffsetGroups.
func (s *Store) DeleteOffsets(group string, tps []TopicPartition) error {
	if group == "" || len(tps) == 0 {
		return nil
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		groups := tx.Bucket(bucketGroupOffsets)
		gb := groups.Bucket([]byte(group))
		if gb == nil {
			return nil
		}
		for _, tp := range tps {
			if tp.Partition < 0 {
				continue
			}
			if err := gb.Delete(partitionKey(tp.Topic, tp.Partition)); err != nil {
				return err
			}
		}
		if k, _ := gb.Cursor().First(); k == nil {
			return groups.DeleteBucket([]byte(group))
		}
		return nil
	})
}

// OffsetGroups lists the groups that have committed offsets, sorted.
func (s *Store) OffsetGroups() ([]string, error) {
	var out []string
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketGroupOffsets).ForEachBucket(func(k []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	return out, err
}

// ExpireOffsets deletes commits older than beforeMs (CommitTimestamp < beforeMs)
// of groups for which keep returns false, and returns how many it deleted.
// keep is called outside any transaction, so it may take the caller's locks or
// call back into the Store.
func (s *Store) ExpireOffsets(beforeMs int64, keep func(group string) bool) (int, error) {
	groups, err := s.OffsetGroups()
	if err != nil {
		return 0, err
	}
	var expire []string
	for _, g := range groups {
		if keep == nil || !keep(g) {
			expire = append(expire, g)
		}
	}
	if len(expire) == 0 {
		return 0, nil
	}
	deleted := 0
	err = s.db.Update(func(tx *bolt.Tx) error {
		deleted = 0 // Update does not retry, but keep the count honest if it ever did
		groups := tx.Bucket(bucketGroupOffsets)
		for _, g := range expire {
			gb := groups.Bucket([]byte(g))
			if gb == nil {
				continue
			}
			var old [][]byte
			err := gb.ForEach(func(k, v []byte) error {
				c, err := decodeCommit(k, v)
				if err != nil {
					return corrupt("group_offsets/"+g, k, err)
				}
				if c.CommitTimestamp < beforeMs {
					old = append(old, bytes.Clone(k))
				}
				return nil
			})
			if err != nil {
				return err
			}
			for _, k := range old {
				if err := gb.Delete(k); err != nil {
					return err
				}
			}
			deleted += len(old)
			if k, _ := gb.Cursor().First(); k == nil {
				if err := groups.DeleteBucket([]byte(g)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return deleted, nil
}

// Remote segment index.

func remoteBucketName(topic string, partition int32) string {
	return fmt.Sprintf("remote_index/%s/%d", topic, partition)
}

// PutRemoteSegment inserts or replaces the entry at seg.BaseOffset. The
// partition must exist (ErrTopicNotFound, ErrNotFound), so a late upload cannot
// resurrect the index of a deleted topic. seg must satisfy BaseOffset >= 0,
// EndOffset >= BaseOffset, Size >= 0 and a known State (ErrInvalid).
func (s *Store) PutRemoteSegment(topic string, partition int32, seg RemoteSegment) error {
	if err := checkPartition(topic, partition); err != nil {
		return err
	}
	if err := checkSegment(seg); err != nil {
		return fmt.Errorf("%w: remote segment of %s-%d: %v", ErrInvalid, topic, partition, err)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := checkExists(tx, topic, partition); err != nil {
			return err
		}
		b, err := tx.Bucket(bucketRemoteIndex).CreateBucketIfNotExists(partitionKey(topic, partition))
		if err != nil {
			return err
		}
		return b.Put(offsetKey(seg.BaseOffset), encodeSegment(seg))
	})
}

// RemoteSegments returns the partition's entries in base offset order, whatever
// their state.
func (s *Store) RemoteSegments(topic string, partition int32) ([]RemoteSegment, error) {
	if err := checkPartition(topic, partition); err != nil {
		return nil, err
	}
	var out []RemoteSegment
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRemoteIndex).Bucket(partitionKey(topic, partition))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			seg, err := decodeSegment(k, v)
			if err != nil {
				return corrupt(remoteBucketName(topic, partition), k, err)
			}
			out = append(out, seg)
			return nil
		})
	})
	return out, err
}

// FloorRemoteSegment returns the entry with the greatest BaseOffset <= offset,
// whatever its state; the caller checks State and EndOffset (the entry may end
// before offset). False if there is none.
func (s *Store) FloorRemoteSegment(topic string, partition int32, offset int64) (RemoteSegment, bool, error) {
	if err := checkPartition(topic, partition); err != nil {
		return RemoteSegment{}, false, err
	}
	if offset < 0 {
		return RemoteSegment{}, false, nil
	}
	var (
		seg   RemoteSegment
		found bool
	)
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRemoteIndex).Bucket(partitionKey(topic, partition))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		want := offsetKey(offset)
		k, v := c.Seek(want)
		switch {
		case k == nil: // every key is below offset
			k, v = c.Last()
		case !bytes.Equal(k, want): // k is the ceiling; the floor is before it
			k, v = c.Prev()
		}
		if k == nil {
			return nil
		}
		var err error
		if seg, err = decodeSegment(k, v); err != nil {
			return corrupt(remoteBucketName(topic, partition), k, err)
		}
		found = true
		return nil
	})
	return seg, found, err
}

// DeleteRemoteSegment drops the entry at base; an error wrapping ErrNotFound
// if there is none. The partition's index disappears with its last entry.
func (s *Store) DeleteRemoteSegment(topic string, partition int32, base int64) error {
	if err := checkPartition(topic, partition); err != nil {
		return err
	}
	notFound := fmt.Errorf("%w: remote segment %d of %s-%d", ErrNotFound, base, topic, partition)
	if base < 0 {
		return notFound
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		idx := tx.Bucket(bucketRemoteIndex)
		pk := partitionKey(topic, partition)
		b := idx.Bucket(pk)
		if b == nil || b.Get(offsetKey(base)) == nil {
			return notFound
		}
		if err := b.Delete(offsetKey(base)); err != nil {
			return err
		}
		if k, _ := b.Cursor().First(); k == nil {
			return idx.DeleteBucket(pk)
		}
		return nil
	})
}

// RemotePartitions lists every partition that has a remote index (at least one
// entry), ordered by topic, then partition.
func (s *Store) RemotePartitions() ([]TopicPartition, error) {
	var out []TopicPartition
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRemoteIndex).ForEachBucket(func(k []byte) error {
			topic, part, err := splitPartitionKey(k)
			if err != nil {
				return corrupt("remote_index", k, err)
			}
			out = append(out, TopicPartition{Topic: topic, Partition: part})
			return nil
		})
	})
	return out, err
}
