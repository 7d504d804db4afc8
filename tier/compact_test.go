package tier

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/recbatch"
	"github.com/stratalog/strata/localstore"
	"github.com/stratalog/strata/remotestore"
	"github.com/stratalog/strata/remotestore/faultstore"
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

// keyedRecord is a record read back: offset, key and value.
type keyedRecord struct {
	off        int64
	key, value string
}

// decodeKeyed decodes uncompressed v2 batches (recbatch's) into records.
func decodeKeyed(t testing.TB, b []byte) []keyedRecord {
	t.Helper()
	var out []keyedRecord
	for len(b) > 0 {
		h, err := localstore.ParseBatchHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		var rb kmsg.RecordBatch
		if err := rb.ReadFrom(b[:h.TotalSize()]); err != nil {
			t.Fatal(err)
		}
		recs := rb.Records
		for i := int32(0); i < rb.NumRecords; i++ {
			l, n := binary.Varint(recs)
			var r kmsg.Record
			if err := r.ReadFrom(recs[:n+int(l)]); err != nil {
				t.Fatal(err)
			}
			out = append(out, keyedRecord{h.BaseOffset + int64(r.OffsetDelta), string(r.Key), string(r.Value)})
			recs = recs[n+int(l):]
		}
		b = b[h.TotalSize():]
	}
	return out
}

// wholeLog reads the partition from offset 0 as a consumer does: the remote
// tier below the local log start, then the local log.
func (e *env) wholeLog() []keyedRecord {
	e.t.Helper()
	var b []byte
	local := e.log.LogStartOffset()
	if local > 0 {
		b = e.readAll(0, local, 1<<20)
	}
	for off := local; off < e.log.LogEndOffset(); {
		sl, err := e.log.Read(off, 1<<20, true)
		if err != nil {
			e.t.Fatal(err)
		}
		got := sliceBytes(e.t, sl)
		b = append(b, got...)
		off = lastOffset(e.t, got) + 1
	}
	return decodeKeyed(e.t, b)
}

// latestOf is what a compacted log holds: each key's last record, in offset order.
func latestOf(all []keyedRecord) []keyedRecord {
	last := map[string]int64{}
	for _, r := range all {
		last[r.key] = r.off
	}
	var out []keyedRecord
	for _, r := range all {
		if last[r.key] == r.off {
			out = append(out, r)
		}
	}
	return out
}

// checkOwned fails unless the bucket holds exactly the objects of the index.
func (e *env) checkOwned() {
	e.t.Helper()
	want := map[string]bool{}
	for _, s := range e.remote() {
		want[logKey(testTopic, 0, s.BaseOffset, s.UploadID)] = true
		want[sidecarKey(testTopic, 0, s.BaseOffset, s.UploadID)] = true
	}
	keys := e.keys()
	for _, k := range keys {
		if !want[k] {
			e.t.Fatalf("object %s owned by no entry (index %+v)", k, e.remote())
		}
		delete(want, k)
	}
	if len(want) > 0 {
		e.t.Fatalf("entries without objects: %v", want)
	}
	if c, ok, err := e.meta.RemoteCompaction(testTopic, 0); err != nil || ok {
		e.t.Fatalf("compaction record left: %+v %v", c, err)
	}
	orphans, err := Reconcile(context.Background(), e.store, e.meta, 0, true)
	if err != nil || len(orphans) != 0 {
		e.t.Fatalf("reconcile: %v %v", orphans, err)
	}
}

