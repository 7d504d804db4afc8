package group

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/wait"
)

// TestThreeMembersJoinSyncLeave: three members join in the initial delay,
// share one generation, the leader's assignment reaches everyone, one member
// leaves and the other two rebalance into the next generation.
func TestThreeMembersJoinSyncLeave(t *testing.T) {
	for _, v := range clientVersions {
		t.Run(v.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.InitialRebalanceDelay = 30 * time.Millisecond
			c, _ := newTest(t, cfg)
			a := newMember(t, c, v, "g", "ca", "t1")
			b := newMember(t, c, v, "g", "cb", "t1")
			d := newMember(t, c, v, "g", "cd", "t2")
			// Protocol vote: everyone supports both; two prefer roundrobin.
			a.protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: consumerMeta("t1")}, {Name: "roundrobin", Metadata: consumerMeta("t1")}}
			b.protocols = []kmsg.JoinGroupRequestProtocol{{Name: "roundrobin", Metadata: consumerMeta("t1")}, {Name: "range", Metadata: consumerMeta("t1")}}
			d.protocols = []kmsg.JoinGroupRequestProtocol{{Name: "roundrobin", Metadata: consumerMeta("t2")}, {Name: "range", Metadata: consumerMeta("t2")}}

			gen := joinAndSync(t, a, b, d)
			if gen != 1 {
				t.Errorf("generation %d, want 1", gen)
			}
			for _, m := range []*tmember{a, b, d} {
				if !strings.HasPrefix(m.id, m.clientID+"-") || len(m.id) != len(m.clientID)+37 {
					t.Errorf("member id %q is not <clientId>-<uuid>", m.id)
				}
				if got := *m.joined.Protocol; got != "roundrobin" {
					t.Errorf("protocol %q, want roundrobin", got)
				}
				if !m.isLeader() && len(m.joined.Members) != 0 {
					t.Errorf("follower got %d members", len(m.joined.Members))
				}
				if v.join >= 7 && (m.joined.ProtocolType == nil || *m.joined.ProtocolType != "consumer") {
					t.Errorf("protocol type %v", m.joined.ProtocolType)
				}
				wantErr(t, "heartbeat", m.heartbeat(), nil)
			}
			var leader *tmember
			for _, m := range []*tmember{a, b, d} {
				if m.isLeader() {
					leader = m
				}
			}
			for _, jm := range leader.joined.Members {
				var meta kmsg.ConsumerMemberMetadata
				if err := meta.ReadFrom(jm.ProtocolMetadata); err != nil || len(meta.Topics) != 1 {
					t.Errorf("leader got metadata %q for %s: %v", jm.ProtocolMetadata, jm.MemberID, err)
				}
			}

			dg := describe(t, c, v.describe, "g")
			if dg.State != "Stable" || dg.Protocol != "roundrobin" || dg.ProtocolType != "consumer" || len(dg.Members) != 3 {
				t.Fatalf("describe: %+v", dg)
			}
			for _, m := range dg.Members {
				if string(m.MemberAssignment) != "a-"+m.MemberID || len(m.ProtocolMetadata) == 0 || m.ClientHost != "127.0.0.1" {
					t.Errorf("described member %+v", m)
				}
				if !strings.HasPrefix(m.MemberID, m.ClientID+"-") {
					t.Errorf("described client id %q, member %q", m.ClientID, m.MemberID)
				}
			}
			if v.describe >= 3 && dg.AuthorizedOperations != -2147483648 {
				t.Errorf("authorized operations %d", dg.AuthorizedOperations)
			}

			wantErr(t, "leave", d.leave(), nil)
			wantErr(t, "heartbeat after leave", a.heartbeat(), kerr.RebalanceInProgress)
			wantErr(t, "heartbeat of the member that left", d.heartbeat(), kerr.UnknownMemberID)
			gen2 := joinAndSync(t, a, b)
			if gen2 != gen+1 {
				t.Errorf("generation after leave %d, want %d", gen2, gen+1)
			}
			if len(a.joined.Members)+len(b.joined.Members) != 2 {
				t.Errorf("leader got %d members after leave", len(a.joined.Members)+len(b.joined.Members))
			}
			wantErr(t, "heartbeat", b.heartbeat(), nil)
			wantErr(t, "stale generation heartbeat", (&tmember{t: t, c: c, v: v, group: "g", id: a.id, gen: gen}).heartbeat(), kerr.IllegalGeneration)

			// Everyone leaves: the group is Empty.
			wantErr(t, "leave a", a.leave(), nil)
			wantErr(t, "leave b", b.leave(), nil)
			if dg := describe(t, c, v.describe, "g"); dg.State != "Empty" || len(dg.Members) != 0 {
				t.Errorf("after all left: %+v", dg)
			}
		})
	}
}

