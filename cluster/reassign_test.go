package cluster

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/wait"
)

// waitTopic waits until via's view of topic name satisfies cond.
func (h *harness) waitTopic(via *Node, name, what string, cond func(TopicRecord) bool) TopicRecord {
	h.t.Helper()
	var rec TopicRecord
	wait.Eventually(h.t, what, func() bool {
		var ok bool
		rec, ok = via.View().Snapshot().Topics[name]
		return ok && cond(rec)
	})
	return rec
}

// A reassignment of a partition led by a removed broker, driven by
// AlterPartition as a leader would: written as the union, completed by the
// controller only once the ISR holds the target (the leader moved off the
// removed broker at leader epoch + 1), cancelled back to the original
// replicas, refused with Kafka's errors, and never written by a fenced
// controller or from a stale view.
func TestReassignment(t *testing.T) {
	h := newCluster(t)
	n1 := h.node(1)
	n4 := h.start(h.cfg(4, false))
	wait.For(t, 30*time.Second, "four brokers and a controller", func() bool {
		s := n1.View().Snapshot()
		return len(s.Brokers) == 4 && s.Controller > 0
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rev, err := n1.CreateTopic(ctx, TopicRecord{Name: "r", ID: [16]byte{7}, Replicas: [][]int32{{1, 2, 3}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := n4.View().WaitRev(ctx, rev); err != nil {
		t.Fatal(err)
	}
	tp := TP{"r", 0}
	st0 := h.waitPartition(n1, tp, "r-0 led by 1", func(st PartitionState) bool { return st.Leader == 1 })

	// Kafka's errors.
	for _, c := range []struct {
		tp     TP
		target []int32
		want   error
	}{
		{TP{"nope", 0}, []int32{1}, ErrUnknownTopic},
		{TP{"r", 1}, []int32{1}, ErrUnknownTopic},
		{tp, []int32{2, 2}, ErrInvalidAssignment},
		{tp, []int32{}, ErrInvalidAssignment},
		{tp, []int32{1, 9}, ErrInvalidAssignment},
		{tp, nil, ErrNoReassignmentInProgress},
	} {
		if _, err := n4.AlterPartitionReassignment(ctx, c.tp, c.target); !errors.Is(err, c.want) {
			t.Errorf("reassign %s to %v: %v, want %v", c.tp, c.target, err, c.want)
		}
	}
	// The current replicas: nothing to do.
	if rev, err := n4.AlterPartitionReassignment(ctx, tp, []int32{1, 2, 3}); rev != 0 || err != nil {
		t.Fatalf("reassign to the current replicas: %d, %v", rev, err)
	}

	// {1,2,3} -> {2,3,4}: the union, 4 adding and 1 removing; the ISR and
	// the leader stay.
	rev, err = n4.AlterPartitionReassignment(ctx, tp, []int32{2, 3, 4})
	if err != nil {
		t.Fatal(err)
	}
	if err := n1.View().WaitRev(ctx, rev); err != nil {
		t.Fatal(err)
	}
	s := n1.View().Snapshot()
	rec, st := s.Topics["r"], s.Partitions[tp]
	ra, ok := rec.Reassignments[0]
	if !ok || !slices.Equal(rec.Replicas[0], []int32{2, 3, 4, 1}) || !slices.Equal(ra.Adding(), []int32{4}) || !slices.Equal(ra.Removing(), []int32{1}) {
		t.Fatalf("pending: replicas %v, reassignment %+v", rec.Replicas[0], rec.Reassignments)
	}
	if st.Leader != 1 || st.LeaderEpoch != st0.LeaderEpoch || !slices.Equal(st.ISR, []int32{1, 2, 3}) || st.PartitionEpoch != st0.PartitionEpoch+1 {
		t.Fatalf("state after the reassignment's write: %+v (before %+v)", st, st0)
	}
	if !slices.Equal(rec.Assigned(0), []int32{2, 3, 4}) {
		t.Fatalf("Assigned(0) = %v during the move", rec.Assigned(0))
	}
	if l := s.Reassigning(); len(l) != 1 || l[0].TP != tp {
		t.Fatalf("Reassigning() = %+v", l)
	}

	// A fenced controller writes nothing: a candidate that is not the
	// controller fails the controller epoch's compare, and the controller
	// with a view whose topic revision is stale fails the topic's.
	fake := s.clone()
	fake.Partitions[tp] = PartitionState{Leader: 1, LeaderEpoch: st.LeaderEpoch, PartitionEpoch: st.PartitionEpoch, ISR: []int32{1, 2, 3, 4}, LeaderBrokerEpoch: st.LeaderBrokerEpoch}
	ctrl := h.node(s.Controller)
	other := h.node(s.Controller%3 + 1)
	if err := other.completeReassignments(fake, other.cur()); err != nil {
		t.Fatal(err)
	}
	stale := fake.clone()
	stale.topicRev["r"]--
	if err := ctrl.completeReassignments(stale, ctrl.cur()); err != nil {
		t.Fatal(err)
	}
	if g, err := n1.client.Get(ctx, topicKey("r")); err != nil || g.Kvs[0].ModRevision != s.topicRev["r"] {
		t.Fatalf("a fenced completion wrote the topic: %v", err)
	}

	// A reassignment decided on a stale view is not written: the topic's
	// or the partition's key changed since.
	for _, stale := range []func(*Snapshot){
		func(v *Snapshot) { v.topicRev["r"]-- },
		func(v *Snapshot) { v.partRev[tp]-- },
	} {
		v := s.clone()
		stale(v)
		next, nst, err := reassign(v, v.Topics["r"], 0, v.Partitions[tp], []int32{3, 4})
		if err != nil || next == nil {
			t.Fatalf("reassign on a stale view: %v, %v", next, err)
		}
		if _, ok, err := n4.putReassignment(ctx, v, tp, *next, nst); ok || err != nil {
			t.Fatalf("a reassignment on a stale view was written (%v)", err)
		}
	}

	// The ISR without 4, then without 3: still pending (had the
	// controller completed it, the leadership would have moved off 1 and
	// 1's next AlterPartition would fail).
	for _, isr := range [][]int32{{1, 2}, {1, 2, 4}, {1, 2, 4, 3}} {
		if st, err = n1.AlterPartition(ctx, tp, st, isr); err != nil {
			t.Fatalf("AlterPartition to %v: %v (the reassignment completed early?)", isr, err)
		}
	}

	// Now the controller completes it: replicas {2,3,4}, 1 out of the ISR,
	// 2 (the first target replica in the ISR) leads at a new epoch.
	rec = h.waitTopic(n4, "r", "the reassignment completed", func(r TopicRecord) bool { return len(r.Reassignments) == 0 })
	done, _ := h.partition(n4, tp)
	if !slices.Equal(rec.Replicas[0], []int32{2, 3, 4}) || done.Leader != 2 || done.LeaderEpoch != st.LeaderEpoch+1 ||
		done.PartitionEpoch <= st.PartitionEpoch || slices.Contains(done.ISR, 1) || len(done.ISR) != 3 || done.LeaderBrokerEpoch != h.node(2).Self().Epoch {
		t.Fatalf("completed: replicas %v, state %+v (before %+v)", rec.Replicas[0], done, st)
	}

	// Cancel: {2,3,4} -> {1,2,3} is pending (1 adding) while 3 is out of
	// the ISR and 1 caught up; the cancel goes back to {2,3,4} and takes 1
	// out of the ISR.
	n2 := h.node(2)
	if _, err := n2.AlterPartition(ctx, tp, done, []int32{2, 4}); err != nil {
		t.Fatal(err)
	}
	rev, err = n4.AlterPartitionReassignment(ctx, tp, []int32{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	if err := n2.View().WaitRev(ctx, rev); err != nil {
		t.Fatal(err)
	}
	cur, _ := h.partition(n2, tp)
	if _, err := n2.AlterPartition(ctx, tp, cur, []int32{2, 4, 1}); err != nil {
		t.Fatal(err)
	}
	rev, err = n4.AlterPartitionReassignment(ctx, tp, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := n4.View().WaitRev(ctx, rev); err != nil {
		t.Fatal(err)
	}
	s = n4.View().Snapshot()
	if rec := s.Topics["r"]; len(rec.Reassignments) != 0 || !slices.Equal(rec.Replicas[0], []int32{2, 3, 4}) ||
		s.Partitions[tp].Leader != 2 || !slices.Equal(s.Partitions[tp].ISR, []int32{2, 4}) {
		t.Fatalf("after cancel: %+v, %+v", rec, s.Partitions[tp])
	}
	if _, err := n4.AlterPartitionReassignment(ctx, tp, nil); !errors.Is(err, ErrNoReassignmentInProgress) {
		t.Fatalf("second cancel: %v", err)
	}

	// {2,3,4} -> {4,1,2}: the leader 2 stays (it is in the target), at the
	// same leader epoch; 3 leaves the ISR; 4 is the preferred replica.
	rev, err = n4.AlterPartitionReassignment(ctx, tp, []int32{4, 1, 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := n2.View().WaitRev(ctx, rev); err != nil {
		t.Fatal(err)
	}
	cur, _ = h.partition(n2, tp)
	if _, err := n2.AlterPartition(ctx, tp, cur, append(slices.Clone(cur.ISR), 1)); err != nil {
		t.Fatal(err)
	}
	rec = h.waitTopic(n4, "r", "the second reassignment completed", func(r TopicRecord) bool { return len(r.Reassignments) == 0 })
	done2, _ := h.partition(n4, tp)
	if !slices.Equal(rec.Replicas[0], []int32{4, 1, 2}) || done2.Leader != 2 || done2.LeaderEpoch != cur.LeaderEpoch || slices.Contains(done2.ISR, 3) {
		t.Fatalf("second completion: replicas %v, state %+v", rec.Replicas[0], done2)
	}

	// The controller dies during a reassignment: the next one completes
	// it. Topic k is led by 4 (never the controller); its move adds a
	// candidate that is not the controller.
	ctrlID := n4.View().Snapshot().Controller
	var add int32
	for id := int32(1); id <= 3; id++ {
		if id != ctrlID {
			add = id
			break
		}
	}
	rev, err = n4.CreateTopic(ctx, TopicRecord{Name: "k", ID: [16]byte{8}, Replicas: [][]int32{{4}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := n4.View().WaitRev(ctx, rev); err != nil {
		t.Fatal(err)
	}
	ktp := TP{"k", 0}
	h.waitPartition(n4, ktp, "k-0 led by 4", func(p PartitionState) bool { return p.Leader == 4 })
	rev, err = n4.AlterPartitionReassignment(ctx, ktp, []int32{add, 4})
	if err != nil {
		t.Fatal(err)
	}
	if err := n4.View().WaitRev(ctx, rev); err != nil {
		t.Fatal(err)
	}
	crash(h.node(ctrlID))
	wait.For(t, time.Minute, "a new controller", func() bool {
		c := n4.View().Snapshot().Controller
		return c > 0 && c != ctrlID
	})
	kst, _ := h.partition(n4, ktp)
	for {
		next, err := n4.AlterPartition(ctx, ktp, kst, []int32{4, add})
		if err == nil {
			kst = next
			break
		}
		if !errors.Is(err, ErrStalePartitionEpoch) {
			t.Fatal(err)
		}
		kst = h.waitPartition(n4, ktp, "a newer k-0", func(p PartitionState) bool { return p.PartitionEpoch > kst.PartitionEpoch })
	}
	rec = h.waitTopic(n4, "k", "k's reassignment completed by the next controller", func(r TopicRecord) bool { return len(r.Reassignments) == 0 })
	if !slices.Equal(rec.Replicas[0], []int32{add, 4}) {
		t.Fatalf("k's replicas after completion: %v", rec.Replicas[0])
	}
}
