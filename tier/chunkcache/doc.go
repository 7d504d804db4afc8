// Package chunkcache is the disk cache of byte ranges ("chunks") of remote
// segment objects. The tier reads below the local log start through it, and
// the broker sends the cached bytes to consumers with sendfile, like a local
// segment file.
//
// # Chunks
//
// A Chunk is a byte range of one object with the CRC-32C (Castagnoli) its
// bytes must have. The caller (package tier) chooses the chunk boundaries so
// every chunk holds whole record batches; this package never parses Kafka
// data. Get returns an *os.File holding exactly the chunk's bytes, position 0
// at the chunk start, and a release func that closes it. Each caller gets its
// own file descriptor, so no two fetches in flight share a seek offset.
//
// # Misses and read-ahead
//
// A miss makes one ranged GET per chunk, however many callers wait for it:
// concurrent Gets and Prefetches of the same chunk share one download (a
// "flight"). The bytes go to a temp file in the cache directory, are checked
// against the chunk's CRC-32C, and only then renamed into place, so a file
// under a chunk name was always whole when it was renamed. A CRC mismatch, or
// a body shorter or longer than the chunk, is an error wrapping
// ErrCorruptChunk: it is counted, logged, never served and never cached, and
// the next Get fetches again. Fetch errors are returned wrapped, without
// retrying (the store passed in retries already).
//
// The flights follow the rules of tier/internal/flight, which the tier's
// sidecar cache shares. A download does not belong to the caller that
// started it: when a waiter's context ends, that waiter returns at once and
// the download goes on for the others, and for the cache, until it
// completes, fails, hits Config.FetchTimeout, or Close cancels it. A
// consumer that timed out and retries then finds the chunk cached instead of
// restarting the GET from zero; the price is at most one chunk of bandwidth
// for a reader that never comes back.
//
// Prefetch queues a read-ahead download for Config.ReadaheadWorkers workers.
// It never blocks: a chunk already cached or in flight is skipped, and a
// request that finds the queue full is dropped. A read-ahead is not an
// access (see Eviction).
//
// # Eviction
//
// Eviction keeps the bytes of cached chunks within Config.MaxBytes by
// S3-FIFO (Yang et al., "FIFO queues are all you need for cache eviction",
// SOSP 2023), sized in bytes. A consumer replaying a topic reads every chunk
// once, many times the cache's size: under LRU each such chunk becomes the
// most recently used and pushes out the chunks other readers re-read.
// S3-FIFO filters one-time reads: a new chunk enters a small FIFO queue
// (10% of MaxBytes); at its tail a chunk a Get has re-read moves to the main
// FIFO queue, any other is evicted and its name kept in a ghost queue
// (names only, bounded to main's 90% of MaxBytes summed over the evicted
// chunks' sizes). A miss on a ghost name enters main directly. In main, a
// chunk re-read since it was (re)inserted goes back to the front with one
// read less (a count capped at 3); one that was not is evicted. Small is
// evicted first while it holds its 10%. A scan thus only cycles through
// small, and main keeps the re-read chunks. S3-FIFO was chosen over 2Q and
// ARC because the paper measures lower miss ratios than both on most of its
// 6594 production block and object traces, and because it is plain FIFOs
// with a counter: a hit moves nothing.
//
// Config.Policy "lru" (remote.cache.policy=lru) runs the policy before
// S3-FIFO instead: one list, a hit or a new chunk at the front, eviction
// from the back (pinned chunks skipped), no ghost. It is a benchmark and
// diagnostic knob, kept to measure S3-FIFO against (strata bench's isolation
// phase); scan_test.go checks it against a reference LRU.
//
// A Get that continues a read of the chunk (GetContinued: the tier's reads
// of one chunk in a row on a partition, a fetch that warms then reads it or
// a sequential consumer resuming where its last fetch stopped) records no
// re-read: a scan would otherwise promote the chunks it touches twice. A read-ahead chunk
// evicted before any Get read it leaves no ghost name: nothing accessed it.
//
// Read-ahead does not promote: a chunk a Prefetch brought in enters small
// (even if its name is a ghost) and its first Get counts as its first
// access, as a miss would (a ghost name then moves it to main). Only a
// second Get makes it a re-read. A new chunk is not evicted to make room
// for itself unless nothing else can go.
//
// A chunk is pinned from the moment its download ends until every waiter
// has opened it, and is never evicted while pinned: eviction skips it where
// it is. Eviction unlinks the file; a holder keeps reading it until release
// (POSIX unlink semantics), so those bytes stay on disk until then.
// Downloads in progress use up to one chunk each on top of MaxBytes. An
// evicted file that no Get holds or is opening is instead renamed to a spare
// (spare-N.tmp, at most 4) that the next download overwrites: a replay
// evicts and downloads a chunk after another, and creating and unlinking a
// file for each costs more system CPU than writing its bytes (`go test
// -bench MissesEvicting ./tier/chunkcache`, 3,000 misses of 1 MiB on ext4:
// 1.45 s of system CPU with a file per chunk, 0.51-0.63 s with spares,
// `/usr/bin/time` around the test binary). The disk then holds at most
// MaxBytes plus four chunks beside the downloads in progress; Close and
// the next start remove the spares.
//
// # Directory layout
//
// The cache directory (remote.cache.dir) belongs to one Cache: New takes an
// advisory lock on it.
//
//	<dir>/LOCK            flock'd while a Cache has the directory open
//	<dir>/<32 hex>.chunk  one whole chunk, renamed into place after its CRC held
//	<dir>/<random>.tmp    a download in progress
//
// A chunk's file name is the first 128 bits of the SHA-256 of its key, object
// key, offset, length and CRC, in hex: any key is safe (no path traversal),
// and a chunk redefined under the same key (a new remote.chunk.bytes, say)
// never matches a file cached under the old definition.
//
// On New, temp files are removed, empty chunk files are removed, and other
// chunk files are indexed into the main queue, newest modification time at
// the front, as not re-read, then evicted down to MaxBytes. They survived a
// previous run's eviction, so they are likelier to be read again than new
// chunks; in main they are not pushed out by a scan after the restart, and
// go oldest first once re-read chunks need main's room. Files were not fsynced, so a chunk file kept
// from a previous run may have lost bytes to a crash of the machine: its size
// and CRC are checked the first time a Get asks for it, and a file that fails
// is removed, counted as corrupt and fetched again. Unknown files are left
// alone.
//
// # Metrics
//
// New registers with the prometheus.Registerer it is given (none if nil):
//
//	strata_remote_cache_hits_total             Gets served from the cache
//	strata_remote_cache_misses_total           Gets that waited for a download
//	strata_remote_cache_bytes                  bytes of cached chunks (gauge)
//	strata_remote_cache_entries                cached chunks (gauge)
//	strata_remote_cache_evictions_total        chunks evicted to stay within max bytes
//	strata_remote_cache_fetches_total          downloads started
//	strata_remote_cache_fetch_failures_total   downloads that cached nothing (store error, timeout, corrupt, disk)
//	strata_remote_cache_fetch_bytes_total      bytes read from the object store
//	strata_remote_cache_fetch_seconds          histogram of successful downloads, GET to rename
//	strata_remote_cache_corrupt_chunks_total   chunks whose bytes failed their CRC or length, fetched or on disk
//	strata_remote_cache_readahead_total{result} Prefetch requests: fetched, skipped (cached or in flight), dropped (queue full or closed)
//	strata_remote_cache_queue_bytes{queue}     bytes of cached chunks in the small or main queue (gauge)
//	strata_remote_cache_queue_hits_total{queue} Gets served from the small or main queue
//	strata_remote_cache_promotions_total       chunks moved from small to main by a re-read
//	strata_remote_cache_ghost_hits_total       misses (or first reads of read-ahead chunks) whose name was a ghost
//	strata_remote_cache_ghost_entries          names in the ghost queue (gauge)
//
// Hit rates: hits/(hits+misses) overall. Chunks re-read by a hot reader
// live in main, a scan's in small: queue_hits_total{queue="main"} counts the
// hot readers' hits, and ghost_hits_total the re-reads that came too late.
//
// Stats returns the same counters as plain numbers.
package chunkcache
