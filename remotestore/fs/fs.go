// Package fs is a remotestore.Store on a local directory: the embedded
// default when no object store is configured, and a stand-in for S3 in tests.
//
// Layout: the object for key "a/b/c" is the file <root>/a/b/c. A Put writes a
// temporary file under <root>/.strata-tmp, fsyncs it, renames it into place
// and fsyncs the directory, so an object is either absent or complete, even
// after a crash. Keys whose first segment is ".strata-tmp" are refused, and
// List never reports the temporary files. Delete removes directories it
// leaves empty. One limit S3 does not have: a key cannot also be a directory,
// so "a" and "a/b" cannot both exist (Put fails on the second).
package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/stratalog/strata/remotestore"
)

const (
	// tmpDirName is the directory, under the root, of in-flight Puts.
	tmpDirName = ".strata-tmp"
	// staleTmpAge is how old a temporary file must be for New to remove
	// it as a leftover of a crash.
	staleTmpAge = 24 * time.Hour
	dirPerm     = 0o755
	// putAttempts bounds how often Put recreates a parent directory that
	// a concurrent Delete removed as empty.
	putAttempts = 5
)

// Store is a directory-backed object store, safe for concurrent use.
type Store struct {
	root   string
	tmpDir string
}

var _ remotestore.Store = (*Store)(nil)

// New opens (creating it if needed) the store rooted at dir, and removes
// temporary files left more than a day ago by interrupted Puts.
func New(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("remotestore/fs: empty directory")
	}
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("remotestore/fs: %q: %w", dir, err)
	}
	s := &Store{root: root, tmpDir: filepath.Join(root, tmpDirName)}
	if err := os.MkdirAll(s.tmpDir, dirPerm); err != nil {
		return nil, fmt.Errorf("remotestore/fs: cannot create %q: %w", s.tmpDir, err)
	}
	if ents, err := os.ReadDir(s.tmpDir); err == nil {
		for _, e := range ents {
			if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > staleTmpAge {
				_ = os.Remove(filepath.Join(s.tmpDir, e.Name()))
			}
		}
	}
	return s, nil
}

// Root returns the absolute directory of the store.
func (s *Store) Root() string { return s.root }

func (s *Store) path(key string) (string, error) {
	if err := remotestore.ValidateKey(key); err != nil {
		return "", err
	}
	if key == tmpDirName || strings.HasPrefix(key, tmpDirName+"/") {
		return "", fmt.Errorf("%w %q: %q is reserved by the fs backend", remotestore.ErrInvalidKey, key, tmpDirName)
	}
	return filepath.Join(s.root, filepath.FromSlash(key)), nil
}

func notFound(key string, err error) error {
	return fmt.Errorf("remotestore/fs: %q: %w: %w", key, remotestore.ErrNotFound, err)
}

// isMissing reports whether err from opening a path means there is no such
// file: either it or a parent is absent, or a parent is a regular file.
func isMissing(err error) bool {
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// ctxReader stops a long copy when the context is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Put implements remotestore.Store.
func (s *Store) Put(ctx context.Context, key string, r io.ReadSeeker, size int64) (err error) {
	dst, err := s.path(key)
	if err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("remotestore/fs: put %q: negative size %d", key, size)
	}
	f, err := os.CreateTemp(s.tmpDir, "put-*")
	if err != nil {
		return fmt.Errorf("remotestore/fs: put %q: %w", key, err)
	}
	tmp := f.Name()
	defer func() {
		if f != nil {
			_ = f.Close()
		}
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	n, err := io.Copy(f, ctxReader{ctx, io.LimitReader(r, size)})
	if err != nil {
		return fmt.Errorf("remotestore/fs: put %q: %w", key, err)
	}
	if n != size {
		return fmt.Errorf("remotestore/fs: put %q: reader gave %d of %d bytes: %w", key, n, size, io.ErrUnexpectedEOF)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("remotestore/fs: put %q: fsync %q: %w", key, tmp, err)
	}
	cerr := f.Close()
	f = nil
	if cerr != nil {
		return fmt.Errorf("remotestore/fs: put %q: close %q: %w", key, tmp, cerr)
	}
	dir := filepath.Dir(dst)
	for attempt := 1; ; attempt++ {
		if err := os.MkdirAll(dir, dirPerm); err != nil {
			return fmt.Errorf("remotestore/fs: put %q: cannot create %q: %w", key, dir, err)
		}
		err := os.Rename(tmp, dst)
		if err == nil {
			break
		}
		// A concurrent Delete may have removed dir as empty between
		// MkdirAll and Rename; make it again.
		if !errors.Is(err, os.ErrNotExist) || attempt >= putAttempts {
			return fmt.Errorf("remotestore/fs: put %q: %w", key, err)
		}
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("remotestore/fs: put %q: fsync %q: %w", key, dir, err)
	}
	return nil
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

type fileSection struct {
	*io.SectionReader
	f *os.File
}

func (fs fileSection) Close() error { return fs.f.Close() }

// GetRange implements remotestore.Store. The reader reads the file with
// pread, so it shares no file offset with anything.
func (s *Store) GetRange(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		if isMissing(err) {
			return nil, notFound(key, err)
		}
		return nil, fmt.Errorf("remotestore/fs: get %q: %w", key, err)
	}
	info, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("remotestore/fs: get %q: %w", key, err)
	}
	if !info.Mode().IsRegular() {
		_ = f.Close()
		return nil, notFound(key, errors.New("not a regular file"))
	}
	n, err := remotestore.CheckRange(key, off, length, info.Size())
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return fileSection{io.NewSectionReader(f, off, n), f}, nil
}

