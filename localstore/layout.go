package localstore

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// On-disk layout of one partition directory. Every file named by an offset
// uses its 20-digit zero-padded decimal form, so names sort as text.
const (
	logSuffix       = ".log"       // v2 record batches exactly as on the wire
	indexSuffix     = ".index"     // offset index: offsetEntrySize-byte entries
	timeIndexSuffix = ".timeindex" // time index: timeEntrySize-byte entries
	snapshotSuffix  = ".snapshot"  // producer state at the offset in the name
	tmpSuffix       = ".tmp"       // a file being written; left over only by a crash
	deletedSuffix   = ".deleted"   // added to a deleted segment's files until file.delete.delay.ms passes

	offsetDigits = 20

	// Offset index entry: offset relative to the segment base (u32) and byte
	// position in the .log (u32), both big-endian. The offset is the last
	// offset of the batch that starts at the position, as in Kafka.
	offsetEntrySize = 8
	// Time index entry: the segment's largest timestamp so far (i64) and the
	// relative offset (u32) of the last record of the batch that carries it.
	timeEntrySize = 12

	// recoveryPointFile holds the offset below which every segment was
	// fsynced (written at roll and at Close): u64 offset, u32 CRC-32C of it.
	recoveryPointFile = "recovery-point"
	recoveryPointSize = 12
	// cleanShutdownFile exists only between Close and the next Open.
	cleanShutdownFile = "clean-shutdown"

	// Snapshot file: u32 magic, u16 version, u32 CRC-32C of the rest, then
	// u32 count and per producer: i64 id, i16 epoch, u8 n, and n entries of
	// (i32 first seq, i32 last seq, i64 first offset, i64 last offset, i64 timestamp).
	snapshotMagic      = 0x53545053 // "STPS"
	snapshotVersion    = 1
	snapshotHeaderSize = 10
	snapshotEntrySize  = 32
	snapshotsKept      = 3

	// Defaults for settings left at zero.
	defaultSegmentBytes       = 1 << 30
	defaultSegmentIndexBytes  = 10 << 20
	defaultIndexIntervalBytes = 4096

	filePerm = 0o644
)

func offsetName(off int64) string { return fmt.Sprintf("%0*d", offsetDigits, off) }

func logPath(dir string, base int64) string {
	return filepath.Join(dir, offsetName(base)+logSuffix)
}

func indexPathFor(dir string, base int64) string {
	return filepath.Join(dir, offsetName(base)+indexSuffix)
}

func timeIndexPathFor(dir string, base int64) string {
	return filepath.Join(dir, offsetName(base)+timeIndexSuffix)
}

func snapshotPath(dir string, off int64) string {
	return filepath.Join(dir, offsetName(off)+snapshotSuffix)
}

// parseOffsetName splits "<20 digits><suffix>" and reports ok for such names.
func parseOffsetName(name string) (off int64, suffix string, ok bool) {
	if len(name) <= offsetDigits {
		return 0, "", false
	}
	digits, suffix := name[:offsetDigits], name[offsetDigits:]
	if strings.ContainsAny(suffix[1:], ".") || suffix[0] != '.' {
		return 0, "", false
	}
	off, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || off < 0 {
		return 0, "", false
	}
	return off, suffix, true
}

// WriteFileAtomic writes data to path through a temporary file, fsyncs it,
// renames it into place and fsyncs the directory: after a crash the file is
// whole, the old one or the new one (the broker's checkpoints use it too).
func WriteFileAtomic(path string, data []byte) error { return writeFileAtomic(path, data) }

func writeFileAtomic(path string, data []byte) error {
	tmp := path + tmpSuffix
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, filePerm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

func writeRecoveryPoint(dir string, off int64) error {
	var b [recoveryPointSize]byte
	binary.BigEndian.PutUint64(b[:], uint64(off))
	binary.BigEndian.PutUint32(b[8:], crc32.Checksum(b[:8], castagnoli))
	return writeFileAtomic(filepath.Join(dir, recoveryPointFile), b[:])
}

// readRecoveryPoint returns 0 when the file is missing or damaged: recovery
// then scans every segment.
func readRecoveryPoint(dir string) int64 {
	b, err := os.ReadFile(filepath.Join(dir, recoveryPointFile))
	if err != nil || len(b) != recoveryPointSize ||
		binary.BigEndian.Uint32(b[8:]) != crc32.Checksum(b[:8], castagnoli) {
		return 0
	}
	off := int64(binary.BigEndian.Uint64(b))
	if off < 0 {
		return 0
	}
	return off
}
