package tier

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"
	"github.com/stratalog/strata/metadata"
	"github.com/stratalog/strata/remotestore"
	"github.com/stratalog/strata/remotestore/faultstore"
)

func TestCrashMidUploadRolledBack(t *testing.T) {
	e := newEnv(t, nil)
	e.segment(3, 10)
	e.segment(3, 10)
	e.manage()
	e.m.Close()
	done := e.remote()
	e.segment(3, 10) // 60..89

	// A crash after COPY_STARTED and the .log put, before the .idx.
	id := newUploadID()
	seg := metadata.RemoteSegment{BaseOffset: 60, EndOffset: 89, Size: 100, UploadID: id, State: metadata.CopyStarted}
	if err := e.meta.PutRemoteSegment(testTopic, 0, seg); err != nil {
		t.Fatal(err)
	}
	partial := logKey(testTopic, 0, 60, id)
	if err := e.mem.Put(context.Background(), partial, bytes.NewReader(make([]byte, 100)), 100); err != nil {
		t.Fatal(err)
	}
	// And a crash in the middle of a delete of the first segment.
	del := done[0]
	del.State = metadata.DeleteStarted
	if err := e.meta.PutRemoteSegment(testTopic, 0, del); err != nil {
		t.Fatal(err)
	}

	e.open()
	segs := e.remote()
	if len(segs) != 1 || segs[0].BaseOffset != 30 || segs[0].State != metadata.CopyFinished {
		t.Fatalf("after start-up recovery: %+v", segs)
	}
	keys := e.keys()
	if len(keys) != 2 || slices.Contains(keys, partial) {
		t.Fatalf("objects after start-up recovery: %v", keys)
	}
	if off, _ := e.m.LogStartOffset(testTopic, 0); off != 30 {
		t.Errorf("remote start %d", off)
	}
	// The segment whose upload was cut is uploaded afresh.
	e.manage()
	segs = e.remote()
	if len(segs) != 2 || segs[1].BaseOffset != 60 || segs[1].UploadID == id || segs[1].State != metadata.CopyFinished {
		t.Fatalf("after the next round: %+v", segs)
	}
	orphans, err := Reconcile(context.Background(), e.store, e.meta, 0, true)
	if err != nil || len(orphans) != 0 {
		t.Fatalf("orphans %v, %v", orphans, err)
	}
}

func TestStartUpRecoveryWithStoreDown(t *testing.T) {
	e := newEnv(t, nil)
	e.segment(3, 10)
	e.m.Close()
	id := newUploadID()
	if err := e.meta.PutRemoteSegment(testTopic, 0, metadata.RemoteSegment{BaseOffset: 0, EndOffset: 29, UploadID: id, State: metadata.CopyStarted}); err != nil {
		t.Fatal(err)
	}
	remove := e.fault.Inject(faultstore.Fault{})
	e.open() // does not fail; the roll-back waits for the store
	if segs := e.remote(); len(segs) != 1 || segs[0].State != metadata.CopyStarted {
		t.Fatalf("%+v", segs)
	}
	remove()
	e.manage()
	if segs := e.remote(); len(segs) != 1 || segs[0].State != metadata.CopyFinished || segs[0].UploadID == id {
		t.Fatalf("%+v", segs)
	}
}

