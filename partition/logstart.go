package partition

import (
	"errors"
	"fmt"
)

// ErrBeyondHighWatermark is a DeleteRecords offset above the high watermark
// (OFFSET_OUT_OF_RANGE).
var ErrBeyondHighWatermark = errors.New("partition: offset is beyond the high watermark")

// The log start floor is the log start offset a client set with
// DeleteRecords (KIP-107), or the start recorded in the metadata store when
// the partition was opened. It may fall inside a segment: the log start
// offset is never below it, reads below it are out of range, and every
// retention pass deletes the local segments and asks the tier to delete the
// remote ones that end below it.

// floorOf is the log start floor, 0 when none was set.
func (l *Log) floorOf() int64 { return l.floor.Load() }

// RestoreLogStart sets the log start floor to the start recorded in the
// metadata store, when the partition is opened at start-up.
func (l *Log) RestoreLogStart(offset int64) {
	l.retMu.Lock()
	defer l.retMu.Unlock()
	if offset > l.floor.Load() {
		l.floor.Store(offset)
	}
	l.persisted = max(l.persisted, offset)
	if leo := l.LogEndOffset(); offset > leo {
		l.logger.Warn("the recorded log start offset is beyond the log end: records below it were deleted and the local log lost its tail",
			"topic", l.topic, "partition", l.index, "log_start", offset, "log_end", leo)
	}
}

// DeleteRecordsBefore moves the log start offset to offset (DeleteRecords):
// the new start is durable in the metadata store before it returns, local
// segments that end at or below it are deleted, and the tier is asked to
// delete the remote ones in its next round. An offset at or below the
// current start changes nothing. It returns the log start offset after the
// call (the low watermark), and ErrBeyondHighWatermark for an offset above
// the high watermark.
func (l *Log) DeleteRecordsBefore(offset int64) (int64, error) {
	l.retMu.Lock()
	defer l.retMu.Unlock()
	start := l.LogStartOffset()
	if offset < 0 || offset > l.HighWatermark() {
		return start, fmt.Errorf("%w: %d (high watermark %d)", ErrBeyondHighWatermark, offset, l.HighWatermark())
	}
	if offset <= start {
		return start, nil
	}
	// The records below offset must outlive a crash: a log whose end fell
	// below its recorded start would take appends below it.
	if err := l.local.Flush(); err != nil {
		return start, err
	}
	if l.starts != nil {
		if err := l.starts.SetLogStartOffset(l.topic, l.index, offset); err != nil {
			return start, err
		}
		l.persisted = offset
	}
	l.floor.Store(offset)
	if _, err := l.deleteBelowFloor(); err != nil {
		// The start has moved; the next retention pass deletes the rest.
		l.logger.Warn("cannot delete segments below the log start offset", "topic", l.topic, "partition", l.index, "log_start", offset, "err", err)
	}
	return l.LogStartOffset(), nil
}

// deleteBelowFloor deletes the local segments that end at or below the log
// start floor and asks the tier to delete the remote ones. Every retention
// pass calls it, so that a floor restored at start-up, or a deletion that
// failed, is carried out. Caller holds retMu.
func (l *Log) deleteBelowFloor() (int, error) {
	floor := l.floorOf()
	if floor <= 0 {
		return 0, nil
	}
	if l.remote != nil {
		l.remote.DeleteRemoteBefore(l.topic, l.index, floor)
	}
	if l.local.LogStartOffset() >= floor {
		return 0, nil
	}
	return l.local.DeleteSegmentsBefore(floor)
}
