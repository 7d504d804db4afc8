// Package metadata is the broker's durable catalog, kept in one bbolt file
// (<log.dirs>/meta.db): topics and their config overrides, partition state,
// the producer id counter, committed group offsets (only in data directories
// from before __consumer_offsets: the broker moves them into that topic at
// open), and the remote segment index
// that the tiering manager drives through COPY_STARTED, COPY_FINISHED and
// DELETE_STARTED.
//
// Open takes bbolt's exclusive file lock with a timeout, so a second broker on
// the same data directory fails at start-up with ErrLocked instead of hanging.
// Every method runs in one bbolt transaction and is safe for concurrent use;
// every commit is fsynced before the method returns.
//
// # Buckets
//
// Top-level buckets, created by Open:
//
//	meta           "format" -> value{u32 format version}; Open refuses a newer format
//	topics         topic name -> value{Topic}
//	partitions     topic 0x00 partition(u32 BE) -> value{log start offset}
//	producer_ids   "next" -> value{next unallocated producer id}
//	group_offsets  group -> nested bucket: topic 0x00 partition(u32 BE) -> value{OffsetCommit}
//	remote_index   topic 0x00 partition(u32 BE) -> nested bucket:
//	               base offset(u64 BE) -> value{RemoteSegment}
//	topic_deletions       deletion id [16]byte -> value{TopicDeletion}
//	deleted_remote_index  deletion id [16]byte partition(u32 BE) -> nested bucket:
//	               base offset(u64 BE) -> value{RemoteSegment}
//	client_quotas  quota entity ("client-id=x,user=y", the broker's canonical
//	               form) -> value{client quota}; created by the first AlterClientQuota
//
// Created by the first write (brokerconfigs.go):
//
//	broker_configs  "broker/" entity (a broker id, or "" for the default) -> value{dynamic broker configs}
//
// Remote compaction (compaction.go) adds two top-level buckets:
//
//	remote_compaction     topic 0x00 partition(u32 BE) -> value{RemoteCompaction}
//	remote_cleaned        topic 0x00 partition(u32 BE) -> value{remote cleaned-up-to offset}
//
// remote_compaction holds a partition's remote compaction in progress
// (COMPACT_STARTED, COMPACT_SWITCHED), remote_cleaned the offset below which
// its remote part has been compacted; moving a topic's remote index away
// (deletion, disablement) drops both. A RemoteCompaction value is
//
//	state u8 | cleaned up to i64 | nold uvarint | (RemoteSegment value str)* |
//	nnew uvarint | (RemoteSegment value str)*
//
// DeleteTopic moves a topic's remote_index buckets to deleted_remote_index
// and records the TopicDeletion in the transaction that removes the topic:
// deleting is one committed decision, and the cleanup that follows (the
// broker's directories, the tier's objects and cached chunks) resumes from
// these buckets after any restart. A topic deletion's ID is the topic's.
//
// DisableRemoteStorage (KIP-950: remote.storage.enable turned off with
// remote.log.delete.on.disable=true) is the same move without removing the
// topic: one transaction sets the topic's configs, raises its partitions' log
// start offsets to the local log start, and moves its remote_index buckets
// under a RemoteOnly TopicDeletion whose ID is fresh (never a topic's, so a
// later deletion of the topic itself is a separate record).
//
// Partitions and offsets are fixed-width big-endian, so a cursor walks them in
// numeric order; FloorRemoteSegment is a Seek followed by at most one Prev.
// Topic names may not contain NUL, which keeps "topic 0x00" an exact prefix of
// the topic's partition keys. Negative partitions and offsets are rejected.
//
// # Value encoding
//
// Every value is
//
//	version u8 | payload | crc32c u32 BE
//
// where the CRC-32C (Castagnoli) covers the version byte and the payload. A
// value whose CRC does not match, whose version is unknown, or whose payload
// does not parse is reported as ErrCorrupt, wrapped with the bucket and key.
// Payloads (version 1) are fixed-width big-endian integers and strings with a
// uvarint length prefix:
//
//	Topic          id [16]byte | partitions i32 | name str | nconfigs uvarint | (key str | value str)*
//	partition      log start offset i64
//	producer_ids   next id i64
//	OffsetCommit   offset i64 | leader epoch i32 | commit timestamp i64 | metadata str
//	TopicDeletion  id [16]byte | partitions i32 | name str | local done u8 | deleted at i64
//	               [ kind u8 (1: RemoteOnly) | topic id [16]byte ]  (absent: a topic deletion)
//	RemoteSegment  base i64 | end i64 | first ts i64 | max ts i64 | size i64 |
//	               leader epoch i32 | state u8 | crc32c u32 | rolled at i64 |
//	               updated at i64 | upload id str
//	client quota   entity str | nvalues uvarint | (key str | value f64 as u64 BE bits)*
//
// The topic name and a remote segment's base offset are stored in the value as
// well as the key; a mismatch is corruption.
//
// Values returned to callers are always decoded (copied) before their
// transaction ends: nothing returned aliases the memory map.
package metadata