// TestMemberIDRequired: from v4 an unknown member gets MEMBER_ID_REQUIRED and
// its id; below v4 it joins at once.
func TestMemberIDRequired(t *testing.T) {
	for _, version := range []int16{0, 3, 4, 6, 9} {
		c, _ := newTest(t, testConfig())
		v := clientVersions[3]
		v.join = version
		m := newMember(t, c, v, "g", "client", "t1")
		resp := m.joinOnce()
		if version >= 4 {
			wantErr(t, "first join", resp.ErrorCode, kerr.MemberIDRequired)
			if !strings.HasPrefix(resp.MemberID, "client-") {
				t.Errorf("v%d: member id %q", version, resp.MemberID)
			}
			if dg := describe(t, c, 0, "g"); dg.State != "Empty" || len(dg.Members) != 0 {
				t.Errorf("v%d: pending member is a member: %+v", version, dg)
			}
			resp = m.joinOnce()
		}
		wantErr(t, "join", resp.ErrorCode, nil)
		if resp.Generation != 1 || resp.LeaderID != resp.MemberID || len(resp.Members) != 1 {
			t.Errorf("v%d: %+v", version, resp)
		}
	}
}

// TestPendingMemberHoldsRebalance: a member id handed out with
// MEMBER_ID_REQUIRED holds a rebalance until it joins, or until its session
// timeout if it never does.
func TestPendingMemberHoldsRebalance(t *testing.T) {
	v := clientVersions[3]
	t.Run("joins", func(t *testing.T) {
		c, _ := newTest(t, testConfig())
		a := newMember(t, c, v, "g", "a", "t1")
		joinAndSync(t, a)
		b := newMember(t, c, v, "g", "b", "t1")
		wantErr(t, "b first join", b.joinOnce().ErrorCode, kerr.MemberIDRequired)
		// a rejoins (as the leader, it starts a rebalance); the join must
		// wait for b, whose session (5s) is far longer than the test.
		cha := a.joinAsync()
		wait.Eventually(t, "a waiting in the rebalance, or answered", func() bool { return joinWaiters(t, c, "g") == 1 || len(cha) > 0 })
		if len(cha) > 0 {
			t.Fatal("a's rejoin was answered while b's member id was pending")
		}
		chb := b.joinAsync()
		for _, ch := range []<-chan *kmsg.JoinGroupResponse{cha, chb} {
			select {
			case <-ch:
			case <-time.After(wait.Timeout):
				t.Fatal("join did not complete once the pending member joined")
			}
		}
		if a.gen != 2 || b.gen != 2 || len(a.joined.Members) != 2 {
			t.Errorf("a: gen %d, %d members; b: gen %d; want both in generation 2", a.gen, len(a.joined.Members), b.gen)
		}
	})
	t.Run("expires", func(t *testing.T) {
		c, _ := newTest(t, testConfig())
		a := newMember(t, c, v, "g", "a", "t1")
		joinAndSync(t, a)
		b := newMember(t, c, v, "g", "b", "t1")
		b.session = 80 * time.Millisecond
		wantErr(t, "b first join", b.joinOnce().ErrorCode, kerr.MemberIDRequired)
		// b never comes back; a's rejoin is answered once b's pending id
		// times out, and not before.
		wantErr(t, "a rejoin", a.join().ErrorCode, nil)
		if n := pendingMembers(t, c, "g"); n != 0 {
			t.Errorf("a's join was answered while %d member id(s) handed out were pending", n)
		}
		if a.gen != 2 || len(a.joined.Members) != 1 {
			t.Errorf("gen %d, %d members", a.gen, len(a.joined.Members))
		}
		wantErr(t, "b joins with its expired id", b.joinOnce().ErrorCode, kerr.UnknownMemberID)
	})
}

