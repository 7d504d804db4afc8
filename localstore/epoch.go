package localstore

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// The leader-epoch cache (KIP-101): for each leader epoch, the first offset
// written under it, in increasing epoch and offset order. It lives in memory
// under Log.mu (an immutable slice, replaced whole) and on disk in
// leaderEpochFile, in Kafka's checkpoint format, rewritten atomically
// whenever the entries change. An entry is written to disk before the first
// batch of its epoch, so after a crash the file holds every epoch of the
// log, plus perhaps entries at or beyond the log end, which Open drops.

// leaderEpochFile is the cache's file, named and formatted as Kafka's:
// a line "0" (the version), a line with the entry count, then one line
// "<epoch> <start offset>" per entry.
const leaderEpochFile = "leader-epoch-checkpoint"

// maxEpochFileBytes bounds what Open reads of the file: a bigger one is
// treated as damaged and the cache rebuilt from the batches.
const maxEpochFileBytes = 16 << 20

func encodeEpochs(es []EpochEntry) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "0\n%d\n", len(es))
	for _, e := range es {
		fmt.Fprintf(&b, "%d %d\n", e.Epoch, e.StartOffset)
	}
	return b.Bytes()
}

var errBadEpochFile = errors.New("localstore: bad leader-epoch-checkpoint")

// decodeEpochs parses the file; entries must have epochs >= 0 strictly
// increasing and start offsets >= 0 not decreasing.
func decodeEpochs(b []byte) ([]EpochEntry, error) {
	lines := strings.Split(string(b), "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	if len(lines) < 2 || strings.TrimSpace(lines[0]) != "0" {
		return nil, errBadEpochFile
	}
	n, err := strconv.Atoi(strings.TrimSpace(lines[1]))
	if err != nil || n < 0 || n != len(lines)-2 {
		return nil, errBadEpochFile
	}
	es := make([]EpochEntry, 0, n)
	for _, line := range lines[2:] {
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, errBadEpochFile
		}
		ep, err1 := strconv.ParseInt(f[0], 10, 32)
		off, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil || ep < 0 || off < 0 {
			return nil, errBadEpochFile
		}
		if k := len(es); k > 0 && (int32(ep) <= es[k-1].Epoch || off < es[k-1].StartOffset) {
			return nil, errBadEpochFile
		}
		es = append(es, EpochEntry{Epoch: int32(ep), StartOffset: off})
	}
	return es, nil
}

// epochsTrimmedEnd drops the entries starting at or after end (Kafka's
// truncateFromEnd). It returns es itself when nothing changes.
func epochsTrimmedEnd(es []EpochEntry, end int64) []EpochEntry {
	i := len(es)
	for i > 0 && es[i-1].StartOffset >= end {
		i--
	}
	if i == len(es) {
		return es
	}
	return slices.Clone(es[:i])
}

// epochsTrimmedStart drops the entries wholly below start, keeping the one
// that covers start with its start offset moved up to it (Kafka's
// truncateFromStart). It returns es itself when nothing changes.
func epochsTrimmedStart(es []EpochEntry, start int64) []EpochEntry {
	i := 0 // the last entry starting at or below start
	for i+1 < len(es) && es[i+1].StartOffset <= start {
		i++
	}
	if len(es) == 0 || es[i].StartOffset >= start {
		return es
	}
	out := slices.Clone(es[i:])
	out[0].StartOffset = start
	return out
}

// writeEpochsLocked persists es and publishes it. Caller holds wr; a failed
// write is sticky, as every write of the log is.
func (l *Log) writeEpochsLocked(es []EpochEntry) error {
	if err := writeFileAtomic(filepath.Join(l.dir, leaderEpochFile), encodeEpochs(es)); err != nil {
		l.wr.err = storageErr("write", filepath.Join(l.dir, leaderEpochFile), err)
		return l.wr.err
	}
	l.mu.Lock()
	l.mu.epochs = es
	l.mu.Unlock()
	return nil
}

