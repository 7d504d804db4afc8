// Package tier is the tiering manager: it uploads closed segments to the
// object store, applies local and remote retention, serves reads below the
// local log start from the remote tier, and keeps the bucket and the remote
// index (package metadata, bbolt) in agreement.
//
// # Rounds
//
// The broker calls Manage every remote.log.manager.task.interval.ms with
// every partition. Manage only queues a round per partition; rounds run on
// Config.UploadConcurrency workers, one round per partition at a time. A round:
//
//  1. rolls back leftover COPY_STARTED entries and finishes DELETE_STARTED ones;
//  2. uploads the eligible segments (closed, non-empty, entirely below the log
//     end offset, above the highest remote offset) one after the other, in
//     offset order: segment N+1 only once N is COPY_FINISHED;
//  3. applies remote retention (retention.ms / retention.bytes) to the whole
//     log: the COPY_FINISHED remote segments plus the local segments not yet
//     uploaded, each offset range counted once, through
//     localstore.RetentionCutoff. Remote segments below the cut are deleted
//     through the state machine, local segments below it with
//     Log.DeleteSegmentsBefore;
//  4. applies local retention (local.retention.ms / local.retention.bytes) to
//     the local closed segments a COPY_FINISHED entry covers, and only those
//     (local.retention.bytes 0: delete as soon as uploaded);
//  5. persists the log start offset (metadata SetLogStartOffset) when it moved;
//  6. for a compacted topic, compacts the remote part when its dirty ratio
//     reached min.cleanable.dirty.ratio (compact.go; not in a cluster yet).
//
// After a store error the partition's store work (1-3) waits for an
// exponential backoff (Config.RetryBackoff doubling to MaxRetryBackoff); the
// segments wait on local disk, local retention (4) goes on. Every store call
// has a deadline (the store's WithTimeouts, so a hung upload ends), and the
// store's availability comes from every call's outcome (Config.Health, fed
// per attempt by the store's own decorators): a warning naming the store and
// the error when it becomes unavailable, an info line when it answers again,
// once per change; round failures the store does not explain are logged once
// per run of failures, the rest at debug. Manage recomputes the copy lag from
// the log and the index on every tick (closed segments no COPY_FINISHED entry
// covers, an upload in progress included), so strata_tier_copy_lag_* move
// while an upload hangs.
//
// # Replicas
//
// In a cluster (Config.Replicated; PartitionLog.Replicated) the bucket,
// shared by every broker, is the truth of each partition's remote index;
// each broker's bbolt holds what it learned (replicated.go):
//
//   - Only the leader uploads and deletes objects, and only segments wholly
//     below the high watermark (PartitionLog.HighWatermark). A new leader's
//     segment that begins at or below the highest remote offset is copied
//     from its first batch above it (replicas cut segments where their own
//     logs rolled; batch boundaries are the same on every replica).
//   - Uploads are fenced by leader epoch: the sidecar (version 3) records
//     the epoch, and the broker must still lead at it before it puts the
//     sidecar (the attempt's commit in the bucket) and again before
//     COPY_FINISHED. Deposed before the sidecar, the attempt is rolled back
//     (never learned: learning needs the sidecar). Deposed after it, the
//     segment is complete and committed (below the high watermark): its
//     broker only drops its entry, and the new leader learns it or, if it
//     raced an upload of the new epoch, deletes it.
//   - Learning (learn): one LIST of the partition's prefix, one GET per
//     complete attempt (.log and .idx) not already in the index; of
//     segments covering common offsets the higher leader epoch's is kept
//     (resolveOverlaps), the leader deletes the other's objects. The leader
//     learns once per leader epoch before its first upload (and again after
//     a failed round); a follower learns in a round only when it holds a
//     closed segment below its high watermark that no entry covers, the
//     only case where learning frees its disk (local.retention.* deletes
//     only below COPY_FINISHED entries it learned). A follower never
//     deletes objects except its own interrupted upload that never got a
//     sidecar.
//   - At start-up nothing is rolled back (the bucket may hold an
//     interrupted upload complete); rounds settle it. The periodic
//     reconciler judges only partitions this broker leads and has learned
//     at their current epoch.
//
// # State machine
//
// Each remote segment has one entry in the partition's remote index, keyed by
// its base offset:
//
//	(none) --COPY_STARTED--> COPY_FINISHED --DELETE_STARTED--> (none)
//	            |
//	            +-- upload failed / crashed: objects deleted, entry dropped
//
// An upload writes COPY_STARTED (base, end, sizes, timestamps, roll time, a
// fresh upload id) before its first object, puts the .log (rate-limited by
// a token bucket over its reader, Config.CopyMaxBytesPerSecond) then the .idx,
// and writes COPY_FINISHED with the CRC-32C of the .log. Only COPY_FINISHED
// segments are read, counted by LogStartOffset / HighestOffset and allow
// local deletion. A delete writes DELETE_STARTED (the segment stops being
// served), deletes both objects, then drops the entry. The manager keeps an
// in-memory copy of the index, loaded by New and replaced after each bbolt
// write, so LogStartOffset, HighestOffset and the offset lookup of Read cost
// no bbolt transaction.
//
// # Crash safety
//
// Keys are never reused: the upload id makes every attempt's keys unique, so
// a retry never overwrites, and never races, the objects of an earlier attempt.
// Every object the tier writes is owned by an index entry written before it
// (COPY_STARTED), so after a crash at any point:
//
//   - before COPY_STARTED: nothing was written;
//   - after COPY_STARTED, before COPY_FINISHED: New (or the next round, if the
//     store is down at start-up) deletes the attempt's two keys, which are
//     known from the entry, and drops the entry; the segment is still local
//     (local retention needs COPY_FINISHED) and is uploaded again;
//   - after COPY_FINISHED: the segment is complete;
//   - after DELETE_STARTED: the delete is finished (deleting is idempotent).
//
// A deleted topic's index is not dropped: metadata.DeleteTopic moves it under
// a TopicDeletion record in the transaction that removes the topic. The
// broker calls ForgetTopic (the topic's rounds end, a late Manage naming its
// ID is ignored), then PurgeTopic until it succeeds, across restarts: each
// recorded segment loses its cached chunks, its objects and then its record.
// KIP-950's disablement of a live topic's remote storage is the same move
// under a RemoteOnly record (metadata.DisableRemoteStorage): the broker runs
// it inside DropRemote, which holds the topic's rounds and then forgets its
// remote view; the topic does not tier until ResumeRemote. PurgeTopic then
// leaves the topic's manifests alone. remote.log.copy.disable only skips the
// uploads of a round (and the copy lag): retention goes on.
//
// # Compacted topics
//
// A compacted topic (PartitionLog.Compaction) uploads a closed segment
// only once it is older than min.compaction.lag.ms and the local cleaner
// has cleaned it (or its oldest record passed max.compaction.lag.ms):
// compactedReady. Before COPY_STARTED the uploader pins the segment in the
// local log (localstore.Log.PinForUpload): the local cleaner never
// rewrites a segment at or below a pin, and a pin of a segment the cleaner
// swapped out fails (the round lists again). Manage sets the log's tier
// floor from the index, so after a restart the cleaner waits for it.
//
// Remote compaction (compact.go) rewrites remote segments without the
// records a newer record of their key supersedes, remote or local, and
// without tombstones past delete.retention.ms. Its state machine, beside
// the entries' (metadata/compaction.go):
//
//	(none) --COMPACT_STARTED--> COMPACT_SWITCHED --> (none)
//	            |
//	            +-- failed / crashed: new objects deleted, record dropped
//
// COMPACT_STARTED is written before the first replacement object and names
// the old entries and the new ones with their upload ids; the replacements
// (.log paced by Config.CompactMaxBytesPerSecond, then .idx) are put; the
// switch is one bbolt transaction: the old entries out, the new ones in as
// COPY_FINISHED (at the old base and end offsets), the partition's remote
// cleaned-up-to offset moved, COMPACT_SWITCHED. The old objects and their
// cached chunks are then deleted and the record dropped. After a crash:
// before COMPACT_STARTED nothing was written; after it, before the switch,
// finishPending (New, or the next round) deletes the new objects and drops
// the record, the old set is whole; after the switch it deletes the old
// objects, the new set is whole. Reconcile counts the objects a record
// names as owned, so it never races a compaction in progress.
//
// What can still leak is an object whose entry is gone: a roll-back whose
// delete failed, attempts reported by Recover, the objects of a compaction
// in progress when its topic was deleted.
// Reconcile, run every Config.ReconcileInterval, lists the bucket and deletes
// the tier's keys that no entry owns once they are older than
// Config.OrphanGrace. Keys that do not parse as the tier's are never touched.
//
// # Bucket layout
//
// Keys are relative to the store New is given (a deployment prefix is
// remotestore.WithPrefix's business):
//
//	<hash>/<topic>/<partition>/<20-digit base>-<upload id>.log
//	<hash>/<topic>/<partition>/<20-digit base>-<upload id>.idx
//
// hash is the low 16 bits of CRC-32C("<topic>/<partition>") in 4 hex digits,
// spreading partitions over S3 key prefixes; the upload id is 16 random hex
// digits. The .log object is byte-identical to the local segment file. The
// .idx (sidecar) holds everything else, so Recover can rebuild the index from
// a listing alone.
//
//	manifests/<topic>/<topic id, 32 hex>/<20-digit version>-<upload id>.json
//
// A manifest describes a topic (ID, partition count, config overrides) for
// Recover; it is written in the background after the broker creates a topic,
// changes its configs or its partition count, never overwritten, JSON with a
// CRC-32C, and checked against meta.db at every start (manifest.go has the
// versioning and durability argument). Its keys are not the segment layout's,
// so the reconciler leaves them alone; DeleteTopicManifests removes a topic
// ID's manifests.
//
// # Sidecar
//
// Version 2, big-endian, fixed-width fields (see sidecar.go for the exact
// layout): magic "STRATIDX", version, topic, partition, topic ID (version 2;
// version 1 sidecars, without it, are still read), base and end offsets,
// size, first and max timestamps, the CRC-32C of the whole .log, the chunk
// size it was cut with, the batch list (position, base offset, last offset,
// max timestamp of every batch) and the chunk table (first batch, batch count,
// position, length, CRC-32C of every chunk), then a CRC-32C of all of it.
// Chunks are runs of whole batches of at most remote.chunk.bytes (at least one
// batch each), fixed at upload: a later remote.chunk.bytes applies to new
// segments only. A sidecar is checked on decode (checksum, ordering, chunks
// tiling the batches and the object) and against its index entry (offsets,
// size, CRC).
//
// # Reads
//
// Read: offset -> the COPY_FINISHED segment holding it (below the remote start
// or in a gap: ErrOffsetOutOfRange) -> its sidecar (fetched once, kept in a
// byte-bounded LRU, Config.SidecarCacheBytes) -> the batch holding the offset
// (binary search) -> its chunk -> the chunk cache (package chunkcache: one GET
// per chunk however many readers wait, CRC-32C checked before anything is
// served) -> a localstore.Slice over the cached chunk file from that batch:
// whole batches, at most maxBytes (at least one batch if minOneBatch), never
// past the chunk end. The next Config.ReadaheadChunks chunks are prefetched,
// into the next segment too (its sidecar loaded in the background). A read is
// bounded by Config.FetchMaxWait; any store, cache or checksum failure is
// ErrUnavailable and serves nothing. OffsetForTimestamp narrows by the max
// timestamps of the index, then of the sidecar's batches, then decodes the
// batch (localstore.ForEachRecord).
//
// Sidecars and chunks are downloaded by one mechanism, tier/internal/flight,
// each cache keeping its own storage (sidecars in memory, chunks in files):
// one download per key shared by every waiter; the download is the cache's,
// not its first caller's, and ends on its own deadline (2 minutes for a
// sidecar, the chunk cache's fetch timeout for a chunk) or on Close; a
// waiter that gives up at Config.FetchMaxWait leaves it to finish and be
// cached before anyone is served; errors are not cached.
//
// # Operations
//
// Status describes a topic's partitions (local and remote segments, states,
// copy lag) for `strata tier ls`; Recover rebuilds the index from the
// bucket (`strata tier recover`); Reconcile deletes orphans (`strata tier
// reconcile`, dry run available).
//
// Recover restores a topic missing from meta.db with the ID, partition count
// and configs of its newest manifest; without one, with retention.ms=-1 and
// retention.bytes=-1 as overrides (remote deletion off until set by hand), so
// it never leaves a topic to retention on a guessed config. It attaches only
// segments whose sidecar names the restored topic's ID (or none: version 1);
// a deleted topic's segments under the same name are left alone and reported.
// A topic still in meta.db is kept as it is, with its committed offsets; for
// a created topic the report says its committed offsets are lost.
//
// # Metrics
//
// New registers, with the prometheus.Registerer it is given:
//
//	strata_tier_copy_bytes_total             segment bytes copied (COPY_FINISHED)
//	strata_tier_copy_requests_total          segment uploads started
//	strata_tier_copy_errors_total            segment uploads failed and rolled back
//	strata_tier_copy_lag_bytes               bytes of closed local segments no COPY_FINISHED entry covers
//	strata_tier_copy_lag_segments            closed local segments no COPY_FINISHED entry covers
//	strata_tier_copy_lag_oldest_seconds      age since its roll of the oldest of those (0: none)
//	strata_tier_delete_lag_segments          entries in DELETE_STARTED
//	strata_tier_remote_fetch_bytes_total     bytes served by Read
//	strata_tier_remote_fetch_requests_total  Read calls
//	strata_tier_remote_fetch_errors_total    Read calls that failed (out of range excluded)
//	strata_tier_remote_fetch_seconds         histogram of Read latency
//	strata_tier_remote_log_bytes             bytes of COPY_FINISHED segments
//	strata_tier_time_to_tier_seconds         histogram of segment roll to COPY_FINISHED
//	strata_tier_store_available              0 if the store's last failed call ended after its last successful one, else 1
//	strata_tier_store_last_success_age_seconds  seconds from the last successful store call to the last Manage
//	strata_tier_retention_passes_total       partition rounds whose remote retention completed
//	strata_tier_manifest_writes_total        topic manifests written
//	strata_tier_manifests_pending            topics whose manifest is not yet known to be written
//	strata_tier_remote_fetch_rejected_total  reads refused at once: remote.log.reader.max.pending.tasks in progress
//	strata_tier_topic_requests_total{topic,kind}  store calls per topic: put, get, head, delete (LIST is not per topic)
//	strata_tier_topic_remote_bytes{topic}    bytes of the topic's COPY_FINISHED segments
//	strata_tier_topic_read_bytes_total{topic}  bytes downloaded for the topic
//	strata_tier_topic_dollars_per_day{topic} stored bytes and requests (averaged since start, over at least an hour) at remote.storage.price.*
//	strata_tier_compaction_runs_total        remote compactions of a partition finished
//	strata_tier_compaction_errors_total      remote compactions that failed (rolled back or finished later)
//	strata_tier_compaction_read_bytes_total  remote segment bytes remote compaction filtered
//	strata_tier_compaction_written_bytes_total  bytes of the replacement segments uploaded
//	strata_tier_compaction_records_removed_total  records remote compaction removed
//	strata_tier_compactions_in_progress      partitions being compacted remotely now
//	strata_tier_compaction_intents           compaction records (COMPACT_STARTED, COMPACT_SWITCHED) not yet settled
//
// Every store call of the manager goes through one decorator (cost.go): it
// counts the call by the topic its key names and paces downloads (chunks,
// read-ahead, sidecars) through remote.log.manager.fetch.max.bytes.per.second,
// so remote reads cannot take the bandwidth the produce path and uploads need.
// Both limits (fetch and copy, KIP-956) change at run time
// (SetFetchMaxBytesPerSecond, SetCopyMaxBytesPerSecond: the broker's dynamic
// broker configs): transfers in progress wake and go on at the new rate.
// A read beyond remote.log.reader.max.pending.tasks in progress fails at once
// with ErrUnavailable (KAFKA_STORAGE_ERROR, retriable) rather than queueing.
//
// The chunk cache registers its own strata_remote_cache_* series (see
// package chunkcache).
package tier