// TestSessionExpiry: a member that stops heartbeating is removed after its
// session timeout; the others rebalance without it.
func TestSessionExpiry(t *testing.T) {
	for _, v := range []versions{clientVersions[0], clientVersions[3]} {
		t.Run(v.name, func(t *testing.T) {
			c, _ := newTest(t, testConfig())
			a := newMember(t, c, v, "g", "a", "t1")
			b := newMember(t, c, v, "g", "b", "t1")
			b.session = 100 * time.Millisecond
			joinAndSync(t, a, b)
			gen := a.gen
			wantErr(t, "b heartbeat", b.heartbeat(), nil)
			wait.Eventually(t, "a told to rejoin", func() bool { return a.heartbeat() == kerr.RebalanceInProgress.Code })
			wantErr(t, "expired member heartbeat", b.heartbeat(), kerr.UnknownMemberID)
			wantErr(t, "a rejoin", a.join().ErrorCode, nil)
			if a.gen != gen+1 || len(a.joined.Members) != 1 {
				t.Errorf("after expiry: gen %d, %d members", a.gen, len(a.joined.Members))
			}
		})
	}
}

// TestRebalanceTimeout: a member that does not rejoin within the rebalance
// timeout is removed when the join completes.
func TestRebalanceTimeout(t *testing.T) {
	for _, v := range []versions{clientVersions[1], clientVersions[3]} {
		t.Run(v.name, func(t *testing.T) {
			c, _ := newTest(t, testConfig())
			a := newMember(t, c, v, "g", "a", "t1")
			b := newMember(t, c, v, "g", "b", "t1")
			a.rebalance, b.rebalance = 150*time.Millisecond, 150*time.Millisecond
			// b's session outlasts the test: only the rebalance timeout can remove it.
			b.session = testConfig().MaxSessionTimeout
			joinAndSync(t, a, b)
			gen := a.gen
			// a rejoins with a new subscription; b is slow and never does.
			a.protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: consumerMeta("t1", "t2")}}
			ch := a.joinAsync()
			wait.Eventually(t, "b told to rejoin", func() bool { return b.heartbeat() == kerr.RebalanceInProgress.Code })
			select {
			case resp := <-ch:
				wantErr(t, "a join", resp.ErrorCode, nil)
			case <-time.After(wait.Timeout):
				t.Fatal("join did not complete after the rebalance timeout")
			}
			if a.gen != gen+1 || len(a.joined.Members) != 1 || a.joined.Members[0].MemberID != a.id {
				t.Errorf("after rebalance timeout: gen %d, members %+v", a.gen, a.joined.Members)
			}
			wantErr(t, "slow member heartbeat", b.heartbeat(), kerr.UnknownMemberID)
			syncAll(t, a)
		})
	}
}

// TestSyncTimeout: a member that joined but never syncs is removed after the
// rebalance timeout, and the group rebalances.
func TestSyncTimeout(t *testing.T) {
	c, _ := newTest(t, testConfig())
	v := clientVersions[3]
	a := newMember(t, c, v, "g", "a", "t1")
	b := newMember(t, c, v, "g", "b", "t1")
	a.rebalance, b.rebalance = 150*time.Millisecond, 150*time.Millisecond
	ca, cb := a.joinAsync(), b.joinAsync()
	<-ca
	<-cb
	leader, follower := a, b
	if b.isLeader() {
		leader, follower = b, a
	}
	wantErr(t, "leader sync", leader.sync(assignAll(leader.joined.Members)).ErrorCode, nil)
	wantErr(t, "heartbeat while stable", leader.heartbeat(), nil)
	wait.Eventually(t, "rebalance after sync timeout", func() bool { return leader.heartbeat() == kerr.RebalanceInProgress.Code })
	wantErr(t, "unsynced member heartbeat", follower.heartbeat(), kerr.UnknownMemberID)
}

