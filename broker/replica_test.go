package broker

import (
	"testing"

	"github.com/stratalog/strata/cluster"
)

// A leader proposed follower 3 for the ISR (partition epoch 1 to 2) and,
// before its AlterPartition's answer came back, applied a later state
// (epoch 3) in which the controller had removed 3 again: the broker applies
// the view's latest snapshot, not every revision. The proposal is decided
// either way: 3 is no longer being added (nor counted in the high
// watermark), so its next caught-up fetch can propose it again. Before,
// it stayed "adding" for the rest of the leader epoch and no follower could
// join that partition's ISR.
func TestSupersededISRAdditionIsRetried(t *testing.T) {
	tb := startBroker(t)
	tb.createTopic("isr-add", 1, nil)
	p := tb.srv.topics.get("isr-add").partition(0)
	r := newReplica(tb.srv, p, 1)
	r.mu.Lock()
	r.role = roleLeader
	r.st = cluster.PartitionState{Leader: 1, LeaderEpoch: 0, PartitionEpoch: 3, ISR: []int32{1}}
	r.followers = map[int32]*followerState{3: {leo: 0}}
	r.adding, r.altering = 3, true
	r.alterDoneLocked(cluster.PartitionState{Leader: 1, LeaderEpoch: 0, PartitionEpoch: 2, ISR: []int32{1, 3}}, nil)
	adding, altering, st := r.adding, r.altering, r.st
	r.mu.Unlock()
	if adding != -1 || altering {
		t.Fatalf("after a superseded addition: adding %d, altering %v; want -1, false", adding, altering)
	}
	if st.PartitionEpoch != 3 || len(st.ISR) != 1 {
		t.Fatalf("the older answer replaced the newer state: %+v", st)
	}
}
