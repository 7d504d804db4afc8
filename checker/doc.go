// Package checker records what a topic's clients saw under faults and checks
// the records against each other, as the cluster tests of issue 12 need.
//
// Three workloads write histories (JSON lines of Event, one file per workload
// process, so workloads run in other processes or network namespaces combine):
//
//   - Produce: P producers (franz-go, acks=all, idempotent, retried), each
//     writing "<producer>-<seq>" with seq increasing and keys spread over the
//     partitions; each record is acknowledged at (partition, offset) or failed
//     (indeterminate: it may or may not have been written).
//   - Consume: a consumer group member; every record it reads.
//   - FinalRead: each partition from its log start to its high watermark.
//
// Analyze reports acknowledged records lost, values read at two offsets
// (duplicates), offsets holding two values across the acknowledgements and all
// readers (divergent), and per producer and partition, offsets that do not
// increase with seq (order violations); zero of each is success.
//
// Command is `strata check produce|consume|read|analyze|ping` (Usage).
package checker