// TestFollowerSyncWaitsForLeader: followers' SyncGroup blocks until the
// leader's; CompletingRebalance answers commits with REBALANCE_IN_PROGRESS.
func TestFollowerSyncWaitsForLeader(t *testing.T) {
	c, _ := newTest(t, testConfig())
	v := clientVersions[2]
	a := newMember(t, c, v, "g", "a", "t1")
	b := newMember(t, c, v, "g", "b", "t1")
	ca, cb := a.joinAsync(), b.joinAsync()
	<-ca
	<-cb
	leader, follower := a, b
	if b.isLeader() {
		leader, follower = b, a
	}
	wantErr(t, "heartbeat in CompletingRebalance", follower.heartbeat(), nil)
	wantErr(t, "commit in CompletingRebalance", commitAs(t, c, follower, "t1", 0, 5), kerr.RebalanceInProgress)
	fch := follower.syncAsync(nil)
	wait.Eventually(t, "the follower waiting in SyncGroup, or answered", func() bool { return syncWaiters(t, c, "g") == 1 || len(fch) > 0 })
	if len(fch) > 0 {
		t.Fatalf("follower sync returned before the leader's: %+v", <-fch)
	}
	leader.sync(map[string][]byte{leader.id: []byte("x")}) // the follower is left out
	r := <-fch
	wantErr(t, "follower sync", r.ErrorCode, nil)
	var asg kmsg.ConsumerMemberAssignment
	if err := asg.ReadFrom(r.MemberAssignment); err != nil || len(asg.Topics) != 0 {
		t.Errorf("left-out follower got %q (%v), want an empty consumer assignment", r.MemberAssignment, err)
	}
	// SyncGroup again in Stable: answered at once.
	if r := follower.sync(nil); r.ErrorCode != 0 || len(r.MemberAssignment) == 0 {
		t.Errorf("sync in Stable: %+v", r)
	}
}

// TestStaticMemberRejoin: a static member restarting with unchanged metadata
// takes its place without a rebalance; its old incarnation is fenced; with
// new metadata it causes a rebalance.
func TestStaticMemberRejoin(t *testing.T) {
	for _, v := range []versions{clientVersions[2], clientVersions[3]} {
		t.Run(v.name, func(t *testing.T) {
			c, _ := newTest(t, testConfig())
			a := newMember(t, c, v, "g", "ca", "t1")
			b := newMember(t, c, v, "g", "cb", "t1")
			a.instance, b.instance = kmsg.StringPtr("ia"), kmsg.StringPtr("ib")
			gen := joinAndSync(t, a, b)
			if !strings.HasPrefix(a.id, "ia-") {
				t.Errorf("static member id %q", a.id)
			}
			leader, follower := a, b
			if b.isLeader() {
				leader, follower = b, a
			}

			// The follower restarts.
			old := *follower
			follower.id = ""
			resp := follower.joinOnce()
			wantErr(t, "static rejoin", resp.ErrorCode, nil)
			if resp.Generation != gen || resp.MemberID == old.id || resp.LeaderID != leader.id || len(resp.Members) != 0 {
				t.Errorf("static rejoin: %+v", resp)
			}
			wantErr(t, "old incarnation heartbeat", old.heartbeat(), kerr.FencedInstanceID)
			wantErr(t, "old incarnation commit", commitAs(t, c, &old, "t1", 0, 1), kerr.FencedInstanceID)
			wantErr(t, "old incarnation sync", old.sync(nil).ErrorCode, kerr.FencedInstanceID)
			wantErr(t, "leader heartbeat: no rebalance", leader.heartbeat(), nil)
			sr := follower.sync(nil)
			wantErr(t, "rejoined sync", sr.ErrorCode, nil)
			if string(sr.MemberAssignment) != "a-"+old.id {
				t.Errorf("rejoined member's assignment %q, want its old one", sr.MemberAssignment)
			}

			// The leader restarts.
			oldLeader := leader.id
			leader.id = ""
			resp = leader.joinOnce()
			wantErr(t, "static leader rejoin", resp.ErrorCode, nil)
			if v.join >= 9 {
				if !resp.SkipAssignment || resp.LeaderID != resp.MemberID || len(resp.Members) != 2 {
					t.Errorf("v9 static leader rejoin: %+v", resp)
				}
			} else if resp.SkipAssignment || resp.LeaderID != oldLeader || len(resp.Members) != 0 {
				t.Errorf("static leader rejoin: %+v", resp)
			}
			leader.leader = resp.MemberID
			wantErr(t, "leader sync after rejoin", leader.sync(nil).ErrorCode, nil)
			wantErr(t, "follower heartbeat: no rebalance", follower.heartbeat(), nil)
			if dg := describe(t, c, v.describe, "g"); dg.State != "Stable" || len(dg.Members) != 2 {
				t.Errorf("describe: %+v", dg)
			}

			// With new metadata it rebalances.
			follower.id = ""
			follower.protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: consumerMeta("t1", "t2")}}
			ch := follower.joinAsync()
			wait.Eventually(t, "leader told to rejoin", func() bool { return leader.heartbeat() == kerr.RebalanceInProgress.Code })
			leader.join()
			<-ch
			if leader.gen != gen+1 || follower.gen != gen+1 {
				t.Errorf("generation after static metadata change: %d %d", leader.gen, follower.gen)
			}

			// A static member leaves by instance id.
			if v.leave >= 3 {
				req := kmsg.NewPtrLeaveGroupRequest()
				req.Version = v.leave
				req.Group = "g"
				req.Members = []kmsg.LeaveGroupRequestMember{{InstanceID: kmsg.StringPtr("nope")}, {MemberID: "wrong", InstanceID: follower.instance}, {InstanceID: follower.instance}}
				lr := roundTrip[*kmsg.LeaveGroupResponse](context.Background(), t, c, req)
				wantErr(t, "leave unknown instance", lr.Members[0].ErrorCode, kerr.UnknownMemberID)
				wantErr(t, "leave wrong member id", lr.Members[1].ErrorCode, kerr.FencedInstanceID)
				wantErr(t, "leave by instance", lr.Members[2].ErrorCode, nil)
			}
		})
	}
}

