package tier

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"
	"github.com/stratalog/strata/metadata"
	"github.com/stratalog/strata/remotestore"
)

func testSidecar(t testing.TB, chunkBytes int64) (*sidecar, []byte) {
	t.Helper()
	var out []byte
	off := int64(100)
	for i := range 7 {
		b := makeBatch(t, 1+i, int64(1000+i*10), "x")
		putBase(b, off)
		off += int64(i + 1)
		out = append(out, b...)
	}
	sc, err := buildSidecar(bytes.NewReader(out), "t", 3, 100, off-1, int64(len(out)), chunkBytes)
	if err != nil {
		t.Fatal(err)
	}
	return sc, out
}

func putBase(b []byte, off int64) {
	for i := range 8 {
		b[i] = byte(off >> (56 - 8*i))
	}
}

func TestSidecarRoundTrip(t *testing.T) {
	for _, cb := range []int64{1, 1000, 3000, 1 << 20} {
		sc, seg := testSidecar(t, cb)
		enc := sc.encode()
		dec, err := decodeSidecar(enc)
		if err != nil {
			t.Fatalf("chunk bytes %d: %v", cb, err)
		}
		if len(dec.Batches) != 7 || dec.EndOffset != 127 || dec.Size != int64(len(seg)) || dec.FirstTimestamp != 1000 || dec.MaxTimestamp != 1066 {
			t.Errorf("chunk bytes %d: %+v", cb, dec)
		}
		for i, c := range dec.Chunks {
			if c.Len > cb && c.NumBatches != 1 {
				t.Errorf("chunk bytes %d: chunk %d has %d bytes in %d batches", cb, i, c.Len, c.NumBatches)
			}
			if got := crc(seg[c.Pos : c.Pos+c.Len]); got != c.CRC {
				t.Errorf("chunk %d crc", i)
			}
		}
		if dec.LogCRC != crc(seg) {
			t.Error("log crc")
		}
		if b := dec.findBatch(104); dec.Batches[b].BaseOffset != 103 {
			t.Errorf("findBatch(104) = batch at %d", dec.Batches[b].BaseOffset)
		}
		if b := dec.findBatch(128); b != 7 {
			t.Errorf("findBatch past the end = %d", b)
		}
	}
}

