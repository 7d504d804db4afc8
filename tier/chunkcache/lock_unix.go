//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package chunkcache

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockDir takes an exclusive advisory lock on dir's LOCK file, so two
// caches never share a directory (each would delete the other's temp files).
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, lockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("chunkcache: cannot open lock file %q: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("chunkcache: cache directory %q is in use by another cache", dir)
		}
		return nil, fmt.Errorf("chunkcache: cannot lock %q: %w", path, err)
	}
	return f, nil
}

// unlockDir releases the lock by closing the file.
func unlockDir(f *os.File) error {
	if err := f.Close(); err != nil {
		return fmt.Errorf("chunkcache: cannot close lock file: %w", err)
	}
	return nil
}
