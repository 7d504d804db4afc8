package tier

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/metadata"
	"github.com/stratalog/strata/remotestore"
	"github.com/stratalog/strata/remotestore/faultstore"
)

func TestUploadClosedSegmentsInOrder(t *testing.T) {
	e := newEnv(t, nil)
	e.segment(5, 10) // 0..49
	e.segment(5, 10) // 50..99
	e.segment(5, 10) // 100..149
	e.active(10)     // 150..159 stays local
	local := e.log.Segments()

	e.manage()
	segs := e.remote()
	if len(segs) != 3 {
		t.Fatalf("remote segments %+v, want 3", segs)
	}
	for i, s := range segs {
		if s.State != metadata.CopyFinished || s.BaseOffset != int64(i*50) || s.EndOffset != int64(i*50+49) || s.Size != local[i].Size {
			t.Errorf("segment %d: %+v", i, s)
		}
		logObj := e.object(logKey(testTopic, 0, s.BaseOffset, s.UploadID))
		if !bytes.Equal(logObj, readFile(t, local[i].LogPath)) {
			t.Errorf("segment %d: .log object differs from the local file", i)
		}
		sc, err := decodeSidecar(e.object(sidecarKey(testTopic, 0, s.BaseOffset, s.UploadID)))
		if err != nil {
			t.Fatal(err)
		}
		if len(sc.Batches) != 5 || sc.LogCRC != s.CRC32C || sc.Size != s.Size || len(sc.Chunks) < 2 {
			t.Errorf("segment %d: sidecar %d batches, %d chunks, crc %x (entry %x)", i, len(sc.Batches), len(sc.Chunks), sc.LogCRC, s.CRC32C)
		}
	}
	if n := len(e.keys()); n != 6 {
		t.Errorf("%d objects, want 6: %v", n, e.keys())
	}
	if off, ok := e.m.HighestOffset(testTopic, 0); !ok || off != 149 {
		t.Errorf("HighestOffset = %d, %v", off, ok)
	}
	if off, ok := e.m.LogStartOffset(testTopic, 0); !ok || off != 0 {
		t.Errorf("LogStartOffset = %d, %v", off, ok)
	}
	// Retention is off: every local segment stays.
	if got := len(e.log.Segments()); got != 4 {
		t.Errorf("%d local segments, want 4", got)
	}
	if v := gauge(t, e.reg, "strata_tier_copy_requests_total"); v != 3 {
		t.Errorf("copy requests %v", v)
	}
	if v := gauge(t, e.reg, "strata_tier_copy_lag_segments"); v != 0 {
		t.Errorf("copy lag %v", v)
	}
	if v := gauge(t, e.reg, "strata_tier_time_to_tier_seconds"); v != 3 {
		t.Errorf("time to tier samples %v", v)
	}

	// A second round uploads nothing more.
	e.manage()
	if n := len(e.keys()); n != 6 {
		t.Errorf("%d objects after a second round", n)
	}
}

func TestUploadWaitsForPreviousSegment(t *testing.T) {
	e := newEnv(t, nil)
	e.segment(3, 10) // 0..29
	e.segment(3, 10) // 30..59
	e.segment(3, 10) // 60..89
	// The second segment's .log fails: the third must not go before it.
	remove := e.fault.Inject(faultstore.Fault{Op: remotestore.OpPut, KeyPrefix: partitionPrefix(testTopic, 0) + "00000000000000000030-"})
	e.manage()
	segs := e.remote()
	if len(segs) != 1 || segs[0].BaseOffset != 0 || segs[0].State != metadata.CopyFinished {
		t.Fatalf("remote segments %+v, want only base 0", segs)
	}
	for _, k := range e.keys() {
		if !strings.Contains(k, "/00000000000000000000-") {
			t.Errorf("unexpected object %s", k)
		}
	}
	if v := gauge(t, e.reg, "strata_tier_copy_lag_segments"); v != 2 {
		t.Errorf("copy lag segments %v, want 2", v)
	}
	// The rollback's deletes succeeded after the failed put: the store
	// answers, so it counts as available (from its last calls' outcomes).
	if st := e.m.health.State(); st.LastFailure.IsZero() || st.Op != remotestore.OpPut {
		t.Errorf("health %+v, want the put's failure recorded", st)
	}
	remove()
	e.clock.Advance(time.Second)
	e.manage()
	segs = e.remote()
	if len(segs) != 3 {
		t.Fatalf("after recovery: %+v", segs)
	}
	if v := gauge(t, e.reg, "strata_tier_copy_errors_total"); v != 1 {
		t.Errorf("copy errors %v", v)
	}
	if v := gauge(t, e.reg, "strata_tier_store_available"); v != 1 {
		t.Errorf("store available %v", v)
	}
}

