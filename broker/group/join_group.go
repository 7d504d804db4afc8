package group

// JoinGroup: versions 0-9.
//
// Behaviour: a member joins (or rejoins) the group and waits until the
// rebalance it takes part in completes; the response carries the new
// generation, the chosen protocol and the leader, and the leader's lists every
// member with its metadata. A new member of an Empty group starts the first
// rebalance, held back by group.initial.rebalance.delay.ms; a rejoin with new
// metadata, or any rejoin of the leader, in Stable starts a rebalance; a rejoin
// with unchanged metadata is answered at once. Members that do not rejoin
// within the rebalance timeout are removed when the join completes.
//
// Errors: INVALID_GROUP_ID (empty group id), INVALID_SESSION_TIMEOUT (outside
// group.min/max.session.timeout.ms), INCONSISTENT_GROUP_PROTOCOL (protocol
// type differs, or no protocol in common with every member, or the first
// member brings none), UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID,
// COORDINATOR_NOT_AVAILABLE (coordinator closing, or the request's context
// ended while it waited).
//
// Version notes:
//   - v0: no rebalance timeout in the request; the session timeout is used.
//   - v4+: a member without a member id (and without group.instance.id) gets
//     MEMBER_ID_REQUIRED and its new id, and must join again with it within
//     its session timeout; until it does, a rebalance in progress waits for it.
//   - v5+: group.instance.id (KIP-345 static membership). A static member
//     rejoining with an empty member id replaces its previous incarnation
//     (which gets FENCED_INSTANCE_ID if it was waiting) and keeps its
//     assignment; in Stable with unchanged metadata no rebalance happens.
//   - v7+: protocol type in the response.
//   - v8+: a reason, which we log.
//   - v9+: SkipAssignment (KIP-814): a static leader rejoining without a
//     rebalance gets the member list and SkipAssignment. Below v9 it is told
//     the previous leader id, so it does not run an assignment, as Kafka does.

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (c *Coordinator) handleJoinGroup(ctx context.Context, req *kmsg.JoinGroupRequest) *kmsg.JoinGroupResponse {
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	resp.MemberID = req.MemberID
	fail := func(err *kerr.Error) *kmsg.JoinGroupResponse {
		resp.ErrorCode = err.Code
		resp.Generation = -1
		resp.Protocol = kmsg.StringPtr("")
		return resp
	}
	if req.Group == "" {
		return fail(kerr.InvalidGroupID)
	}
	session := time.Duration(req.SessionTimeoutMillis) * time.Millisecond
	if session < c.cfg.MinSessionTimeout || session > c.cfg.MaxSessionTimeout {
		return fail(kerr.InvalidSessionTimeout)
	}
	rebalance := time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
	if req.Version == 0 || rebalance <= 0 {
		rebalance = session
	}
	instanceID := req.InstanceID
	if req.Version < 5 {
		instanceID = nil
	}

	g, err := c.lockGroup(req.Group, req.MemberID == "")
	if err != nil {
		return fail(err)
	}
	if g == nil {
		return fail(kerr.UnknownMemberID)
	}
	j := joinArgs{
		req:        req,
		client:     clientFrom(ctx),
		session:    session,
		rebalance:  rebalance,
		instanceID: instanceID,
	}
	immediate, ch := g.join(j)
	unused := g.unusedLocked()
	g.mu.Unlock()
	if immediate != nil {
		if unused {
			c.dropIfUnused(g)
		}
		return immediate
	}
	select {
	case r := <-ch:
		return r
	case <-ctx.Done():
	case <-c.done:
	}
	resp.MemberID = req.MemberID
	return fail(kerr.CoordinatorNotAvailable)
}

type joinArgs struct {
	req        *kmsg.JoinGroupRequest
	client     clientInfo
	session    time.Duration
	rebalance  time.Duration
	instanceID *string
}

func (j joinArgs) newMember(id string) *member {
	return &member{
		id:               id,
		instanceID:       j.instanceID,
		clientID:         j.client.id,
		clientHost:       j.client.host,
		sessionTimeout:   j.session,
		rebalanceTimeout: j.rebalance,
		protocolType:     j.req.ProtocolType,
		protocols:        j.req.Protocols,
		joinCh:           make(chan *kmsg.JoinGroupResponse, 1),
		joinVersion:      j.req.Version,
	}
}

