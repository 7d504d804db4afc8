package metadata

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TopicDeletion is a topic deletion that has been committed (the topic is
// gone from the catalog) and whose cleanup has not finished: the partition
// directories, the remote objects and their cached chunks. DeleteTopic
// records it in the same transaction that removes the topic, so a crash at
// any instant leaves either the whole topic or the topic gone with this
// record saying what is left to clean up.
type TopicDeletion struct {
	ID         [16]byte
	Name       string
	Partitions int32
	// LocalDone: the partition directories of this topic were renamed aside
	// (to names no live topic uses), so a directory "<name>-<p>" found after
	// this was set belongs to a newer topic of the same name.
	LocalDone   bool
	DeletedAtMs int64
	// RemoteOnly: not a topic deletion but KIP-950's disablement of the
	// topic's remote storage (DisableRemoteStorage). The topic stays, with
	// its local log; only the remote segments recorded under the deletion
	// go. ID is then a fresh deletion ID, never a topic's, so the record
	// cannot collide with a deletion of the topic itself; TopicID is the
	// topic's. LocalDone is always set: there is no local step.
	RemoteOnly bool
	TopicID    [16]byte
}

// Buckets of deletions (see doc.go).
var (
	bucketTopicDeletions = []byte("topic_deletions")
	bucketDeletedRemote  = []byte("deleted_remote_index")
)

func encodeDeletion(d TopicDeletion) []byte {
	var e enc
	e.b = append(e.b, d.ID[:]...)
	e.i32(d.Partitions)
	e.str(d.Name)
	if d.LocalDone {
		e.u8(1)
	} else {
		e.u8(0)
	}
	e.i64(d.DeletedAtMs)
	if d.RemoteOnly { // older records end here: a topic deletion
		e.u8(1)
		e.b = append(e.b, d.TopicID[:]...)
	}
	return seal(e.b)
}

func decodeDeletion(key, v []byte) (TopicDeletion, error) {
	p, err := unseal(v)
	if err != nil {
		return TopicDeletion{}, err
	}
	d := dec{b: p}
	var td TopicDeletion
	copy(td.ID[:], d.take(16))
	td.Partitions = d.i32()
	td.Name = d.str()
	td.LocalDone = d.u8() == 1
	td.DeletedAtMs = d.i64()
	if d.err == nil && len(d.b) > 0 {
		if kind := d.u8(); kind != 1 {
			return TopicDeletion{}, fmt.Errorf("unknown deletion kind %d", kind)
		}
		td.RemoteOnly = true
		copy(td.TopicID[:], d.take(16))
	}
	if err := d.done(); err != nil {
		return TopicDeletion{}, err
	}
	if !bytes.Equal(key, td.ID[:]) {
		return TopicDeletion{}, fmt.Errorf("value names topic id %x", td.ID)
	}
	return td, nil
}

// deletedPartitionKey is topic id(16) partition(u32 BE).
func deletedPartitionKey(id [16]byte, partition int32) []byte {
	return binary.BigEndian.AppendUint32(append([]byte(nil), id[:]...), uint32(partition))
}

// deleteTopicTx removes topic t and records its deletion, moving its remote
// index under the deletion so the cleanup knows every object to delete.
func deleteTopicTx(tx *bolt.Tx, t Topic, nowMs int64) (TopicDeletion, error) {
	d := TopicDeletion{ID: t.ID, Name: t.Name, Partitions: t.Partitions, DeletedAtMs: nowMs}
	dels := tx.Bucket(bucketTopicDeletions)
	if dels.Get(t.ID[:]) != nil {
		return d, fmt.Errorf("%w: topic id %x of %q is already being deleted", ErrInvalid, t.ID, t.Name)
	}
	if _, err := moveRemoteIndex(tx, t.Name, d.ID); err != nil {
		return d, err
	}
	return d, dels.Put(t.ID[:], encodeDeletion(d))
}

// moveRemoteIndex moves every remote segment of topic name from the remote
// index to the deleted index under the deletion id; it reports whether
// there was any.
func moveRemoteIndex(tx *bolt.Tx, name string, id [16]byte) (bool, error) {
	if err := dropCompactionState(tx, name); err != nil {
		return false, err
	}
	idx := tx.Bucket(bucketRemoteIndex)
	moved := tx.Bucket(bucketDeletedRemote)
	prefix := topicPrefix(name)
	var parts [][]byte
	c := idx.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if v == nil { // a nested bucket
			parts = append(parts, bytes.Clone(k))
		}
	}
	found := false
	for _, k := range parts {
		_, p, err := splitPartitionKey(k)
		if err != nil {
			return false, corrupt("remote_index", k, err)
		}
		src := idx.Bucket(k)
		dst, err := moved.CreateBucketIfNotExists(deletedPartitionKey(id, p))
		if err != nil {
			return false, err
		}
		err = src.ForEach(func(base, v []byte) error {
			found = true
			return dst.Put(bytes.Clone(base), bytes.Clone(v))
		})
		if err != nil {
			return false, err
		}
		if err := idx.DeleteBucket(k); err != nil {
			return false, err
		}
		if k, _ := dst.Cursor().First(); k == nil {
			if err := moved.DeleteBucket(deletedPartitionKey(id, p)); err != nil {
				return false, err
			}
		}
	}
	return found, nil
}

