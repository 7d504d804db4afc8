package tier

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// replicaEnv is an env as one broker of a cluster: replicated, leading at
// epoch when leader, sharing the bucket of share (nil: its own).
func replicaEnv(t *testing.T, share *env, leader bool, epoch int32) *env {
	t.Helper()
	e := newEnv(t, func(c *Config) { c.Replicated = true })
	if share != nil {
		e.mem, e.fault, e.store = share.mem, share.fault, share.fault
		e.open()
	}
	// Every broker of a cluster knows the topic by one ID; these metadata
	// stores each made their own, so the sidecars' IDs are not compared.
	e.pl.TopicID = [16]byte{}
	e.pl.Replicated, e.pl.Leader, e.pl.LeaderEpoch = true, leader, epoch
	return e
}

// remoteRanges lists the index as "base-end@epoch" strings (COPY_FINISHED only).
func remoteRanges(e *env) []string {
	var out []string
	for _, s := range e.remote() {
		if s.State.String() == "COPY_FINISHED" {
			out = append(out, rangeOf(s.BaseOffset, s.EndOffset, s.LeaderEpoch))
		}
	}
	return out
}

func rangeOf(base, end int64, epoch int32) string { return fmt.Sprintf("%d-%d@%d", base, end, epoch) }

// TestReplicaLearnsTheLeadersUploads: the leader uploads with its epoch in
// the sidecar; a follower uploads nothing, learns the index from the bucket
// alone, trims its local log below what it learned (local.retention.bytes=0)
// and serves the old offsets from the bucket, byte for byte.
func TestReplicaLearnsTheLeadersUploads(t *testing.T) {
	l := replicaEnv(t, nil, true, 4)
	f := replicaEnv(t, l, false, 4)
	f.ret.LocalRetentionBytes = 0
	for range 3 {
		l.segment(2, 5)
		f.segment(2, 5)
	}
	f.active(1)
	f.manage()
	if len(f.keys()) != 0 || len(f.remote()) != 0 {
		t.Fatalf("the follower uploaded or learned before the leader uploaded: keys %v, index %v", f.keys(), f.remote())
	}
	l.manage()
	want := []string{"0-9@4", "10-19@4", "20-29@4"}
	if got := remoteRanges(l); !slices.Equal(got, want) {
		t.Fatalf("leader index %v, want %v", got, want)
	}
	for _, k := range l.keys() {
		if strings.HasSuffix(k, sidecarSuffix) {
			sc, err := decodeSidecar(l.object(k))
			if err != nil || sc.LeaderEpoch != 4 {
				t.Fatalf("sidecar %s: %v, leader epoch %d", k, err, sc.LeaderEpoch)
			}
		}
	}
	f.manage()
	if got := remoteRanges(f); !slices.Equal(got, want) {
		t.Fatalf("follower learned %v, want %v", got, want)
	}
	for i, s := range f.remote() {
		if s.UploadID != l.remote()[i].UploadID {
			t.Fatalf("follower entry %d names upload %s, the leader's %s", i, s.UploadID, l.remote()[i].UploadID)
		}
	}
	if got := f.log.LogStartOffset(); got != 30 {
		t.Fatalf("follower local log start %d after learning, want 30", got)
	}
	if got, want := f.readAll(0, 30, 1<<20), l.bytesBetween(0, 30); !bytes.Equal(got, want) {
		t.Fatalf("follower read %d bytes from the bucket, want the leader's %d", len(got), len(want))
	}
	// A learned index costs one LIST per round, a GET only per new segment.
	gets := gauge(t, f.reg, "strata_tier_learn_sidecar_gets_total")
	f.segment(2, 5) // a closed segment no entry covers: the follower lists again
	f.manage()
	if g := gauge(t, f.reg, "strata_tier_learn_sidecar_gets_total"); g != gets {
		t.Fatalf("relearning fetched %v sidecars again", g-gets)
	}
}

// TestUploadOnlyBelowHighWatermark: a closed segment that reaches past the
// high watermark is not uploaded until the high watermark passes it.
func TestUploadOnlyBelowHighWatermark(t *testing.T) {
	e := replicaEnv(t, nil, true, 1)
	var hw atomic.Int64
	hw.Store(5)
	e.pl.HighWatermark = hw.Load
	e.segment(2, 5)
	e.manage()
	if len(e.keys()) != 0 {
		t.Fatalf("uploaded above the high watermark: %v", e.keys())
	}
	hw.Store(10)
	e.manage()
	if got := remoteRanges(e); !slices.Equal(got, []string{"0-9@1"}) {
		t.Fatalf("index %v", got)
	}
}

