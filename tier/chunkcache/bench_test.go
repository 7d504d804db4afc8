package chunkcache

import (
	"context"
	"testing"
)

// BenchmarkMissesEvicting is a replay's pattern: every Get misses and its
// download evicts an older chunk (1 MiB chunks, a cache of 8).
func BenchmarkMissesEvicting(b *testing.B) {
	const chunk = 1 << 20
	f := newFixture(b, 64, chunk, Config{Dir: b.TempDir(), MaxBytes: 8 * chunk})
	b.SetBytes(chunk)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		file, release, err := f.cache.Get(context.Background(), f.chunk(i%64))
		if err != nil {
			b.Fatal(err)
		}
		_ = file
		release()
	}
}