func TestRecoverRebuildsIndex(t *testing.T) {
	e := newEnv(t, nil)
	for range 3 {
		e.segment(4, 10)
	}
	e.manage()
	want := e.remote()
	// A duplicate attempt at base 40, as a crash between the puts and
	// COPY_FINISHED followed by a retry leaves it, and a lone .log.
	dupID := newUploadID()
	first := want[1]
	for _, suffix := range []string{logSuffix, sidecarSuffix} {
		src := e.object(segmentKey(testTopic, 0, first.BaseOffset, first.UploadID, suffix))
		k := segmentKey(testTopic, 0, first.BaseOffset, dupID, suffix)
		if err := e.mem.Put(context.Background(), k, bytes.NewReader(src), int64(len(src))); err != nil {
			t.Fatal(err)
		}
	}
	lone := logKey(testTopic, 0, 80, newUploadID())
	if err := e.mem.Put(context.Background(), lone, strings.NewReader("xx"), 2); err != nil {
		t.Fatal(err)
	}
	// Something that is not ours.
	if err := e.mem.Put(context.Background(), "README", strings.NewReader("hi"), 2); err != nil {
		t.Fatal(err)
	}
	e.m.Close()

	fresh, err := metadata.Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	rep, err := Recover(context.Background(), e.store, fresh, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := fresh.RemoteSegments(testTopic, 0)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Segments != 3 || len(got) != 3 || !slices.Equal(rep.CreatedTopics, []string{testTopic}) {
		t.Fatalf("report %+v, index %+v", rep, got)
	}
	for i := range want {
		w, g := want[i], got[i]
		if g.BaseOffset != w.BaseOffset || g.EndOffset != w.EndOffset || g.Size != w.Size || g.CRC32C != w.CRC32C ||
			g.MaxTimestamp != w.MaxTimestamp || g.FirstTimestamp != w.FirstTimestamp || g.State != metadata.CopyFinished {
			t.Errorf("segment %d: recovered %+v, want %+v", i, g, w)
		}
		if i != 1 && g.UploadID != w.UploadID {
			t.Errorf("segment %d: upload id %s, want %s", i, g.UploadID, w.UploadID)
		}
	}
	// One of the two attempts at base 40 is kept, the other is an orphan,
	// as is the lone .log.
	kept := got[1].UploadID
	other := first.UploadID
	if kept == first.UploadID {
		other = dupID
	}
	wantOrphans := []string{logKey(testTopic, 0, 40, other), sidecarKey(testTopic, 0, 40, other), lone}
	slices.Sort(wantOrphans)
	if !slices.Equal(rep.Orphans, wantOrphans) {
		t.Errorf("orphans %v, want %v", rep.Orphans, wantOrphans)
	}
	if off, ok, _ := fresh.LogStartOffset(testTopic, 0); !ok || off != 0 {
		t.Errorf("log start %d %v", off, ok)
	}
	// Recovered index + Reconcile: the orphans go, the rest stays.
	deleted, err := Reconcile(context.Background(), e.store, fresh, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(deleted)
	if !slices.Equal(deleted, wantOrphans) {
		t.Errorf("reconcile deleted %v", deleted)
	}
	if n := len(e.keys()); n != 7 {
		t.Errorf("%d objects left, want 6 + README", n)
	}
}

func TestReconcile(t *testing.T) {
	e := newEnv(t, nil)
	e.segment(3, 10)
	e.segment(3, 10)
	e.manage()
	orphan := logKey(testTopic, 0, 0, newUploadID())
	other := sidecarKey("gone", 3, 500, newUploadID()) // a deleted topic's leftover
	for _, k := range []string{orphan, other, "unrelated/file.log"} {
		if err := e.mem.Put(context.Background(), k, strings.NewReader("x"), 1); err != nil {
			t.Fatal(err)
		}
	}
	// Within the grace period nothing goes.
	deleted, err := Reconcile(context.Background(), e.store, e.meta, time.Hour, false)
	if err != nil || len(deleted) != 0 {
		t.Fatalf("within grace: %v %v", deleted, err)
	}
	dry, err := Reconcile(context.Background(), e.store, e.meta, 0, true)
	if err != nil || len(dry) != 2 || len(e.keys()) != 7 {
		t.Fatalf("dry run: %v %v, %d objects", dry, err, len(e.keys()))
	}
	deleted, err = Reconcile(context.Background(), e.store, e.meta, 0, false)
	slices.Sort(deleted)
	want := []string{orphan, other}
	slices.Sort(want)
	if err != nil || !slices.Equal(deleted, want) {
		t.Fatalf("deleted %v %v, want %v", deleted, err, want)
	}
	if len(e.keys()) != 5 {
		t.Errorf("%d objects left, want 4 owned + 1 unrelated", len(e.keys()))
	}
	// The owned objects still read.
	e.ret.LocalRetentionBytes = 0
	e.manage()
	if got := e.readAll(0, 60, 1<<20); !bytes.Equal(got, e.bytesBetween(0, 60)) {
		t.Error("owned objects damaged")
	}
}

func TestPeriodicReconcile(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.ReconcileInterval = 20 * time.Millisecond })
	orphan := logKey(testTopic, 0, 0, newUploadID())
	if err := e.mem.Put(context.Background(), orphan, strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	wait.Eventually(t, "the reconciler", func() bool { return len(e.keys()) == 0 })
}

// deleteTopic deletes the test topic as the broker does: the committed
// decision, then ForgetTopic.
func (e *env) deleteTopic() metadata.TopicDeletion {
	e.t.Helper()
	d, err := e.meta.DeleteTopic(testTopic)
	if err != nil {
		e.t.Fatal(err)
	}
	e.m.ForgetTopic(testTopic, d.ID)
	return d
}

func TestDeleteTopic(t *testing.T) {
	e := newEnv(t, nil)
	e.segment(3, 10)
	e.segment(3, 10)
	e.manage()
	if len(e.keys()) != 4 {
		t.Fatal(e.keys())
	}
	// Read a chunk so that the cache holds one.
	if _, err := e.m.ReadMany(context.Background(), testTopic, 0, 0, 1<<20, true); err != nil {
		t.Fatal(err)
	}
	if st := e.m.cache.Stats(); st.Entries == 0 {
		t.Fatal("nothing cached")
	}
	d := e.deleteTopic()
	if _, ok := e.m.LogStartOffset(testTopic, 0); ok {
		t.Error("the deleted topic still has a remote start")
	}
	if len(e.m.Status(testTopic)) != 0 {
		t.Error("status of a deleted topic")
	}
	// A late Manage naming the deleted topic's ID changes nothing.
	e.m.Manage(context.Background(), []PartitionLog{e.pl})
	e.m.waitIdle()
	if len(e.m.Status(testTopic)) != 0 {
		t.Error("a late Manage brought the deleted topic back")
	}
	if len(e.keys()) != 4 {
		t.Fatalf("ForgetTopic deleted objects: %v", e.keys())
	}
	if err := e.m.PurgeTopic(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	if len(e.keys()) != 0 {
		t.Errorf("objects left: %v", e.keys())
	}
	if st := e.m.cache.Stats(); st.Entries != 0 {
		t.Errorf("%d cached chunks of the deleted topic left", st.Entries)
	}
	if ps, _ := e.meta.DeletedPartitions(d.ID); len(ps) != 0 {
		t.Errorf("segments left under the deletion: %v", ps)
	}
	if e.mem.Len() != 0 {
		t.Errorf("objects left, manifests included: %d", e.mem.Len())
	}
}

// A purge that fails part-way keeps what it has not deleted and finishes
// when repeated, after a restart too.
func TestPurgeTopicResumes(t *testing.T) {
	e := newEnv(t, nil)
	e.segment(3, 10)
	e.segment(3, 10)
	e.manage()
	d := e.deleteTopic()
	remove := e.fault.Inject(faultstore.Fault{Op: remotestore.OpDelete, Times: 1})
	err := e.m.PurgeTopic(context.Background(), d)
	remove()
	if err == nil {
		t.Fatal("a failed delete was not reported")
	}
	if segs, _ := e.meta.DeletedSegments(d.ID, 0); len(segs) != 2 {
		t.Fatalf("segments under the deletion: %+v", segs)
	}
	e.open()
	if err := e.m.PurgeTopic(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	if len(e.keys()) != 0 {
		t.Fatalf("after restart: %v", e.keys())
	}
}

func TestStatus(t *testing.T) {
	e := newEnv(t, nil)
	e.segment(3, 10)
	e.segment(3, 10)
	e.active(3)
	remove := e.fault.Inject(faultstore.Fault{Op: remotestore.OpPut, KeyPrefix: partitionPrefix(testTopic, 0) + "00000000000000000030-"})
	defer remove()
	e.manage()
	st := e.m.Status(testTopic)
	if len(st) != 1 {
		t.Fatalf("%+v", st)
	}
	s := st[0]
	if len(s.Local) != 3 || !s.Local[0].Uploaded || s.Local[1].Uploaded || s.Local[2].Uploaded || !s.Local[2].Active {
		t.Errorf("local %+v", s.Local)
	}
	if len(s.Remote) != 1 || s.Remote[0].State != "COPY_FINISHED" || s.CopyLagSegments != 1 || s.CopyLagBytes != s.Local[1].Size ||
		s.LastError == "" || s.HighestOffset != 29 || s.LogStartOffset != 0 {
		t.Errorf("status %+v", s)
	}
}

// Recover run while a deleted topic's cleanup is pending neither restores
// the topic from its manifest nor attaches its segments.
func TestRecoverSkipsPendingDeletions(t *testing.T) {
	e := newEnv(t, nil)
	e.segment(3, 10)
	e.manage()
	wait.Eventually(t, "the topic's manifest", func() bool { return len(e.manifestKeys()) > 0 })
	e.deleteTopic()
	e.m.Close()
	rep, err := Recover(context.Background(), e.store, e.meta, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.meta.Topic(testTopic); !errors.Is(err, metadata.ErrTopicNotFound) {
		t.Fatalf("recover restored a deleted topic: %v; report %+v", err, rep)
	}
	if rep.Segments != 0 {
		t.Fatalf("recover attached %d segments of a deleted topic", rep.Segments)
	}
}
