package group

import (
	"bytes"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

type state int8

const (
	stateEmpty state = iota
	statePreparingRebalance
	stateCompletingRebalance
	stateStable
	stateDead
)

// String returns the state as Kafka names it in DescribeGroups and ListGroups.
func (s state) String() string {
	switch s {
	case stateEmpty:
		return "Empty"
	case statePreparingRebalance:
		return "PreparingRebalance"
	case stateCompletingRebalance:
		return "CompletingRebalance"
	case stateStable:
		return "Stable"
	}
	return "Dead"
}

// groupType is what ListGroups v5+ reports: every group here is classic.
const groupType = "classic"

// consumerProtocolType is the protocol type of Kafka consumers; its member
// metadata is a kmsg.ConsumerMemberMetadata.
const consumerProtocolType = "consumer"

// emptyConsumerAssignment is an encoded ConsumerMemberAssignment with no
// partitions. Kafka passes an empty byte string to a member the leader left
// out; some clients cannot decode that, so consumer groups get this instead.
var emptyConsumerAssignment = func() []byte {
	var a kmsg.ConsumerMemberAssignment
	return a.AppendTo(nil)
}()

type member struct {
	id         string
	instanceID *string
	clientID   string
	clientHost string

	sessionTimeout   time.Duration
	rebalanceTimeout time.Duration
	protocolType     string
	protocols        []kmsg.JoinGroupRequestProtocol
	assignment       []byte

	// joinCh is set while the member waits for its JoinGroup response
	// (Kafka's "awaiting join"); joinVersion is that request's version.
	joinCh      chan *kmsg.JoinGroupResponse
	joinVersion int16
	// syncCh is set while the member waits for its SyncGroup response.
	syncCh      chan *kmsg.SyncGroupResponse
	syncVersion int16

	deadline time.Time   // session expiry; moved forward by heartbeats
	timer    *time.Timer // fires at deadline
}

// matches reports whether protocols are the member's, names and metadata.
func (m *member) matches(protocols []kmsg.JoinGroupRequestProtocol) bool {
	if len(protocols) != len(m.protocols) {
		return false
	}
	for i, p := range protocols {
		if p.Name != m.protocols[i].Name || !bytes.Equal(p.Metadata, m.protocols[i].Metadata) {
			return false
		}
	}
	return true
}

func (m *member) metadataFor(protocol string) []byte {
	for _, p := range m.protocols {
		if p.Name == protocol {
			return p.Metadata
		}
	}
	return nil
}

// pendingMember is a member id handed out with MEMBER_ID_REQUIRED (JoinGroup
// v4+) that has not joined with it yet. It must do so within its session timeout.
type pendingMember struct {
	timer *time.Timer
}

type group struct {
	c    *Coordinator
	name string

	mu struct {
		sync.Mutex
		dead bool // dropped from the coordinator's map; look the group up again

		state        state
		stateSince   time.Time
		generation   int32
		protocolType string
		protocol     string
		leader       string
		members      map[string]*member
		static       map[string]string // group.instance.id -> member id
		pending      map[string]*pendingMember
		pendingSync  map[string]bool // members that got the JoinGroup response but have not synced

		// seq grows every time joinTimer or syncTimer is armed, so a callback
		// that lost the race with a re-arm sees it is stale.
		seq       uint64
		joinTimer *time.Timer // rebalance timeout, or the initial delay
		syncTimer *time.Timer // members must SyncGroup within the rebalance timeout

		initialDelay   bool          // the first rebalance of an Empty group is in its delay
		newMemberAdded bool          // a member joined during the current delay step
		delayRemaining time.Duration // what the delay may still be extended by
	}
}

func newGroup(c *Coordinator, name string) *group {
	g := &group{c: c, name: name}
	g.mu.stateSince = time.Now()
	g.mu.members = make(map[string]*member)
	g.mu.static = make(map[string]string)
	g.mu.pending = make(map[string]*pendingMember)
	return g
}

// unusedLocked reports whether the group never had a member. Requires g.mu.
func (g *group) unusedLocked() bool {
	return g.mu.state == stateEmpty && g.mu.generation == 0 && len(g.mu.members) == 0 && len(g.mu.pending) == 0
}

// transition moves the group to s. Requires g.mu.
func (g *group) transition(s state) {
	if g.mu.state != s {
		g.c.log.Debug("group: state change", "group", g.name, "from", g.mu.state.String(), "to", s.String(), "generation", g.mu.generation)
	}
	g.mu.state = s
	g.mu.stateSince = time.Now()
}

// stopTimers stops every timer of the group and answers its waiters with
// COORDINATOR_NOT_AVAILABLE. Used when the coordinator closes or the group is
// dropped. Requires g.mu.
func (g *group) stopTimers() {
	c := g.c
	c.cancel(&g.mu.joinTimer)
	c.cancel(&g.mu.syncTimer)
	for _, m := range g.mu.members {
		c.cancel(&m.timer)
		g.answerJoin(m, kerr.CoordinatorNotAvailable)
		g.answerSync(m, kerr.CoordinatorNotAvailable)
	}
	for _, p := range g.mu.pending {
		c.cancel(&p.timer)
	}
}

// touch restarts the member's session timeout. Requires g.mu.
func (g *group) touch(m *member) {
	m.deadline = time.Now().Add(m.sessionTimeout)
	g.c.schedule(&m.timer, m.sessionTimeout, func() { g.onSessionTimeout(m) })
}

// onSessionTimeout runs when m's session timer fires. Takes g.mu.
func (g *group) onSessionTimeout(m *member) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.mu.dead || g.mu.members[m.id] != m {
		return
	}
	if m.joinCh != nil {
		// Waiting in JoinGroup: the rebalance timeout bounds it, not the session.
		return
	}
	if time.Now().Before(m.deadline) {
		return // a heartbeat moved the deadline; its own timer is armed
	}
	g.c.log.Info("group: member session expired", "group", g.name, "member", m.id)
	g.removeMember(m, "session timeout expired")
}

