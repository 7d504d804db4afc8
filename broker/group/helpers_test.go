package group

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/wait"
	"github.com/stratalog/strata/metadata"
)

// memStore is an in-memory OffsetStore.
type memStore struct {
	mu      sync.Mutex
	offs    map[string]map[metadata.TopicPartition]metadata.OffsetCommit
	failErr error // returned by every write when set
}

var _ OffsetStore = (*memStore)(nil)

func newMemStore() *memStore {
	return &memStore{offs: make(map[string]map[metadata.TopicPartition]metadata.OffsetCommit)}
}

func (s *memStore) CommitOffsets(group string, commits []metadata.OffsetCommit) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failErr != nil {
		return s.failErr
	}
	g := s.offs[group]
	if g == nil {
		g = make(map[metadata.TopicPartition]metadata.OffsetCommit)
		s.offs[group] = g
	}
	for _, c := range commits {
		g[metadata.TopicPartition{Topic: c.Topic, Partition: c.Partition}] = c
	}
	return nil
}

func (s *memStore) GroupOffsets(group string) ([]metadata.OffsetCommit, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []metadata.OffsetCommit
	for _, c := range s.offs[group] {
		out = append(out, c)
	}
	return out, nil
}

func (s *memStore) DeleteGroupOffsets(group string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failErr != nil {
		return s.failErr
	}
	delete(s.offs, group)
	return nil
}

func (s *memStore) DeleteOffsets(group string, tps []metadata.TopicPartition) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failErr != nil {
		return s.failErr
	}
	for _, tp := range tps {
		delete(s.offs[group], tp)
	}
	if len(s.offs[group]) == 0 {
		delete(s.offs, group)
	}
	return nil
}

func (s *memStore) OffsetGroups() ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for g := range s.offs {
		out = append(out, g)
	}
	sort.Strings(out)
	return out, nil
}

func (s *memStore) ExpireOffsets(beforeMs int64, keep func(string) bool) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for g, offs := range s.offs {
		if keep(g) {
			continue
		}
		for tp, c := range offs {
			if c.CommitTimestamp < beforeMs {
				delete(offs, tp)
				n++
			}
		}
		if len(offs) == 0 {
			delete(s.offs, g)
		}
	}
	return n, nil
}

// memTopics is a fixed set of topics.
type memTopics map[string]struct {
	id         [16]byte
	partitions int32
}

func (t memTopics) PartitionExists(topic string, partition int32) bool {
	d, ok := t[topic]
	return ok && partition >= 0 && partition < d.partitions
}

func (t memTopics) TopicName(id [16]byte) (string, bool) {
	for name, d := range t {
		if d.id == id {
			return name, true
		}
	}
	return "", false
}

func (t memTopics) TopicID(name string) ([16]byte, bool) {
	d, ok := t[name]
	return d.id, ok
}

var testTopics = memTopics{
	"t1": {id: [16]byte{1}, partitions: 3},
	"t2": {id: [16]byte{2}, partitions: 2},
}

// testConfig has short timeouts so the suite is fast. The initial delay lets
// members that join together land in the same first generation.
func testConfig() Config {
	return Config{
		InitialRebalanceDelay:         15 * time.Millisecond,
		MinSessionTimeout:             10 * time.Millisecond,
		MaxSessionTimeout:             30 * time.Second,
		OffsetsRetention:              time.Hour,
		OffsetsRetentionCheckInterval: time.Hour,
	}
}

func newTest(t *testing.T, cfg Config) (*Coordinator, *memStore) {
	t.Helper()
	store := newMemStore()
	c := New(cfg, store, testTopics, nil)
	t.Cleanup(c.Close)
	return c, store
}

