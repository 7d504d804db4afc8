package group

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/wait"
	"github.com/stratalog/strata/metadata"
)

type tcommit struct {
	topic     string
	partition int32
	offset    int64
	epoch     int32
	meta      string
}

func commitReq(version int16, group string, gen int32, memberID string, cs ...tcommit) *kmsg.OffsetCommitRequest {
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Version = version
	req.Group = group
	req.Generation = gen
	req.MemberID = memberID
	for _, c := range cs {
		i := -1
		for j, t := range req.Topics {
			if t.Topic == c.topic {
				i = j
			}
		}
		if i < 0 {
			rt := kmsg.NewOffsetCommitRequestTopic()
			rt.Topic = c.topic
			rt.TopicID, _ = testTopics.TopicID(c.topic)
			if c.topic == "unknown" {
				rt.TopicID = [16]byte{9}
			}
			req.Topics = append(req.Topics, rt)
			i = len(req.Topics) - 1
		}
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata = c.partition, c.offset, c.epoch, kmsg.StringPtr(c.meta)
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
	}
	return req
}

// commit returns the error codes of each partition, in request order.
func commit(t testing.TB, c *Coordinator, req *kmsg.OffsetCommitRequest) []int16 {
	t.Helper()
	resp := roundTrip[*kmsg.OffsetCommitResponse](context.Background(), t, c, req)
	var codes []int16
	for i, rt := range resp.Topics {
		if req.Version >= 10 && rt.TopicID != req.Topics[i].TopicID {
			t.Errorf("response topic id %x, want %x", rt.TopicID, req.Topics[i].TopicID)
		}
		if req.Version < 10 && rt.Topic != req.Topics[i].Topic {
			t.Errorf("response topic %q, want %q", rt.Topic, req.Topics[i].Topic)
		}
		for _, p := range rt.Partitions {
			codes = append(codes, p.ErrorCode)
		}
	}
	return codes
}

func commitAs(t testing.TB, c *Coordinator, m *tmember, topic string, partition int32, offset int64) int16 {
	t.Helper()
	req := commitReq(m.v.commit, m.group, m.gen, m.id, tcommit{topic: topic, partition: partition, offset: offset})
	req.InstanceID = m.instance
	codes := commit(t, c, req)
	if len(codes) != 1 {
		t.Fatalf("%d partitions answered", len(codes))
	}
	return codes[0]
}

type fetched struct {
	offset int64
	epoch  int32
	meta   string
	err    int16
}