// DisableRemoteStorage is KIP-950's remote.storage.enable=false with
// remote.log.delete.on.disable=true, in one transaction: the topic's
// overrides become cfg, its remote index moves under a RemoteOnly deletion
// (a fresh deletion ID) for the background cleanup, and the recorded log
// start offset of each partition in starts is raised to the given offset
// (the local log start: what is below it went with the remote tier). The
// topic itself stays. With no remote segment recorded, no deletion is
// recorded either (ok false).
func (s *Store) DisableRemoteStorage(name string, cfg map[string]string, starts map[int32]int64) (d TopicDeletion, ok bool, err error) {
	if err := checkTopicName(name); err != nil {
		return TopicDeletion{}, false, err
	}
	for p, off := range starts {
		if err := checkPartition(name, p); err != nil {
			return TopicDeletion{}, false, err
		}
		if off < 0 {
			return TopicDeletion{}, false, fmt.Errorf("%w: log start offset %d", ErrInvalid, off)
		}
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		t, err := getTopic(tx, name)
		if err != nil {
			return err
		}
		t.Configs = cfg
		if err := tx.Bucket(bucketTopics).Put([]byte(name), encodeTopic(t)); err != nil {
			return err
		}
		parts := tx.Bucket(bucketPartitions)
		for p, off := range starts {
			if p >= t.Partitions {
				return fmt.Errorf("%w: partition %d of topic %q (%d partitions)", ErrNotFound, p, name, t.Partitions)
			}
			k := partitionKey(name, p)
			if v := parts.Get(k); v != nil {
				cur, err := decodeInt64(v)
				if err != nil {
					return corrupt("partitions", k, err)
				}
				off = max(off, cur)
			}
			if err := parts.Put(k, encodeInt64(off)); err != nil {
				return err
			}
		}
		dels := tx.Bucket(bucketTopicDeletions)
		d = TopicDeletion{Name: name, Partitions: t.Partitions, DeletedAtMs: nowMs(), LocalDone: true, RemoteOnly: true, TopicID: t.ID}
		for {
			rand.Read(d.ID[:])
			if d.ID != t.ID && dels.Get(d.ID[:]) == nil && !hasPrefix(tx.Bucket(bucketDeletedRemote), d.ID[:]) {
				break
			}
		}
		if ok, err = moveRemoteIndex(tx, name, d.ID); err != nil || !ok {
			return err
		}
		return dels.Put(d.ID[:], encodeDeletion(d))
	})
	if err != nil {
		return TopicDeletion{}, false, err
	}
	return d, ok, nil
}

func hasPrefix(b *bolt.Bucket, prefix []byte) bool {
	k, _ := b.Cursor().Seek(prefix)
	return k != nil && bytes.HasPrefix(k, prefix)
}

// TopicDeletions lists the deletions whose cleanup has not finished, oldest first.
func (s *Store) TopicDeletions() ([]TopicDeletion, error) {
	var out []TopicDeletion
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTopicDeletions).ForEach(func(k, v []byte) error {
			d, err := decodeDeletion(k, v)
			if err != nil {
				return corrupt("topic_deletions", k, err)
			}
			out = append(out, d)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	// Oldest first, so a backlog drains in the order it built up.
	slices.SortStableFunc(out, func(a, b TopicDeletion) int { return cmp.Compare(a.DeletedAtMs, b.DeletedAtMs) })
	return out, nil
}

// SetDeletionLocalDone records that the deletion's partition directories
// were renamed aside.
func (s *Store) SetDeletionLocalDone(id [16]byte) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTopicDeletions)
		v := b.Get(id[:])
		if v == nil {
			return fmt.Errorf("%w: topic deletion %x", ErrNotFound, id)
		}
		d, err := decodeDeletion(id[:], v)
		if err != nil {
			return corrupt("topic_deletions", id[:], err)
		}
		d.LocalDone = true
		return b.Put(id[:], encodeDeletion(d))
	})
}

// DeletedSegments returns the remote segments of a deleted topic's partition
// whose objects may still exist, in base offset order.
func (s *Store) DeletedSegments(id [16]byte, partition int32) ([]RemoteSegment, error) {
	var out []RemoteSegment
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDeletedRemote).Bucket(deletedPartitionKey(id, partition))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			seg, err := decodeSegment(k, v)
			if err != nil {
				return corrupt("deleted_remote_index", k, err)
			}
			out = append(out, seg)
			return nil
		})
	})
	return out, err
}

// DeletedPartitions lists the partitions of a deleted topic that still have
// remote segments to delete.
func (s *Store) DeletedPartitions(id [16]byte) ([]int32, error) {
	var out []int32
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketDeletedRemote).Cursor()
		for k, _ := c.Seek(id[:]); k != nil && bytes.HasPrefix(k, id[:]); k, _ = c.Next() {
			if len(k) != 20 {
				return corrupt("deleted_remote_index", k, fmt.Errorf("key of %d bytes, want 20", len(k)))
			}
			out = append(out, int32(binary.BigEndian.Uint32(k[16:])))
		}
		return nil
	})
	return out, err
}

// DropDeletedSegment forgets one remote segment of a deleted topic once its
// objects are gone. Dropping one that is not there is not an error.
func (s *Store) DropDeletedSegment(id [16]byte, partition int32, base int64) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		moved := tx.Bucket(bucketDeletedRemote)
		pk := deletedPartitionKey(id, partition)
		b := moved.Bucket(pk)
		if b == nil {
			return nil
		}
		if err := b.Delete(offsetKey(base)); err != nil {
			return err
		}
		if k, _ := b.Cursor().First(); k == nil {
			return moved.DeleteBucket(pk)
		}
		return nil
	})
}

// FinishTopicDeletion drops a deletion whose cleanup is complete, with any
// remote segments still recorded under it.
func (s *Store) FinishTopicDeletion(id [16]byte) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := deletePrefix(tx.Bucket(bucketDeletedRemote), id[:], true); err != nil {
			return err
		}
		return tx.Bucket(bucketTopicDeletions).Delete(id[:])
	})
}

func nowMs() int64 { return time.Now().UnixMilli() }
