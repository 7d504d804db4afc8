package tier

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
)

// Bucket layout. Keys are relative to the store handed to New; a deployment
// prefix is the store's business (remotestore.WithPrefix).
//
//	<hash>/<topic>/<partition>/<base>-<upload id>.log
//	<hash>/<topic>/<partition>/<base>-<upload id>.idx
const (
	logSuffix     = ".log"
	sidecarSuffix = ".idx"
	// hashDigits hex digits of a hash of "topic/partition" spread partitions
	// over key prefixes, as S3 rate limits per prefix.
	hashDigits   = 4
	offsetDigits = 20
	uploadIDLen  = 16 // hex digits of 8 random bytes
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// partitionHash is the first path element of a partition's keys: the low 16
// bits of CRC-32C("topic/partition") in 4 hex digits.
func partitionHash(topic string, partition int32) string {
	h := crc32.Checksum([]byte(topic+"/"+strconv.Itoa(int(partition))), castagnoli)
	return fmt.Sprintf("%0*x", hashDigits, h&0xffff)
}

// partitionPrefix is the key prefix of every object of a partition, ending in '/'.
func partitionPrefix(topic string, partition int32) string {
	return partitionHash(topic, partition) + "/" + topic + "/" + strconv.Itoa(int(partition)) + "/"
}

// segmentKey is the key of a remote segment's object with the given suffix.
func segmentKey(topic string, partition int32, base int64, uploadID, suffix string) string {
	return fmt.Sprintf("%s%0*d-%s%s", partitionPrefix(topic, partition), offsetDigits, base, uploadID, suffix)
}

func logKey(topic string, partition int32, base int64, uploadID string) string {
	return segmentKey(topic, partition, base, uploadID, logSuffix)
}

func sidecarKey(topic string, partition int32, base int64, uploadID string) string {
	return segmentKey(topic, partition, base, uploadID, sidecarSuffix)
}

// newUploadID returns a fresh random upload id: every upload attempt writes
// keys no earlier attempt used.
func newUploadID() string {
	var b [uploadIDLen / 2]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// objectName is a parsed tier key.
type objectName struct {
	Topic     string
	Partition int32
	Base      int64
	UploadID  string
	Suffix    string // logSuffix or sidecarSuffix
}

// parseKey parses a key of the bucket layout. ok is false for any key the
// tier did not write (wrong shape, wrong hash), which the reconciler and
// Recover leave alone.
func parseKey(key string) (n objectName, ok bool) {
	parts := strings.Split(key, "/")
	if len(parts) != 4 || len(parts[0]) != hashDigits {
		return n, false
	}
	p, err := strconv.ParseInt(parts[2], 10, 32)
	if err != nil || p < 0 || strconv.FormatInt(p, 10) != parts[2] {
		return n, false
	}
	n.Topic, n.Partition = parts[1], int32(p)
	if n.Topic == "" || partitionHash(n.Topic, n.Partition) != parts[0] {
		return n, false
	}
	name := parts[3]
	switch {
	case strings.HasSuffix(name, logSuffix):
		n.Suffix = logSuffix
	case strings.HasSuffix(name, sidecarSuffix):
		n.Suffix = sidecarSuffix
	default:
		return n, false
	}
	name = strings.TrimSuffix(name, n.Suffix)
	if len(name) != offsetDigits+1+uploadIDLen || name[offsetDigits] != '-' {
		return n, false
	}
	base, err := strconv.ParseInt(name[:offsetDigits], 10, 64)
	if err != nil || base < 0 {
		return n, false
	}
	id := name[offsetDigits+1:]
	if _, err := hex.DecodeString(id); err != nil || strings.ToLower(id) != id {
		return n, false
	}
	n.Base, n.UploadID = base, id
	return n, true
}
