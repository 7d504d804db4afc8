// Package mem is an in-memory remotestore.Store for unit tests: a map under a
// mutex. It keeps the same key rules and GetRange edges as the other
// backends, so tests against it mean something for s3 and fs.
package mem

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/stratalog/strata/remotestore"
)

// Store is an in-memory object store. The zero value is not usable; call New.
type Store struct {
	now func() time.Time

	mu struct {
		sync.Mutex
		objects map[string]object
	}
}

type object struct {
	data []byte // never modified after Put
	mod  time.Time
}

var _ remotestore.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store {
	s := &Store{now: time.Now}
	s.mu.objects = make(map[string]object)
	return s
}

// Put implements remotestore.Store. It reads all size bytes before the object
// becomes visible.
func (s *Store) Put(ctx context.Context, key string, r io.ReadSeeker, size int64) error {
	if err := remotestore.ValidateKey(key); err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("remotestore/mem: put %q: negative size %d", key, size)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	data := make([]byte, size)
	if _, err := io.ReadFull(r, data); err != nil {
		return fmt.Errorf("remotestore/mem: put %q: reading %d bytes: %w", key, size, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.objects[key] = object{data: data, mod: s.now()}
	return nil
}

func (s *Store) get(key string) (object, error) {
	if err := remotestore.ValidateKey(key); err != nil {
		return object{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.mu.objects[key]
	if !ok {
		return object{}, fmt.Errorf("remotestore/mem: %q: %w", key, remotestore.ErrNotFound)
	}
	return o, nil
}

// GetRange implements remotestore.Store.
func (s *Store) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	o, err := s.get(key)
	if err != nil {
		return nil, err
	}
	n, err := remotestore.CheckRange(key, off, length, int64(len(o.data)))
	if err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(o.data[off : off+n])), nil
}

// Head implements remotestore.Store.
func (s *Store) Head(ctx context.Context, key string) (remotestore.ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return remotestore.ObjectInfo{}, err
	}
	o, err := s.get(key)
	if err != nil {
		return remotestore.ObjectInfo{}, err
	}
	return remotestore.ObjectInfo{Key: key, Size: int64(len(o.data)), LastModified: o.mod}, nil
}

// Delete implements remotestore.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := remotestore.ValidateKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.mu.objects, key)
	return nil
}

// List implements remotestore.Store. fn runs without the lock held, on a
// snapshot taken when List starts.
func (s *Store) List(ctx context.Context, prefix string, fn func(remotestore.ObjectInfo) error) error {
	s.mu.Lock()
	infos := make([]remotestore.ObjectInfo, 0, len(s.mu.objects))
	for k, o := range s.mu.objects {
		if strings.HasPrefix(k, prefix) {
			infos = append(infos, remotestore.ObjectInfo{Key: k, Size: int64(len(o.data)), LastModified: o.mod})
		}
	}
	s.mu.Unlock()
	slices.SortFunc(infos, func(a, b remotestore.ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
	for _, info := range infos {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(info); err != nil {
			return err
		}
	}
	return nil
}

// Len returns the number of objects, for tests.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.mu.objects)
}
