//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package chunkcache

import "os"

// lockDir does not lock where flock is missing: the caller must keep the
// directory to one cache.
func lockDir(string) (*os.File, error) { return nil, nil }

func unlockDir(*os.File) error { return nil }
