package localstore

// RetentionItem is a segment, local or remote, as retention sees it.
type RetentionItem struct {
	NextOffset   int64 // one past its last offset
	Size         int64
	MaxTimestamp int64 // -1 if unknown
}

// RetentionCutoff applies Kafka's delete policy to segments in offset order:
// from the oldest, a segment goes while its newest record is older than
// retentionMs, or while the log without it still holds at least retentionBytes
// (totalBytes is the whole log's size). It returns the offset before which
// segments may be deleted, or -1. A limit of -1 is off.
func RetentionCutoff(items []RetentionItem, totalBytes, nowMs, retentionMs, retentionBytes int64) int64 {
	cut := int64(-1)
	for _, it := range items {
		byTime := retentionMs >= 0 && it.MaxTimestamp >= 0 && nowMs-it.MaxTimestamp > retentionMs
		bySize := retentionBytes >= 0 && totalBytes-it.Size >= retentionBytes
		if !byTime && !bySize {
			break
		}
		cut = it.NextOffset
		totalBytes -= it.Size
	}
	return cut
}
