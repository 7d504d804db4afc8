// Package remotestore is the object-store interface the tiering manager writes
// segments through, and its backends: s3 (AWS S3, MinIO, any S3), fs (a local
// directory, the embedded default) and mem (unit tests). Decorators add retries
// and metrics around any backend.
package remotestore

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotFound is returned (wrapped) when an object does not exist.
var ErrNotFound = errors.New("remotestore: object not found")

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
