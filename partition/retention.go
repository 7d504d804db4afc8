package partition

import (
	"errors"
	"time"

	"github.com/stratalog/strata/localstore"
	"github.com/stratalog/strata/metadata"
)

// Retention applies the partition's retention at now, as one cut-off over
// the whole log. retention.ms / retention.bytes count the remote segments and
// the local segments above them (each offset range once): local segments
// below the cut are deleted here, and the tier is asked to delete remote ones
// below it. For a tiered partition, local.retention.ms / .bytes then apply to
// the local segments the remote tier already holds: a local segment that is
// not uploaded is never deleted by local retention. The log start offset is
// persisted when it moved. A compact-only log (cfg.CompactOnly) skips
// retention.ms / retention.bytes. It returns how many local segments it deleted.
func (l *Log) Retention(now time.Time) (int, error) {
	l.retMu.Lock()
	defer l.retMu.Unlock()
	cfg := l.Config()
	deleted, err := l.deleteBelowFloor()
	if err != nil {
		return deleted, err
	}
	if cut := l.retentionCut(now, cfg); cut >= 0 && !cfg.CompactOnly {
		if l.remote != nil {
			l.remote.DeleteRemoteBefore(l.topic, l.index, cut)
		}
		if l.local.LogStartOffset() < cut {
			n, err := l.local.DeleteSegmentsBefore(cut)
			deleted += n
			if err != nil {
				return deleted, err
			}
		}
	}
	if cfg.Tiered {
		n, err := l.localRetention(now, cfg)
		deleted += n
		if err != nil {
			return deleted, err
		}
	}
	l.persistStart()
	return deleted, nil
}

// retentionCut is the offset below which the whole log is past
// retention.ms / retention.bytes, or -1.
func (l *Log) retentionCut(now time.Time, cfg Config) int64 {
	if cfg.RetentionMs < 0 && cfg.RetentionBytes < 0 {
		return -1
	}
	var (
		items   []localstore.RetentionItem
		total   int64
		highest int64 = -1
	)
	if l.remote != nil {
		var rem []localstore.RetentionItem
		rem, highest = l.remote.RetentionItems(l.topic, l.index)
		for _, it := range rem {
			items = append(items, it)
			total += it.Size
		}
	}
	for _, s := range l.local.Segments() {
		if s.BaseOffset <= highest {
			continue // its range is counted in the remote tier
		}
		total += s.Size
		// The active segment goes by time only (rolled first), as in Kafka.
		if s.Active && (s.Size == 0 || cfg.RetentionMs < 0) {
			continue
		}
		items = append(items, localstore.RetentionItem{NextOffset: s.NextOffset, Size: s.Size, MaxTimestamp: s.MaxTimestamp})
	}
	return localstore.RetentionCutoff(items, total, now.UnixMilli(), cfg.RetentionMs, cfg.RetentionBytes)
}

// localRetention deletes local closed segments that the remote tier holds
// and that are past local.retention.ms / local.retention.bytes.
func (l *Log) localRetention(now time.Time, cfg Config) (int, error) {
	if cfg.LocalRetentionMs < 0 && cfg.LocalRetentionBytes < 0 {
		return 0, nil
	}
	highest, ok := l.HighestTieredOffset()
	if !ok {
		return 0, nil
	}
	var (
		items []localstore.RetentionItem
		total int64
	)
	segs := l.local.Segments()
	for _, s := range segs {
		total += s.Size
	}
	for _, s := range segs {
		if s.Active || s.NextOffset-1 > highest {
			break // not uploaded: it stays
		}
		items = append(items, localstore.RetentionItem{NextOffset: s.NextOffset, Size: s.Size, MaxTimestamp: s.MaxTimestamp})
	}
	cut := localstore.RetentionCutoff(items, total, now.UnixMilli(), cfg.LocalRetentionMs, cfg.LocalRetentionBytes)
	if cut <= l.local.LogStartOffset() {
		return 0, nil
	}
	return l.local.DeleteSegmentsBefore(cut)
}

// persistStart records the log start offset in the metadata store when it
// moved. Caller holds retMu.
func (l *Log) persistStart() {
	if l.starts == nil {
		return
	}
	start := l.LogStartOffset()
	if start == l.persisted {
		return
	}
	if err := l.starts.SetLogStartOffset(l.topic, l.index, start); err != nil {
		if !errors.Is(err, metadata.ErrTopicNotFound) && !errors.Is(err, metadata.ErrNotFound) {
			l.logger.Warn("cannot persist the log start offset", "topic", l.topic, "partition", l.index, "err", err)
		}
		return
	}
	l.persisted = start
}
