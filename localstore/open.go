package localstore

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

func cleanShutdownPath(dir string) string { return filepath.Join(dir, cleanShutdownFile) }

// Open opens (creating if needed) the log in dir, recovering the active segment
// (and every segment after an unclean shutdown): torn tails are truncated at the
// last batch whose CRC holds, indexes that do not match are rebuilt, and producer
// state is restored from its snapshot plus the batches after it.
//
// Unknown files are left alone; leftover temporary files are removed; index
// files without a segment and snapshots beyond the log end are removed.
func Open(dir string, cfg Config, logger *slog.Logger) (*Log, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, storageErr("create log directory", dir, err)
	}
	l := &Log{dir: dir, logger: logger, rand: rand.Uint64}
	l.wr.cfg = withDefaults(cfg)

	// A truncation interrupted by a crash (replica.go): a full one is
	// finished here, before anything is read; one to an offset after the
	// segments are loaded.
	truncKind, truncOff, truncPending, err := readTruncation(dir)
	if err != nil {
		return nil, err
	}
	if truncPending && truncKind == truncateFully {
		logger.Warn("finishing an interrupted truncation", "dir", dir, "logStartOffset", truncOff)
		ns, err := resetDir(dir, truncOff)
		if err != nil {
			return nil, err
		}
		ns.closeIndexFiles()
		ns.release()
		if err := removeTruncation(dir); err != nil {
			return nil, storageErr("remove", filepath.Join(dir, truncationFile), err)
		}
		truncPending = false
	}

	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, storageErr("read log directory", dir, err)
	}
	// A cleaning interrupted by a crash: finish its swap or drop its files.
	if changed, err := recoverCleanSwap(dir, ents, logger); err != nil {
		return nil, err
	} else if changed {
		if ents, err = os.ReadDir(dir); err != nil {
			return nil, storageErr("read log directory", dir, err)
		}
	}
	_, err = os.Stat(cleanShutdownPath(dir))
	clean := err == nil
	recoveryPoint := readRecoveryPoint(dir)
	var bases []int64
	var indexes []string
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, deletedSuffix) {
			// A segment deleted before the last shutdown whose file.delete.delay.ms
			// had not passed: Kafka removes these at load too.
			logger.Info("removing deleted segment file", "path", filepath.Join(dir, name))
			os.Remove(filepath.Join(dir, name))
			continue
		}
		if strings.HasSuffix(name, tmpSuffix) {
			logger.Info("removing leftover temporary file", "path", filepath.Join(dir, name))
			os.Remove(filepath.Join(dir, name))
			continue
		}
		if name == recoveryPointFile || name == cleanShutdownFile || name == cleanerCheckpointFile ||
			name == leaderEpochFile || name == truncationFile || e.IsDir() {
			continue
		}
		off, suffix, ok := parseOffsetName(name)
		switch {
		case ok && suffix == logSuffix:
			bases = append(bases, off)
		case ok && (suffix == indexSuffix || suffix == timeIndexSuffix):
			indexes = append(indexes, name)
		case ok && suffix == snapshotSuffix:
		default:
			logger.Warn("skipping unknown file in log directory", "path", filepath.Join(dir, name))
		}
	}
	slices.Sort(bases)
	for _, name := range indexes {
		if off, _, _ := parseOffsetName(name); !slices.Contains(bases, off) {
			logger.Info("removing index without segment", "path", filepath.Join(dir, name))
			os.Remove(filepath.Join(dir, name))
		}
	}

	segs, err := l.loadSegments(bases, clean, recoveryPoint)
	if err == nil && len(segs) == 0 {
		var s *segment
		if s, err = newSegment(dir, 0); err != nil {
			err = fmt.Errorf("cannot open segment %q: %w", logPath(dir, 0), err)
		} else {
			segs = append(segs, s)
		}
	}
	if err == nil {
		act := segs[len(segs)-1]
		if act.idxF == nil {
			if err = act.openIndexFiles(); err != nil {
				err = fmt.Errorf("cannot open segment %q: %w", act.logPath, err)
			}
		}
	}
	if err != nil {
		for _, s := range segs {
			s.closeIndexFiles()
			s.release()
		}
		return nil, err
	}
	for _, s := range segs {
		s.jitterDraw = l.rand()
	}
	l.mu.segs = segs
	l.loadCleanCheckpoint()

	if err := l.loadProducerState(); err != nil {
		l.Close()
		return nil, err
	}
	if err := l.loadEpochs(); err != nil {
		l.Close()
		return nil, err
	}
	if clean {
		if err := os.Remove(cleanShutdownPath(dir)); err != nil {
			l.Close()
			return nil, storageErr("remove", cleanShutdownPath(dir), err)
		}
		if err := syncDir(dir); err != nil {
			l.Close()
			return nil, storageErr("fsync directory", dir, err)
		}
	}
	if truncPending {
		logger.Warn("finishing an interrupted truncation", "dir", dir, "offset", truncOff)
		if _, err := l.TruncateTo(truncOff); err != nil {
			l.Close()
			return nil, err
		}
		if err := removeTruncation(dir); err != nil {
			l.Close()
			return nil, storageErr("remove", filepath.Join(dir, truncationFile), err)
		}
	}
	logger.Debug("opened log", "dir", dir, "segments", len(segs), "logStartOffset", segs[0].base,
		"logEndOffset", segs[len(segs)-1].st.next, "clean", clean)
	return l, nil
}