// roundTrip sends req through the wire format at its version, serves it and
// sends the response back through the wire format, as the broker and a
// client would: fields a version does not carry are lost both ways.
func roundTrip[R kmsg.Response](ctx context.Context, t testing.TB, c *Coordinator, req kmsg.Request) R {
	in := kmsg.RequestForKey(req.Key())
	in.SetVersion(req.GetVersion())
	if err := in.ReadFrom(req.AppendTo(nil)); err != nil {
		t.Errorf("decoding %T v%d: %v", req, req.GetVersion(), err)
		var zero R
		return zero
	}
	resp, ok := c.Handle(ctx, in)
	if !ok {
		t.Errorf("%T not served", req)
		var zero R
		return zero
	}
	if resp.GetVersion() != req.GetVersion() {
		t.Errorf("%T answered at v%d, asked v%d", resp, resp.GetVersion(), req.GetVersion())
	}
	out := in.ResponseKind()
	if err := out.ReadFrom(resp.AppendTo(nil)); err != nil {
		t.Errorf("decoding %T v%d: %v", resp, resp.GetVersion(), err)
	}
	return out.(R)
}

func errName(code int16) string {
	if code == 0 {
		return "NONE"
	}
	var ke *kerr.Error
	if errors.As(kerr.ErrorForCode(code), &ke) {
		return ke.Message
	}
	return fmt.Sprint(code)
}

func wantErr(t testing.TB, what string, got int16, want *kerr.Error) {
	t.Helper()
	var w int16
	if want != nil {
		w = want.Code
	}
	if got != w {
		t.Errorf("%s: error %s, want %s", what, errName(got), errName(w))
	}
}

// versions is one client's choice of group API versions.
type versions struct {
	name                                        string
	join, sync, heartbeat, leave, commit, fetch int16
	describe, list                              int16
}

var clientVersions = []versions{
	{name: "kafka-go", join: 1, sync: 0, heartbeat: 0, leave: 0, commit: 2, fetch: 1, describe: 0, list: 0},
	{name: "v3", join: 3, sync: 2, heartbeat: 2, leave: 2, commit: 5, fetch: 4, describe: 2, list: 2},
	{name: "kcat", join: 5, sync: 3, heartbeat: 3, leave: 1, commit: 7, fetch: 7, describe: 4, list: 3},
	{name: "franz-go", join: 9, sync: 5, heartbeat: 4, leave: 5, commit: 10, fetch: 10, describe: 6, list: 5},
}

func consumerMeta(topics ...string) []byte {
	m := kmsg.ConsumerMemberMetadata{Version: 0, Topics: topics}
	return m.AppendTo(nil)
}

// groupMemStore is a memStore that keeps group metadata too (GroupStore).
type groupMemStore struct {
	*memStore
	groups map[string]*kmsg.GroupMetadataValue
}

func (s *groupMemStore) StoreGroup(group string, v *kmsg.GroupMetadataValue) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failErr != nil {
		return s.failErr
	}
	s.groups[group] = v
	return nil
}

func (s *groupMemStore) group(name string) *kmsg.GroupMetadataValue {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.groups[name]
}

func (s *memStore) setFail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failErr = err
}

// tmember drives one group member through Handle.
type tmember struct {
	t        testing.TB
	c        *Coordinator
	v        versions
	group    string
	clientID string
	instance *string

	session, rebalance time.Duration
	protocols          []kmsg.JoinGroupRequestProtocol

	id     string
	gen    int32
	leader string
	joined *kmsg.JoinGroupResponse
}

func newMember(t testing.TB, c *Coordinator, v versions, group, clientID string, topics ...string) *tmember {
	return &tmember{
		t: t, c: c, v: v, group: group, clientID: clientID,
		session: 5 * time.Second, rebalance: 5 * time.Second,
		protocols: []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: consumerMeta(topics...)}},
	}
}

func (m *tmember) ctx() context.Context {
	return WithClient(context.Background(), m.clientID, "127.0.0.1")
}

func (m *tmember) joinReq() *kmsg.JoinGroupRequest {
	req := kmsg.NewPtrJoinGroupRequest()
	req.Version = m.v.join
	req.Group = m.group
	req.SessionTimeoutMillis = int32(m.session / time.Millisecond)
	req.RebalanceTimeoutMillis = int32(m.rebalance / time.Millisecond)
	req.MemberID = m.id
	req.InstanceID = m.instance
	req.ProtocolType = "consumer"
	req.Protocols = m.protocols
	return req
}