// addPending records a member id handed out with MEMBER_ID_REQUIRED. Requires g.mu.
func (g *group) addPending(id string, sessionTimeout time.Duration) {
	p := &pendingMember{}
	g.mu.pending[id] = p
	g.c.schedule(&p.timer, sessionTimeout, func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.mu.dead || g.mu.pending[id] != p {
			return
		}
		delete(g.mu.pending, id)
		g.tryCompleteJoin()
	})
}

// removePending forgets a pending member id; reports whether it was pending. Requires g.mu.
func (g *group) removePending(id string) bool {
	p, ok := g.mu.pending[id]
	if !ok {
		return false
	}
	g.c.cancel(&p.timer)
	delete(g.mu.pending, id)
	return true
}

// supportsProtocols reports whether a member joining with protocolType and
// protocols may be in the group: the first member sets the protocol type;
// later ones must share it and at least one protocol every member supports.
// Requires g.mu.
func (g *group) supportsProtocols(protocolType string, protocols []kmsg.JoinGroupRequestProtocol) bool {
	if len(g.mu.members) == 0 {
		return protocolType != "" && len(protocols) > 0
	}
	if protocolType != g.mu.protocolType {
		return false
	}
	for _, p := range protocols {
		all := true
		for _, m := range g.mu.members {
			if !m.hasProtocol(p.Name) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

func (m *member) hasProtocol(name string) bool {
	for _, p := range m.protocols {
		if p.Name == name {
			return true
		}
	}
	return false
}

// selectProtocol picks the protocol of the next generation: among protocols
// every member supports, each member votes for the first of its own list; the
// most votes win, ties broken by the leader's preference. Requires g.mu.
func (g *group) selectProtocol() string {
	leader := g.mu.members[g.mu.leader]
	if leader == nil {
		return ""
	}
	var candidates []string
	for _, p := range leader.protocols {
		all := true
		for _, m := range g.mu.members {
			if !m.hasProtocol(p.Name) {
				all = false
				break
			}
		}
		if all {
			candidates = append(candidates, p.Name)
		}
	}
	votes := make(map[string]int)
	for _, m := range g.mu.members {
		for _, p := range m.protocols {
			if contains(candidates, p.Name) {
				votes[p.Name]++
				break
			}
		}
	}
	best := ""
	for _, name := range candidates {
		if best == "" || votes[name] > votes[best] {
			best = name
		}
	}
	return best
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// addMember adds a new member that waits for the rebalance it triggers (or
// joins). Requires g.mu.
func (g *group) addMember(m *member) {
	if len(g.mu.members) == 0 {
		g.mu.protocolType = m.protocolType
	}
	g.mu.members[m.id] = m
	if m.instanceID != nil {
		g.mu.static[*m.instanceID] = m.id
	}
	if g.mu.leader == "" {
		g.mu.leader = m.id
	}
	if g.mu.initialDelay {
		g.mu.newMemberAdded = true
	}
	g.maybeRebalance("new member " + m.id + " joined")
}

// maybeRebalance starts a rebalance from Empty, CompletingRebalance or
// Stable; during PreparingRebalance it checks whether the join can complete.
// Requires g.mu.
func (g *group) maybeRebalance(reason string) {
	switch g.mu.state {
	case stateEmpty, stateCompletingRebalance, stateStable:
		g.prepareRebalance(reason)
	case statePreparingRebalance:
		g.tryCompleteJoin()
	}
}

// prepareRebalance moves the group to PreparingRebalance and arms the
// rebalance timeout (or the initial delay). Requires g.mu.
func (g *group) prepareRebalance(reason string) {
	c := g.c
	if g.mu.state == stateCompletingRebalance {
		// The leader's assignment, if it comes, is for a generation that is over.
		for _, m := range g.mu.members {
			m.assignment = nil
			g.answerSync(m, kerr.RebalanceInProgress)
		}
	}
	c.cancel(&g.mu.syncTimer)
	g.mu.pendingSync = nil
	initial := g.mu.state == stateEmpty && c.cfg.InitialRebalanceDelay > 0
	g.transition(statePreparingRebalance)
	c.log.Info("group: preparing rebalance", "group", g.name, "generation", g.mu.generation, "reason", reason)

	rebalanceTimeout := g.rebalanceTimeout()
	g.mu.seq++
	seq := g.mu.seq
	if initial {
		delay := c.cfg.InitialRebalanceDelay
		g.mu.initialDelay = true
		g.mu.newMemberAdded = false
		g.mu.delayRemaining = max(rebalanceTimeout-delay, 0)
		c.schedule(&g.mu.joinTimer, delay, func() { g.onInitialDelay(seq) })
		return
	}
	g.mu.initialDelay = false
	c.schedule(&g.mu.joinTimer, rebalanceTimeout, func() { g.onJoinTimeout(seq) })
	g.tryCompleteJoin()
}

// rebalanceTimeout is the largest rebalance timeout of the members. Requires g.mu.
func (g *group) rebalanceTimeout() time.Duration {
	var d time.Duration
	for _, m := range g.mu.members {
		d = max(d, m.rebalanceTimeout)
	}
	return d
}

// onInitialDelay ends one step of the initial delay: another step if members
// arrived during this one and the rebalance timeout allows, else the join
// completes. Takes g.mu.
func (g *group) onInitialDelay(seq uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.mu.dead || seq != g.mu.seq || g.mu.state != statePreparingRebalance {
		return
	}
	if g.mu.newMemberAdded && g.mu.delayRemaining > 0 {
		g.mu.newMemberAdded = false
		delay := min(g.c.cfg.InitialRebalanceDelay, g.mu.delayRemaining)
		g.mu.delayRemaining -= delay
		g.mu.seq++
		seq := g.mu.seq
		g.c.schedule(&g.mu.joinTimer, delay, func() { g.onInitialDelay(seq) })
		return
	}
	g.mu.initialDelay = false
	g.completeJoin()
}

// onJoinTimeout ends a rebalance whose members did not all rejoin in time.
// Takes g.mu.
func (g *group) onJoinTimeout(seq uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.mu.dead || seq != g.mu.seq || g.mu.state != statePreparingRebalance {
		return
	}
	g.completeJoin()
}

// tryCompleteJoin completes the join phase once every member has rejoined and
// no member id handed out with MEMBER_ID_REQUIRED is outstanding. Requires g.mu.
func (g *group) tryCompleteJoin() {
	if g.mu.state != statePreparingRebalance || g.mu.initialDelay {
		return
	}
	if len(g.mu.pending) > 0 {
		return
	}
	for _, m := range g.mu.members {
		if m.joinCh == nil {
			return
		}
	}
	g.completeJoin()
}

// completeJoin removes members that did not rejoin, starts the next
// generation and answers every waiting JoinGroup. Requires g.mu.
func (g *group) completeJoin() {
	c := g.c
	c.cancel(&g.mu.joinTimer)
	g.mu.seq++
	for _, m := range g.sortedMembers() {
		if m.joinCh == nil {
			c.log.Info("group: removing member that did not rejoin in time", "group", g.name, "member", m.id)
			g.dropMember(m)
		}
	}
	g.mu.generation++
	if len(g.mu.members) == 0 {
		g.mu.protocol = ""
		g.mu.leader = ""
		g.transition(stateEmpty)
		if err := g.storeMetadata(); err != nil {
			c.log.Error("group: cannot persist group metadata", "group", g.name, "err", err)
		}
		return
	}
	if _, ok := g.mu.members[g.mu.leader]; !ok {
		g.mu.leader = g.sortedMembers()[0].id
	}
	g.mu.protocol = g.selectProtocol()
	g.transition(stateCompletingRebalance)
	c.log.Info("group: join complete", "group", g.name, "generation", g.mu.generation,
		"protocol", g.mu.protocol, "leader", g.mu.leader, "members", len(g.mu.members))

	g.mu.pendingSync = make(map[string]bool, len(g.mu.members))
	for _, m := range g.mu.members {
		g.mu.pendingSync[m.id] = true
		resp := g.joinResponse(m, m.joinVersion, m.id == g.mu.leader)
		m.joinCh <- resp
		m.joinCh = nil
		g.touch(m)
	}
	seq := g.mu.seq
	c.schedule(&g.mu.syncTimer, g.rebalanceTimeout(), func() { g.onSyncTimeout(seq) })
}

// onSyncTimeout removes members that did not SyncGroup within the rebalance
// timeout after the join completed, and rebalances. Takes g.mu.
func (g *group) onSyncTimeout(seq uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.mu.dead || seq != g.mu.seq || len(g.mu.pendingSync) == 0 {
		return
	}
	if g.mu.state != stateCompletingRebalance && g.mu.state != stateStable {
		return
	}
	for id := range g.mu.pendingSync {
		if m := g.mu.members[id]; m != nil {
			g.c.log.Info("group: removing member that did not sync in time", "group", g.name, "member", id)
			g.answerSync(m, kerr.UnknownMemberID)
			g.dropMember(m)
		}
	}
	g.prepareRebalance("members did not sync in time")
}

// joinResponse builds m's JoinGroup response for the current generation; the
// leader's lists every member with its metadata for the chosen protocol.
// Requires g.mu.
func (g *group) joinResponse(m *member, version int16, withMembers bool) *kmsg.JoinGroupResponse {
	resp := kmsg.NewPtrJoinGroupResponse()
	resp.Version = version
	resp.Generation = g.mu.generation
	resp.ProtocolType = kmsg.StringPtr(g.mu.protocolType)
	resp.Protocol = kmsg.StringPtr(g.mu.protocol)
	resp.LeaderID = g.mu.leader
	resp.MemberID = m.id
	if withMembers {
		for _, o := range g.sortedMembers() {
			rm := kmsg.NewJoinGroupResponseMember()
			rm.MemberID = o.id
			rm.InstanceID = o.instanceID
			rm.ProtocolMetadata = o.metadataFor(g.mu.protocol)
			resp.Members = append(resp.Members, rm)
		}
	}
	return resp
}

// answerJoin answers m's waiting JoinGroup, if any, with err. Requires g.mu.
func (g *group) answerJoin(m *member, err *kerr.Error) {
	if m.joinCh == nil {
		return
	}
	resp := kmsg.NewPtrJoinGroupResponse()
	resp.Version = m.joinVersion
	resp.ErrorCode = err.Code
	resp.Generation = -1
	resp.Protocol = kmsg.StringPtr("")
	resp.MemberID = m.id
	m.joinCh <- resp
	m.joinCh = nil
}

// answerSync answers m's waiting SyncGroup, if any: with err if not nil,
// else with m's assignment. Requires g.mu.
func (g *group) answerSync(m *member, err *kerr.Error) {
	if m.syncCh == nil {
		return
	}
	resp := kmsg.NewPtrSyncGroupResponse()
	resp.Version = m.syncVersion
	if err != nil {
		resp.ErrorCode = err.Code
	} else {
		resp.ProtocolType = kmsg.StringPtr(g.mu.protocolType)
		resp.Protocol = kmsg.StringPtr(g.mu.protocol)
		resp.MemberAssignment = m.assignment
	}
	m.syncCh <- resp
	m.syncCh = nil
}

// removeMember takes m out of the group after a LeaveGroup or an expired
// session and rebalances the rest. Requires g.mu.
func (g *group) removeMember(m *member, reason string) {
	// A member may time out while still waiting in JoinGroup (it is then
	// leaving): UNKNOWN_MEMBER_ID tells a live client to join again.
	g.answerJoin(m, kerr.UnknownMemberID)
	g.answerSync(m, kerr.UnknownMemberID)
	g.dropMember(m)
	switch g.mu.state {
	case stateStable, stateCompletingRebalance:
		g.prepareRebalance(reason)
	case statePreparingRebalance:
		g.tryCompleteJoin()
	}
}

// dropMember deletes m from the group's bookkeeping, choosing a new leader if
// m led it. Requires g.mu.
func (g *group) dropMember(m *member) {
	g.c.cancel(&m.timer)
	delete(g.mu.members, m.id)
	delete(g.mu.pendingSync, m.id)
	if m.instanceID != nil && g.mu.static[*m.instanceID] == m.id {
		delete(g.mu.static, *m.instanceID)
	}
	if g.mu.leader == m.id {
		g.mu.leader = ""
		// Prefer a member that already rejoined.
		for _, o := range g.sortedMembers() {
			if g.mu.leader == "" || (o.joinCh != nil && g.mu.members[g.mu.leader].joinCh == nil) {
				g.mu.leader = o.id
			}
		}
	}
}

// sortedMembers returns the members ordered by id, for deterministic
// responses. Requires g.mu.
func (g *group) sortedMembers() []*member {
	ms := make([]*member, 0, len(g.mu.members))
	for _, m := range g.mu.members {
		ms = append(ms, m)
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].id < ms[j].id })
	return ms
}

// validateMember checks a request's member id and group.instance.id against
// the group: UNKNOWN_MEMBER_ID or FENCED_INSTANCE_ID. Requires g.mu.
func (g *group) validateMember(memberID string, instanceID *string) (*member, *kerr.Error) {
	if instanceID != nil {
		id, ok := g.mu.static[*instanceID]
		if !ok {
			return nil, kerr.UnknownMemberID
		}
		if id != memberID {
			return nil, kerr.FencedInstanceID
		}
	}
	m := g.mu.members[memberID]
	if m == nil {
		return nil, kerr.UnknownMemberID
	}
	return m, nil
}

// subscribedTopics returns the topics the members subscribe to, decoded from
// their consumer protocol metadata, and false if some member's metadata
// cannot be decoded (then every topic counts as subscribed). Requires g.mu.
func (g *group) subscribedTopics() (map[string]bool, bool) {
	topics := make(map[string]bool)
	for _, m := range g.mu.members {
		for _, p := range m.protocols {
			if g.mu.protocol != "" && p.Name != g.mu.protocol {
				continue
			}
			var meta kmsg.ConsumerMemberMetadata
			if err := meta.ReadFrom(p.Metadata); err != nil {
				return nil, false
			}
			for _, t := range meta.Topics {
				topics[t] = true
			}
		}
	}
	return topics, true
}