// loadSegments opens the segment files in order. The last one, and after an
// unclean shutdown every one at or past the recovery point, is scanned whole;
// the others are trusted if their indexes are sane and their tails check out.
func (l *Log) loadSegments(bases []int64, clean bool, recoveryPoint int64) ([]*segment, error) {
	cfg := l.wr.cfg
	maxIdx, maxTidx := maxIndexEntries(cfg)
	var segs []*segment
	prevNext := int64(-1)
	for i, base := range bases {
		s := &segment{base: base, logPath: logPath(l.dir, base), idxPath: indexPathFor(l.dir, base), tidxPath: timeIndexPathFor(l.dir, base)}
		if base < prevNext {
			l.logger.Warn("removing segments that overlap the previous one", "path", s.logPath, "previousNext", prevNext)
			l.removeSegmentFiles(bases[i:])
			break
		}
		f, err := os.OpenFile(s.logPath, os.O_RDWR, 0)
		if err != nil {
			return segs, fmt.Errorf("cannot open segment %q: %w", s.logPath, err)
		}
		s.f = f
		s.refs.Store(1)
		segs = append(segs, s)
		fi, err := f.Stat()
		if err != nil {
			return segs, fmt.Errorf("cannot open segment %q: %w", s.logPath, err)
		}
		s.rolledAt = fi.ModTime()
		last := i == len(bases)-1
		if last {
			s.rolledAt = time.Time{}
		}

		if !last && (clean || bases[i+1] <= recoveryPoint) {
			ok, err := l.loadTrusted(s, fi.Size(), bases[i+1])
			if err != nil {
				return segs, fmt.Errorf("cannot open segment %q: %w", s.logPath, err)
			}
			if ok {
				prevNext = s.st.next
				continue
			}
			l.logger.Warn("index does not match its segment, rebuilding", "path", s.logPath)
		}

		r, err := scanSegment(f, base, cfg.IndexIntervalBytes, maxIdx, maxTidx)
		if err != nil {
			return segs, fmt.Errorf("cannot open segment %q: %w", s.logPath, err)
		}
		truncated := r.st.size < r.fileSize
		if !last && !truncated {
			r.tidx = r.st.finalTimeEntry(base, r.tidx)
		}
		if truncated {
			l.logger.Warn("truncating segment", "path", s.logPath, "from", r.fileSize, "to", r.st.size, "reason", r.reason)
			if err := f.Truncate(r.st.size); err != nil {
				return segs, fmt.Errorf("cannot open segment %q: truncate: %w", s.logPath, err)
			}
			if err := f.Sync(); err != nil {
				return segs, fmt.Errorf("cannot open segment %q: %w", s.logPath, err)
			}
		}
		s.st, s.idx, s.tidx = r.st, r.idx, r.tidx
		if r.idx == nil {
			s.idx = []byte{}
		}
		if err := l.syncIndexFiles(s); err != nil {
			return segs, fmt.Errorf("cannot open segment %q: %w", s.logPath, err)
		}
		prevNext = s.st.next
		if truncated && !last {
			l.logger.Warn("removing segments after a truncated one", "path", s.logPath, "count", len(bases)-i-1)
			l.removeSegmentFiles(bases[i+1:])
			s.rolledAt = time.Time{}
			break
		}
	}
	return segs, nil
}

// loadTrusted loads a closed segment's indexes and checks them cheaply
// against the log; ok is false if they must be rebuilt.
func (l *Log) loadTrusted(s *segment, size, nextBase int64) (ok bool, err error) {
	idx, err := readIndexFile(s.idxPath)
	if err != nil {
		return false, err
	}
	tidx, err := readIndexFile(s.tidxPath)
	if err != nil {
		return false, err
	}
	if _, err := os.Stat(s.idxPath); err != nil {
		return false, nil
	}
	if _, err := os.Stat(s.tidxPath); err != nil {
		return false, nil
	}
	limit := nextBase - s.base
	if !offsetIndexSane(idx, size, limit) || !timeIndexSane(tidx, limit) {
		return false, nil
	}
	st, ok := checkTail(s.f, s.base, idx, tidx, size)
	if !ok || st.next > nextBase || (size > 0 && len(tidx) == 0) {
		return false, nil
	}
	s.st, s.idx, s.tidx = st, idx, tidx
	return true, nil
}