// TestDeposedLeaderUploadRolledBack: a leader that loses its leadership
// while its .log is in the bucket never writes the sidecar: the attempt is
// deleted and never learned. Deposed after the sidecar, the attempt is
// complete in the bucket; the broker drops its entry and the new leader
// learns it.
func TestDeposedLeaderUploadRolledBack(t *testing.T) {
	e := replicaEnv(t, nil, true, 1)
	var calls atomic.Int32
	deposeAfter := int32(1) // the round's own check passes, the one before the sidecar fails
	e.pl.StillLeader = func(int32) bool { return calls.Add(1) <= deposeAfter }
	e.segment(2, 5)
	e.manage()
	if len(e.keys()) != 0 || len(e.remote()) != 0 {
		t.Fatalf("a deposed leader's attempt remains: keys %v, index %v", e.keys(), e.remote())
	}

	calls.Store(0)
	deposeAfter = 2              // deposed between the sidecar and COPY_FINISHED
	e.clock.Advance(time.Minute) // past the failed round's backoff
	e.m.Manage(t.Context(), []PartitionLog{e.pl})
	e.m.waitIdle()
	if len(e.keys()) != 2 || len(e.remote()) != 0 {
		t.Fatalf("deposed after the sidecar: keys %v, index %v", e.keys(), e.remote())
	}
	n := replicaEnv(t, e, true, 2)
	n.segment(2, 5)
	n.manage()
	if got := remoteRanges(n); !slices.Equal(got, []string{"0-9@1"}) {
		t.Fatalf("the new leader learned %v, want the deposed leader's complete segment", got)
	}
	if len(n.keys()) != 2 {
		t.Fatalf("the new leader uploaded the segment again: %v", n.keys())
	}
}

// TestRacingLeadersHigherEpochWins: a deposed leader (epoch 1) that did not
// know it yet and the new leader (epoch 2) both upload offsets 0-9; the
// new leader's segment is cut differently (0-14). Every replica learns
// only the epoch 2 segment, and the leader deletes the other's objects.
func TestRacingLeadersHigherEpochWins(t *testing.T) {
	old := replicaEnv(t, nil, true, 1)
	nw := replicaEnv(t, old, true, 2)
	nw.manage() // learns an empty bucket at epoch 2
	old.segment(2, 5)
	old.manage() // the zombie uploads 0-9 at epoch 1
	nw.segment(3, 5)
	nw.manage() // knows nothing of it: uploads 0-14 at epoch 2
	if len(nw.keys()) != 4 {
		t.Fatalf("keys %v, want two attempts", nw.keys())
	}
	f := replicaEnv(t, old, false, 2)
	f.segment(3, 5)
	f.manage()
	if got := remoteRanges(f); !slices.Equal(got, []string{"0-14@2"}) {
		t.Fatalf("follower learned %v, want only the higher epoch's", got)
	}
	if len(f.keys()) != 4 {
		t.Fatalf("a follower deleted objects: %v", f.keys())
	}
	nw.pl.LeaderEpoch = 3 // a new epoch: the leader learns again
	nw.manage()
	if got := remoteRanges(nw); !slices.Equal(got, []string{"0-14@2"}) {
		t.Fatalf("leader index %v", got)
	}
	keys := nw.keys()
	if len(keys) != 2 || !strings.Contains(keys[0], nw.remote()[0].UploadID) {
		t.Fatalf("the loser's objects remain: %v", keys)
	}
	if g := gauge(t, nw.reg, "strata_tier_superseded_segments_total"); g != 1 {
		t.Fatalf("superseded %v", g)
	}
}

// TestNewLeaderUploadsFromWhereTheOldStopped: the new leader's log rolled
// elsewhere (segments 0-4 and 5-19) than the old leader's (0-9): it learns
// 0-9 and uploads 10-19 from the middle of its segment, so the remote tier
// has every offset once.
func TestNewLeaderUploadsFromWhereTheOldStopped(t *testing.T) {
	old := replicaEnv(t, nil, true, 1)
	old.segment(2, 5)
	old.manage()
	nw := replicaEnv(t, old, true, 2)
	nw.segment(1, 5)
	nw.segment(3, 5)
	nw.manage()
	if got := remoteRanges(nw); !slices.Equal(got, []string{"0-9@1", "10-19@2"}) {
		t.Fatalf("index %v", got)
	}
	if got, want := nw.readAll(0, 20, 1<<20), append(old.bytesBetween(0, 10), nw.bytesBetween(10, 20)...); !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, want %d", len(got), len(want))
	}
}