// tieredKeys builds a compacted, tiered partition whose remote part is
// dirty: keys a..e uploaded, then newer values of a and b uploaded, and a
// newer c local only (local.retention.bytes=0 keeps nothing uploaded).
func tieredKeys(t *testing.T, e *env) (all []keyedRecord) {
	e.ret.LocalRetentionBytes = 0
	e.pl.Compaction.MinCleanableDirtyRatio = 1.1 // no remote compaction yet
	e.keyedSegment("one", "a", "b", "c", "d", "e")
	e.keyedSegment("two", "f", "g")
	e.manage() // the tier floor
	e.clean()
	e.manage()
	e.keyedSegment("three", "a", "b")
	e.clean()
	e.manage()
	if _, err := e.log.Append(recbatch.MakeKeyed([]string{"c"}, e.nextTs, "four")); err != nil {
		t.Fatal(err)
	}
	e.manage()
	if len(e.remote()) < 2 || e.log.LogStartOffset() == 0 {
		t.Fatalf("not tiered: remote %+v, local start %d", e.remote(), e.log.LogStartOffset())
	}
	all = e.wholeLog()
	e.pl.Compaction.MinCleanableDirtyRatio = 0.01
	return all
}

// Remote compaction drops every remote record a newer record of its key
// supersedes, remote or local, keeps offsets, and leaves the bucket with
// exactly the objects of the index.
func TestRemoteCompactionKeepsTheLatestOfEachKey(t *testing.T) {
	e := compactEnv(t, nil)
	all := tieredKeys(t, e)
	before := e.remote()
	e.manage()
	got := e.wholeLog()
	if want := latestOf(all); !slices.Equal(got, want) {
		t.Fatalf("after remote compaction:\n got %v\nwant %v", got, want)
	}
	after := e.remote()
	if after[0].BaseOffset != before[0].BaseOffset || after[len(after)-1].EndOffset != before[len(before)-1].EndOffset {
		t.Fatalf("remote range moved: %+v -> %+v", before, after)
	}
	e.checkOwned()
	if gauge(t, e.reg, "strata_tier_compaction_runs_total") != 1 || gauge(t, e.reg, "strata_tier_compaction_records_removed_total") != 3 {
		t.Fatalf("metrics: runs %v removed %v", gauge(t, e.reg, "strata_tier_compaction_runs_total"), gauge(t, e.reg, "strata_tier_compaction_records_removed_total"))
	}
	if off, _ := e.meta.RemoteCleanedUpTo(testTopic, 0); off != after[len(after)-1].EndOffset+1 {
		t.Fatalf("cleaned up to %d", off)
	}
	// Clean: another round compacts nothing.
	e.manage()
	if gauge(t, e.reg, "strata_tier_compaction_runs_total") != 1 {
		t.Fatal("a clean remote part compacted again")
	}
	// And a restart reads the same.
	e.open()
	if got2 := e.wholeLog(); !slices.Equal(got2, got) {
		t.Fatalf("after restart:\n got %v\nwant %v", got2, got)
	}
}

// A crash at every step of a remote compaction leaves the old set or the
// new one, every object owned, nothing lost; the restart settles it and the
// next round compacts.
func TestRemoteCompactionCrashAtEachStep(t *testing.T) {
	var steps []string
	{
		e := compactEnv(t, nil)
		tieredKeys(t, e)
		e.m.compactHook = func(s string) error { steps = append(steps, s); return nil }
		e.manage()
	}
	if len(steps) < 4 || steps[0] != "started" || !slices.Contains(steps, "switched") {
		t.Fatalf("steps %v", steps)
	}
	for i, step := range steps {
		t.Run(fmt.Sprintf("%d-%s", i, step), func(t *testing.T) {
			e := compactEnv(t, nil)
			all := tieredKeys(t, e)
			n := 0
			e.m.compactHook = func(s string) error {
				if n++; n == i+1 {
					return errCompactCrash
				}
				return nil
			}
			e.m.Manage(context.Background(), []PartitionLog{e.pl})
			e.m.waitIdle()
			switched := slices.Index(steps, "switched") <= i
			e.open() // the restart settles the compaction
			got := e.wholeLog()
			want := all
			if switched {
				want = latestOf(all)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("after a crash at %q (switched %t):\n got %v\nwant %v", step, switched, got, want)
			}
			e.checkOwned()
			e.manage()
			if got := e.wholeLog(); !slices.Equal(got, latestOf(all)) {
				t.Fatalf("compaction after the restart:\n got %v\nwant %v", got, latestOf(all))
			}
			e.checkOwned()
		})
	}
}