// joinOnce sends one JoinGroup and records the member id and generation it
// returns.
func (m *tmember) joinOnce() *kmsg.JoinGroupResponse {
	resp := roundTrip[*kmsg.JoinGroupResponse](m.ctx(), m.t, m.c, m.joinReq())
	if resp == nil {
		return kmsg.NewPtrJoinGroupResponse()
	}
	if resp.MemberID != "" {
		m.id = resp.MemberID
	}
	if resp.ErrorCode == 0 {
		m.gen, m.leader, m.joined = resp.Generation, resp.LeaderID, resp
	}
	return resp
}

// join joins, handling MEMBER_ID_REQUIRED, and expects success.
func (m *tmember) join() *kmsg.JoinGroupResponse {
	resp := m.joinOnce()
	if resp.ErrorCode == kerr.MemberIDRequired.Code {
		resp = m.joinOnce()
	}
	if resp.ErrorCode != 0 {
		m.t.Errorf("%s join: %s", m.clientID, errName(resp.ErrorCode))
	}
	return resp
}

func (m *tmember) joinAsync() <-chan *kmsg.JoinGroupResponse {
	ch := make(chan *kmsg.JoinGroupResponse, 1)
	go func() { ch <- m.join() }()
	return ch
}

func (m *tmember) isLeader() bool { return m.id == m.leader }

func (m *tmember) syncReq(assign map[string][]byte) *kmsg.SyncGroupRequest {
	req := kmsg.NewPtrSyncGroupRequest()
	req.Version = m.v.sync
	req.Group = m.group
	req.Generation = m.gen
	req.MemberID = m.id
	req.InstanceID = m.instance
	if m.v.sync >= 5 {
		req.ProtocolType = kmsg.StringPtr("consumer")
		req.Protocol = kmsg.StringPtr("range")
		if m.joined != nil && m.joined.Protocol != nil {
			req.Protocol = m.joined.Protocol
		}
	}
	ids := make([]string, 0, len(assign))
	for id := range assign {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		req.GroupAssignment = append(req.GroupAssignment, kmsg.SyncGroupRequestGroupAssignment{MemberID: id, MemberAssignment: assign[id]})
	}
	return req
}

func (m *tmember) sync(assign map[string][]byte) *kmsg.SyncGroupResponse {
	return roundTrip[*kmsg.SyncGroupResponse](m.ctx(), m.t, m.c, m.syncReq(assign))
}

func (m *tmember) syncAsync(assign map[string][]byte) <-chan *kmsg.SyncGroupResponse {
	ch := make(chan *kmsg.SyncGroupResponse, 1)
	go func() { ch <- m.sync(assign) }()
	return ch
}

func (m *tmember) heartbeat() int16 {
	req := kmsg.NewPtrHeartbeatRequest()
	req.Version = m.v.heartbeat
	req.Group = m.group
	req.Generation = m.gen
	req.MemberID = m.id
	req.InstanceID = m.instance
	return roundTrip[*kmsg.HeartbeatResponse](m.ctx(), m.t, m.c, req).ErrorCode
}

func (m *tmember) leave() int16 {
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Version = m.v.leave
	req.Group = m.group
	req.MemberID = m.id
	if m.v.leave >= 3 {
		req.Members = []kmsg.LeaveGroupRequestMember{{MemberID: m.id, InstanceID: m.instance}}
	}
	resp := roundTrip[*kmsg.LeaveGroupResponse](m.ctx(), m.t, m.c, req)
	if m.v.leave >= 3 {
		if len(resp.Members) != 1 {
			m.t.Errorf("leave: %d members answered", len(resp.Members))
			return resp.ErrorCode
		}
		return resp.Members[0].ErrorCode
	}
	return resp.ErrorCode
}

// assignAll has every member's assignment be "a-<member id>".
func assignAll(members []kmsg.JoinGroupResponseMember) map[string][]byte {
	out := make(map[string][]byte)
	for _, m := range members {
		out[m.MemberID] = []byte("a-" + m.MemberID)
	}
	return out
}

// joinAndSync joins every member concurrently and syncs them, the leader
// last, and checks each gets its assignment. It returns the generation.
func joinAndSync(t *testing.T, ms ...*tmember) int32 {
	t.Helper()
	var chs []<-chan *kmsg.JoinGroupResponse
	for _, m := range ms {
		chs = append(chs, m.joinAsync())
	}
	for _, ch := range chs {
		<-ch
	}
	if t.Failed() {
		t.FailNow()
	}
	return syncAll(t, ms...)
}

