package metadata

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/stratalog/strata/internal/wait"
)

func openTemp(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "meta.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func reopen(t *testing.T, s *Store, path string) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s2.Close() })
	return s2
}

func mustCreate(t *testing.T, s *Store, name string, parts int32) {
	t.Helper()
	if err := s.CreateTopic(Topic{Name: name, Partitions: parts}); err != nil {
		t.Fatal(err)
	}
}

func seg(base, end int64, state RemoteState) RemoteSegment {
	return RemoteSegment{
		BaseOffset: base, EndOffset: end, FirstTimestamp: 1000 + base, MaxTimestamp: 2000 + end,
		Size: 4096, LeaderEpoch: 3, UploadID: fmt.Sprintf("up-%d", base), State: state,
		CRC32C: 0xdeadbeef, RolledAtMs: 5, UpdatedAtMs: 6,
	}
}

func TestTopicsRoundTripAndReopen(t *testing.T) {
	s, path := openTemp(t)
	id := [16]byte{1, 2, 3}
	want := Topic{Name: "orders", ID: id, Partitions: 3, Configs: map[string]string{"retention.ms": "1000", "segment.bytes": "1048576"}}
	if err := s.CreateTopic(want); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateTopic(want); !errors.Is(err, ErrTopicExists) {
		t.Fatalf("second create: %v, want ErrTopicExists", err)
	}
	mustCreate(t, s, "a-first", 1)

	s = reopen(t, s, path)
	ts, err := s.Topics()
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 2 || ts[0].Name != "a-first" || !reflect.DeepEqual(ts[1], want) {
		t.Fatalf("topics after reopen = %+v", ts)
	}
	if ts[0].ID == ([16]byte{}) || ts[0].ID[6]>>4 != 4 {
		t.Fatalf("generated id %x is not a v4 uuid", ts[0].ID)
	}

	if err := s.SetTopicConfigs("orders", map[string]string{"cleanup.policy": "delete"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPartitionCount("orders", 5); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPartitionCount("orders", 4); !errors.Is(err, ErrInvalid) {
		t.Fatalf("shrink: %v, want ErrInvalid", err)
	}
	got, err := s.Topic("orders")
	if err != nil {
		t.Fatal(err)
	}
	if got.Partitions != 5 || !reflect.DeepEqual(got.Configs, map[string]string{"cleanup.policy": "delete"}) || got.ID != id {
		t.Fatalf("after updates: %+v", got)
	}
	if err := s.SetTopicConfigs("orders", nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Topic("orders"); len(got.Configs) != 0 {
		t.Fatalf("configs not cleared: %v", got.Configs)
	}
	for _, err := range []error{
		s.SetTopicConfigs("nope", nil),
		s.SetPartitionCount("nope", 3),
		func() error { _, err := s.DeleteTopic("nope"); return err }(),
		func() error { _, err := s.Topic("nope"); return err }(),
	} {
		if !errors.Is(err, ErrTopicNotFound) {
			t.Errorf("missing topic: %v, want ErrTopicNotFound", err)
		}
	}
	for _, bad := range []Topic{{Name: "", Partitions: 1}, {Name: "a\x00b", Partitions: 1}, {Name: "x", Partitions: 0}} {
		if err := s.CreateTopic(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("CreateTopic(%q, %d) = %v, want ErrInvalid", bad.Name, bad.Partitions, err)
		}
	}
}

func TestLogStartOffset(t *testing.T) {
	s, path := openTemp(t)
	mustCreate(t, s, "t", 2)
	if _, ok, err := s.LogStartOffset("t", 0); ok || err != nil {
		t.Fatalf("unset: ok=%v err=%v", ok, err)
	}
	if err := s.SetLogStartOffset("t", 1, 42); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLogStartOffset("t", 2, 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("partition out of range: %v", err)
	}
	if err := s.SetLogStartOffset("u", 0, 1); !errors.Is(err, ErrTopicNotFound) {
		t.Fatalf("unknown topic: %v", err)
	}
	if err := s.SetLogStartOffset("t", 0, -1); !errors.Is(err, ErrInvalid) {
		t.Fatalf("negative offset: %v", err)
	}
	s = reopen(t, s, path)
	if off, ok, err := s.LogStartOffset("t", 1); off != 42 || !ok || err != nil {
		t.Fatalf("after reopen: %d %v %v", off, ok, err)
	}
}

func TestProducerIDsNeverRepeat(t *testing.T) {
	s, path := openTemp(t)
	seen := map[int64]bool{}
	take := func(n int64) {
		first, err := s.AllocateProducerIDs(n)
		if err != nil {
			t.Fatal(err)
		}
		for id := first; id < first+n; id++ {
			if seen[id] {
				t.Fatalf("id %d handed out twice", id)
			}
			seen[id] = true
		}
	}
	take(1)
	take(10)
	s = reopen(t, s, path)
	take(5)
	if len(seen) != 16 {
		t.Fatalf("got %d ids", len(seen))
	}
	if _, err := s.AllocateProducerIDs(0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("n=0: %v", err)
	}
}

func TestGroupOffsets(t *testing.T) {
	s, path := openTemp(t)
	commits := []OffsetCommit{
		{Topic: "b", Partition: 0, Offset: 7, LeaderEpoch: -1, Metadata: "m", CommitTimestamp: 100},
		{Topic: "a", Partition: 256, Offset: 9, LeaderEpoch: 2, CommitTimestamp: 300},
		{Topic: "a", Partition: 1, Offset: 8, LeaderEpoch: 2, CommitTimestamp: 200},
	}
	if err := s.CommitOffsets("g1", commits); err != nil {
		t.Fatal(err)
	}
	if err := s.CommitOffsets("g2", commits[:1]); err != nil {
		t.Fatal(err)
	}
	if err := s.CommitOffsets("", commits); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty group: %v", err)
	}
	s = reopen(t, s, path)
	got, err := s.GroupOffsets("g1")
	if err != nil {
		t.Fatal(err)
	}
	want := []OffsetCommit{commits[2], commits[1], commits[0]} // topic, then numeric partition
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("GroupOffsets = %+v\nwant %+v", got, want)
	}
	if groups, _ := s.OffsetGroups(); !reflect.DeepEqual(groups, []string{"g1", "g2"}) {
		t.Fatalf("groups = %v", groups)
	}
	if got, err := s.GroupOffsets("none"); got != nil || err != nil {
		t.Fatalf("unknown group: %v %v", got, err)
	}

	// Overwrite, then delete single partitions.
	if err := s.CommitOffsets("g1", []OffsetCommit{{Topic: "b", Partition: 0, Offset: 70, CommitTimestamp: 400}}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteOffsets("g1", []TopicPartition{{"a", 1}, {"zz", 3}}); err != nil {
		t.Fatal(err)
	}
	got, _ = s.GroupOffsets("g1")
	if len(got) != 2 || got[0].Partition != 256 || got[1].Offset != 70 {
		t.Fatalf("after delete: %+v", got)
	}
	if err := s.DeleteOffsets("g2", []TopicPartition{{"b", 0}}); err != nil {
		t.Fatal(err)
	}
	if groups, _ := s.OffsetGroups(); !reflect.DeepEqual(groups, []string{"g1"}) {
		t.Fatalf("empty group still listed: %v", groups)
	}
	if err := s.DeleteGroupOffsets("g1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteGroupOffsets("g1"); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	if groups, _ := s.OffsetGroups(); len(groups) != 0 {
		t.Fatalf("groups = %v", groups)
	}
}

func TestExpireOffsets(t *testing.T) {
	s, _ := openTemp(t)
	for _, g := range []string{"active", "idle", "mixed"} {
		err := s.CommitOffsets(g, []OffsetCommit{
			{Topic: "t", Partition: 0, CommitTimestamp: 10},
			{Topic: "t", Partition: 1, CommitTimestamp: 20},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CommitOffsets("mixed", []OffsetCommit{{Topic: "t", Partition: 1, CommitTimestamp: 99}}); err != nil {
		t.Fatal(err)
	}
	n, err := s.ExpireOffsets(50, func(g string) bool {
		// keep runs outside the transaction: calling back into the store is fine.
		if _, err := s.GroupOffsets(g); err != nil {
			t.Error(err)
		}
		return g == "active"
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("expired %d, want 3", n)
	}
	groups, _ := s.OffsetGroups()
	if !reflect.DeepEqual(groups, []string{"active", "mixed"}) {
		t.Fatalf("groups = %v", groups)
	}
	if got, _ := s.GroupOffsets("mixed"); len(got) != 1 || got[0].CommitTimestamp != 99 {
		t.Fatalf("mixed = %+v", got)
	}
}

func TestRemoteIndexFloor(t *testing.T) {
	s, path := openTemp(t)
	mustCreate(t, s, "t", 2)
	// Bases chosen so byte order and numeric order would differ with
	// variable-width or little-endian keys.
	for _, sg := range []RemoteSegment{seg(0, 99, CopyFinished), seg(100, 255, CopyFinished), seg(256, 299, CopyStarted), seg(1<<40, 1<<40+10, DeleteStarted)} {
		if err := s.PutRemoteSegment("t", 0, sg); err != nil {
			t.Fatal(err)
		}
	}
	s = reopen(t, s, path)
	cases := []struct {
		off   int64
		base  int64
		found bool
	}{
		{-1, 0, false},
		{0, 0, true},     // exact first
		{50, 0, true},    // inside first
		{99, 0, true},    // last offset of first
		{100, 100, true}, // exact
		{255, 100, true}, // just below a base that differs in its low byte
		{256, 256, true}, // exact
		{300, 256, true}, // gap after a segment: floor still returned
		{1<<40 - 1, 256, true},
		{1 << 40, 1 << 40, true},
		{1<<62 + 5, 1 << 40, true}, // past the last key
	}
	for _, c := range cases {
		got, ok, err := s.FloorRemoteSegment("t", 0, c.off)
		if err != nil || ok != c.found || (ok && got.BaseOffset != c.base) {
			t.Errorf("Floor(%d) = base %d, %v, %v; want %d, %v", c.off, got.BaseOffset, ok, err, c.base, c.found)
		}
	}
	if got, _, _ := s.FloorRemoteSegment("t", 0, 100); !reflect.DeepEqual(got, seg(100, 255, CopyFinished)) {
		t.Errorf("round trip: %+v", got)
	}
	if _, ok, err := s.FloorRemoteSegment("t", 1, 100); ok || err != nil {
		t.Errorf("empty partition: %v %v", ok, err)
	}

	// Empty-below case: only a segment above the offset.
	mustCreate(t, s, "u", 1)
	if err := s.PutRemoteSegment("u", 0, seg(500, 600, CopyFinished)); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.FloorRemoteSegment("u", 0, 499); ok || err != nil {
		t.Errorf("below first: %v %v", ok, err)
	}

	all, err := s.RemoteSegments("t", 0)
	if err != nil || len(all) != 4 || all[2].BaseOffset != 256 || all[3].BaseOffset != 1<<40 {
		t.Fatalf("RemoteSegments = %+v, %v", all, err)
	}
	// State transition is an overwrite at the same base.
	if err := s.PutRemoteSegment("t", 0, seg(256, 299, CopyFinished)); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := s.FloorRemoteSegment("t", 0, 260); got.State != CopyFinished {
		t.Fatalf("state = %v", got.State)
	}
	if tps, _ := s.RemotePartitions(); !reflect.DeepEqual(tps, []TopicPartition{{"t", 0}, {"u", 0}}) {
		t.Fatalf("RemotePartitions = %v", tps)
	}
	if err := s.DeleteRemoteSegment("u", 0, 500); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRemoteSegment("u", 0, 500); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if tps, _ := s.RemotePartitions(); !reflect.DeepEqual(tps, []TopicPartition{{"t", 0}}) {
		t.Fatalf("RemotePartitions after emptying u-0 = %v", tps)
	}
}

func TestRemoteSegmentValidation(t *testing.T) {
	s, _ := openTemp(t)
	mustCreate(t, s, "t", 1)
	bad := []RemoteSegment{
		{BaseOffset: -1, EndOffset: 5, State: CopyStarted},
		{BaseOffset: 10, EndOffset: 5, State: CopyStarted},
		{BaseOffset: 0, EndOffset: 5, State: 0},
		{BaseOffset: 0, EndOffset: 5, State: 9},
		{BaseOffset: 0, EndOffset: 5, State: CopyStarted, Size: -1},
	}
	for _, sg := range bad {
		if err := s.PutRemoteSegment("t", 0, sg); !errors.Is(err, ErrInvalid) {
			t.Errorf("Put(%+v) = %v, want ErrInvalid", sg, err)
		}
	}
	if err := s.PutRemoteSegment("t", 1, seg(0, 1, CopyStarted)); !errors.Is(err, ErrNotFound) {
		t.Errorf("partition out of range: %v", err)
	}
	if err := s.PutRemoteSegment("gone", 0, seg(0, 1, CopyStarted)); !errors.Is(err, ErrTopicNotFound) {
		t.Errorf("unknown topic: %v", err)
	}
}

func TestDeleteTopicRemovesEverything(t *testing.T) {
	s, path := openTemp(t)
	mustCreate(t, s, "t", 2)
	mustCreate(t, s, "t.x", 1) // shares the "t" prefix, not "t\x00"
	for _, topic := range []string{"t", "t.x"} {
		if err := s.SetLogStartOffset(topic, 0, 10); err != nil {
			t.Fatal(err)
		}
		if err := s.PutRemoteSegment(topic, 0, seg(0, 9, CopyFinished)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutRemoteSegment("t", 1, seg(0, 9, CopyFinished)); err != nil {
		t.Fatal(err)
	}
	if err := s.CommitOffsets("g", []OffsetCommit{{Topic: "t", Partition: 1, Offset: 3}, {Topic: "t.x", Partition: 0, Offset: 4}}); err != nil {
		t.Fatal(err)
	}
	if err := s.CommitOffsets("only-t", []OffsetCommit{{Topic: "t", Partition: 0, Offset: 3}}); err != nil {
		t.Fatal(err)
	}
	tt, _ := s.Topic("t")
	d, err := s.DeleteTopic("t")
	if err != nil {
		t.Fatal(err)
	}
	if d.ID != tt.ID || d.Name != "t" || d.Partitions != 2 || d.LocalDone {
		t.Fatalf("deletion = %+v", d)
	}
	s = reopen(t, s, path)
	if ts, _ := s.Topics(); len(ts) != 1 || ts[0].Name != "t.x" {
		t.Fatalf("topics = %+v", ts)
	}
	if _, ok, _ := s.LogStartOffset("t", 0); ok {
		t.Error("partition state survived")
	}
	if _, ok, _ := s.LogStartOffset("t.x", 0); !ok {
		t.Error("neighbour's partition state deleted")
	}
	if tps, _ := s.RemotePartitions(); !reflect.DeepEqual(tps, []TopicPartition{{"t.x", 0}}) {
		t.Errorf("RemotePartitions = %v", tps)
	}
	if got, _ := s.GroupOffsets("g"); len(got) != 1 || got[0].Topic != "t.x" {
		t.Errorf("group offsets = %+v", got)
	}
	if groups, _ := s.OffsetGroups(); !reflect.DeepEqual(groups, []string{"g"}) {
		t.Errorf("groups = %v", groups)
	}
	// The deletion survived the reopen with the remote index it must clean up.
	dels, err := s.TopicDeletions()
	if err != nil || len(dels) != 1 || dels[0].ID != tt.ID {
		t.Fatalf("TopicDeletions = %+v, %v", dels, err)
	}
	if ps, _ := s.DeletedPartitions(tt.ID); !reflect.DeepEqual(ps, []int32{0, 1}) {
		t.Errorf("DeletedPartitions = %v", ps)
	}
	if segs, _ := s.DeletedSegments(tt.ID, 1); len(segs) != 1 || segs[0].EndOffset != 9 {
		t.Errorf("DeletedSegments = %+v", segs)
	}
	// Re-creating the name starts clean.
	mustCreate(t, s, "t", 1)
	if segs, _ := s.RemoteSegments("t", 0); len(segs) != 0 {
		t.Errorf("re-created topic inherited %d remote segments", len(segs))
	}
	if err := s.SetDeletionLocalDone(tt.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DropDeletedSegment(tt.ID, 0, 0); err != nil {
		t.Fatal(err)
	}
	if ps, _ := s.DeletedPartitions(tt.ID); !reflect.DeepEqual(ps, []int32{1}) {
		t.Errorf("DeletedPartitions after a drop = %v", ps)
	}
	if err := s.FinishTopicDeletion(tt.ID); err != nil {
		t.Fatal(err)
	}
	if dels, _ := s.TopicDeletions(); len(dels) != 0 {
		t.Errorf("deletions after finishing = %+v", dels)
	}
	if ps, _ := s.DeletedPartitions(tt.ID); len(ps) != 0 {
		t.Errorf("DeletedPartitions after finishing = %v", ps)
	}
}

// TestCorruption flips one byte of each kind of value through a raw bbolt
// update and expects ErrCorrupt naming the bucket.
func TestCorruption(t *testing.T) {
	cases := []struct {
		name   string
		bucket []string // path of buckets
		key    []byte
		read   func(s *Store) error
	}{
		{"topic", []string{"topics"}, []byte("t"), func(s *Store) error { _, err := s.Topics(); return err }},
		{"partition", []string{"partitions"}, partitionKey("t", 0), func(s *Store) error { _, _, err := s.LogStartOffset("t", 0); return err }},
		{"producer ids", []string{"producer_ids"}, keyNextID, func(s *Store) error { _, err := s.AllocateProducerIDs(1); return err }},
		{"commit", []string{"group_offsets", "g"}, partitionKey("t", 0), func(s *Store) error { _, err := s.GroupOffsets("g"); return err }},
		{"remote", []string{"remote_index", string(partitionKey("t", 0))}, offsetKey(100), func(s *Store) error {
			_, _, err := s.FloorRemoteSegment("t", 0, 150)
			return err
		}},
	}
	for _, c := range cases {
		for _, pos := range []string{"first", "middle", "last"} {
			t.Run(c.name+"/"+pos, func(t *testing.T) {
				s, path := openTemp(t)
				mustCreate(t, s, "t", 1)
				must(t, s.SetLogStartOffset("t", 0, 5))
				_, err := s.AllocateProducerIDs(3)
				must(t, err)
				must(t, s.CommitOffsets("g", []OffsetCommit{{Topic: "t", Offset: 1, Metadata: "meta"}}))
				must(t, s.PutRemoteSegment("t", 0, seg(100, 200, CopyFinished)))
				must(t, c.read(s))
				must(t, s.Close())

				raw, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
				must(t, err)
				err = raw.Update(func(tx *bolt.Tx) error {
					b := tx.Bucket([]byte(c.bucket[0]))
					for _, n := range c.bucket[1:] {
						b = b.Bucket([]byte(n))
					}
					v := append([]byte(nil), b.Get(c.key)...)
					if len(v) == 0 {
						return fmt.Errorf("no value at %q", c.key)
					}
					i := map[string]int{"first": 0, "middle": len(v) / 2, "last": len(v) - 1}[pos]
					v[i] ^= 0x20
					return b.Put(c.key, v)
				})
				must(t, err)
				must(t, raw.Close())

				s, err = Open(path)
				must(t, err)
				defer s.Close()
				err = c.read(s)
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("read after flip: %v, want ErrCorrupt", err)
				}
				if !strings.Contains(err.Error(), c.bucket[0]) {
					t.Errorf("error %q does not name bucket %s", err, c.bucket[0])
				}
			})
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestSecondOpenFailsFast(t *testing.T) {
	s, path := openTemp(t)
	_ = s
	type opened struct {
		s   *Store
		err error
	}
	done := make(chan opened, 1)
	go func() {
		s2, err := Open(path)
		done <- opened{s2, err}
	}()
	var err error
	select {
	case o := <-done:
		if o.err == nil {
			o.s.Close()
			t.Fatal("second Open succeeded")
		}
		err = o.err
	case <-time.After(wait.Timeout):
		t.Fatal("second Open hung on the lock")
	}
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "another broker") {
		t.Fatalf("error %q: want ErrLocked naming the path and the likely cause", err)
	}
}

func TestOpenRefusesNewerFormat(t *testing.T) {
	s, path := openTemp(t)
	must(t, s.Close())
	raw, err := bolt.Open(path, 0o600, nil)
	must(t, err)
	must(t, raw.Update(func(tx *bolt.Tx) error {
		var e enc
		e.u32(formatVersion + 1)
		return tx.Bucket(bucketMeta).Put(keyFormat, seal(e.b))
	}))
	must(t, raw.Close())
	if s, err := Open(path); err == nil || !strings.Contains(err.Error(), "newer") {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open = %v, want a newer-format error", err)
	}
}

func TestConcurrentUse(t *testing.T) {
	s, path := openTemp(t)
	const workers, rounds = 8, 30
	for w := range workers {
		mustCreate(t, s, fmt.Sprintf("t%d", w), 1)
	}
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		ids = map[int64]bool{}
	)
	for w := range workers {
		wg.Go(func() {
			topic := fmt.Sprintf("t%d", w)
			for i := range rounds {
				first, err := s.AllocateProducerIDs(2)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if ids[first] || ids[first+1] {
					t.Errorf("duplicate producer id %d", first)
				}
				ids[first], ids[first+1] = true, true
				mu.Unlock()
				base := int64(i * 10)
				if err := s.PutRemoteSegment(topic, 0, seg(base, base+9, CopyStarted)); err != nil {
					t.Error(err)
					return
				}
				if got, ok, err := s.FloorRemoteSegment(topic, 0, base+5); err != nil || !ok || got.BaseOffset != base {
					t.Errorf("floor: %+v %v %v", got, ok, err)
				}
				if err := s.CommitOffsets("g", []OffsetCommit{{Topic: topic, Offset: base}}); err != nil {
					t.Error(err)
				}
				if _, err := s.GroupOffsets("g"); err != nil {
					t.Error(err)
				}
				if _, err := s.Topics(); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	s = reopen(t, s, path)
	got, err := s.GroupOffsets("g")
	if err != nil || len(got) != workers {
		t.Fatalf("group offsets: %d, %v", len(got), err)
	}
	for _, c := range got {
		if c.Offset != (rounds-1)*10 {
			t.Errorf("%s: offset %d", c.Topic, c.Offset)
		}
	}
	first, _ := s.AllocateProducerIDs(1)
	if first != workers*rounds*2 {
		t.Errorf("next producer id %d, want %d", first, workers*rounds*2)
	}
}

func FuzzDecodeValues(f *testing.F) {
	f.Add(encodeTopic(Topic{Name: "t", Partitions: 1, Configs: map[string]string{"a": "b"}}))
	f.Add(encodeSegment(seg(8, 9, CopyStarted)))
	f.Add(encodeCommit(OffsetCommit{Offset: 1, Metadata: "x"}))
	f.Add(encodeInt64(5))
	f.Fuzz(func(t *testing.T, v []byte) {
		// Decoders must reject, never panic, whatever the bytes.
		decodeTopic(v)
		decodeSegment(offsetKey(8), v)
		decodeCommit(partitionKey("t", 0), v)
		decodeInt64(v)
		// A valid seal around arbitrary payload exercises the payload parsers.
		decodeTopic(seal(v))
		decodeSegment(offsetKey(8), seal(v))
		decodeCommit(partitionKey("t", 0), seal(v))
	})
}
