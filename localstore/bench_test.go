package localstore

import (
	"bytes"
	"testing"
	"time"
)

func BenchmarkAppend(b *testing.B) {
	l := openLog(b, b.TempDir(), Config{})
	defer l.Close()
	batch := simpleBatch(b, string(bytes.Repeat([]byte("x"), 100)), 10, time.Now().UnixMilli())
	b.SetBytes(int64(len(batch)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.Append(batch); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRead(b *testing.B) {
	l := openLog(b, b.TempDir(), Config{})
	defer l.Close()
	for i := 0; i < 10000; i++ {
		mustAppend(b, l, simpleBatch(b, "r", 10, time.Now().UnixMilli()))
	}
	leo := l.LogEndOffset()
	b.ReportAllocs()
	var off int64
	for b.Loop() {
		s, err := l.Read(off, 64<<10, true)
		if err != nil {
			b.Fatal(err)
		}
		s.Done()
		off = (off + 7919) % leo
	}
}