// A store failure in the middle of a compaction rolls it back in-line: the
// old set stays, nothing is left in the bucket, and a later round compacts.
func TestRemoteCompactionStoreFailureRollsBack(t *testing.T) {
	e := compactEnv(t, nil)
	all := tieredKeys(t, e)
	e.fault.Inject(faultstore.Fault{Op: remotestore.OpPut, Times: 1})
	e.m.Manage(context.Background(), []PartitionLog{e.pl})
	e.m.waitIdle()
	if got := e.wholeLog(); !slices.Equal(got, all) {
		t.Fatalf("after a failed compaction:\n got %v\nwant %v", got, all)
	}
	e.checkOwned()
	if gauge(t, e.reg, "strata_tier_compaction_errors_total") != 1 {
		t.Fatal("the failure was not counted")
	}
	e.clock.Advance(time.Second) // past the backoff
	e.manage()
	if got := e.wholeLog(); !slices.Equal(got, latestOf(all)) {
		t.Fatalf("after the retry:\n got %v\nwant %v", got, latestOf(all))
	}
	e.checkOwned()
}

// tombstoneBatch is a batch of one tombstone (a null value) for key.
func tombstoneBatch(key string, ts int64) []byte {
	r := kmsg.Record{Key: []byte(key)}
	body := r.AppendTo(nil)
	r.Length = int32(len(body) - 1)
	recs := r.AppendTo(nil)
	b := kmsg.RecordBatch{Magic: 2, FirstTimestamp: ts, MaxTimestamp: ts, ProducerID: -1, ProducerEpoch: -1,
		FirstSequence: -1, NumRecords: 1, Records: recs}
	b.Length = int32(localstore.HeaderSize - 12 + len(recs))
	raw := b.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return raw
}

// Remote compaction drops a tombstone past delete.retention.ms with the
// older records of its key, and a middle segment left empty; the first and
// last segments stay, so the remote range does not move.
func TestRemoteCompactionDropsTombstonesAndEmptiedSegments(t *testing.T) {
	e := compactEnv(t, nil)
	e.ret.LocalRetentionBytes = 0
	e.pl.Compaction.MinCleanableDirtyRatio = 1.1
	e.manage() // the tier floor
	e.keyedSegment("one", "a", "b")
	one := e.log.Segments()[0].Size
	e.log.SetConfig(localstore.Config{SegmentBytes: one}) // the cleaner does not merge them
	e.keyedSegment("two", "c")
	e.keyedSegment("three", "d")
	e.clean()
	e.manage()
	if _, err := e.log.Append(tombstoneBatch("c", e.nextTs)); err != nil {
		t.Fatal(err)
	}
	e.keyedSegment("four", "a")
	e.active(1)
	e.clean()
	e.manage()
	before := e.remote()
	if len(before) != 5 { // a b | c | d | tombstone c | a
		t.Fatalf("remote %+v", before)
	}
	all := e.wholeLog()
	e.pl.Compaction.MinCleanableDirtyRatio, e.pl.Compaction.DeleteRetentionMs = 0.01, 0
	e.manage()
	var want []keyedRecord
	for _, r := range latestOf(all) {
		if r.key != "c" {
			want = append(want, r)
		}
	}
	if got := e.wholeLog(); !slices.Equal(got, want) {
		t.Fatalf("after remote compaction:\n got %v\nwant %v", got, want)
	}
	after := e.remote()
	if len(after) != 3 || after[0].BaseOffset != before[0].BaseOffset || after[2].EndOffset != before[4].EndOffset {
		t.Fatalf("remote %+v -> %+v: the emptied middle segments go, the range stays", before, after)
	}
	e.checkOwned()
}