// loadEpochs restores the cache at Open from its file, or, if the file is
// missing or damaged, from the batches' PartitionLeaderEpoch fields (the
// segments whose epoch changes are read through; memory is one entry per
// epoch). Entries at or
// beyond the log end are dropped and the first one is moved up to the log
// start; the file is rewritten if any of that changed it. Caller is Open.
func (l *Log) loadEpochs() error {
	segs := l.mu.segs
	start, leo := segs[0].base, segs[len(segs)-1].st.next
	path := filepath.Join(l.dir, leaderEpochFile)
	var es []EpochEntry
	rebuilt := false
	b, err := os.ReadFile(path)
	if err == nil && len(b) > maxEpochFileBytes {
		err = errBadEpochFile
	}
	if err == nil {
		es, err = decodeEpochs(b)
	}
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			l.logger.Warn("rebuilding the leader-epoch cache from the log", "path", path, "err", err)
		}
		rebuilt = true
		es = nil
		var buf [HeaderSize]byte
		first := func(s *segment) (BatchHeader, bool) {
			if s.st.size == 0 {
				return BatchHeader{}, false
			}
			h, err := readHeaderAt(s.f, 0, buf[:])
			return h, err == nil
		}
		for k, s := range segs {
			if s.st.size == 0 {
				continue
			}
			// Epochs never go down: a segment that starts in the epoch the
			// next one starts in holds no other, and is not read through.
			if k+1 < len(segs) {
				h1, ok1 := first(s)
				h2, ok2 := first(segs[k+1])
				latest := UndefinedEpoch
				if len(es) > 0 {
					latest = es[len(es)-1].Epoch
				}
				if e := h1.PartitionLeaderEpoch; ok1 && ok2 && e >= 0 && e == h2.PartitionLeaderEpoch && e >= latest {
					if e > latest {
						es = append(es, EpochEntry{Epoch: e, StartOffset: h1.BaseOffset})
					}
					continue
				}
			}
			err := forEachBatch(s.f, 0, s.st.size, nil, func(_ int64, h BatchHeader, _ []byte) (bool, error) {
				if e := h.PartitionLeaderEpoch; e >= 0 && (len(es) == 0 || e > es[len(es)-1].Epoch) {
					es = append(es, EpochEntry{Epoch: e, StartOffset: h.BaseOffset})
				}
				return true, nil
			})
			if err != nil {
				return fmt.Errorf("cannot open segment %q: rebuild leader epochs: %w", s.logPath, err)
			}
		}
	}
	trimmed := epochsTrimmedStart(epochsTrimmedEnd(es, leo), start)
	changed := rebuilt || len(trimmed) != len(es) || (len(es) > 0 && trimmed[0] != es[0])
	l.mu.epochs = trimmed
	if changed {
		if err := writeFileAtomic(path, encodeEpochs(trimmed)); err != nil {
			return storageErr("write", path, err)
		}
	}
	return nil
}

// LatestEpoch returns the latest leader epoch of the log; ok is false if
// no batch carries one.
func (l *Log) LatestEpoch() (epoch int32, ok bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	es := l.mu.epochs
	if len(es) == 0 {
		return UndefinedEpoch, false
	}
	return es[len(es)-1].Epoch, true
}

// EpochEntries returns a copy of the leader-epoch cache.
func (l *Log) EpochEntries() []EpochEntry {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return slices.Clone(l.mu.epochs)
}

// EndOffsetForEpoch answers OffsetForLeaderEpoch as Kafka's
// LeaderEpochFileCache.endOffsetFor does:
//   - an undefined (negative) epoch, an empty cache, or an epoch above the
//     latest: (UndefinedEpoch, UndefinedEpochOffset);
//   - the latest epoch: (it, the log end offset);
//   - an epoch below the first entry: (epoch, the first entry's start
//     offset), since what came before is gone from the log;
//   - otherwise the largest epoch <= epoch, and the start offset of the first
//     epoch above it.
func (l *Log) EndOffsetForEpoch(epoch int32) (leaderEpoch int32, endOffset int64) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	es := l.mu.epochs
	if epoch < 0 {
		return UndefinedEpoch, UndefinedEpochOffset
	}
	if n := len(es); n > 0 && es[n-1].Epoch == epoch {
		return epoch, l.active().st.next
	}
	j, _ := slices.BinarySearchFunc(es, epoch, func(e EpochEntry, t int32) int {
		if e.Epoch <= t {
			return -1
		}
		return 1
	}) // j: the first entry above epoch
	switch {
	case j == len(es):
		return UndefinedEpoch, UndefinedEpochOffset
	case j == 0:
		return epoch, es[0].StartOffset
	}
	return es[j-1].Epoch, es[j].StartOffset
}
