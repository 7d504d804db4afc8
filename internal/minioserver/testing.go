package minioserver

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// Start launches a MinIO server for the test in a temporary directory and
// stops it when the test ends, printing its log if the test failed. Without
// a binary it skips the test (fails it when STRATATEST_REQUIRE_MINIO=1).
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := FindBinary()
	if err != nil {
		if errors.Is(err, ErrNoBinary) && os.Getenv(EnvRequire) != "1" {
			t.Skipf("skipping: %v", err)
		}
		t.Fatal(err)
	}
	s, err := Launch(t.TempDir(), Options{Binary: bin})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("MinIO log (%s), last lines:\n%s", s.LogPath, s.LogTail(100))
		}
	})
	return s
}

var bucketSeq atomic.Uint64

// NewBucket creates a bucket with a fresh name made from the test's name and
// returns the name.
func (s *Server) NewBucket(t testing.TB) string {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			return r
		case r >= 'A' && r <= 'Z':
			return r - 'A' + 'a'
		}
		return '-'
	}, t.Name())
	suffix := "-" + hex.EncodeToString(b[:]) + "-" + strconv.FormatUint(bucketSeq.Add(1), 10)
	if len(name) > 63-len(suffix) {
		name = name[len(name)-(63-len(suffix)):]
	}
	name = strings.Trim(name, "-")
	if name == "" {
		name = "t"
	}
	name += suffix
	if err := s.CreateBucket(t.Context(), name); err != nil {
		t.Fatal(err)
	}
	return name
}
