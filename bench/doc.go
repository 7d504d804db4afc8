// Package bench is Strata's benchmark harness, behind `strata bench`, which
// runs the command cmd/strata-bench: the broker binary does not link this
// package (nor kfake, nor internal/minioserver).
//
// One run measures Strata beside the limits of the machine and a peer, with
// the same client (franz-go) and the same bytes:
//
//	workload            Strata figure                      baseline (the limit or the peer)
//	produce             log bytes appended per second      raw sink: the same bytes over loopback into a file
//	                    payload bytes per second           kfake (franz-go's in-memory broker), same workload
//	hot consume         log bytes fetched per second (P)   raw sendfile of the same segment files over loopback,
//	                                                       1 MiB answers to requests (internal/zerocopy)
//	                    log bytes fetched per second (P)   kfake, same workload and consumer (P)
//	                    payload bytes per second (K)       kfake, same workload and client (K)
//	                    broker CPU seconds per GB (P)      Strata with strata.sendfile.enable=false, both as
//	                                                       a child process (utime+stime from /proc)
//	cold replay         remote bytes served per second (P) raw ranged GETs of the same objects, same concurrency
//	warm replay         (chunk cache full) (P)             raw ranged GETs
//	upload              tiered bytes per second            raw PUTs of objects of the same sizes
//	e2e latency         p50/p99/p99.9 at a fixed rate      (none)
//	time to tier        roll to COPY_FINISHED, p50/p99     (none)
//	many partitions     produce and consume at 1..1000     (none)
//	compaction          bytes the log cleaner reads per    raw sequential read+write of the same segment files
//	                    second (localstore.Log.Clean)      (fsynced copies), same disk (compact.go)
//	isolation           produce and tail-consumer p50/p99  the same without the replay (isolation.go)
//	                    during a cold replay of 4+ caches,
//	                    then at the fetch limit
//	                    hot reader byte hit rate, S3-FIFO  the same without the replay; LRU (remote.cache.policy)
//	                    replay download rate at the limit  remote.log.manager.fetch.max.bytes.per.second, set by
//	                                                       IncrementalAlterConfigs mid-run
//	                    cold replay bytes received/s       raw ranged GETs of its objects, alone
//
// Two consumers, both franz-go with the same max wait: (P) the protocol-level
// one (fetch.go: kmsg.FetchRequest on a connection of its own, wire.go, each
// response read into one reused buffer, 1 MiB per fetch; offsets advanced by
// walking record batch headers, nothing decoded), set against the raw
// baselines, which only move bytes into reused buffers; (K) kgo's consumer
// (PollFetches, every record decoded, 64 MiB per fetch), set against kfake
// read the same way. One more row runs (P) through kgo.Client's connection
// (32 MiB responses, a new buffer each) to show what the consumer's buffer
// does to the same broker.
//
// The broker runs in this process (Config.Brokers empty) on a temporary
// directory, tiering to a file:// store, or with Config.S3 to a MinIO child
// process reached through a counting proxy (proxy.go) that checks the broker's
// strata_s3_requests_total. Broker and client CPU are told apart by pprof
// labels: every goroutine the broker starts inherits side=broker, every client
// goroutine side=client, and the process CPU (getrusage) of a phase is split
// in the proportion of the labelled CPU profile samples (cpu.go). That split
// cannot see the kernel time of sendfile(2) against read+write, so the broker
// CPU per GB, sendfile on and off, comes from the same binary run as a child
// process, `strata serve` (child.go, Config.StrataBinary), whose utime and stime are read around
// the consume phase. Every phase also records the object store's CPU
// (MinIO's, from /proc/<pid>/stat, with Config.S3) and the share of all the
// machine's cores that was busy (/proc/stat), which tells a phase bound by
// the machine's processors from one that waits.
//
// Each ratio to a limit of the machine is taken over alternating rounds:
// raw sendfile and the protocol-level hot consume (hotRounds), cold replay
// (each round on an empty chunk cache) and raw GETs (coldRounds). On a shared
// machine a single phase can catch a quiet or a busy spell.
//
// Cost (cost.go) prices the object-store requests and bytes of the run with a
// PriceTable, beside the same data on local disks at replication factor 3.
//
// Run returns a Report; Report.WriteFiles writes report.json, report.md,
// the SVG charts and the phase CPU profiles into Config.Out.
package bench
