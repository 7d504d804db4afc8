package remotestore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// Errors returned (wrapped) by every backend and decorator.
var (
	// ErrNotFound is returned when an object does not exist.
	ErrNotFound = errors.New("remotestore: object not found")
	// ErrInvalidKey is returned for a key that ValidateKey rejects. Every
	// backend rejects the same keys, so a key that works on mem works on s3.
	ErrInvalidKey = errors.New("remotestore: invalid key")
	// ErrInvalidRange is returned by GetRange for a negative offset or an
	// offset past the end of the object.
	ErrInvalidRange = errors.New("remotestore: invalid range")
)

// MaxKeyLen is the longest key ValidateKey accepts, in bytes (S3's limit).
const MaxKeyLen = 1024

// ObjectInfo describes one object.
type ObjectInfo struct {
	Key          string
	Size         int64
	LastModified time.Time
}

// Store is the narrow object-store interface. Keys use '/' separators and never
// start with '/'. Implementations are safe for concurrent use.
type Store interface {
	// Put writes size bytes from r under key (the tier never reuses a key). A
	// failed Put leaves no visible object. r is seekable so a retry can rewind it.
	Put(ctx context.Context, key string, r io.ReadSeeker, size int64) error
	// GetRange reads length bytes from off (length < 0: to the end).
	//
	// Edges, the same on every backend: a range that runs past the end is
	// cut short at the end (the reader returns fewer bytes, no error);
	// off == size gives an empty reader; off > size or off < 0 gives
	// ErrInvalidRange; length == 0 gives an empty reader when off <= size.
	// A missing object gives ErrNotFound whatever the range.
	GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error)
	// Head describes the object.
	Head(ctx context.Context, key string) (ObjectInfo, error)
	// Delete removes the object; deleting a missing object is not an error.
	Delete(ctx context.Context, key string) error
	// List calls fn for every object whose key starts with prefix, in key order.
	List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error
}

// IsNotFound reports whether err means the object does not exist.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// ValidateKey reports, as an error wrapping ErrInvalidKey, why key cannot be
// stored: keys are non-empty valid UTF-8 of at most MaxKeyLen bytes, with no
// NUL byte, no leading '/', and no empty, "." or ".." segment (so no trailing
// '/' and no "//"). The rules keep the fs backend inside its root and make
// every backend accept the same keys.
func ValidateKey(key string) error {
	var why string
	switch {
	case key == "":
		why = "empty"
	case len(key) > MaxKeyLen:
		why = fmt.Sprintf("longer than %d bytes", MaxKeyLen)
	case !utf8.ValidString(key):
		why = "not valid UTF-8"
	case strings.IndexByte(key, 0) >= 0:
		why = "contains a NUL byte"
	case key[0] == '/':
		why = "starts with '/'"
	default:
		for seg := range strings.SplitSeq(key, "/") {
			switch seg {
			case "":
				why = "has an empty segment"
			case ".", "..":
				why = fmt.Sprintf("has a %q segment", seg)
			}
			if why != "" {
				break
			}
		}
	}
	if why == "" {
		return nil
	}
	return fmt.Errorf("%w %q: %s", ErrInvalidKey, key, why)
}

// CheckRange validates a GetRange request against an object of the given size
// and returns the number of bytes to serve. Backends that know the size up
// front use it so every backend has the same edges.
func CheckRange(key string, off, length, size int64) (int64, error) {
	if off < 0 || off > size {
		return 0, fmt.Errorf("%w: offset %d of %q (size %d)", ErrInvalidRange, off, key, size)
	}
	n := size - off
	if length >= 0 && length < n {
		n = length
	}
	return n, nil
}