func TestLocalRetentionOnlyAfterCopy(t *testing.T) {
	e := newEnv(t, nil)
	e.ret.LocalRetentionBytes = 0
	e.segment(4, 10)
	e.segment(4, 10)
	e.active(5)

	// Store down: nothing is uploaded, so nothing local may go.
	remove := e.fault.Inject(faultstore.Fault{})
	e.manage()
	if got := len(e.log.Segments()); got != 3 {
		t.Fatalf("%d local segments with the store down, want 3", got)
	}
	if len(e.remote()) != 0 || len(e.keys()) != 0 {
		t.Fatalf("index %+v / objects %v after failed uploads", e.remote(), e.keys())
	}
	remove()
	e.clock.Advance(time.Second)

	e.manage()
	segs := e.log.Segments()
	if len(segs) != 1 || !segs[0].Active || segs[0].BaseOffset != 80 {
		t.Fatalf("local segments after upload with local.retention.bytes=0: %+v", segs)
	}
	if e.log.LogStartOffset() != 80 {
		t.Errorf("local log start %d", e.log.LogStartOffset())
	}
	if off, ok, _ := e.meta.LogStartOffset(testTopic, 0); !ok || off != 0 {
		t.Errorf("persisted log start %d %v, want 0 (the remote start)", off, ok)
	}
}

func TestLocalRetentionByTime(t *testing.T) {
	e := newEnv(t, nil)
	e.segment(2, 10) // timestamps from 1_000_000
	e.segment(2, 10)
	e.active(1)
	e.ret.LocalRetentionMs = 1000
	e.clock.Set(time.UnixMilli(1_000_000 + 500))
	e.manage()
	if got := len(e.log.Segments()); got != 3 {
		t.Fatalf("deleted before local.retention.ms: %d segments", got)
	}
	e.clock.Set(time.UnixMilli(1_000_000 + 40 + 2000))
	e.manage()
	if got := len(e.log.Segments()); got != 1 {
		t.Fatalf("%d local segments after local.retention.ms, want 1", got)
	}
}

func TestRemoteRetention(t *testing.T) {
	e := newEnv(t, nil)
	for range 4 {
		e.segment(2, 10)
	}
	e.active(1)
	e.manage()
	if len(e.remote()) != 4 {
		t.Fatal(e.remote())
	}
	size := e.remote()[0].Size
	// Keep about two segments: the two oldest go, remote and local.
	e.ret.RetentionBytes = 2*size + 100
	e.manage()
	segs := e.remote()
	if len(segs) != 2 || segs[0].BaseOffset != 40 {
		t.Fatalf("remote after retention: %+v", segs)
	}
	if n := len(e.keys()); n != 4 {
		t.Errorf("%d objects, want 4", n)
	}
	if off, _ := e.m.LogStartOffset(testTopic, 0); off != 40 {
		t.Errorf("remote log start %d", off)
	}
	if e.log.LogStartOffset() != 40 {
		t.Errorf("local log start %d, want 40 (below the cut goes too)", e.log.LogStartOffset())
	}
	if off, _, _ := e.meta.LogStartOffset(testTopic, 0); off != 40 {
		t.Errorf("persisted log start %d", off)
	}
	if _, err := e.m.Read(context.Background(), testTopic, 0, 10, 1<<20, true); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Errorf("read below the remote start: %v", err)
	}
}
