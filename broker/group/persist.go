package group

// Group metadata persistence. Kafka writes a GroupMetadataValue record to
// __consumer_offsets when a rebalance completes (the leader's assignment is
// in) and when a group goes Empty; a coordinator that loads the partition
// rebuilds the group from it: its generation, protocol, leader and members
// with their assignments. The members keep their ids and generation, so a
// consumer that only lost its connection goes on heartbeating and committing
// as before; one that is gone expires after its session timeout, which starts
// at the load, as in Kafka.

import (
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// GroupStore persists group metadata. An OffsetStore that implements it is
// given a group's metadata each time a generation completes or the group
// goes Empty, and a nil value (a tombstone) when the group is deleted.
type GroupStore interface {
	StoreGroup(group string, v *kmsg.GroupMetadataValue) error
}

// metadataValue is the group as Kafka's GroupMetadataValue (version 3)
// records it. Requires g.mu.
func (g *group) metadataValue() *kmsg.GroupMetadataValue {
	v := &kmsg.GroupMetadataValue{}
	v.Default()
	v.Version = 3
	v.ProtocolType = g.mu.protocolType
	v.Generation = g.mu.generation
	if g.mu.protocol != "" {
		v.Protocol = kmsg.StringPtr(g.mu.protocol)
	}
	if g.mu.leader != "" {
		v.Leader = kmsg.StringPtr(g.mu.leader)
	}
	v.CurrentStateTimestamp = g.mu.stateSince.UnixMilli()
	for _, m := range g.sortedMembers() {
		vm := kmsg.NewGroupMetadataValueMember()
		vm.MemberID = m.id
		vm.InstanceID = m.instanceID
		vm.ClientID = m.clientID
		vm.ClientHost = m.clientHost
		vm.RebalanceTimeoutMillis = int32(m.rebalanceTimeout / time.Millisecond)
		vm.SessionTimeoutMillis = int32(m.sessionTimeout / time.Millisecond)
		vm.Subscription = m.metadataFor(g.mu.protocol)
		vm.Assignment = m.assignment
		v.Members = append(v.Members, vm)
	}
	return v
}

// storeMetadata persists the group's metadata if the store keeps it.
// Requires g.mu.
func (g *group) storeMetadata() error {
	gs, ok := g.c.store.(GroupStore)
	if !ok {
		return nil
	}
	return gs.StoreGroup(g.name, g.metadataValue())
}

// Restore installs a group read back from the offsets log, before the
// coordinator serves requests for it (or when it becomes the coordinator of
// the log partition holding it). A group with members comes back Stable with
// them, each with a fresh session timeout; one without, Empty with its
// generation. A group already in memory is left alone.
func (c *Coordinator) Restore(name string, v *kmsg.GroupMetadataValue) {
	if v == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.groups[name] != nil {
		return
	}
	g := newGroup(c, name)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.mu.generation = v.Generation
	g.mu.protocolType = v.ProtocolType
	if v.Protocol != nil {
		g.mu.protocol = *v.Protocol
	}
	if v.CurrentStateTimestamp > 0 {
		g.mu.stateSince = time.UnixMilli(v.CurrentStateTimestamp)
	}
	for _, vm := range v.Members {
		m := &member{
			id:               vm.MemberID,
			instanceID:       vm.InstanceID,
			clientID:         vm.ClientID,
			clientHost:       vm.ClientHost,
			sessionTimeout:   time.Duration(vm.SessionTimeoutMillis) * time.Millisecond,
			rebalanceTimeout: time.Duration(vm.RebalanceTimeoutMillis) * time.Millisecond,
			protocolType:     v.ProtocolType,
			protocols:        []kmsg.JoinGroupRequestProtocol{{Name: g.mu.protocol, Metadata: vm.Subscription}},
			assignment:       vm.Assignment,
		}
		if m.sessionTimeout <= 0 {
			m.sessionTimeout = c.cfg.MinSessionTimeout
		}
		if m.rebalanceTimeout <= 0 {
			m.rebalanceTimeout = m.sessionTimeout
		}
		g.mu.members[m.id] = m
		if m.instanceID != nil {
			g.mu.static[*m.instanceID] = m.id
		}
	}
	if len(g.mu.members) > 0 {
		g.mu.state = stateStable
		g.mu.leader = ""
		if v.Leader != nil && g.mu.members[*v.Leader] != nil {
			g.mu.leader = *v.Leader
		} else {
			g.mu.leader = g.sortedMembers()[0].id
		}
		for _, m := range g.mu.members {
			g.touch(m)
		}
	}
	c.mu.groups[name] = g
}

// Forget drops group from memory (its timers stopped): the broker stopped
// coordinating it (its offsets partition has another leader), or is about
// to Restore it afresh from the log after becoming the leader again.
func (c *Coordinator) Forget(name string) {
	c.mu.Lock()
	g := c.mu.groups[name]
	delete(c.mu.groups, name)
	c.mu.Unlock()
	if g != nil {
		g.mu.Lock()
		g.stopTimers()
		g.mu.Unlock()
	}
}