// fetch asks for topic/partitions of group (all committed if tps is nil) and
// returns what came back by "topic/partition", plus the group error.
func fetch(t testing.TB, c *Coordinator, version int16, group string, tps map[string][]int32) (map[string]fetched, int16) {
	t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Version = version
	out := make(map[string]fetched)
	key := func(topic string, p int32) string { return topic + "/" + string(rune('0'+p)) }
	if version >= 8 {
		rg := kmsg.NewOffsetFetchRequestGroup()
		rg.Group = group
		for topic, ps := range tps {
			rt := kmsg.NewOffsetFetchRequestGroupTopic()
			rt.Topic, rt.Partitions = topic, ps
			rt.TopicID, _ = testTopics.TopicID(topic)
			rg.Topics = append(rg.Topics, rt)
		}
		if tps != nil && rg.Topics == nil {
			rg.Topics = []kmsg.OffsetFetchRequestGroupTopic{}
		}
		req.Groups = []kmsg.OffsetFetchRequestGroup{rg}
		resp := roundTrip[*kmsg.OffsetFetchResponse](context.Background(), t, c, req)
		if len(resp.Groups) != 1 || resp.Groups[0].Group != group {
			t.Fatalf("fetch: groups %+v", resp.Groups)
		}
		for _, rt := range resp.Groups[0].Topics {
			name := rt.Topic
			if version >= 10 {
				name, _ = testTopics.TopicName(rt.TopicID)
			}
			for _, p := range rt.Partitions {
				out[key(name, p.Partition)] = fetched{p.Offset, p.LeaderEpoch, deref(p.Metadata), p.ErrorCode}
			}
		}
		return out, resp.Groups[0].ErrorCode
	}
	req.Group = group
	for topic, ps := range tps {
		req.Topics = append(req.Topics, kmsg.OffsetFetchRequestTopic{Topic: topic, Partitions: ps})
	}
	resp := roundTrip[*kmsg.OffsetFetchResponse](context.Background(), t, c, req)
	for _, rt := range resp.Topics {
		for _, p := range rt.Partitions {
			out[key(rt.Topic, p.Partition)] = fetched{p.Offset, p.LeaderEpoch, deref(p.Metadata), p.ErrorCode}
		}
	}
	return out, resp.ErrorCode
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// TestCommitFetchRoundTrip: simple commits at every version, fetched back at
// every version, with metadata and (v6+/v5+) leader epoch.
func TestCommitFetchRoundTrip(t *testing.T) {
	c, _ := newTest(t, testConfig())
	for cv := int16(0); cv <= 10; cv++ {
		group := "g" + string(rune('a'+cv))
		codes := commit(t, c, commitReq(cv, group, -1, "",
			tcommit{"t1", 0, 100 + int64(cv), 7, "meta-" + group},
			tcommit{"t1", 2, 5, 7, ""},
			tcommit{"t2", 1, 9, 7, "x"},
		))
		for i, code := range codes {
			wantErr(t, "simple commit", code, nil)
			_ = i
		}
		for fv := int16(0); fv <= 10; fv++ {
			got, gerr := fetch(t, c, fv, group, map[string][]int32{"t1": {0, 1, 2}, "t2": {1}})
			wantErr(t, "fetch group error", gerr, nil)
			wantEpoch := int32(-1)
			if cv >= 6 && fv >= 5 {
				wantEpoch = 7
			}
			if g := got["t1/0"]; g.offset != 100+int64(cv) || g.meta != "meta-"+group || g.epoch != wantEpoch || g.err != 0 {
				t.Errorf("commit v%d fetch v%d: t1/0 = %+v", cv, fv, g)
			}
			if g := got["t1/1"]; g.offset != -1 || g.meta != "" || g.err != 0 {
				t.Errorf("commit v%d fetch v%d: uncommitted t1/1 = %+v", cv, fv, g)
			}
			if g := got["t2/1"]; g.offset != 9 || g.meta != "x" {
				t.Errorf("commit v%d fetch v%d: t2/1 = %+v", cv, fv, g)
			}
			if fv >= 2 {
				all, _ := fetch(t, c, fv, group, nil)
				if len(all) != 3 || all["t1/2"].offset != 5 {
					t.Errorf("fetch v%d all topics: %+v", fv, all)
				}
			}
		}
	}
}

// TestFetchUnknownGroup: no such group is offset -1 and no error at every version.
func TestFetchUnknownGroup(t *testing.T) {
	c, _ := newTest(t, testConfig())
	for fv := int16(0); fv <= 10; fv++ {
		got, gerr := fetch(t, c, fv, "never", map[string][]int32{"t1": {0, 1}})
		wantErr(t, "fetch unknown group", gerr, nil)
		if len(got) != 2 || got["t1/0"].offset != -1 || got["t1/0"].err != 0 || got["t1/1"].epoch != -1 {
			t.Errorf("v%d: %+v", fv, got)
		}
		if fv >= 2 {
			if all, gerr := fetch(t, c, fv, "never", nil); len(all) != 0 || gerr != 0 {
				t.Errorf("v%d all topics of unknown group: %+v %d", fv, all, gerr)
			}
		}
	}
}

func TestFetchSeveralGroups(t *testing.T) {
	c, _ := newTest(t, testConfig())
	commit(t, c, commitReq(8, "g1", -1, "", tcommit{"t1", 0, 1, -1, ""}))
	commit(t, c, commitReq(8, "g2", -1, "", tcommit{"t1", 0, 2, -1, ""}))
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Version = 8
	for _, g := range []string{"g1", "g2", "g3"} {
		rg := kmsg.NewOffsetFetchRequestGroup()
		rg.Group = g
		rg.Topics = []kmsg.OffsetFetchRequestGroupTopic{{Topic: "t1", Partitions: []int32{0}}}
		req.Groups = append(req.Groups, rg)
	}
	resp := roundTrip[*kmsg.OffsetFetchResponse](context.Background(), t, c, req)
	want := []int64{1, 2, -1}
	for i, g := range resp.Groups {
		if g.ErrorCode != 0 || g.Topics[0].Partitions[0].Offset != want[i] {
			t.Errorf("group %s: %+v", g.Group, g)
		}
	}
}

func TestCommitErrors(t *testing.T) {
	c, store := newTest(t, testConfig())
	// Per-partition validation.
	codes := commit(t, c, commitReq(7, "g", -1, "",
		tcommit{"t1", 0, 1, -1, ""},
		tcommit{"t1", 3, 1, -1, ""},
		tcommit{"nope", 0, 1, -1, ""},
		tcommit{"t2", 0, 1, -1, strings.Repeat("m", 4097)},
	))
	want := []*kerr.Error{nil, kerr.UnknownTopicOrPartition, kerr.UnknownTopicOrPartition, kerr.OffsetMetadataTooLarge}
	for i := range want {
		wantErr(t, "partition validation", codes[i], want[i])
	}
	codes = commit(t, c, commitReq(10, "g", -1, "", tcommit{"unknown", 0, 1, -1, ""}, tcommit{"t2", 0, 1, -1, ""}))
	wantErr(t, "v10 unknown topic id", codes[0], kerr.UnknownTopicID)
	wantErr(t, "v10 known topic id", codes[1], nil)

	// A generation for a group that does not exist.
	wantErr(t, "v8 unknown group", commit(t, c, commitReq(8, "none", 3, "m", tcommit{"t1", 0, 1, -1, ""}))[0], kerr.IllegalGeneration)
	wantErr(t, "v9 unknown group", commit(t, c, commitReq(9, "none", 3, "m", tcommit{"t1", 0, 1, -1, ""}))[0], kerr.GroupIDNotFound)

	// A group with a member.
	v := clientVersions[3]
	m := newMember(t, c, v, "g", "a", "t1")
	joinAndSync(t, m)
	wantErr(t, "member commit", commitAs(t, c, m, "t1", 1, 42), nil)
	wrong := *m
	wrong.gen = m.gen + 1
	wantErr(t, "wrong generation", commitAs(t, c, &wrong, "t1", 1, 1), kerr.IllegalGeneration)
	wrong = *m
	wrong.id = "stranger"
	wantErr(t, "unknown member", commitAs(t, c, &wrong, "t1", 1, 1), kerr.UnknownMemberID)
	wantErr(t, "simple commit to a group with members", commit(t, c, commitReq(7, "g", -1, "", tcommit{"t1", 1, 1, -1, ""}))[0], kerr.UnknownMemberID)
	wantErr(t, "v0 commit to a group with members", commit(t, c, commitReq(0, "g", -1, "", tcommit{"t1", 1, 1, -1, ""}))[0], kerr.UnknownMemberID)
	if got, _ := fetch(t, c, 1, "g", map[string][]int32{"t1": {1}}); got["t1/1"].offset != 42 {
		t.Errorf("a refused commit changed the offset: %+v", got)
	}

	// During PreparingRebalance the current generation may still commit.
	m2 := newMember(t, c, v, "g", "b", "t1")
	ch := m2.joinAsync()
	wait.Eventually(t, "rebalance", func() bool { return m.heartbeat() == kerr.RebalanceInProgress.Code })
	wantErr(t, "commit in PreparingRebalance", commitAs(t, c, m, "t1", 1, 43), nil)
	m.join()
	<-ch

	// A store failure.
	store.mu.Lock()
	store.failErr = errors.New("disk on fire")
	store.mu.Unlock()
	wantErr(t, "store failure", commit(t, c, commitReq(2, "s", -1, "", tcommit{"t1", 0, 1, -1, ""}))[0], kerr.CoordinatorNotAvailable)
}

// TestCommitTimestampV1: a v1 commit's own timestamp is the commit time.
func TestCommitTimestampV1(t *testing.T) {
	c, store := newTest(t, testConfig())
	req := commitReq(1, "g", -1, "", tcommit{"t1", 0, 1, -1, ""}, tcommit{"t1", 1, 1, -1, ""})
	req.Topics[0].Partitions[0].Timestamp = 12345
	commit(t, c, req)
	offs, _ := store.GroupOffsets("g")
	for _, o := range offs {
		if o.Partition == 0 && o.CommitTimestamp != 12345 {
			t.Errorf("v1 timestamp not kept: %+v", o)
		}
		if o.Partition == 1 && time.Since(time.UnixMilli(o.CommitTimestamp)) > time.Minute {
			t.Errorf("v1 default timestamp: %+v", o)
		}
	}
}

func TestDeleteGroups(t *testing.T) {
	c, _ := newTest(t, testConfig())
	v := clientVersions[3]
	m := newMember(t, c, v, "active", "a", "t1")
	joinAndSync(t, m)
	commitAs(t, c, m, "t1", 0, 3)
	commit(t, c, commitReq(2, "simple", -1, "", tcommit{"t1", 0, 5, -1, ""}))
	left := newMember(t, c, v, "left", "b", "t1")
	joinAndSync(t, left)
	commitAs(t, c, left, "t1", 0, 8)
	left.leave()

	for _, version := range []int16{0, 3} {
		req := kmsg.NewPtrDeleteGroupsRequest()
		req.Version = version
		req.Groups = []string{"active", "missing"}
		resp := roundTrip[*kmsg.DeleteGroupsResponse](context.Background(), t, c, req)
		wantErr(t, "delete group with members", resp.Groups[0].ErrorCode, kerr.NonEmptyGroup)
		wantErr(t, "delete unknown group", resp.Groups[1].ErrorCode, kerr.GroupIDNotFound)
		if version >= 3 && resp.Groups[1].ErrorMessage == nil {
			t.Error("v3: no error message")
		}
	}
	req := kmsg.NewPtrDeleteGroupsRequest()
	req.Version = 2
	req.Groups = []string{"simple", "left"}
	resp := roundTrip[*kmsg.DeleteGroupsResponse](context.Background(), t, c, req)
	wantErr(t, "delete simple group", resp.Groups[0].ErrorCode, nil)
	wantErr(t, "delete emptied group", resp.Groups[1].ErrorCode, nil)
	for _, g := range []string{"simple", "left"} {
		if got, _ := fetch(t, c, 7, g, map[string][]int32{"t1": {0}}); got["t1/0"].offset != -1 {
			t.Errorf("%s: offsets survived deletion: %+v", g, got)
		}
		if dg := describe(t, c, 6, g); dg.ErrorCode != kerr.GroupIDNotFound.Code || dg.State != "Dead" {
			t.Errorf("%s after delete: %+v", g, dg)
		}
	}
	if got, _ := fetch(t, c, 7, "active", map[string][]int32{"t1": {0}}); got["t1/0"].offset != 3 {
		t.Errorf("active group lost its offsets: %+v", got)
	}
}

func TestOffsetDelete(t *testing.T) {
	c, _ := newTest(t, testConfig())
	v := clientVersions[3]
	m := newMember(t, c, v, "g", "a", "t1")
	joinAndSync(t, m)
	commitAs(t, c, m, "t1", 0, 1)
	commitAs(t, c, m, "t2", 0, 2)
	commitAs(t, c, m, "t2", 1, 3)

	del := func(group string, tps map[string][]int32) *kmsg.OffsetDeleteResponse {
		req := kmsg.NewPtrOffsetDeleteRequest()
		req.Group = group
		for _, topic := range []string{"t1", "t2", "nope"} {
			ps, ok := tps[topic]
			if !ok {
				continue
			}
			rt := kmsg.NewOffsetDeleteRequestTopic()
			rt.Topic = topic
			for _, p := range ps {
				rt.Partitions = append(rt.Partitions, kmsg.OffsetDeleteRequestTopicPartition{Partition: p})
			}
			req.Topics = append(req.Topics, rt)
		}
		return roundTrip[*kmsg.OffsetDeleteResponse](context.Background(), t, c, req)
	}
	resp := del("g", map[string][]int32{"t1": {0}, "t2": {0}, "nope": {0}})
	wantErr(t, "top level", resp.ErrorCode, nil)
	wantErr(t, "subscribed topic", resp.Topics[0].Partitions[0].ErrorCode, kerr.GroupSubscribedToTopic)
	wantErr(t, "unsubscribed topic", resp.Topics[1].Partitions[0].ErrorCode, nil)
	wantErr(t, "unknown topic", resp.Topics[2].Partitions[0].ErrorCode, kerr.UnknownTopicOrPartition)
	got, _ := fetch(t, c, 7, "g", nil)
	if len(got) != 2 || got["t1/0"].offset != 1 || got["t2/1"].offset != 3 {
		t.Errorf("after offset delete: %+v", got)
	}

	wantErr(t, "unknown group", del("missing", map[string][]int32{"t1": {0}}).ErrorCode, kerr.GroupIDNotFound)
	wantErr(t, "empty group id", del("", map[string][]int32{"t1": {0}}).ErrorCode, kerr.InvalidGroupID)

	// Once the group is Empty, subscribed topics may go too.
	m.leave()
	resp = del("g", map[string][]int32{"t1": {0}})
	wantErr(t, "empty group", resp.Topics[0].Partitions[0].ErrorCode, nil)
	if got, _ := fetch(t, c, 7, "g", nil); len(got) != 1 {
		t.Errorf("after offset delete on Empty group: %+v", got)
	}
}

// TestOffsetExpiry: offsets of simple groups expire by commit time, those of
// consumer groups once the group has been Empty for the retention; a group
// with members keeps its offsets.
func TestOffsetExpiry(t *testing.T) {
	cfg := testConfig()
	cfg.OffsetsRetention = 60 * time.Millisecond
	cfg.OffsetsRetentionCheckInterval = 5 * time.Millisecond
	c, store := newTest(t, cfg)
	v := clientVersions[3]
	active := newMember(t, c, v, "active", "a", "t1")
	joinAndSync(t, active)
	commitAs(t, c, active, "t1", 0, 1)
	leaving := newMember(t, c, v, "leaving", "b", "t1")
	joinAndSync(t, leaving)
	commitAs(t, c, leaving, "t1", 0, 2)
	start := time.Now()
	commit(t, c, commitReq(2, "simple", -1, "", tcommit{"t1", 0, 3, -1, ""}))

	wait.Eventually(t, "simple group's offsets expire", func() bool {
		got, _ := fetch(t, c, 1, "simple", map[string][]int32{"t1": {0}})
		return got["t1/0"].offset == -1
	})
	if el := time.Since(start); el < 50*time.Millisecond {
		t.Errorf("offsets expired after %v, retention is 60ms", el)
	}
	if dg := describe(t, c, 6, "simple"); dg.ErrorCode != kerr.GroupIDNotFound.Code {
		t.Errorf("expired simple group still exists: %+v", dg)
	}
	// leaving's offsets are old, but it still has its member.
	if got, _ := fetch(t, c, 1, "leaving", map[string][]int32{"t1": {0}}); got["t1/0"].offset != 2 {
		t.Errorf("group with a member lost its offsets: %+v", got)
	}
	left := time.Now()
	leaving.leave()
	wait.Eventually(t, "emptied group's offsets expire", func() bool {
		got, _ := fetch(t, c, 1, "leaving", map[string][]int32{"t1": {0}})
		return got["t1/0"].offset == -1
	})
	if el := time.Since(left); el < 50*time.Millisecond {
		t.Errorf("emptied group's offsets expired %v after it became Empty", el)
	}
	if got, _ := fetch(t, c, 1, "active", map[string][]int32{"t1": {0}}); got["t1/0"].offset != 1 {
		t.Errorf("active group lost its offsets: %+v", got)
	}
	if groups, _ := store.OffsetGroups(); len(groups) != 1 || groups[0] != "active" {
		t.Errorf("groups with offsets: %v", groups)
	}
	// The member keeps heartbeating: its session is long, the group stays.
	wantErr(t, "active heartbeat", active.heartbeat(), nil)
}

func TestListAndDescribe(t *testing.T) {
	c, store := newTest(t, testConfig())
	v := clientVersions[3]
	m := newMember(t, c, v, "stable", "a", "t1")
	joinAndSync(t, m)
	// A group known only from the store (as after a restart).
	_ = store.CommitOffsets("stored", []metadata.OffsetCommit{{Topic: "t1", Partition: 0, Offset: 1, CommitTimestamp: time.Now().UnixMilli()}})

	list := func(version int16, states ...string) map[string]kmsg.ListGroupsResponseGroup {
		req := kmsg.NewPtrListGroupsRequest()
		req.Version = version
		req.StatesFilter = states
		resp := roundTrip[*kmsg.ListGroupsResponse](context.Background(), t, c, req)
		wantErr(t, "list", resp.ErrorCode, nil)
		out := make(map[string]kmsg.ListGroupsResponseGroup)
		for _, g := range resp.Groups {
			out[g.Group] = g
		}
		return out
	}
	all := list(0)
	if len(all) != 2 || all["stable"].ProtocolType != "consumer" || all["stored"].ProtocolType != "" {
		t.Errorf("list v0: %+v", all)
	}
	if got := list(4, "stable"); len(got) != 1 || got["stable"].GroupState != "Stable" {
		t.Errorf("list v4 Stable: %+v", got)
	}
	if got := list(5, "Empty"); len(got) != 1 || got["stored"].GroupType != "classic" {
		t.Errorf("list v5 Empty: %+v", got)
	}

	if dg := describe(t, c, 0, "stored"); dg.State != "Empty" || dg.ErrorCode != 0 {
		t.Errorf("describe stored: %+v", dg)
	}
	if dg := describe(t, c, 5, "missing"); dg.State != "Dead" || dg.ErrorCode != 0 {
		t.Errorf("describe v5 missing: %+v", dg)
	}
	if dg := describe(t, c, 6, "missing"); dg.ErrorCode != kerr.GroupIDNotFound.Code || dg.ErrorMessage == nil {
		t.Errorf("describe v6 missing: %+v", dg)
	}
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.Version = 3
	req.Groups = []string{"stable"}
	req.IncludeAuthorizedOperations = true
	if resp := roundTrip[*kmsg.DescribeGroupsResponse](context.Background(), t, c, req); resp.Groups[0].AuthorizedOperations != groupOperations {
		t.Errorf("authorized operations %d", resp.Groups[0].AuthorizedOperations)
	}
	// During a rebalance no protocol, metadata or assignment is described.
	m2 := newMember(t, c, v, "stable", "b", "t1")
	ch := m2.joinAsync()
	wait.Eventually(t, "rebalance", func() bool { return m.heartbeat() == kerr.RebalanceInProgress.Code })
	if dg := describe(t, c, 4, "stable"); dg.State != "PreparingRebalance" || dg.Protocol != "" || len(dg.Members[0].MemberAssignment) != 0 {
		t.Errorf("describe during rebalance: %+v", dg)
	}
	m.join()
	<-ch
}