func crc(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

func TestSidecarRejectsDamage(t *testing.T) {
	sc, _ := testSidecar(t, 1000)
	enc := sc.encode()
	for i := range enc {
		bad := bytes.Clone(enc)
		bad[i] ^= 0x40
		if _, err := decodeSidecar(bad); !errors.Is(err, errBadSidecar) {
			t.Fatalf("flipping byte %d: %v", i, err)
		}
	}
	for n := range len(enc) {
		if _, err := decodeSidecar(enc[:n]); !errors.Is(err, errBadSidecar) {
			t.Fatalf("truncated to %d: %v", n, err)
		}
	}
}

func TestBuildSidecarRejectsBadSegment(t *testing.T) {
	_, seg := testSidecar(t, 1000)
	if _, err := buildSidecar(bytes.NewReader(seg[:len(seg)-3]), "t", 3, 100, 127, int64(len(seg)-3), 1000); err == nil {
		t.Error("a torn segment was indexed")
	}
	if _, err := buildSidecar(bytes.NewReader(seg), "t", 3, 100, 120, int64(len(seg)), 1000); err == nil {
		t.Error("a batch past the end offset was accepted")
	}
}

func FuzzDecodeSidecar(f *testing.F) {
	sc, _ := testSidecar(f, 1000)
	f.Add(sc.encode())
	f.Add([]byte(sidecarMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		sc, err := decodeSidecar(b)
		if err != nil {
			return
		}
		if err := sc.check(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(sc.encode(), b) {
			t.Fatal("decode/encode does not round-trip")
		}
	})
}

func TestKeys(t *testing.T) {
	k := logKey("orders", 7, 1234, "0123456789abcdef")
	want := partitionHash("orders", 7) + "/orders/7/00000000000000001234-0123456789abcdef.log"
	if k != want {
		t.Fatalf("%s, want %s", k, want)
	}
	n, ok := parseKey(k)
	if !ok || n.Topic != "orders" || n.Partition != 7 || n.Base != 1234 || n.UploadID != "0123456789abcdef" || n.Suffix != logSuffix {
		t.Fatalf("%+v %v", n, ok)
	}
	if _, ok := parseKey(sidecarKey("orders", 7, 1234, "0123456789abcdef")); !ok {
		t.Error("sidecar key")
	}
	for _, bad := range []string{
		"README", "0000/orders/7/00000000000000001234-0123456789abcdef.log",
		strings.Replace(k, ".log", ".tmp", 1), strings.Replace(k, "/7/", "/07/", 1),
		strings.Replace(k, "abcdef.log", "ABCDEF.log", 1), strings.Replace(k, "-0123", "_0123", 1),
		"x/" + k,
	} {
		if n, ok := parseKey(bad); ok {
			t.Errorf("%q parsed as %+v", bad, n)
		}
	}
	if a, b := newUploadID(), newUploadID(); a == b || len(a) != uploadIDLen {
		t.Errorf("upload ids %q %q", a, b)
	}
}

// pacedClock stands in for a token bucket's clock and timer: a sleep
// advances the clock at once and is added up, so a test sees the waits the
// bucket asks for without spending them.
type pacedClock struct {
	mu    sync.Mutex
	now   time.Time
	slept time.Duration
}

// pace makes b run on a pacedClock. Call it before b's first use.
func pace(b *tokenBucket) *pacedClock {
	b.mu.Lock()
	c := &pacedClock{now: b.mu.last}
	b.mu.Unlock()
	b.now = c.Now
	b.sleep = c.sleep
	return c
}

func (c *pacedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *pacedClock) sleep(ctx context.Context, d time.Duration, _ <-chan struct{}) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.slept += d
	return nil
}

func (c *pacedClock) Slept() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.slept
}

func TestRateLimit(t *testing.T) {
	b := newTokenBucket(400 << 10) // 400 KiB/s
	clock := pace(b)
	data := make([]byte, 200<<10)
	r := &limitedReader{ctx: context.Background(), r: bytes.NewReader(data), b: b}
	if n, err := io.Copy(io.Discard, r); err != nil || n != int64(len(data)) {
		t.Fatalf("copied %d bytes (%v), want %d", n, err, len(data))
	}
	// 200 KiB at 400 KiB/s, less the initial burst of 40 KiB: 0.4s of
	// waiting, no less (the limit holds); no more than one further read's
	// worth (the read that finds EOF reserves its buffer too).
	want := 400 * time.Millisecond
	rate, _, step := b.limits()
	most := want + time.Duration(float64(step)/rate*float64(time.Second))
	if d := clock.Slept(); d < want-time.Millisecond || d > most {
		t.Errorf("200 KiB at 400 KiB/s waited %v, want %v to %v", d, want, most)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r = &limitedReader{ctx: ctx, r: bytes.NewReader(data), b: b}
	if _, err := io.Copy(io.Discard, r); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if err := sleepCtx(ctx, time.Hour, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("timer with a cancelled context: %v", err)
	}
}

func TestUploadRateLimited(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.CopyMaxBytesPerSecond = 64 << 10 })
	clock := pace(e.m.limiter)
	for range 4 {
		e.segment(10, 10)
	}
	var total int64
	for _, s := range e.log.Segments() {
		total += s.Size
	}
	e.manage()
	// Every uploaded byte but the burst (a tenth of a second's worth) waited
	// for the rate.
	min := time.Duration(float64(total-(64<<10)/10) / float64(64<<10) * float64(time.Second))
	if d := clock.Slept(); d < min-time.Millisecond {
		t.Errorf("%d bytes uploaded at 64 KiB/s waited %v, want >= %v", total, d, min)
	}
	if len(e.remote()) != 4 {
		t.Fatal(e.remote())
	}
}