// TestStaticRejoinPersisted: a static member's replacement is written to the
// group store before the new incarnation is answered, so a coordinator that
// loads the group afterwards knows the new member id (and fences the old);
// if the write fails, the old incarnation stays and the new one is told
// COORDINATOR_NOT_AVAILABLE, with no rebalance either way.
func TestStaticRejoinPersisted(t *testing.T) {
	v := clientVersions[3]
	store := &groupMemStore{memStore: newMemStore(), groups: map[string]*kmsg.GroupMetadataValue{}}
	c := New(testConfig(), store, testTopics, nil)
	t.Cleanup(c.Close)
	a := newMember(t, c, v, "g", "ca", "t1")
	b := newMember(t, c, v, "g", "cb", "t1")
	a.instance, b.instance = kmsg.StringPtr("ia"), kmsg.StringPtr("ib")
	gen := joinAndSync(t, a, b)
	leader, follower := a, b
	if b.isLeader() {
		leader, follower = b, a
	}

	// The write fails: the restart is refused and the old incarnation stays.
	store.setFail(errors.New("offsets log unavailable"))
	before := *follower
	follower.id = ""
	wantErr(t, "static rejoin while the store fails", follower.joinOnce().ErrorCode, kerr.CoordinatorNotAvailable)
	wantErr(t, "old incarnation after the failed rejoin", before.heartbeat(), nil)
	wantErr(t, "leader after the failed rejoin", leader.heartbeat(), nil)
	store.setFail(nil)

	// The write succeeds: the store has the new member id.
	follower.id = ""
	resp := follower.joinOnce()
	wantErr(t, "static rejoin", resp.ErrorCode, nil)
	if resp.Generation != gen {
		t.Fatalf("static rejoin at generation %d, want %d", resp.Generation, gen)
	}
	// Another coordinator loads the group from the store.
	c2 := New(testConfig(), newMemStore(), testTopics, nil)
	t.Cleanup(c2.Close)
	c2.Restore("g", store.group("g"))
	for _, m := range []*tmember{&before, follower, leader} {
		m.c = c2
	}
	wantErr(t, "new incarnation at the loading coordinator", follower.heartbeat(), nil)
	wantErr(t, "old incarnation at the loading coordinator", before.heartbeat(), kerr.FencedInstanceID)
	wantErr(t, "leader at the loading coordinator", leader.heartbeat(), nil)
}