// Head implements remotestore.Store.
func (s *Store) Head(ctx context.Context, key string) (remotestore.ObjectInfo, error) {
	p, err := s.path(key)
	if err != nil {
		return remotestore.ObjectInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return remotestore.ObjectInfo{}, err
	}
	info, err := os.Stat(p)
	if err != nil {
		if isMissing(err) {
			return remotestore.ObjectInfo{}, notFound(key, err)
		}
		return remotestore.ObjectInfo{}, fmt.Errorf("remotestore/fs: head %q: %w", key, err)
	}
	if !info.Mode().IsRegular() {
		return remotestore.ObjectInfo{}, notFound(key, errors.New("not a regular file"))
	}
	return remotestore.ObjectInfo{Key: key, Size: info.Size(), LastModified: info.ModTime()}, nil
}

// Delete implements remotestore.Store, and removes the parent directories it
// leaves empty.
func (s *Store) Delete(ctx context.Context, key string) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	info, err := os.Lstat(p)
	if err != nil {
		if isMissing(err) {
			return nil
		}
		return fmt.Errorf("remotestore/fs: delete %q: %w", key, err)
	}
	if info.IsDir() {
		return nil // a "directory" of other keys, not an object
	}
	if err := os.Remove(p); err != nil && !isMissing(err) {
		return fmt.Errorf("remotestore/fs: delete %q: %w", key, err)
	}
	for dir := filepath.Dir(p); dir != s.root && strings.HasPrefix(dir, s.root); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil {
			break // not empty, or already gone
		}
	}
	return nil
}

// List implements remotestore.Store. It walks only the directories that can
// hold keys with the prefix, and visits each directory's entries in key
// order: a directory "a" sorts as "a/", so "a-b" < "a/c" < "a0" as in S3.
func (s *Store) List(ctx context.Context, prefix string, fn func(remotestore.ObjectInfo) error) error {
	return s.walk(ctx, "", prefix, fn)
}

func (s *Store) walk(ctx context.Context, rel, prefix string, fn func(remotestore.ObjectInfo) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dir := filepath.Join(s.root, filepath.FromSlash(rel))
	ents, err := os.ReadDir(dir)
	if err != nil {
		if isMissing(err) {
			return nil // removed while we walked
		}
		return fmt.Errorf("remotestore/fs: list %q: %w", prefix, err)
	}
	type entry struct {
		name string // with a trailing '/' for directories
		ent  os.DirEntry
	}
	sorted := make([]entry, 0, len(ents))
	for _, e := range ents {
		switch {
		case rel == "" && e.Name() == tmpDirName:
		case e.IsDir():
			sorted = append(sorted, entry{rel + e.Name() + "/", e})
		case e.Type().IsRegular():
			sorted = append(sorted, entry{rel + e.Name(), e})
		}
	}
	slices.SortFunc(sorted, func(a, b entry) int { return strings.Compare(a.name, b.name) })
	for _, e := range sorted {
		if e.ent.IsDir() {
			if strings.HasPrefix(e.name, prefix) || strings.HasPrefix(prefix, e.name) {
				if err := s.walk(ctx, e.name, prefix, fn); err != nil {
					return err
				}
			}
			continue
		}
		if !strings.HasPrefix(e.name, prefix) {
			continue
		}
		info, err := e.ent.Info()
		if err != nil {
			if isMissing(err) {
				continue // deleted while we walked
			}
			return fmt.Errorf("remotestore/fs: list %q: %w", prefix, err)
		}
		if err := fn(remotestore.ObjectInfo{Key: e.name, Size: info.Size(), LastModified: info.ModTime()}); err != nil {
			return err
		}
	}
	return nil
}
