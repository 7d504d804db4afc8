package localstore

import (
	"encoding/binary"
	"sort"
)

// The indexes are kept in memory as the exact bytes of their files. They are
// append-only: a reader may keep an old slice header while the writer appends
// beyond its length.

func appendOffsetEntry(idx []byte, rel uint32, pos uint32) []byte {
	return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(idx, rel), pos)
}

func appendTimeEntry(tidx []byte, ts int64, rel uint32) []byte {
	return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint64(tidx, uint64(ts)), rel)
}

func offsetEntry(idx []byte, i int) (rel uint32, pos uint32) {
	e := idx[i*offsetEntrySize:]
	return binary.BigEndian.Uint32(e), binary.BigEndian.Uint32(e[4:])
}

func timeEntry(tidx []byte, i int) (ts int64, rel uint32) {
	e := tidx[i*timeEntrySize:]
	return int64(binary.BigEndian.Uint64(e)), binary.BigEndian.Uint32(e[8:])
}

// lookupOffset returns the position of the last entry whose relative offset
// is <= rel: a batch boundary at or before the batch holding rel (0 if none).
func lookupOffset(idx []byte, rel uint32) int64 {
	n := len(idx) / offsetEntrySize
	i := sort.Search(n, func(i int) bool { r, _ := offsetEntry(idx, i); return r > rel })
	if i == 0 {
		return 0
	}
	_, pos := offsetEntry(idx, i-1)
	return int64(pos)
}

// lookupPosition returns the largest indexed batch boundary <= pos (0 if none).
func lookupPosition(idx []byte, pos int64) int64 {
	n := len(idx) / offsetEntrySize
	i := sort.Search(n, func(i int) bool { _, p := offsetEntry(idx, i); return int64(p) > pos })
	if i == 0 {
		return 0
	}
	_, p := offsetEntry(idx, i-1)
	return int64(p)
}

// lookupTime returns the relative offset of the last entry whose timestamp is
// < ts: every record up to it is older than ts. ok is false if there is none.
func lookupTime(tidx []byte, ts int64) (rel uint32, ok bool) {
	n := len(tidx) / timeEntrySize
	i := sort.Search(n, func(i int) bool { t, _ := timeEntry(tidx, i); return t >= ts })
	if i == 0 {
		return 0, false
	}
	_, rel = timeEntry(tidx, i-1)
	return rel, true
}

// offsetIndexSane checks an offset index loaded from disk against what is
// known of its segment: whole entries, strictly increasing offsets and
// positions, positions inside the log, offsets below limit (relative; -1 if
// unknown).
func offsetIndexSane(idx []byte, logSize int64, limit int64) bool {
	if len(idx)%offsetEntrySize != 0 {
		return false
	}
	n := len(idx) / offsetEntrySize
	for i := 0; i < n; i++ {
		rel, pos := offsetEntry(idx, i)
		if int64(pos) >= logSize || (limit >= 0 && int64(rel) >= limit) {
			return false
		}
		if i > 0 {
			prel, ppos := offsetEntry(idx, i-1)
			if rel <= prel || pos <= ppos {
				return false
			}
		}
	}
	return true
}

// timeIndexSane checks whole entries and non-decreasing timestamps and offsets.
func timeIndexSane(tidx []byte, limit int64) bool {
	if len(tidx)%timeEntrySize != 0 {
		return false
	}
	n := len(tidx) / timeEntrySize
	for i := 0; i < n; i++ {
		ts, rel := timeEntry(tidx, i)
		if limit >= 0 && int64(rel) >= limit {
			return false
		}
		if i > 0 {
			pts, prel := timeEntry(tidx, i-1)
			if ts <= pts || rel < prel {
				return false
			}
		}
	}
	return true
}
