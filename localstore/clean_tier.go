package localstore

// The cleaner and the tier of a compacted topic that tiers share the closed
// segments: the cleaner rewrites them, the uploader copies them. One owner
// decides, the log, under its writer lock (which the cleaner's swap holds):
// the tier floor. Offsets below it are the tier's (uploaded, or being
// uploaded): the cleaner never rewrites a segment that holds any of them,
// and a swap whose segments a pin claimed meanwhile is dropped, its work
// wasted but nothing changed. The uploader pins a segment (PinForUpload)
// before it writes COPY_STARTED and reads the file; the pin fails if the
// cleaner swapped the segment out between the uploader's listing and the
// pin, and the uploader lists again.
//
// The floor lives in memory. After a restart it is unknown until the tier
// sets it from its index (SetTierFloor); until then a cleaning with
// CleanConfig.Tiered does nothing, so no segment the tier holds is
// rewritten in that window.

// PinForUpload claims the closed segment [base, next) of size bytes (as the
// uploader listed it) for the tier: from now on the cleaner leaves it, and
// every segment below it, alone. It reports false if no closed segment of
// the log is that any more (the cleaner replaced it): nothing is claimed
// then.
func (l *Log) PinForUpload(base, next, size int64) bool {
	l.wr.Lock()
	defer l.wr.Unlock()
	l.mu.RLock()
	segs := l.mu.segs
	found := false
	for _, s := range segs[:len(segs)-1] {
		if s.base == base && s.st.next == next && s.st.size == size {
			found = true
			break
		}
	}
	l.mu.RUnlock()
	if !found {
		return false
	}
	l.raiseTierFloorLocked(next)
	return true
}

// SetTierFloor records that offsets below off are the tier's (its index
// holds them); the floor only rises. The first call makes the floor known.
func (l *Log) SetTierFloor(off int64) {
	l.wr.Lock()
	defer l.wr.Unlock()
	l.raiseTierFloorLocked(off)
}

// TierFloor returns the tier floor and whether it is known.
func (l *Log) TierFloor() (int64, bool) {
	return l.cl.tierFloor.Load(), l.cl.tierFloorKnown.Load()
}

// CleanedUpTo is the cleaner's first dirty offset: every offset below it has
// been cleaned at least once (0 if nothing has).
func (l *Log) CleanedUpTo() int64 { return l.checkpoint().firstDirty }

// raiseTierFloorLocked raises the floor to off. Caller holds l.wr.
func (l *Log) raiseTierFloorLocked(off int64) {
	if off > l.cl.tierFloor.Load() {
		l.cl.tierFloor.Store(off)
	}
	l.cl.tierFloorKnown.Store(true)
}

// cleanFloor returns the floor the cleaner must respect (0: none) and
// whether it may clean at all: with tiered, not before the floor is known.
func (l *Log) cleanFloor(tiered bool) (floor int64, ok bool) {
	f, known := l.TierFloor()
	if !tiered {
		return f, true
	}
	return f, known
}