// join runs a JoinGroup against the group: it returns either the response to
// send now or a channel that will carry it once the rebalance completes. The
// channel is taken before the join can complete (a member whose arrival
// completes the rebalance is answered, and its joinCh cleared, inside join).
// Requires g.mu.
func (g *group) join(j joinArgs) (*kmsg.JoinGroupResponse, chan *kmsg.JoinGroupResponse) {
	req := j.req
	fail := func(err *kerr.Error, memberID string) (*kmsg.JoinGroupResponse, chan *kmsg.JoinGroupResponse) {
		return joinError(req, err, memberID), nil
	}
	if !g.supportsProtocols(req.ProtocolType, req.Protocols) {
		return fail(kerr.InconsistentGroupProtocol, req.MemberID)
	}
	if req.Reason != nil && *req.Reason != "" {
		g.c.log.Debug("group: join", "group", g.name, "member", req.MemberID, "reason", *req.Reason)
	}

	if req.MemberID == "" {
		if j.instanceID != nil {
			if oldID, ok := g.mu.static[*j.instanceID]; ok {
				return g.rejoinStatic(oldID, j)
			}
			m := j.newMember(newMemberID(*j.instanceID))
			ch := m.joinCh
			g.addMember(m)
			return nil, ch
		}
		id := newMemberID(j.client.id)
		if req.Version >= 4 {
			g.addPending(id, j.session)
			return fail(kerr.MemberIDRequired, id)
		}
		m := j.newMember(id)
		ch := m.joinCh
		g.addMember(m)
		return nil, ch
	}

	if j.instanceID == nil && g.removePending(req.MemberID) {
		m := j.newMember(req.MemberID)
		ch := m.joinCh
		g.addMember(m)
		return nil, ch
	}
	m, err := g.validateMember(req.MemberID, j.instanceID)
	if err != nil {
		return fail(err, req.MemberID)
	}
	switch g.mu.state {
	case statePreparingRebalance:
		g.updateMember(m, j)
		ch := m.joinCh
		g.tryCompleteJoin()
		return nil, ch
	case stateCompletingRebalance:
		if m.matches(req.Protocols) {
			// It probably missed the response: send it again.
			return g.joinResponse(m, req.Version, m.id == g.mu.leader), nil
		}
		g.updateMember(m, j)
		ch := m.joinCh
		g.prepareRebalance("member " + m.id + " rejoined with new metadata")
		return nil, ch
	case stateStable:
		if m.id != g.mu.leader && m.matches(req.Protocols) {
			return g.joinResponse(m, req.Version, false), nil
		}
		g.updateMember(m, j)
		ch := m.joinCh
		g.prepareRebalance("member " + m.id + " rejoined")
		return nil, ch
	}
	return fail(kerr.UnknownMemberID, req.MemberID)
}

// joinError is a JoinGroup's answer with err.
func joinError(req *kmsg.JoinGroupRequest, err *kerr.Error, memberID string) *kmsg.JoinGroupResponse {
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	resp.ErrorCode = err.Code
	resp.Generation = -1
	resp.Protocol = kmsg.StringPtr("")
	resp.MemberID = memberID
	return resp
}

// updateMember records a rejoining member's request and marks it as waiting
// for the join to complete. Requires g.mu.
func (g *group) updateMember(m *member, j joinArgs) {
	g.answerJoin(m, kerr.RebalanceInProgress) // an earlier JoinGroup of the same member
	m.sessionTimeout = j.session
	m.rebalanceTimeout = j.rebalance
	m.protocols = j.req.Protocols
	m.joinCh = make(chan *kmsg.JoinGroupResponse, 1)
	m.joinVersion = j.req.Version
}

// rejoinStatic replaces the static member oldID by a new incarnation with the
// same group.instance.id. Requires g.mu.
func (g *group) rejoinStatic(oldID string, j joinArgs) (*kmsg.JoinGroupResponse, chan *kmsg.JoinGroupResponse) {
	old := g.mu.members[oldID]
	g.answerJoin(old, kerr.FencedInstanceID)
	g.answerSync(old, kerr.FencedInstanceID)
	g.c.cancel(&old.timer)

	m := j.newMember(newMemberID(*j.instanceID))
	m.assignment = old.assignment
	delete(g.mu.members, oldID)
	g.mu.members[m.id] = m
	g.mu.static[*j.instanceID] = m.id
	previousLeader := g.mu.leader
	if g.mu.leader == oldID {
		g.mu.leader = m.id
	}
	if g.mu.pendingSync[oldID] {
		delete(g.mu.pendingSync, oldID)
		g.mu.pendingSync[m.id] = true
	}
	g.c.log.Info("group: static member replaced", "group", g.name, "instance", *j.instanceID, "old", oldID, "new", m.id)

	switch g.mu.state {
	case stateStable:
		if old.matches(j.req.Protocols) {
			// As in Kafka, the new member id is in the offsets log before
			// the new incarnation hears of it, so that a coordinator that
			// loads the group later knows it; if it cannot be written, the
			// old incarnation stays and the new one is told to retry.
			if err := g.storeMetadata(); err != nil {
				g.c.log.Error("group: cannot persist a static member's replacement", "group", g.name, "instance", *j.instanceID, "err", err)
				delete(g.mu.members, m.id)
				g.mu.members[oldID] = old
				g.mu.static[*j.instanceID] = oldID
				g.mu.leader = previousLeader
				g.touch(old)
				return joinError(j.req, kerr.CoordinatorNotAvailable, ""), nil
			}
			m.joinCh = nil
			g.touch(m)
			isLeader := g.mu.leader == m.id
			skip := isLeader && j.req.Version >= 9
			resp := g.joinResponse(m, j.req.Version, skip)
			resp.SkipAssignment = skip
			if isLeader && !skip {
				resp.LeaderID = previousLeader
			}
			return resp, nil
		}
	}
	ch := m.joinCh
	switch g.mu.state {
	case stateStable:
		g.prepareRebalance("static member " + m.id + " rejoined with new metadata")
	case stateCompletingRebalance:
		// The leader may be assigning to the old member id: start over.
		g.prepareRebalance("static member " + m.id + " rejoined during sync")
	default:
		g.tryCompleteJoin()
	}
	return nil, ch
}