func TestManageDoesNotBlockAndCloseStops(t *testing.T) {
	// At one byte a second no upload finishes while the test runs.
	e := newEnv(t, func(c *Config) { c.CopyMaxBytesPerSecond = 1 })
	for range 3 {
		e.segment(10, 10)
	}
	managed := make(chan struct{})
	go func() {
		e.m.Manage(context.Background(), []PartitionLog{e.pl})
		e.m.Manage(context.Background(), []PartitionLog{e.pl})
		close(managed)
	}()
	select {
	case <-managed:
	case <-time.After(wait.Timeout):
		t.Fatal("Manage blocked on the uploads it started")
	}
	wait.Eventually(t, "an upload to start", func() bool { return e.fault.Calls(remotestore.OpPut) >= 1 })
	for _, s := range e.remote() {
		if s.State == metadata.CopyFinished {
			t.Fatalf("an upload at 1 byte/s finished: %+v", s)
		}
	}
	closed := make(chan error, 1)
	go func() { closed <- e.m.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(wait.Timeout):
		t.Fatal("Close did not stop the upload in progress")
	}
	// The cut upload left no entry behind but a COPY_STARTED one at most,
	// which the next start rolls back.
	e.m = nil
	e.cfg.CopyMaxBytesPerSecond = 0
	e.open()
	for _, s := range e.remote() {
		if s.State != metadata.CopyFinished {
			t.Errorf("entry %+v after restart", s)
		}
	}
	if len(e.keys()) != 0 {
		t.Errorf("objects after restart: %v", e.keys())
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{CacheDir: "c"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	if c := ok.withDefaults(); c.ChunkBytes != DefaultChunkBytes || c.UploadConcurrency != 2 || c.FetchMaxWait != DefaultFetchMaxWait {
		t.Errorf("defaults %+v", c)
	}
	for _, bad := range []Config{
		{},
		{CacheDir: "c", ChunkBytes: 2 << 30},
		{CacheDir: "c", CacheMaxBytes: 10, ChunkBytes: 100},
		{CacheDir: "c", ReadaheadChunks: -1},
		{CacheDir: "c", OrphanGrace: -time.Second},
	} {
		if bad.Validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// Version 2 records the topic ID, version 3 the leader epoch too; version 2
// (epoch -1) and version 1 sidecars (no ID, epoch -1) still decode.
func TestSidecarTopicIDAndVersion1(t *testing.T) {
	sc, _ := testSidecar(t, 4096)
	sc.TopicID = [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	sc.LeaderEpoch = 7
	enc := sc.encode()
	got, err := decodeSidecar(enc)
	if err != nil || got.TopicID != sc.TopicID || got.LeaderEpoch != 7 {
		t.Fatalf("v3: %v, id %x, epoch %d", err, got.TopicID, got.LeaderEpoch)
	}
	idAt := len(sidecarMagic) + 2 + 2 + 2 + len(sc.Topic) + 4
	// The same sidecar as version 2 wrote it: the ID, no leader epoch.
	v2 := append([]byte{}, enc[:idAt+16]...)
	v2 = append(v2, enc[idAt+16+4:len(enc)-4]...)
	binary.BigEndian.PutUint16(v2[len(sidecarMagic):], sidecarV2)
	v2 = binary.BigEndian.AppendUint32(v2, crc(v2))
	got, err = decodeSidecar(v2)
	if err != nil || got.TopicID != sc.TopicID || got.LeaderEpoch != -1 || got.EndOffset != sc.EndOffset || len(got.Chunks) != len(sc.Chunks) {
		t.Fatalf("v2: %v %+v", err, got)
	}
	// As version 1 wrote it: no ID and no epoch after the partition.
	v1 := append([]byte{}, enc[:idAt]...)
	v1 = append(v1, enc[idAt+16+4:len(enc)-4]...)
	binary.BigEndian.PutUint16(v1[len(sidecarMagic):], sidecarV1)
	v1 = binary.BigEndian.AppendUint32(v1, crc(v1))
	got, err = decodeSidecar(v1)
	if err != nil || got.TopicID != ([16]byte{}) || got.LeaderEpoch != -1 || got.EndOffset != sc.EndOffset || len(got.Chunks) != len(sc.Chunks) {
		t.Fatalf("v1: %v %+v", err, got)
	}
}
