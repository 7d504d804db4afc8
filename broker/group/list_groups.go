package group

// ListGroups: versions 0-5.
//
// Behaviour: every group in memory plus every group with committed offsets
// (reported Empty, protocol type ""), sorted by name.
//
// Errors: COORDINATOR_NOT_AVAILABLE (store unreadable, or closing).
//
// Version notes:
//   - v4+: states filter (case-insensitive, as Kafka) and each group's state.
//   - v5+: types filter and each group's type; every group here is "classic".

import (
	"sort"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (c *Coordinator) handleListGroups(req *kmsg.ListGroupsRequest) *kmsg.ListGroupsResponse {
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	if c.closed.Load() {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp
	}
	stored, err := c.store.OffsetGroups()
	if err != nil {
		c.log.Error("group: cannot list groups with offsets", "err", err)
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp
	}
	listed := make(map[string]kmsg.ListGroupsResponseGroup)
	for _, g := range c.snapshotGroups() {
		g.mu.Lock()
		if !g.mu.dead {
			lg := kmsg.NewListGroupsResponseGroup()
			lg.Group = g.name
			lg.ProtocolType = g.mu.protocolType
			lg.GroupState = g.mu.state.String()
			lg.GroupType = groupType
			listed[g.name] = lg
		}
		g.mu.Unlock()
	}
	for _, name := range stored {
		if _, ok := listed[name]; !ok {
			lg := kmsg.NewListGroupsResponseGroup()
			lg.Group = name
			lg.GroupState = stateEmpty.String()
			lg.GroupType = groupType
			listed[name] = lg
		}
	}
	match := func(filter []string, v string) bool {
		if len(filter) == 0 {
			return true
		}
		for _, f := range filter {
			if strings.EqualFold(f, v) {
				return true
			}
		}
		return false
	}
	for _, lg := range listed {
		if req.Version >= 4 && !match(req.StatesFilter, lg.GroupState) {
			continue
		}
		if req.Version >= 5 && !match(req.TypesFilter, lg.GroupType) {
			continue
		}
		resp.Groups = append(resp.Groups, lg)
	}
	sort.Slice(resp.Groups, func(i, j int) bool { return resp.Groups[i].Group < resp.Groups[j].Group })
	return resp
}
