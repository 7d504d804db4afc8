package partition

import (
	"context"
	"errors"
	"fmt"
)

// ListOffsets' special timestamps.
const (
	Latest              int64 = -1 // the high watermark
	Earliest            int64 = -2 // the log start, remote tier included
	MaxTimestamp        int64 = -3 // the record with the largest timestamp (KIP-734, v7+)
	EarliestLocal       int64 = -4 // the local log start (KIP-405, v8+)
	LatestTiered        int64 = -5 // the last offset in the remote tier (KIP-1005, v9+)
	EarliestPendingCopy int64 = -6 // the first offset not yet in the remote tier (KIP-1023, v11+)
)

// ErrUnsupportedTimestamp is a negative timestamp the request's version
// does not know (INVALID_REQUEST).
var ErrUnsupportedTimestamp = errors.New("partition: unsupported special timestamp")

// minVersion is the ListOffsets version that introduced each special value.
var minVersion = map[int64]int16{Latest: 0, Earliest: 0, MaxTimestamp: 7, EarliestLocal: 8, LatestTiered: 9, EarliestPendingCopy: 11}

// ListOffset answers ListOffsets for one timestamp at the request's version:
// the offset and the timestamp of the record found, offset -1 when there is
// none. A timestamp finds the first record at or after it, in the remote tier
// first, then locally.
func (l *Log) ListOffset(ctx context.Context, ts int64, version int16) (offset, timestamp int64, err error) {
	if ts < 0 {
		if v, ok := minVersion[ts]; !ok || version < v {
			return -1, -1, fmt.Errorf("%w: %d at version %d", ErrUnsupportedTimestamp, ts, version)
		}
	}
	switch ts {
	case Latest:
		return l.HighWatermark(), -1, nil
	case Earliest:
		return l.LogStartOffset(), -1, nil
	case MaxTimestamp:
		off, mts, ok, err := l.local.MaxTimestamp()
		if err != nil || !ok {
			return -1, -1, err
		}
		return off, mts, nil
	case EarliestLocal:
		return l.LocalLogStartOffset(), -1, nil
	case LatestTiered:
		if off, ok := l.HighestTieredOffset(); ok {
			return off, -1, nil
		}
		return -1, -1, nil
	case EarliestPendingCopy:
		return l.earliestPendingCopy(), -1, nil
	}
	if l.IsRemote(l.LogStartOffset()) {
		off, fts, ok, err := l.remote.OffsetForTimestamp(ctx, l.topic, l.index, ts)
		if err != nil {
			return -1, -1, err
		}
		if ok {
			return l.aboveStart(off, fts)
		}
	}
	off, fts, ok, err := l.local.OffsetForTimestamp(ts)
	if err != nil || !ok {
		return -1, -1, err
	}
	return l.aboveStart(off, fts)
}

// aboveStart keeps a timestamp lookup's answer at or above the log start
// offset: a record found in a segment that DeleteRecords cut through is
// answered with the log start offset, its timestamp unknown (-1).
func (l *Log) aboveStart(off, ts int64) (int64, int64, error) {
	if start := l.LogStartOffset(); off < start {
		return start, -1, nil
	}
	return off, ts, nil
}

// earliestPendingCopy is KIP-1023's earliest pending upload: the first offset
// the remote tier does not hold yet, -1 for a partition that does not tier
// or has nothing waiting (its log ends where the remote tier does).
func (l *Log) earliestPendingCopy() int64 {
	if !l.Config().Tiered {
		return -1
	}
	next := l.LocalLogStartOffset()
	if hi, ok := l.HighestTieredOffset(); ok {
		next = max(next, hi+1)
	}
	if next >= l.LogEndOffset() {
		return -1
	}
	return next
}
