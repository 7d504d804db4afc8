package metadata

import (
	"reflect"
	"testing"
)

// KIP-950: disabling a topic's remote storage moves its remote index under a
// RemoteOnly deletion in the same transaction that sets its configs and
// raises its log start offsets; the topic stays, and a deletion of the topic
// itself afterwards does not collide with it.
func TestDisableRemoteStorage(t *testing.T) {
	s, path := openTemp(t)
	mustCreate(t, s, "t", 2)
	mustCreate(t, s, "t.x", 1)
	for _, topic := range []string{"t", "t.x"} {
		must(t, s.SetLogStartOffset(topic, 0, 0))
		must(t, s.PutRemoteSegment(topic, 0, seg(0, 9, CopyFinished)))
		must(t, s.PutRemoteSegment(topic, 0, seg(10, 19, CopyFinished)))
	}
	must(t, s.SetLogStartOffset("t", 1, 50)) // above the local start given below: kept
	tt, _ := s.Topic("t")

	cfg := map[string]string{"remote.storage.enable": "false", "remote.log.delete.on.disable": "true"}
	d, ok, err := s.DisableRemoteStorage("t", cfg, map[int32]int64{0: 20, 1: 5})
	if err != nil || !ok {
		t.Fatalf("DisableRemoteStorage: %v %v", ok, err)
	}
	if !d.RemoteOnly || d.TopicID != tt.ID || d.ID == tt.ID || !d.LocalDone || d.Name != "t" || d.Partitions != 2 {
		t.Fatalf("deletion = %+v", d)
	}
	s = reopen(t, s, path)
	got, err := s.Topic("t")
	if err != nil || got.ID != tt.ID || !reflect.DeepEqual(got.Configs, cfg) {
		t.Fatalf("topic after: %+v %v", got, err)
	}
	if off, _, _ := s.LogStartOffset("t", 0); off != 20 {
		t.Errorf("log start of partition 0 = %d, want 20 (the local start)", off)
	}
	if off, _, _ := s.LogStartOffset("t", 1); off != 50 {
		t.Errorf("log start of partition 1 = %d, want 50 (never lowered)", off)
	}
	if segs, _ := s.RemoteSegments("t", 0); len(segs) != 0 {
		t.Errorf("remote index kept %d segments", len(segs))
	}
	if segs, _ := s.RemoteSegments("t.x", 0); len(segs) != 2 {
		t.Errorf("the neighbour's remote index has %d segments, want 2", len(segs))
	}
	dels, err := s.TopicDeletions()
	if err != nil || len(dels) != 1 || !reflect.DeepEqual(dels[0], d) {
		t.Fatalf("TopicDeletions = %+v %v; want %+v", dels, err, d)
	}
	if segs, _ := s.DeletedSegments(d.ID, 0); len(segs) != 2 || segs[1].BaseOffset != 10 {
		t.Errorf("DeletedSegments = %+v", segs)
	}

	// Tiering again records new segments in a fresh index; deleting the
	// topic itself is a second, separate deletion.
	must(t, s.PutRemoteSegment("t", 0, seg(20, 29, CopyFinished)))
	td, err := s.DeleteTopic("t")
	if err != nil || td.RemoteOnly || td.ID != tt.ID {
		t.Fatalf("DeleteTopic after disablement: %+v %v", td, err)
	}
	dels, _ = s.TopicDeletions()
	if len(dels) != 2 {
		t.Fatalf("TopicDeletions = %+v", dels)
	}
	if segs, _ := s.DeletedSegments(tt.ID, 0); len(segs) != 1 || segs[0].BaseOffset != 20 {
		t.Errorf("the topic deletion's segments = %+v", segs)
	}
	if segs, _ := s.DeletedSegments(d.ID, 0); len(segs) != 2 {
		t.Errorf("the disablement's segments = %+v", segs)
	}

	// No remote segment: the configs change and no deletion is recorded.
	_, ok, err = s.DisableRemoteStorage("t.x", nil, nil)
	must(t, err)
	if !ok {
		t.Fatal("t.x had remote segments")
	}
	_, ok, err = s.DisableRemoteStorage("t.x", map[string]string{"a": "b"}, nil)
	if err != nil || ok {
		t.Fatalf("nothing to move: %v %v", ok, err)
	}
	if x, _ := s.Topic("t.x"); x.Configs["a"] != "b" {
		t.Errorf("configs not set: %+v", x)
	}
	if _, _, err := s.DisableRemoteStorage("nope", nil, nil); err == nil {
		t.Error("an unknown topic")
	}
}

func TestDeletionEncodingKinds(t *testing.T) {
	for _, d := range []TopicDeletion{
		{ID: [16]byte{1}, Name: "a", Partitions: 3, DeletedAtMs: 7},
		{ID: [16]byte{2}, Name: "b", Partitions: 1, LocalDone: true, DeletedAtMs: 8, RemoteOnly: true, TopicID: [16]byte{9}},
	} {
		got, err := decodeDeletion(d.ID[:], encodeDeletion(d))
		if err != nil || got != d {
			t.Errorf("round trip %+v: %+v %v", d, got, err)
		}
	}
}
