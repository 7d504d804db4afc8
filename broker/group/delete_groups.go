package group

// DeleteGroups: versions 0-3.
//
// Behaviour: deletes each Empty group and its committed offsets (offsets
// first, then the group leaves memory). A group known only by its offsets is
// deleted too. An empty group id is looked up like any other, as in Kafka.
//
// Errors: NON_EMPTY_GROUP (the group has members), GROUP_ID_NOT_FOUND (no
// such group), COORDINATOR_NOT_AVAILABLE (store failure, or closing).
//
// Version notes:
//   - v2+: flexible. v3+: an error message per group.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (c *Coordinator) handleDeleteGroups(req *kmsg.DeleteGroupsRequest) *kmsg.DeleteGroupsResponse {
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	for _, name := range req.Groups {
		rg := kmsg.NewDeleteGroupsResponseGroup()
		rg.Group = name
		if err := c.deleteGroup(name); err != nil {
			rg.ErrorCode = err.Code
			if req.Version >= 3 {
				rg.ErrorMessage = &err.Description
			}
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return resp
}

// deleteGroup deletes one group. Takes c.mu, then the group's lock: the
// group must leave the map in the same critical section in which it is
// found Empty, or a member could join in between.
func (c *Coordinator) deleteGroup(name string) *kerr.Error {
	if c.closed.Load() {
		return kerr.CoordinatorNotAvailable
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.mu.groups[name]
	if g == nil {
		has, err := c.groupHasOffsets(name)
		if err != nil {
			c.log.Error("group: cannot read offsets", "group", name, "err", err)
			return kerr.CoordinatorNotAvailable
		}
		if !has {
			return kerr.GroupIDNotFound
		}
	} else {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.mu.state != stateEmpty || len(g.mu.members) > 0 {
			return kerr.NonEmptyGroup
		}
	}
	if err := c.store.DeleteGroupOffsets(name); err != nil {
		c.log.Error("group: cannot delete offsets", "group", name, "err", err)
		return kerr.CoordinatorNotAvailable
	}
	if g != nil {
		g.mu.dead = true
		g.stopTimers()
		delete(c.mu.groups, name)
	}
	c.log.Info("group: deleted", "group", name)
	return nil
}