// syncIndexFiles rewrites the index files of s unless they already hold
// exactly s.idx and s.tidx.
func (l *Log) syncIndexFiles(s *segment) error {
	idx, err := readIndexFile(s.idxPath)
	if err != nil {
		return err
	}
	tidx, err := readIndexFile(s.tidxPath)
	if err != nil {
		return err
	}
	_, ierr := os.Stat(s.idxPath)
	_, terr := os.Stat(s.tidxPath)
	if ierr == nil && terr == nil && bytes.Equal(idx, s.idx) && bytes.Equal(tidx, s.tidx) {
		return nil
	}
	l.logger.Info("rebuilt index", "path", s.logPath)
	return writeIndexes(s, s.idx, s.tidx)
}

func (l *Log) removeSegmentFiles(bases []int64) {
	for _, b := range bases {
		for _, p := range []string{logPath(l.dir, b), indexPathFor(l.dir, b), timeIndexPathFor(l.dir, b)} {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				l.logger.Warn("cannot remove segment file", "path", p, "err", err)
			}
		}
	}
}

// loadProducerState restores producer state from the newest valid snapshot
// at or below the log end offset and replays the batch headers after it.
// Caller is Open, before the log is shared.
func (l *Log) loadProducerState() error {
	segs := l.mu.segs
	leo := segs[len(segs)-1].st.next
	offs, err := listSnapshots(l.dir)
	if err != nil {
		return storageErr("list snapshots in", l.dir, err)
	}
	var ps producerState
	from := segs[0].base
	for j := len(offs) - 1; j >= 0; j-- {
		p := snapshotPath(l.dir, offs[j])
		if offs[j] > leo {
			l.logger.Info("removing producer snapshot beyond the log end", "path", p, "logEndOffset", leo)
			os.Remove(p)
			continue
		}
		b, err := os.ReadFile(p)
		if err == nil {
			ps, err = decodeProducerState(b)
		}
		if err != nil {
			l.logger.Warn("skipping unreadable producer snapshot", "path", p, "err", err)
			continue
		}
		from = max(from, offs[j])
		break
	}
	if ps == nil {
		ps = make(producerState)
	}
	for _, s := range segs {
		if s.st.next <= from || s.st.size == 0 {
			continue
		}
		pos := int64(0)
		if from > s.base {
			pos = lookupOffset(s.idx, uint32(from-s.base))
		}
		err := forEachBatch(s.f, pos, s.st.size, nil, func(_ int64, h BatchHeader, _ []byte) (bool, error) {
			if h.lastOffset() >= from {
				ps.apply(h)
			}
			return true, nil
		})
		if err != nil {
			return fmt.Errorf("cannot open segment %q: replay producer state: %w", s.logPath, err)
		}
	}
	l.wr.producers = ps
	return nil
}

// forEachBatch calls fn for each batch of f between pos and end, in order,
// until fn returns false. When want is nil, fn gets every header and b is
// nil; otherwise fn gets only the batches want says yes to, whole.
func forEachBatch(f *os.File, pos, end int64, want func(BatchHeader) bool, fn func(pos int64, h BatchHeader, b []byte) (bool, error)) error {
	br := bufio.NewReaderSize(io.NewSectionReader(f, pos, end-pos), 64<<10)
	hdr := make([]byte, HeaderSize)
	var buf []byte
	for pos < end {
		if _, err := io.ReadFull(br, hdr); err != nil {
			return fmt.Errorf("%w: read batch header at position %d: %w", ErrStorage, pos, err)
		}
		h := parseHeader(hdr)
		size := h.TotalSize()
		if h.Magic != 2 || h.Length < minBatchLength || pos+size > end {
			return fmt.Errorf("%w: bad batch header at position %d", ErrCorruptBatch, pos)
		}
		var b []byte
		if want != nil && !want(h) {
			if _, err := br.Discard(int(size - HeaderSize)); err != nil {
				return fmt.Errorf("%w: read batch at position %d: %w", ErrStorage, pos, err)
			}
			pos += size
			continue
		}
		if want != nil {
			buf = slices.Grow(buf[:0], int(size))[:size]
			copy(buf, hdr)
			if _, err := io.ReadFull(br, buf[HeaderSize:]); err != nil {
				return fmt.Errorf("%w: read batch at position %d: %w", ErrStorage, pos, err)
			}
			b = buf
		} else if _, err := br.Discard(int(size - HeaderSize)); err != nil {
			return fmt.Errorf("%w: read batch at position %d: %w", ErrStorage, pos, err)
		}
		more, err := fn(pos, h, b)
		if err != nil || !more {
			return err
		}
		pos += size
	}
	return nil
}
