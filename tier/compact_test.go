package tier

import (
	"math"
	"testing"

	"github.com/stratalog/strata/internal/recbatch"
	"github.com/stratalog/strata/localstore"
)

// compactEnv is an env whose topic is compacted and tiers.
func compactEnv(t *testing.T, tweak func(*Config)) *env {
	e := newEnv(t, tweak)
	e.pl.Compaction = &Compaction{MaxCompactionLagMs: math.MaxInt64, DeleteRetentionMs: 86400000, MinCleanableDirtyRatio: 0.5}
	e.ret.CompactOnly = true
	return e
}

// keyedSegment appends one batch with a record per key (values tagged) and rolls.
func (e *env) keyedSegment(tag string, keys ...string) {
	e.t.Helper()
	if _, err := e.log.Append(recbatch.MakeKeyed(keys, e.nextTs, tag)); err != nil {
		e.t.Fatal(err)
	}
	e.nextTs += int64(len(keys))
	if err := e.log.Roll(); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) clean() localstore.CleanStats {
	e.t.Helper()
	st, err := e.log.Clean(localstore.CleanConfig{Now: e.clock.Now(), DeleteRetentionMs: e.pl.Compaction.DeleteRetentionMs, Tiered: true})
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

// A compacted topic's segment is uploaded only once the local cleaner has
// cleaned it; once pinned for upload the cleaner leaves it alone.
func TestCompactedSegmentsUploadOnceCleaned(t *testing.T) {
	e := compactEnv(t, nil)
	e.keyedSegment("a", "x", "y")
	e.keyedSegment("b", "x", "z")
	e.active(1)
	if st := e.clean(); st.Passes != 0 {
		t.Fatalf("cleaned before the tier floor is known: %+v", st)
	}
	e.manage()
	if segs := e.remote(); len(segs) != 0 {
		t.Fatalf("uncleaned segments uploaded: %+v", segs)
	}
	if st := e.clean(); st.Passes != 1 || st.RecordsRemoved != 1 {
		t.Fatalf("clean: %+v", st)
	}
	e.manage()
	segs := e.remote()
	if len(segs) == 0 || segs[len(segs)-1].EndOffset != 3 {
		t.Fatalf("cleaned segments not uploaded: %+v", segs)
	}
	// More dirty data: the cleaner cleans it, and leaves the uploaded part.
	e.keyedSegment("c", "y")
	before := e.log.Segments()
	e.clean()
	after := e.log.Segments()
	if before[0] != after[0] {
		t.Fatalf("an uploaded segment was rewritten: %+v -> %+v", before[0], after[0])
	}
	// min.compaction.lag.ms holds an upload back, max.compaction.lag.ms lets
	// an uncleaned one go.
	e.pl.Compaction.MinCompactionLagMs = math.MaxInt64 / 2
	e.keyedSegment("d", "w")
	e.manage()
	if got := e.remote()[len(e.remote())-1].EndOffset; got != 3 {
		t.Fatalf("uploaded up to %d inside min.compaction.lag.ms", got)
	}
	e.pl.Compaction.MinCompactionLagMs, e.pl.Compaction.MaxCompactionLagMs = 0, 1
	e.manage()
	if got := e.remote()[len(e.remote())-1].EndOffset; got != 6 {
		t.Fatalf("uploaded up to %d past max.compaction.lag.ms, want 6", got)
	}
}
