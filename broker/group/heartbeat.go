package group

// Heartbeat: versions 0-4.
//
// Behaviour: restarts the member's session timeout. NONE in Stable and
// CompletingRebalance (a member may heartbeat between its JoinGroup and
// SyncGroup), REBALANCE_IN_PROGRESS in PreparingRebalance, telling the member
// to rejoin.
//
// Errors: INVALID_GROUP_ID, UNKNOWN_MEMBER_ID (unknown group or member, or an
// Empty group), FENCED_INSTANCE_ID, ILLEGAL_GENERATION,
// COORDINATOR_NOT_AVAILABLE (closing).
//
// Version notes:
//   - v3+: group.instance.id.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (c *Coordinator) handleHeartbeat(req *kmsg.HeartbeatRequest) *kmsg.HeartbeatResponse {
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	if err := c.heartbeat(req); err != nil {
		resp.ErrorCode = err.Code
	}
	return resp
}

func (c *Coordinator) heartbeat(req *kmsg.HeartbeatRequest) *kerr.Error {
	if req.Group == "" {
		return kerr.InvalidGroupID
	}
	instanceID := req.InstanceID
	if req.Version < 3 {
		instanceID = nil
	}
	g, err := c.lockGroup(req.Group, false)
	if err != nil {
		return err
	}
	if g == nil {
		return kerr.UnknownMemberID
	}
	defer g.mu.Unlock()
	m, err := g.validateMember(req.MemberID, instanceID)
	if err != nil {
		return err
	}
	if req.Generation != g.mu.generation {
		return kerr.IllegalGeneration
	}
	switch g.mu.state {
	case statePreparingRebalance:
		g.touch(m)
		return kerr.RebalanceInProgress
	case stateCompletingRebalance, stateStable:
		g.touch(m)
		return nil
	}
	return kerr.UnknownMemberID
}
