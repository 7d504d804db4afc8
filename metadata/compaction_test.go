package metadata

import (
	"errors"
	"reflect"
	"testing"
)

func TestRemoteCompactionStartSwitchDrop(t *testing.T) {
	s, path := openTemp(t)
	if err := s.CreateTopic(Topic{Name: "c", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	seg := func(base, end int64, id string) RemoteSegment {
		return RemoteSegment{BaseOffset: base, EndOffset: end, Size: 10, UploadID: id, State: CopyFinished, MaxTimestamp: 5}
	}
	for _, sg := range []RemoteSegment{seg(0, 9, "a"), seg(10, 19, "b"), seg(20, 29, "c")} {
		if err := s.PutRemoteSegment("c", 0, sg); err != nil {
			t.Fatal(err)
		}
	}
	c := RemoteCompaction{Old: []RemoteSegment{seg(0, 9, "a"), seg(10, 19, "b")}, New: []RemoteSegment{seg(0, 9, "a2")}, CleanedUpTo: 30}
	if err := s.StartRemoteCompaction("c", 0, c); err != nil {
		t.Fatal(err)
	}
	if err := s.StartRemoteCompaction("c", 0, c); !errors.Is(err, ErrInvalid) {
		t.Fatalf("second start: %v", err)
	}
	s = reopen(t, s, path)
	got, ok, err := s.RemoteCompaction("c", 0)
	c.State = CompactionStarted
	if err != nil || !ok || !reflect.DeepEqual(got, c) {
		t.Fatalf("RemoteCompaction: %+v %t %v, want %+v", got, ok, err, c)
	}
	if tps, err := s.RemoteCompactions(); err != nil || len(tps) != 1 {
		t.Fatalf("RemoteCompactions: %v %v", tps, err)
	}
	if err := s.SwitchRemoteCompaction("c", 0); err != nil {
		t.Fatal(err)
	}
	segs, _ := s.RemoteSegments("c", 0)
	if len(segs) != 2 || segs[0].UploadID != "a2" || segs[1].UploadID != "c" {
		t.Fatalf("index after the switch: %+v", segs)
	}
	if off, err := s.RemoteCleanedUpTo("c", 0); err != nil || off != 30 {
		t.Fatalf("cleaned up to %d %v", off, err)
	}
	if got, _, _ := s.RemoteCompaction("c", 0); got.State != CompactionSwitched {
		t.Fatalf("state %s", got.State)
	}
	if err := s.SwitchRemoteCompaction("c", 0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("second switch: %v", err)
	}
	if err := s.DropRemoteCompaction("c", 0); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.RemoteCompaction("c", 0); ok {
		t.Fatal("record left after drop")
	}

	// A switch whose old entries changed meanwhile changes nothing.
	c2 := RemoteCompaction{Old: []RemoteSegment{seg(20, 29, "zz")}, New: []RemoteSegment{seg(20, 29, "c2")}, CleanedUpTo: -1}
	if err := s.StartRemoteCompaction("c", 0, c2); err != nil {
		t.Fatal(err)
	}
	if err := s.SwitchRemoteCompaction("c", 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("switch over a changed index: %v", err)
	}
	if segs2, _ := s.RemoteSegments("c", 0); !reflect.DeepEqual(segs2, segs) {
		t.Fatalf("index changed by a refused switch: %+v", segs2)
	}
	// Deleting the topic drops its compaction state.
	if _, err := s.DeleteTopic("c"); err != nil {
		t.Fatal(err)
	}
	if tps, _ := s.RemoteCompactions(); len(tps) != 0 {
		t.Fatalf("compaction of a deleted topic: %v", tps)
	}
}
