// Package localstore is one partition's log on local disk, laid out as Kafka
// lays it out: segments named by their 20-digit base offset, each a .log of v2
// record batches exactly as they came on the wire, an offset index (.index)
// and a time index (.timeindex) with an entry every index.interval.bytes, and
// producer-state snapshots (.snapshot). layout.go names every file and format.
//
// Append assigns offsets by rewriting each batch's baseOffset (outside the
// CRC), checks idempotent producer sequences against the last five batches of
// each producer id, and writes the bytes with one pwrite; readers see a batch
// only after it is wholly written. Read returns a Slice of a segment file on
// batch boundaries, for sendfile; the Slice holds a reference, so the file
// stays open until it is released even if the segment is deleted meanwhile.
//
// Writers serialize on Log.wr and publish under Log.mu, which readers hold
// only to pick a segment; file reads use pread, never a shared seek offset.
//
// Segments roll at segment.bytes, a full index, or segment.ms less a random
// per-segment jitter below segment.jitter.ms. DeleteSegmentsBefore takes
// segments out of the log at once and renames their files .deleted; Tick
// removes them after file.delete.delay.ms.
//
// Open recovers: leftover temporary and .deleted files are removed and unknown files
// skipped; the active segment, and after an unclean shutdown (no
// clean-shutdown marker) every segment past the recovery point, is scanned
// batch by batch, a torn or corrupt tail is truncated at the last batch whose
// CRC holds (segments after a truncated one are removed), and indexes that do
// not match their segment are rebuilt. Producer state comes from the newest
// valid snapshot at or below the log end, plus a replay of the batch headers
// after it. Open also finishes or discards a log cleaner's swap interrupted by
// a crash (clean.go).
//
// Clean compacts the log (cleanup.policy=compact): see clean.go.
//
// Replication (epoch.go, replica.go). AppendLeader is Append that also
// stamps every batch's PartitionLeaderEpoch (outside the CRC); an epoch
// below the log's latest is ErrFencedLeaderEpoch. Every append records an
// epoch higher than the latest in the leader-epoch cache, kept in
// leader-epoch-checkpoint in Kafka's format and written atomically before
// the epoch's first batch; Open drops entries at or past the log end,
// retention moves the first entry up to the log start, and a missing or
// damaged file is rebuilt from the batches. EndOffsetForEpoch answers
// OffsetForLeaderEpoch as Kafka's LeaderEpochFileCache.endOffsetFor.
// AppendReplica writes a leader's fetched batches with their offsets,
// epochs and bytes (checked as a produce is; a trailing partial batch is
// ignored; a gap, as a compacted leader has, is kept; an overlap is
// ErrOffsetMismatch) and applies them to the producer state without a
// sequence check, so a new leader answers retries with their original
// offsets. TruncateTo removes every batch holding an offset at or past the
// cut (a straddling batch whole) and rebuilds the producer state;
// TruncateFullyAndStartAt empties the log and restarts it at an offset.
// Both write a "truncation" intent file first and remove it last; Open
// finishes an interrupted one, so a crash leaves the log as it was or as
// truncated.
package localstore