// TestJoinErrors covers request validation.
func TestJoinErrors(t *testing.T) {
	c, _ := newTest(t, testConfig())
	v := clientVersions[3]
	m := newMember(t, c, v, "", "c", "t1")
	wantErr(t, "empty group id", m.joinOnce().ErrorCode, kerr.InvalidGroupID)

	m = newMember(t, c, v, "g", "c", "t1")
	m.session = 5 * time.Millisecond
	wantErr(t, "session below min", m.joinOnce().ErrorCode, kerr.InvalidSessionTimeout)
	m.session = time.Minute
	wantErr(t, "session above max", m.joinOnce().ErrorCode, kerr.InvalidSessionTimeout)

	m = newMember(t, c, v, "g", "c", "t1")
	m.protocols = nil
	wantErr(t, "no protocols", m.joinOnce().ErrorCode, kerr.InconsistentGroupProtocol)
	if dg := describe(t, c, 6, "g"); dg.ErrorCode != kerr.GroupIDNotFound.Code {
		t.Errorf("a failed first join left a group behind: %+v", dg)
	}

	a := newMember(t, c, v, "g", "a", "t1")
	joinAndSync(t, a)
	b := newMember(t, c, v, "g", "b", "t1")
	b.protocols = []kmsg.JoinGroupRequestProtocol{{Name: "sticky", Metadata: consumerMeta("t1")}}
	b.joinOnce() // MEMBER_ID_REQUIRED
	wantErr(t, "no common protocol", b.joinOnce().ErrorCode, kerr.InconsistentGroupProtocol)

	u := newMember(t, c, v, "g", "u", "t1")
	u.id = "u-unknown"
	wantErr(t, "unknown member id", u.joinOnce().ErrorCode, kerr.UnknownMemberID)
	u.group = "nogroup"
	wantErr(t, "unknown member id, unknown group", u.joinOnce().ErrorCode, kerr.UnknownMemberID)
	wantErr(t, "heartbeat unknown group", u.heartbeat(), kerr.UnknownMemberID)
	wantErr(t, "sync unknown group", u.sync(nil).ErrorCode, kerr.UnknownMemberID)
	wantErr(t, "leave unknown group", roundTrip[*kmsg.LeaveGroupResponse](context.Background(), t, c, &kmsg.LeaveGroupRequest{Version: 0, Group: "nogroup", MemberID: "x"}).ErrorCode, kerr.UnknownMemberID)

	wrong := *a
	wrong.gen = 7
	wantErr(t, "sync wrong generation", wrong.sync(nil).ErrorCode, kerr.IllegalGeneration)
	wantErr(t, "heartbeat wrong generation", wrong.heartbeat(), kerr.IllegalGeneration)
	if v.sync >= 5 {
		req := a.syncReq(nil)
		req.Protocol = kmsg.StringPtr("other")
		wantErr(t, "sync wrong protocol", roundTrip[*kmsg.SyncGroupResponse](a.ctx(), t, c, req).ErrorCode, kerr.InconsistentGroupProtocol)
	}
}

// TestInitialRebalanceDelay: the first rebalance waits the delay, extended
// while members keep joining, never past the rebalance timeout. The delay is
// an hour, so its steps end only when the test ends them (endDelayStep).
func TestInitialRebalanceDelay(t *testing.T) {
	cfg := testConfig()
	cfg.InitialRebalanceDelay = time.Hour
	c, _ := newTest(t, cfg)
	v := clientVersions[0]
	joinIn := func(id string) (*tmember, <-chan *kmsg.JoinGroupResponse) {
		m := newMember(t, c, v, "g", id, "t1")
		m.rebalance = 90 * time.Minute // one full step and half of another
		n := joinWaiters(t, c, "g")
		ch := m.joinAsync()
		wait.Eventually(t, id+" waiting in the first rebalance", func() bool { return joinWaiters(t, c, "g") == n+1 })
		return m, ch
	}
	a, cha := joinIn("a")
	b, chb := joinIn("b") // joins during the first step: the delay is extended
	endDelayStep(t, c, "g")
	if st, n := groupState(t, c, "g"), joinWaiters(t, c, "g"); st != statePreparingRebalance || n != 2 {
		t.Fatalf("after the first delay step, in which b joined: group %s with %d members waiting in JoinGroup, want PreparingRebalance with 2", st, n)
	}
	x, chx := joinIn("x") // joins during the second step, the last the rebalance timeout allows
	endDelayStep(t, c, "g")
	for _, ch := range []<-chan *kmsg.JoinGroupResponse{cha, chb, chx} {
		select {
		case <-ch:
		case <-time.After(wait.Timeout):
			t.Fatal("the join did not complete when the rebalance timeout's last delay step ended")
		}
	}
	if a.gen != 1 || b.gen != 1 || x.gen != 1 || len(a.joined.Members)+len(b.joined.Members)+len(x.joined.Members) != 3 {
		t.Errorf("generations %d %d %d, want all 1 with the leader seeing 3 members", a.gen, b.gen, x.gen)
	}
	// Later rebalances are not delayed: with an hour's delay, a rejoin that
	// completes at all was not.
	syncAll(t, a, b, x)
	wantErr(t, "leave", b.leave(), nil)
	wantErr(t, "leave", x.leave(), nil)
	select {
	case resp := <-a.joinAsync():
		wantErr(t, "later rejoin", resp.ErrorCode, nil)
	case <-time.After(wait.Timeout):
		t.Fatal("a later rebalance waited for the initial delay")
	}
}

