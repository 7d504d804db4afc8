package tier

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/stratalog/strata/internal/recbatch"
	"github.com/stratalog/strata/localstore"
)

// A log the cleaner compacted has gaps inside and between its segments.
// Tiered (after cleanup.policy goes from compact back to delete), every
// offset in a gap is read as Kafka reads it: from the next batch that
// exists, from the remote tier too, never OFFSET_OUT_OF_RANGE.
func TestRemoteReadAcrossCompactionGaps(t *testing.T) {
	e := newEnv(t, nil)
	keys := func(prefix string) []string {
		var ks []string
		for i := range 10 {
			ks = append(ks, fmt.Sprintf("%s%d", prefix, i))
		}
		return ks
	}
	// Offsets 0-9 keys a*, 10-19 b*, 20-29 b* again (10-19 become a gap),
	// 30-39 c*; one segment each, then an active segment.
	for _, prefix := range []string{"a", "b", "b", "c"} {
		if _, err := e.log.Append(recbatch.MakeKeyed(keys(prefix), e.nextTs, prefix)); err != nil {
			t.Fatal(err)
		}
		e.nextTs += 10
		if err := e.log.Roll(); err != nil {
			t.Fatal(err)
		}
	}
	e.active(1)
	// One batch per cleaned segment, so the removed batch leaves a gap
	// between segments (10-19), not only inside one.
	size := e.log.Segments()[0].Size
	e.log.SetConfig(localstore.Config{SegmentBytes: size})
	st, err := e.log.Clean(localstore.CleanConfig{Now: e.clock.Now()})
	if err != nil || st.RecordsRemoved != 10 {
		t.Fatalf("clean: %+v %v", st, err)
	}
	e.ret.LocalRetentionBytes = 0
	e.manage()
	if got := e.log.LogStartOffset(); got <= 30 {
		t.Fatalf("local log start %d: the cleaned segments are still local", got)
	}
	segs := e.remote()
	if len(segs) < 2 {
		t.Fatalf("remote segments %+v", segs)
	}
	// Each offset of the log below the local start is served: in the gap,
	// from the next batch.
	for _, c := range []struct{ offset, want int64 }{{0, 0}, {5, 0}, {10, 20}, {15, 20}, {20, 20}, {29, 20}, {30, 30}} {
		sls, err := e.m.ReadMany(context.Background(), testTopic, 0, c.offset, 1, true)
		if err != nil {
			t.Fatalf("read at %d: %v", c.offset, err)
		}
		if len(sls) == 0 {
			t.Fatalf("read at %d: nothing", c.offset)
		}
		var h [12]byte
		if _, err := sls[0].File.ReadAt(h[:], sls[0].Pos); err != nil {
			t.Fatal(err)
		}
		for _, sl := range sls {
			sl.Done()
		}
		if got := int64(binary.BigEndian.Uint64(h[:8])); got != c.want {
			t.Errorf("read at %d: first batch at %d, want %d", c.offset, got, c.want)
		}
	}
}
