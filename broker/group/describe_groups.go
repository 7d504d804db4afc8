package group

// DescribeGroups: versions 0-6.
//
// Behaviour: state, protocol type and members of each group. In Stable the
// chosen protocol and each member's metadata for it and assignment are
// included; in other states they are empty, as in Kafka. A group known only
// by its committed offsets is Empty with no members. An unknown group is
// reported in state Dead.
//
// Errors: GROUP_ID_NOT_FOUND for an unknown group (v6+; before v6 no error),
// COORDINATOR_NOT_AVAILABLE (store unreadable, or closing).
//
// Version notes:
//   - v3+: authorized operations: -2147483648 unless asked for; when asked,
//     every group operation (READ, DESCRIBE, DELETE), since we have no ACLs.
//   - v4+: group.instance.id of members. v6+: error message.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// authorizedOpsNotRequested is Kafka's "not requested" value of authorized operations.
const authorizedOpsNotRequested = -2147483648

// groupOperations is the bit set of the operations a group supports (READ 3,
// DELETE 6, DESCRIBE 8), all of them allowed.
const groupOperations = 1<<3 | 1<<6 | 1<<8

func (c *Coordinator) handleDescribeGroups(req *kmsg.DescribeGroupsRequest) *kmsg.DescribeGroupsResponse {
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	for _, name := range req.Groups {
		sg := c.describeGroup(name)
		sg.AuthorizedOperations = authorizedOpsNotRequested
		if req.Version >= 3 && req.IncludeAuthorizedOperations && sg.ErrorCode == 0 {
			sg.AuthorizedOperations = groupOperations
		}
		if sg.ErrorCode == kerr.GroupIDNotFound.Code && req.Version < 6 {
			sg.ErrorCode = 0
		}
		if sg.ErrorCode != 0 && req.Version >= 6 {
			msg := kerr.ErrorForCode(sg.ErrorCode).(*kerr.Error).Description
			sg.ErrorMessage = &msg
		}
		resp.Groups = append(resp.Groups, sg)
	}
	return resp
}

// describeGroup describes one group. Takes the group's lock.
func (c *Coordinator) describeGroup(name string) kmsg.DescribeGroupsResponseGroup {
	sg := kmsg.NewDescribeGroupsResponseGroup()
	sg.Group = name
	g, err := c.lockGroup(name, false)
	if err != nil {
		sg.ErrorCode = err.Code
		return sg
	}
	if g == nil {
		has, err := c.groupHasOffsets(name)
		switch {
		case err != nil:
			c.log.Error("group: cannot read offsets", "group", name, "err", err)
			sg.ErrorCode = kerr.CoordinatorNotAvailable.Code
		case has:
			sg.State = stateEmpty.String()
		default:
			sg.State = stateDead.String()
			sg.ErrorCode = kerr.GroupIDNotFound.Code
		}
		return sg
	}
	defer g.mu.Unlock()
	stable := g.mu.state == stateStable
	sg.State = g.mu.state.String()
	sg.ProtocolType = g.mu.protocolType
	if stable {
		sg.Protocol = g.mu.protocol
	}
	for _, m := range g.sortedMembers() {
		sm := kmsg.NewDescribeGroupsResponseGroupMember()
		sm.MemberID = m.id
		sm.InstanceID = m.instanceID
		sm.ClientID = m.clientID
		sm.ClientHost = m.clientHost
		if stable {
			sm.ProtocolMetadata = m.metadataFor(g.mu.protocol)
			sm.MemberAssignment = m.assignment
		}
		sg.Members = append(sg.Members, sm)
	}
	return sg
}