func syncAll(t *testing.T, ms ...*tmember) int32 {
	t.Helper()
	var leader *tmember
	gen := ms[0].gen
	var followers []<-chan *kmsg.SyncGroupResponse
	var followerMs []*tmember
	for _, m := range ms {
		if m.gen != gen || m.leader != ms[0].leader {
			t.Fatalf("members disagree: %s gen %d leader %s, %s gen %d leader %s", ms[0].id, gen, ms[0].leader, m.id, m.gen, m.leader)
		}
		if m.isLeader() {
			leader = m
			continue
		}
		followers = append(followers, m.syncAsync(nil))
		followerMs = append(followerMs, m)
	}
	if leader == nil {
		t.Fatalf("no member is the leader %s", ms[0].leader)
	}
	if len(leader.joined.Members) != len(ms) {
		t.Fatalf("leader got %d members, want %d", len(leader.joined.Members), len(ms))
	}
	resp := leader.sync(assignAll(leader.joined.Members))
	wantErr(t, "leader sync", resp.ErrorCode, nil)
	if string(resp.MemberAssignment) != "a-"+leader.id {
		t.Errorf("leader assignment %q", resp.MemberAssignment)
	}
	for i, ch := range followers {
		select {
		case r := <-ch:
			wantErr(t, "follower sync", r.ErrorCode, nil)
			if want := "a-" + followerMs[i].id; string(r.MemberAssignment) != want {
				t.Errorf("follower assignment %q, want %q", r.MemberAssignment, want)
			}
		case <-time.After(wait.Timeout):
			t.Fatal("follower sync did not return")
		}
	}
	return gen
}

// inGroup runs f on the named group with its lock held; the group must exist.
func inGroup(t testing.TB, c *Coordinator, name string, f func(g *group)) {
	t.Helper()
	g, err := c.lockGroup(name, false)
	if g == nil {
		t.Fatalf("group %q: not found (%v)", name, err)
	}
	defer g.mu.Unlock()
	f(g)
}

// joinWaiters is how many members of the group wait in JoinGroup (none if
// the group does not exist yet): the event that a join request reached the
// coordinator.
func joinWaiters(t testing.TB, c *Coordinator, name string) (n int) {
	g, err := c.lockGroup(name, false)
	if err != nil {
		t.Fatalf("group %q: %v", name, err)
	}
	if g == nil {
		return 0
	}
	defer g.mu.Unlock()
	for _, m := range g.mu.members {
		if m.joinCh != nil {
			n++
		}
	}
	return n
}

// syncWaiters is how many members of the group wait in SyncGroup.
func syncWaiters(t testing.TB, c *Coordinator, name string) (n int) {
	inGroup(t, c, name, func(g *group) {
		for _, m := range g.mu.members {
			if m.syncCh != nil {
				n++
			}
		}
	})
	return n
}

// pendingMembers is how many member ids handed out with MEMBER_ID_REQUIRED
// have not joined yet.
func pendingMembers(t testing.TB, c *Coordinator, name string) (n int) {
	inGroup(t, c, name, func(g *group) { n = len(g.mu.pending) })
	return n
}

// groupState is the group's state.
func groupState(t testing.TB, c *Coordinator, name string) (s state) {
	inGroup(t, c, name, func(g *group) { s = g.mu.state })
	return s
}

// endDelayStep ends the current step of the group's initial rebalance delay
// as its timer would, so a test need not wait for the timer.
func endDelayStep(t testing.TB, c *Coordinator, name string) {
	var g *group
	var seq uint64
	inGroup(t, c, name, func(gr *group) { g, seq = gr, gr.mu.seq })
	g.onInitialDelay(seq)
}

func describe(t testing.TB, c *Coordinator, version int16, group string) kmsg.DescribeGroupsResponseGroup {
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.Version = version
	req.Groups = []string{group}
	resp := roundTrip[*kmsg.DescribeGroupsResponse](context.Background(), t, c, req)
	if len(resp.Groups) != 1 {
		t.Fatalf("describe: %d groups", len(resp.Groups))
	}
	return resp.Groups[0]
}
