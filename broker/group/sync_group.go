package group

// SyncGroup: versions 0-5.
//
// Behaviour: after a join completes (CompletingRebalance), the leader sends
// every member's assignment; that moves the group to Stable and answers every
// member waiting in SyncGroup. A follower's SyncGroup waits for the leader's.
// In Stable a SyncGroup is answered at once with the member's assignment.
// Members that have not synced within the rebalance timeout after the join
// completed are removed and the group rebalances. A member the leader left out
// gets an empty assignment (for protocol type "consumer", an encoded empty
// ConsumerMemberAssignment, which every client decodes).
//
// Errors: INVALID_GROUP_ID, UNKNOWN_MEMBER_ID (unknown group or member),
// FENCED_INSTANCE_ID, ILLEGAL_GENERATION, INCONSISTENT_GROUP_PROTOCOL (v5+
// protocol type or name differing from the group's), REBALANCE_IN_PROGRESS
// (PreparingRebalance, or a new rebalance began while waiting),
// COORDINATOR_NOT_AVAILABLE (closing, or the request's context ended).
//
// Version notes:
//   - v3+: group.instance.id.
//   - v5+: protocol type and name in request and response.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (c *Coordinator) handleSyncGroup(ctx context.Context, req *kmsg.SyncGroupRequest) *kmsg.SyncGroupResponse {
	resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
	fail := func(err *kerr.Error) *kmsg.SyncGroupResponse {
		resp.ErrorCode = err.Code
		return resp
	}
	if req.Group == "" {
		return fail(kerr.InvalidGroupID)
	}
	instanceID := req.InstanceID
	if req.Version < 3 {
		instanceID = nil
	}
	g, err := c.lockGroup(req.Group, false)
	if err != nil {
		return fail(err)
	}
	if g == nil {
		return fail(kerr.UnknownMemberID)
	}
	ch, err := g.sync(req, instanceID, resp)
	g.mu.Unlock()
	if err != nil {
		return fail(err)
	}
	if ch == nil {
		return resp
	}
	select {
	case r := <-ch:
		return r
	case <-ctx.Done():
	case <-c.done:
	}
	return fail(kerr.CoordinatorNotAvailable)
}

// sync runs a SyncGroup against the group: it fills resp and returns a nil
// channel, returns an error, or returns a channel that will carry the
// response. Requires g.mu.
func (g *group) sync(req *kmsg.SyncGroupRequest, instanceID *string, resp *kmsg.SyncGroupResponse) (chan *kmsg.SyncGroupResponse, *kerr.Error) {
	m, err := g.validateMember(req.MemberID, instanceID)
	if err != nil {
		return nil, err
	}
	if req.Generation != g.mu.generation {
		return nil, kerr.IllegalGeneration
	}
	if req.Version >= 5 {
		if req.ProtocolType != nil && *req.ProtocolType != g.mu.protocolType {
			return nil, kerr.InconsistentGroupProtocol
		}
		if req.Protocol != nil && *req.Protocol != g.mu.protocol {
			return nil, kerr.InconsistentGroupProtocol
		}
	}
	switch g.mu.state {
	case statePreparingRebalance:
		return nil, kerr.RebalanceInProgress
	case stateCompletingRebalance:
		g.touch(m)
		g.synced(m.id)
		g.answerSync(m, kerr.RebalanceInProgress) // an earlier SyncGroup of the same member
		m.syncCh = make(chan *kmsg.SyncGroupResponse, 1)
		m.syncVersion = req.Version
		ch := m.syncCh
		if m.id == g.mu.leader {
			g.assign(req.GroupAssignment)
		}
		return ch, nil
	case stateStable:
		g.touch(m)
		g.synced(m.id)
		resp.ProtocolType = kmsg.StringPtr(g.mu.protocolType)
		resp.Protocol = kmsg.StringPtr(g.mu.protocol)
		resp.MemberAssignment = m.assignment
		return nil, nil
	}
	return nil, kerr.UnknownMemberID
}

// synced notes that a member sent SyncGroup in this generation. Requires g.mu.
func (g *group) synced(id string) {
	delete(g.mu.pendingSync, id)
	if len(g.mu.pendingSync) == 0 {
		g.c.cancel(&g.mu.syncTimer)
	}
}

// assign stores the leader's assignment, moves the group to Stable and
// answers every waiting SyncGroup. Requires g.mu.
func (g *group) assign(assignments []kmsg.SyncGroupRequestGroupAssignment) {
	byMember := make(map[string][]byte, len(assignments))
	for _, a := range assignments {
		byMember[a.MemberID] = a.MemberAssignment
	}
	for _, m := range g.mu.members {
		a := byMember[m.id]
		if len(a) == 0 && g.mu.protocolType == consumerProtocolType {
			a = emptyConsumerAssignment
		}
		m.assignment = a
	}
	g.transition(stateStable)
	// As in Kafka, the members get their assignments only once the group's
	// metadata is in the offsets log; if it cannot be written, they rejoin.
	if err := g.storeMetadata(); err != nil {
		g.c.log.Error("group: cannot persist group metadata", "group", g.name, "err", err)
		for _, m := range g.mu.members {
			m.assignment = nil
			g.answerSync(m, kerr.CoordinatorNotAvailable)
		}
		g.prepareRebalance("cannot persist group metadata")
		return
	}
	for _, m := range g.mu.members {
		g.answerSync(m, nil)
	}
}
