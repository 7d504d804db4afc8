package group

// LeaveGroup: versions 0-5.
//
// Behaviour: each leaving member is removed at once (a member waiting in
// JoinGroup or SyncGroup gets UNKNOWN_MEMBER_ID) and the group rebalances;
// the last member leaving makes it Empty. A member id still pending after
// MEMBER_ID_REQUIRED may leave too.
//
// Errors: INVALID_GROUP_ID, UNKNOWN_MEMBER_ID (unknown group: top level;
// unknown member: per member from v3), FENCED_INSTANCE_ID (group.instance.id
// held by another member id), COORDINATOR_NOT_AVAILABLE (closing).
//
// Version notes:
//   - v0-v2: one member id; its error is the top-level error.
//   - v3+: a batch of members by member id and/or group.instance.id
//     (KIP-345), each answered on its own; the top-level error is only for
//     the group.
//   - v5+: a reason per member, which we log.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (c *Coordinator) handleLeaveGroup(req *kmsg.LeaveGroupRequest) *kmsg.LeaveGroupResponse {
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp
	}
	g, err := c.lockGroup(req.Group, false)
	if err == nil && g == nil {
		err = kerr.UnknownMemberID
	}
	if err != nil {
		resp.ErrorCode = err.Code
		return resp
	}
	defer g.mu.Unlock()
	if req.Version < 3 {
		if err := g.leave(req.MemberID, nil, nil); err != nil {
			resp.ErrorCode = err.Code
		}
		return resp
	}
	for _, lm := range req.Members {
		rm := kmsg.NewLeaveGroupResponseMember()
		rm.MemberID = lm.MemberID
		rm.InstanceID = lm.InstanceID
		if err := g.leave(lm.MemberID, lm.InstanceID, lm.Reason); err != nil {
			rm.ErrorCode = err.Code
		}
		resp.Members = append(resp.Members, rm)
	}
	return resp
}

// leave removes one member, by member id or by group.instance.id. Requires g.mu.
func (g *group) leave(memberID string, instanceID, reason *string) *kerr.Error {
	why := "member left"
	if reason != nil && *reason != "" {
		why += ": " + *reason
	}
	if instanceID != nil {
		id, ok := g.mu.static[*instanceID]
		if !ok {
			return kerr.UnknownMemberID
		}
		if memberID != "" && memberID != id {
			return kerr.FencedInstanceID
		}
		memberID = id
	} else if g.removePending(memberID) {
		g.tryCompleteJoin()
		return nil
	}
	m := g.mu.members[memberID]
	if m == nil {
		return kerr.UnknownMemberID
	}
	g.c.log.Info("group: member leaving", "group", g.name, "member", memberID, "reason", why)
	g.removeMember(m, why)
	return nil
}