// TestCloseReleasesWaiters: Close answers a blocked JoinGroup and later
// requests get COORDINATOR_NOT_AVAILABLE.
func TestCloseReleasesWaiters(t *testing.T) {
	cfg := testConfig()
	cfg.InitialRebalanceDelay = time.Hour
	store := newMemStore()
	c := New(cfg, store, testTopics, nil)
	m := newMember(t, c, clientVersions[0], "g", "a", "t1")
	ch := make(chan *kmsg.JoinGroupResponse, 1)
	go func() { ch <- m.joinOnce() }()
	wait.Eventually(t, "member joined", func() bool { return len(describe(t, c, 0, "g").Members) == 1 })
	c.Close()
	wantErr(t, "blocked join", (<-ch).ErrorCode, kerr.CoordinatorNotAvailable)
	wantErr(t, "heartbeat after close", m.heartbeat(), kerr.CoordinatorNotAvailable)
	c.Close() // idempotent
}

// TestJoinContextDone: a JoinGroup whose context ends stops waiting.
func TestJoinContextDone(t *testing.T) {
	cfg := testConfig()
	cfg.InitialRebalanceDelay = time.Hour
	c, _ := newTest(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	req := newMember(t, c, clientVersions[0], "g", "a", "t1").joinReq()
	resp, ok := c.Handle(ctx, req)
	if !ok || resp.(*kmsg.JoinGroupResponse).ErrorCode != kerr.CoordinatorNotAvailable.Code {
		t.Errorf("join with ended context: %+v", resp)
	}
}

func TestVersionsAndUnknownKeys(t *testing.T) {
	c, _ := newTest(t, testConfig())
	if _, ok := c.Handle(context.Background(), kmsg.NewPtrFindCoordinatorRequest()); ok {
		t.Error("FindCoordinator served")
	}
	for key, vr := range Versions() {
		req := kmsg.RequestForKey(key)
		if vr[0] != 0 || vr[1] != req.MaxVersion() {
			t.Errorf("key %d: versions %v, kmsg max %d", key, vr, req.MaxVersion())
		}
	}
	if len(Versions()) != 10 {
		t.Errorf("%d keys", len(Versions()))
	}
}

// TestNoGoroutineOutlivesClose: timers and the expiry loop are gone once
// Close returns.
func TestNoGoroutineOutlivesClose(t *testing.T) {
	before := runtime.NumGoroutine()
	cfg := testConfig()
	cfg.OffsetsRetentionCheckInterval = time.Millisecond
	c := New(cfg, newMemStore(), testTopics, nil)
	v := clientVersions[3]
	a := newMember(t, c, v, "g", "a", "t1")
	b := newMember(t, c, v, "g", "b", "t1")
	a.session, b.session = 20*time.Millisecond, 20*time.Millisecond
	joinAndSync(t, a, b)
	pending := newMember(t, c, v, "g", "p", "t1")
	pending.joinOnce() // a pending member id with its timer
	// Let a's and b's session timers fire (their callbacks run and rebalance
	// the group) while the pending id's timer is still armed.
	wait.Eventually(t, "a's and b's sessions to expire", func() bool { return len(describe(t, c, 0, "g").Members) == 0 })
	c.Close()
	// A goroutine that has called wg.Done may take a moment to exit.
	wait.Eventually(t, "goroutines to exit", func() bool { return runtime.NumGoroutine() <= before })
}
